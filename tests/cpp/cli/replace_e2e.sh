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
expect 3 "nope.*does not exist" "$out" -- replace -i "$clip" "${common[@]}" --metrics "$work/nope/metrics.json"
ffmpeg -v error -y -f lavfi -i "color=black:s=320x240:r=10:d=3" -c:v libx264 -pix_fmt yuv420p "$work/small_mask.mp4"
expect 3 "mask is 320x240" "$out" -- replace -i "$clip" -r "$ref" -o "$out" --bundle "$bundle" --mask "$work/small_mask.mp4"

printf '{"frames": [{"frame": 0, "people": [{"body": "nope"}]}]}' >"$work/bad_poses.json"
expect 3 "bad_poses.json: frames\[0\]" "$out" -- replace -i "$clip" -r "$ref" -o "$out" --bundle "$bundle" --poses "$work/bad_poses.json" --mask "$work/mask.mp4"
echo '{"width": 320, "height": 240, "frames": []}' >"$work/small_poses.json"
expect 3 "poses are for 320x240" "$out" -- replace -i "$clip" -r "$ref" -o "$out" --bundle "$bundle" --poses "$work/small_poses.json" --mask "$work/mask.mp4"
ffmpeg -v error -y -f lavfi -i "color=black:s=768x576:r=10:d=1" -c:v libx264 -pix_fmt yuv420p "$work/short_mask.mp4"
expect 3 "mask has 10 frames but the video has 30" "$out" -- replace -i "$clip" -r "$ref" -o "$out" --bundle "$bundle" --mask "$work/short_mask.mp4"
expect 3 "short_mask.mp4: mask has 10 frames" "$out" -- replace -i "$clip" -r "$ref" -o "$out" --bundle "$bundle" --mask "$work/mask.mp4" --object-mask "$work/short_mask.mp4"

head -c 3000 "$clip" >"$work/cut.mp4"
expect 3 "no frame could be decoded" "$out" -- replace -i "$work/cut.mp4" -r "$ref" -o "$out" --bundle "$bundle"
ffmpeg -v error -y -f lavfi -i "color=0x3a7a2a:s=300x400" -frames:v 1 "$work/grass.png"
if [[ -f $source_dir/models/vision/vision.json ]]; then
  expect 3 "no person found in the reference" "$out" -- replace -i "$clip" -r "$work/grass.png" -o "$out" --bundle "$bundle" --mask "$work/mask.mp4" --vision-models "$source_dir/models/vision"
fi

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

mkdir -p "$work/b_json" && printf '{"format": "standin-bundle", ' >"$work/b_json/model.json"
expect 4 "model.json" "$out" -- replace -i "$clip" -r "$ref" -o "$out" --bundle "$work/b_json" --mask "$work/mask.mp4"

# Devices (issue 11): a misspelt list is a usage error; CUDA asked for where there is none too.
expect 2 "cuda:1 is named twice" "$out" -- replace -i "$clip" "${common[@]}" --device cuda:1,cuda:1
if [[ ! -e /dev/nvidiactl ]]; then
  expect 2 "no CUDA device; use --device cpu" "$out" -- replace -i "$clip" "${common[@]}" --device cuda
  expect 2 "no CUDA device; use --device cpu" "$out" -- replace -i "$clip" "${common[@]}" --device cuda:0,cuda:1
fi

# The real job.
"$standin" replace -i "$clip" "${common[@]}" --metrics "$work/metrics.json" 2>"$work/log" || { fail "replace failed: $(cat "$work/log")"; }
/usr/bin/python3 -c 'import json, sys; m = json.load(open(sys.argv[1])); sys.exit(0 if m["devices"] == [m["device"]] and m["devices_used"] == 1 else 1)' \
  "$work/metrics.json" || fail "metrics.json does not list the one device used: $(head -c 600 "$work/metrics.json")"
# the analysis' breakdown: its parts fit inside it, and network time comes with network runs
/usr/bin/python3 - "$work/metrics.json" <<'PY' || fail "analysis_detail inconsistent: $(head -c 1500 "$work/metrics.json")"
import json, sys
m = json.load(open(sys.argv[1]))
d, total = m["analysis_detail"], m["seconds"]["analysis"]
assert set(d) == {"decode", "tracker", "detector", "detector_runs", "detector_calls", "landmark", "landmark_runs",
                  "landmark_calls", "mask"}, d
# a frame's detector tiles and tracked people share one network call each
assert 0 < d["detector_calls"] <= d["detector_runs"] and 0 < d["landmark_calls"] <= d["landmark_runs"], d
assert d["landmark_calls"] <= m["frames"], d
assert 0 < d["decode"] and d["decode"] + d["tracker"] <= total + 1e-3, (d, total)
assert d["detector"] + d["landmark"] + d["mask"] <= d["tracker"] + 1e-3, d
assert (d["landmark_runs"] > 0) == (d["landmark"] > 0) and (d["detector_runs"] > 0) == (d["detector"] > 0), d
PY
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
# Kill and resume (--cache) gives the same file as an uninterrupted run with the same seed.
echo '{"width": 768, "height": 576, "frames": []}' >"$work/no_poses.json"
fast=(-i "$clip" -r "$ref" --bundle "$bundle" --mask "$work/mask.mp4" --poses "$work/no_poses.json" --steps 6 --seed 5 -y)
"$standin" replace "${fast[@]}" -o "$work/straight.mp4" 2>/dev/null || fail "uninterrupted render failed"
"$standin" replace "${fast[@]}" -o "$work/resumed.mp4" --cache "$work/cache" 2>/dev/null &
pid=$!
for _ in $(seq 1 600); do
  sleep 0.2
  compgen -G "$work/cache/*/state.pt" >/dev/null && break
done
kill -TERM $pid
wait $pid
code=$?
[[ $code -eq 130 ]] || fail "interrupted render exited $code, want 130"
[[ -e $work/resumed.mp4 ]] && fail "interrupted render left an output"
compgen -G "$work/cache/*/state.pt" >/dev/null || fail "no cached state after the interruption"
"$standin" replace "${fast[@]}" -o "$work/resumed.mp4" --cache "$work/cache" 2>"$work/resume.log" || fail "resume failed"
grep -q "resuming from" "$work/resume.log" || fail "the second run did not resume: $(cat "$work/resume.log")"
cmp -s "$work/straight.mp4" "$work/resumed.mp4" && echo "ok: resumed render is bit-identical" ||
  fail "resumed render differs from the uninterrupted one"

# A single-frame video is a valid (one-window) job.
ffmpeg -v error -y -i "$clip" -frames:v 1 -an -c:v libx264 -pix_fmt yuv420p "$work/one.mp4"
ffmpeg -v error -y -i "$work/mask.mp4" -frames:v 1 -c:v libx264 -pix_fmt yuv420p "$work/one_mask.mp4"
"$standin" replace -i "$work/one.mp4" -r "$ref" -o "$work/one_out.mp4" --bundle "$bundle" --mask "$work/one_mask.mp4" \
  --poses "$work/no_poses.json" --steps 1 2>/dev/null || fail "single-frame video failed"
[[ $(ffprobe -v error -select_streams v:0 -count_frames -show_entries stream=nb_read_frames -of csv=p=0 "$work/one_out.mp4" 2>/dev/null) == 1 ]] &&
  echo "ok: single-frame video" || fail "single-frame output does not have one frame"

# compare gates a render: identical passes, the source against the render fails the threshold.
"$standin" compare "$work/straight.mp4" "$work/resumed.mp4" --min-psnr 60 >/dev/null 2>&1 || fail "compare rejected identical renders"
"$standin" compare "$clip" "$work/straight.mp4" --min-psnr 40 >/dev/null 2>&1
[[ $? -eq 1 ]] && echo "ok: compare gates a drifted render" || fail "compare did not exit 1 below --min-psnr"

# Batch: a good and a bad job; the batch goes on, records both, exits 5; a rerun skips the done one.
cat >"$work/jobs.jsonl" <<JOBS
{"input": "$clip", "reference": "$ref", "output": "$work/job0.mp4", "bundle": "$bundle", "mask": "$work/mask.mp4", "poses": "$work/no_poses.json", "steps": 1}
{"input": "$data/empty.mp4", "reference": "$ref", "output": "$work/job1.mp4", "bundle": "$bundle"}
JOBS
"$standin" batch "$work/jobs.jsonl" 2>/dev/null
[[ $? -eq 5 ]] || fail "batch with a failed job should exit 5"
/usr/bin/python3 - "$work/jobs.status.json" <<'PY' || fail "batch status wrong: $(cat "$work/jobs.status.json")"
import json, sys
jobs = json.load(open(sys.argv[1]))["jobs"]
assert [j["status"] for j in jobs] == ["done", "failed"], jobs
assert jobs[1]["exit_code"] == 3, jobs
PY
"$standin" batch "$work/jobs.jsonl" 2>/dev/null
grep -q '"skipped"' "$work/jobs.status.json" && echo "ok: batch skips finished jobs" || fail "batch rerun did not skip the finished job"

exit $((failures > 0))
