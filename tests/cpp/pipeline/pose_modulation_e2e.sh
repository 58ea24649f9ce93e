#!/usr/bin/env bash
# replace and animate with a pose-modulation bundle (its pose guider also takes a depth map per
# frame, drawn from the tracked skeleton's z): both must render every frame of the clip.
#   pose_modulation_e2e.sh STANDIN DATA_DIR
set -u
standin=$1 data=$2
source_dir=$(cd "$(dirname "$0")/../../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

"$source_dir/scripts/make_sample_media.sh" "$data" >/dev/null || { echo "sample media failed"; exit 1; }
/usr/bin/python3 "$source_dir/scripts/export_bundle.py" --config tiny --pose-modulation --no-check \
  --out "$work/tiny_pm" >"$work/export.log" 2>&1 || { echo "export failed: $(tail -5 "$work/export.log")"; exit 1; }
grep -q '"pose_modulation": *true' "$work/tiny_pm/model.json" || { echo "the bundle has no pose modulation"; exit 1; }

# The first 10 frames of the sample clip keep the tracker's share of the run small.
ffmpeg -v error -y -i "$data/clip_audio.mp4" -frames:v 10 -c:v libx264 -pix_fmt yuv420p -c:a copy "$work/clip.mp4"
frames() { ffprobe -v error -select_streams v:0 -count_frames -show_entries stream=nb_read_frames -of csv=p=0 "$1"; }
for mode in replace animate; do
  out=$work/$mode.mp4
  if "$standin" "$mode" -i "$work/clip.mp4" -r "$data/person.png" --bundle "$work/tiny_pm" -o "$out" -y \
       --steps 2 >"$work/$mode.log" 2>&1; then
    got=$(frames "$out")
    [[ $got == 10 ]] && echo "ok: $mode with pose modulation wrote $got frames" || fail "$mode wrote $got frames, want 10"
  else
    fail "$mode with a pose-modulation bundle failed: $(tail -3 "$work/$mode.log")"
  fi
done
exit $((failures > 0))
