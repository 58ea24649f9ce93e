#!/usr/bin/env bash
# End to end on the real binary with the tiny bundle (issue 2/4/7 "Done when"):
#  - bad inputs and bad bundles: exit code, one clear line, nothing at the output path;
#  - replace on a vtest clip: same frame count, fps and audio as the source, and the
#    background (outside the dilated character mask) >= 45 dB PSNR.
set -u
standin=$1 bundle=$2 data=$3
source_dir=$(cd "$(dirname "$0")/../../.." && pwd)
failures=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

"$source_dir/scripts/make_sample_media.sh" "$data" >/dev/null || { echo "sample media failed"; exit 1; }
clip=$data/clip_audio.mp4 ref=$data/person.png

# A mask video: a white box over one pedestrian, and a larger box as the "dilated" region.
ffmpeg -v error -y -f lavfi -i "color=black:s=768x576:r=10:d=3,drawbox=x=300:y=150:w=80:h=200:color=white:t=fill" \
  -c:v libx264 -pix_fmt yuv420p "$work/mask.mp4"
ffmpeg -v error -y -f lavfi -i "color=black:s=768x576:r=10:d=3,drawbox=x=260:y=110:w=160:h=280:color=white:t=fill" \
  -c:v libx264 -pix_fmt yuv420p "$work/dilated.mp4"

expect() {  # expect CODE PATTERN OUTPUT -- ARGS...  (OUTPUT must not exist afterwards unless CODE is 0)
  local want=$1 pattern=$2 out=$3
  shift 4
  local err got
  err=$("$standin" "$@" 2>&1 >/dev/null)
  got=$?
  local lines
  lines=$(printf '%s\n' "$err" | grep -c 'error')
  if [[ $got -ne $want ]]; then fail "standin $* exited $got, want $want: $err"
  elif [[ -n $pattern && ! $err =~ $pattern ]]; then fail "standin $*: stderr does not match '$pattern': $err"
  elif [[ $err == *"Segmentation"* || $err == *"terminate called"* || $err == *"core dumped"* ]]; then fail "standin $*: crashed"
  elif [[ $want -ne 0 && $lines -ne 1 ]]; then fail "standin $*: want one error line, got: $err"
  elif [[ $want -ne 0 && -n $out && -e $out ]]; then fail "standin $*: left $out behind"
  elif [[ $want -ne 0 && -n $out && -n $(ls -A "$(dirname "$out")" | grep partial) ]]; then fail "standin $*: left a temporary"
  else echo "ok: [$got] ${err%%$'\n'*}"; fi
}

out=$work/out.mp4
common=(-r "$ref" -o "$out" --bundle "$bundle" --mask "$work/mask.mp4" --steps 2)
# Bad inputs -> 3
expect 3 "not found" "$out" -- replace -i "$work/missing.mp4" "${common[@]}"
expect 3 "empty" "$out" -- replace -i "$data/empty.mp4" "${common[@]}"
expect 3 "not a recognised media file|Invalid data" "$out" -- replace -i "$data/text.mp4" "${common[@]}"
expect 3 "no video stream" "$out" -- replace -i "$data/no_video.m4a" "${common[@]}"
printf 'not an image' >"$work/ref.png"
expect 3 "ref.png" "$out" -- replace -i "$clip" -r "$work/ref.png" -o "$out" --bundle "$bundle" --mask "$work/mask.mp4" --steps 2
expect 3 "does not exist" "" -- replace -i "$clip" -r "$ref" -o "$work/nope/out.mp4" --bundle "$bundle"
expect 3 "also an input" "" -- replace -i "$clip" -r "$ref" -o "$clip" --bundle "$bundle" -y
ffmpeg -v error -y -f lavfi -i "color=black:s=320x240:r=10:d=3" -c:v libx264 -pix_fmt yuv420p "$work/small_mask.mp4"
expect 3 "mask is 320x240" "$out" -- replace -i "$clip" -r "$ref" -o "$out" --bundle "$bundle" --mask "$work/small_mask.mp4"

# Bad bundles -> 4, naming the module
cp -r "$bundle" "$work/b_missing" && rm "$work/b_missing/pose_guider.pt"
expect 4 "pose_guider" "$out" -- replace -i "$clip" -r "$ref" -o "$out" --bundle "$work/b_missing" --mask "$work/mask.mp4"
cp -r "$bundle" "$work/b_corrupt" && printf 'garbage' >>"$work/b_corrupt/vae_decoder.pt"
expect 4 "vae_decoder" "$out" -- replace -i "$clip" -r "$ref" -o "$out" --bundle "$work/b_corrupt" --mask "$work/mask.mp4"
cp -r "$bundle" "$work/b_contract"
/usr/bin/python3 - "$work/b_contract/model.json" <<'PY'
import json, sys
p = sys.argv[1]; m = json.load(open(p))
out = m["modules"]["pose_guider"]["outputs"][0]
out["shape"][1] = 7  # claims 7 channels; the module makes pose_channels
json.dump(m, open(p, "w"), indent=2)
PY
expect 4 "pose_guider" "$out" -- replace -i "$clip" -r "$ref" -o "$out" --bundle "$work/b_contract" --mask "$work/mask.mp4"
printf '{"format": "standin-bundle", "format_version": 99}' >"$work/b_version.json"
mkdir -p "$work/b_version" && cp "$work/b_version.json" "$work/b_version/model.json"
expect 4 "format_version" "$out" -- replace -i "$clip" -r "$ref" -o "$out" --bundle "$work/b_version" --mask "$work/mask.mp4"

# The real job.
"$standin" replace -i "$clip" "${common[@]}" --metrics "$work/metrics.json" 2>"$work/log" || { fail "replace failed: $(cat "$work/log")"; }
if [[ -f $out ]]; then
  probe() { ffprobe -v error -select_streams "$2" -show_entries stream=nb_frames,r_frame_rate -of csv=p=0 "$1"; }
  [[ $(probe "$clip" v:0) == "$(probe "$out" v:0)" ]] || fail "video stream differs: $(probe "$clip" v:0) vs $(probe "$out" v:0)"
  audio_md5() { ffmpeg -v error -i "$1" -map 0:a:0 -c copy -f md5 -; }
  [[ $(audio_md5 "$clip") == "$(audio_md5 "$out")" ]] || fail "audio stream is not bit-identical"
  "$standin" compare "$clip" "$out" --mask "$work/dilated.mp4" --json >"$work/cmp.json" || fail "compare failed"
  /usr/bin/python3 - "$work/cmp.json" <<'PY' || fail "background PSNR under 45 dB: $(cat "$work/cmp.json")"
import json, sys
r = json.load(open(sys.argv[1]))
psnr = r["outside_mask"]["psnr_db"]
print(f"ok: background PSNR {psnr} dB, character region {r['inside_mask']['psnr_db']:.2f} dB")
sys.exit(0 if psnr == "inf" or psnr >= 45 else 1)
PY
  expect 3 "already exists" "" -- replace -i "$clip" "${common[@]}"
else
  fail "no output written"
fi
exit $((failures > 0))
