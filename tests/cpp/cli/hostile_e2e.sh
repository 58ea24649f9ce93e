#!/usr/bin/env bash
# Issue 14 end to end: hostile inputs and hostile filesystems. Every case checks the exit code,
# one clear error line naming the thing, no hang (each run is under `timeout`), nothing
# clobbered and nothing left at the output path.
#   hostile_e2e.sh STANDIN TINY_BUNDLE DATA_DIR
set -u
standin=$1 bundle=$2 data=$3
export OMP_WAIT_POLICY=PASSIVE  # as scripts/test.sh; standin would otherwise restart itself to set it
source_dir=$(cd "$(dirname "$0")/../../.." && pwd)
failures=0
work=$(mktemp -d)
holder=
trap '[[ -n $holder ]] && kill $holder 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

"$source_dir/scripts/make_sample_media.sh" "$data" >/dev/null || { echo "sample media failed"; exit 1; }
clip=$data/clip_audio.mp4 ref=$data/person.png
novision=$work/no-vision-models  # animate from poses needs no tracker; skipping it keeps runs short

run() {  # run LIMIT ARGS...: standin under a time limit; sets $err and $got
  local limit=$1
  shift
  err=$(timeout "$limit" "$standin" "$@" 2>&1 >/dev/null)
  got=$?
}
# expect CODE PATTERN OUTPUT -- ARGS...: OUTPUT must not exist afterwards unless CODE is 0
expect() {
  local want=$1 pattern=$2 out=$3
  shift 4
  run 60 "$@"
  local lines
  lines=$(printf '%s\n' "$err" | grep -c 'error')
  if [[ $got -eq 124 ]]; then fail "standin $*: still running after 60 s (hangs)"
  elif [[ $got -ne $want ]]; then fail "standin $* exited $got, want $want: $err"
  elif [[ -n $pattern && ! $err =~ $pattern ]]; then fail "standin $*: stderr does not match '$pattern': $err"
  elif [[ $err == *"Segmentation"* || $err == *"terminate called"* || $err == *"Exception raised"* || $err == *"internal error"* ]]; then
    fail "standin $*: crashed or leaked an exception: $err"
  elif [[ $want -ne 0 && $lines -ne 1 ]]; then fail "standin $*: want one error line, got: $err"
  elif [[ $want -ne 0 && $err == *".partial-"* ]]; then fail "standin $*: the message names a temporary: $err"
  elif [[ $want -ne 0 && -n $out && -f $out ]]; then fail "standin $*: left $out behind"
  else ok "[$got] ${err##*$'\n'}"; fi
}
no_partials() {  # no_partials DIR WHAT
  if compgen -G "$1/.*partial-*" >/dev/null; then fail "$2: temporaries left in $1: $(ls -A "$1")"; else ok "$2: no temporaries left"; fi
}

# A poses file with one person in 3 frames at 64x96: the fastest real render (animate, tiny bundle).
/usr/bin/python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
body = [[20 + i, 30 + 2 * i, 0.9] for i in range(18)]
person = {"track_id": 0, "score": 0.9, "box": [10, 10, 40, 70], "body": body}
track = lambda frames, **extra: dict(width=64, height=96, fps=[10, 1], frames=frames, **extra)
json.dump(track([{"frame": i, "people": [person]} for i in range(3)]), open(f"{w}/p3.json", "w"))
json.dump(track([{"frame": i, "people": [dict(person, box=[900, 900, 0, 0])]} for i in range(3)]), open(f"{w}/pempty.json", "w"))
json.dump(track([], frame_count=10**12), open(f"{w}/endless.json", "w"))
json.dump(dict(track([{"frame": 0, "people": []}]), fps=[1, 2**31 - 1]), open(f"{w}/slow.json", "w"))
PY
# (the caller adds --bundle and --steps: CLI11 refuses an option given twice)
fast=(-r "$ref" --poses "$work/p3.json" --vision-models "$novision")
tiny=(--bundle "$bundle" --steps 1)

echo "== outputs: regular files only, checked before any work ($SECONDS s)"
mkfifo "$work/fifo.mp4"
ln -s /proc/self/fd/1 "$work/stdout.mp4"
expect 3 "/dev/null: is a character device.*regular files" "" -- animate "${fast[@]}" "${tiny[@]}" -o /dev/null -y
[[ -c /dev/null ]] && ok "/dev/null is still a character device" || fail "/dev/null was replaced"
expect 3 "fifo.mp4: is a FIFO" "" -- animate "${fast[@]}" "${tiny[@]}" -o "$work/fifo.mp4" -y
[[ -p $work/fifo.mp4 ]] && ok "the FIFO is untouched" || fail "the FIFO was replaced"
expect 3 "stdout.mp4: is a" "" -- animate "${fast[@]}" "${tiny[@]}" -o "$work/stdout.mp4" -y
[[ -L $work/stdout.mp4 ]] && ok "the symlink to stdout is untouched" || fail "the symlink was replaced"
for ext in gif png webm mp3; do
  expect 3 "out.$ext: standin writes H.264 video.*\\.mp4, \\.mov or \\.mkv" "$work/out.$ext" -- animate "${fast[@]}" "${tiny[@]}" -o "$work/out.$ext"
done
touch "$work/notes"
expect 3 "out.mp4: '$work/notes' is a regular file, not a folder" "" -- animate "${fast[@]}" "${tiny[@]}" -o "$work/notes/out.mp4"
expect 3 "fifo.mp4: is a FIFO" "$work/m_out.mp4" -- animate "${fast[@]}" "${tiny[@]}" -o "$work/m_out.mp4" --metrics "$work/fifo.mp4" -y
name_max=$(getconf NAME_MAX "$work")
long=$work/$(printf 'a%.0s' $(seq 1 $((name_max - 4)))).mp4
expect 0 "" "" -- animate "${fast[@]}" "${tiny[@]}" -o "$long"
[[ -f $long ]] && ok "a $name_max-byte output name works (its temporary is shortened)" || fail "no output at the longest name"
expect 3 "this filesystem allows $name_max" "" -- animate "${fast[@]}" "${tiny[@]}" -o "$work/$(printf 'b%.0s' $(seq 1 $((name_max + 1))))"
no_partials "$work" "long names"

echo "== exclusive creation without -y; dead writers' temporaries are removed ($SECONDS s)"
"$standin" animate "${fast[@]}" "${tiny[@]}" -o "$work/race.mp4" 2>"$work/race1.log" &
first=$!
"$standin" animate "${fast[@]}" "${tiny[@]}" -o "$work/race.mp4" 2>"$work/race2.log" &
second=$!
wait $first; code1=$?
wait $second; code2=$?
codes="$code1 $code2"
if [[ $codes == "0 3" || $codes == "3 0" ]] && grep -q "already exists" "$work/race1.log" "$work/race2.log"; then
  ok "two runs to one new output: one wins, the other exits 3 (already exists)"
else
  fail "two runs to one new output exited $codes: $(cat "$work/race1.log" "$work/race2.log")"
fi
no_partials "$work" "concurrent runs"
mkdir "$work/killed"
"$standin" animate "${fast[@]}" --bundle "$bundle" --steps 200 -o "$work/killed/shot.mp4" 2>/dev/null &
pid=$!
for _ in $(seq 1 300); do compgen -G "$work/killed/.shot.partial-*" >/dev/null && break; sleep 0.1; done
sleep 1
kill -KILL $pid
wait $pid 2>/dev/null
compgen -G "$work/killed/.shot.partial-*" >/dev/null && ok "SIGKILL leaves a temporary" || fail "no temporary after SIGKILL"
expect 0 "" "" -- animate "${fast[@]}" "${tiny[@]}" -o "$work/killed/shot.mp4"
no_partials "$work/killed" "the next run to the same output"

echo "== inputs: regular files only (FIFOs never block), size caps ($SECONDS s)"
mkfifo "$work/fifo_in"
ln -s /dev/zero "$work/zero.json"
mkdir -p "$work/b_fifo" && cp -r "$bundle"/. "$work/b_fifo" && rm "$work/b_fifo/model.json" && mkfifo "$work/b_fifo/model.json"
mkdir -p "$work/b_zero" && cp -r "$bundle"/. "$work/b_zero" && ln -sf /dev/zero "$work/b_zero/model.json"
out=$work/out.mp4
expect 3 "fifo_in: the video is a FIFO" "$out" -- replace -i "$work/fifo_in" -r "$ref" -o "$out" --bundle "$bundle"
expect 3 "fifo_in: the reference image is a FIFO" "$out" -- replace -i "$clip" -r "$work/fifo_in" -o "$out" --bundle "$bundle"
expect 3 "fifo_in: the poses file is a FIFO" "$out" -- animate -r "$ref" --poses "$work/fifo_in" -o "$out" --bundle "$bundle"
expect 3 "zero.json: the poses file is a character device" "$out" -- animate -r "$ref" --poses "$work/zero.json" -o "$out" --bundle "$bundle"
expect 4 "model.json: the model.json is a FIFO" "$out" -- animate "${fast[@]}" --bundle "$work/b_fifo" -o "$out"
expect 4 "model.json: the model.json is a character device" "$out" -- models --verify "$work/b_zero"
expect 3 "zero.json: the jobs file is a character device" "" -- batch "$work/zero.json"
expect 3 "the jobs file is a folder" "" -- batch "$work"

echo "== work that cannot fit is refused up front, naming the value ($SECONDS s)"
expect 2 "--size 8192x8192 with --window .* need at least" "$out" -- animate "${fast[@]}" "${tiny[@]}" -o "$out" --size 8192x8192
expect 3 "endless.json: 1000000000000 frames \\(frame_count\\) need at least" "$out" -- \
  animate -r "$ref" --poses "$work/endless.json" --bundle "$bundle" -o "$out"
expect 3 "slow.json: fps 1/2147483647 is outside" "$out" -- animate -r "$ref" --poses "$work/slow.json" --bundle "$bundle" -o "$out"
export STANDIN_MEMORY_LIMIT=64M  # this machine, for the test, has 64 MB
expect 3 "clip_audio.mp4: 768x576 frames need at least" "" -- extract -i "$clip" -o "$work/x_mem"
unset STANDIN_MEMORY_LIMIT
[[ -e $work/x_mem ]] && fail "extract refused for memory left its folder" || ok "nothing written"

echo "== bundles: out-of-range model.json values are one-line bundle errors; module files stay inside ($SECONDS s)"
bundle_with() {  # bundle_with NAME PYTHON: a copy of the tiny bundle with model.json edited by PYTHON (m = the JSON)
  mkdir -p "$work/$1" && cp -r "$bundle"/. "$work/$1"
  /usr/bin/python3 - "$work/$1/model.json" "$2" <<'PY'
import json, sys
p = sys.argv[1]; m = json.load(open(p)); exec(sys.argv[2]); json.dump(m, open(p, "w"))
PY
}
bundle_with b_h "m['dry_run']['H'] = 1e8"
bundle_with b_n "m['dry_run']['N'] = -1"
bundle_with b_w "m['geometry']['width'] = 2**30"
bundle_with b_t "m['scheduler']['num_train_timesteps'] = 3"
bundle_with b_t10 "m['scheduler']['num_train_timesteps'] = 10"
bundle_with b_up "m['modules']['pose_guider']['file'] = '../../x'"
bundle_with b_abs "m['modules']['pose_guider']['file'] = '/etc/passwd'"
bundle_with b_link "m['modules']['pose_guider']['file'] = 'elsewhere.pt'"
ln -s /etc/passwd "$work/b_link/elsewhere.pt"
bundle_with b_dir "pass"
rm "$work/b_dir/pose_guider.pt" && mkdir "$work/b_dir/pose_guider.pt"
bundle_with b_loop "pass"
rm "$work/b_loop/pose_guider.pt" && ln -s loop "$work/b_loop/pose_guider.pt" && ln -s pose_guider.pt "$work/b_loop/loop"
expect 4 "dry_run.H 1e\\+08 is out of range" "" -- models --verify "$work/b_h"
expect 4 "dry_run.N -1 is out of range" "" -- models --verify "$work/b_n"
expect 4 "geometry.width .* is out of range" "" -- models --verify "$work/b_w"
expect 4 "defaults.steps 4 is more than scheduler.num_train_timesteps 3" "$out" -- animate "${fast[@]}" --bundle "$work/b_t" -o "$out"
expect 2 "--steps 20: this bundle's scheduler has 10 training timesteps" "$out" -- \
  animate "${fast[@]}" --bundle "$work/b_t10" -o "$out" --steps 20
expect 4 "'\\.\\./\\.\\./x' must be a relative path inside the bundle" "" -- models --verify "$work/b_up"
expect 4 "'/etc/passwd' must be a relative path inside the bundle" "" -- models --verify "$work/b_abs"
expect 4 "resolves to /etc/passwd, outside the bundle folder" "" -- models --verify "$work/b_link"
[[ $err == *"sha256"* ]] && fail "a file outside the bundle was hashed: $err"
expect 4 "pose_guider.pt\\): is a folder, not a TorchScript file" "" -- models --verify "$work/b_dir"
expect 4 "pose_guider.pt\\): cannot be opened \\(Too many levels of symbolic links\\)" "" -- models --verify "$work/b_loop"
# A zip whose directory declares 1.75 GB for a 1 MB file (LibTorch would allocate that much).
mkdir -p "$work/b_bomb" && cp -r "$bundle"/. "$work/b_bomb"
/usr/bin/python3 - "$work/b_bomb" <<'PY'
import hashlib, json, struct, sys, zipfile
d = sys.argv[1]
with zipfile.ZipFile(f"{d}/pose_guider.pt", "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("archive/data/0", b"\0" * (1 << 20))
raw = bytearray(open(f"{d}/pose_guider.pt", "rb").read())
at = raw.rfind(b"PK\x01\x02")
struct.pack_into("<I", raw, at + 24, 1750 * 1000 * 1000)  # declared uncompressed size
open(f"{d}/pose_guider.pt", "wb").write(raw)
m = json.load(open(f"{d}/model.json"))
m["modules"]["pose_guider"]["sha256"] = hashlib.sha256(raw).hexdigest()
json.dump(m, open(f"{d}/model.json", "w"))
PY
expect 4 "pose_guider.*unpacks to 1.8 GB" "" -- models --verify "$work/b_bomb"

echo "== numbers: non-finite and out-of-range values are usage errors ($SECONDS s)"
expect 2 "--cfg: must be a finite number" "" -- animate "${fast[@]}" "${tiny[@]}" -o "$out" --cfg nan
for seed in 18446744073709551616 1e23; do  # 2^64, and a float
  expect 2 "--seed: must be a whole number in 0..9223372036854775807" "" -- animate "${fast[@]}" "${tiny[@]}" -o "$out" --seed $seed
done
expect 2 "--min-psnr: must be a finite number" "" -- compare "$clip" "$clip" --min-psnr nan
run 30 --log-json animate --poses "$work/p3.json" -o "$out"
/usr/bin/python3 -c 'import json, sys; r = json.loads(sys.argv[1]); assert r["level"] == "error" and "required" in r["msg"], r' "$err" &&
  ok "a usage error under --log-json is one JSON object" || fail "usage error under --log-json: $err"

echo "== cache: a corrupt state is reported and the run starts over ($SECONDS s)"
cached=(animate "${fast[@]}" --bundle "$bundle" --steps 40 -o "$work/cached.mp4" --cache "$work/cache")
"$standin" "${cached[@]}" 2>/dev/null &
pid=$!
for _ in $(seq 1 600); do compgen -G "$work/cache/*/state.pt" >/dev/null && break; sleep 0.1; done
kill -KILL $pid
wait $pid 2>/dev/null
state=$(compgen -G "$work/cache/*/state.pt" | head -1)
if [[ -n $state ]]; then
  printf 'garbage' >"$state"
  run 120 "${cached[@]}"
  [[ $got -eq 0 && $err == *"cached state is corrupt"* ]] && ok "corrupt cache: warned, started over, exit 0" ||
    fail "corrupt cache: exit $got: $err"
else
  fail "no cached state to corrupt"
fi

echo "== extract: an empty video track is an error; odd sizes keep their size ($SECONDS s)"
ffmpeg -v error -y -i "$clip" -an -c:v copy -movflags frag_keyframe+empty_moov "$work/frag.mp4"
/usr/bin/python3 -c 'import sys; d = open(sys.argv[1], "rb").read(); open(sys.argv[2], "wb").write(d[:d.find(b"moof") - 4])' \
  "$work/frag.mp4" "$work/nosamples.mp4"  # the init segment alone: a video track with 0 samples
expect 3 "nosamples.mp4: the video track has no frames" "" -- extract -i "$work/nosamples.mp4" -o "$work/x_empty" \
  --vision-models "$source_dir/models/vision"
[[ -e $work/x_empty ]] && fail "extract of an empty track wrote $(ls "$work/x_empty")" || ok "nothing written"
expect 3 "nosamples.mp4: the video track has no frames" "$out" -- replace -i "$work/nosamples.mp4" -r "$ref" -o "$out" --bundle "$bundle"
if [[ -f $source_dir/models/vision/vision.json ]]; then
  ffmpeg -v error -y -i "$clip" -frames:v 3 -vf scale=17:9 -an -c:v ffv1 "$work/odd.mkv"
  expect 0 "" "" -- extract -i "$work/odd.mkv" -o "$work/x_odd" --vision-models "$source_dir/models/vision"
  for f in mask pose overlay; do
    size=$(ffprobe -v error -show_entries stream=width,height -of csv=p=0 "$work/x_odd/$f.mp4")
    [[ $size == "17,9" ]] && ok "odd-size extract: $f.mp4 is 17x9" || fail "odd-size extract: $f.mp4 is $size, want 17,9"
  done
fi

echo "== batch: status lock, arguments without argv limits, README keys, overwrite false ($SECONDS s)"
job() { printf '{"command": "animate", "reference": "%s", "poses": "%s", "bundle": "%s", "vision_models": "%s", "steps": 1, "output": "%s"%s}\n' \
  "$ref" "$work/p3.json" "$bundle" "$novision" "$1" "${2:-}"; }
job "$work/b0.mp4" >"$work/jobs.jsonl"
expect 3 "nope.*does not exist" "" -- batch "$work/jobs.jsonl" --status "$work/nope/status.json"
[[ -e $work/jobs.logs/job0.log ]] && fail "batch ran jobs before checking its status path" || ok "no job ran"
flock "$work/held.json.lock" sleep 30 &
holder=$!
sleep 0.5
expect 3 "in use by another standin process" "" -- batch "$work/jobs.jsonl" --status "$work/held.json"
kill $holder 2>/dev/null
holder=
{
  job "$work/b1.mp4" ', "landmark_model": "lite", "max_people": 2'
  job "$work/$(head -c 10000000 /dev/zero | tr '\0' 'x').mp4"
  job "$work/b3.mp4" ', "overwrite": false'
} >"$work/jobs2.jsonl"
printf 'an incomplete render' >"$work/b3.mp4"
run 300 batch "$work/jobs2.jsonl"
[[ $got -eq 5 ]] && ok "batch with failed jobs exits 5" || fail "batch exited $got: $err"
/usr/bin/python3 - "$work/jobs2.status.json" <<'PY' && ok "batch status as expected" || fail "batch status: $(head -c 2000 "$work/jobs2.status.json")"
import json, sys
jobs = json.load(open(sys.argv[1]))["jobs"]
assert [j["status"] for j in jobs] == ["done", "failed", "failed"], jobs
assert jobs[1]["exit_code"] == 3, jobs[1]  # the 10 MB name reached the job (not 127: argv too long)
log = open(jobs[1]["log"]).read()
assert "file name is" in log and "bytes" in log, log[-500:]
assert jobs[2]["exit_code"] == 3 and "already exists" in open(jobs[2]["log"]).read(), jobs[2]
PY
[[ $(cat "$work/b3.mp4") == "an incomplete render" ]] && ok '"overwrite": false kept the existing file' || fail '"overwrite": false replaced the file'

echo "== messages name the thing and say what to do ($SECONDS s)"
ffmpeg -v error -y -f lavfi -i testsrc=s=64x64:r=5:d=1 -c:v libwebp_anim -loop 0 "$work/anim.webp" 2>/dev/null &&
  expect 3 "anim.webp: animated WebP is not supported" "$out" -- \
    animate -r "$work/anim.webp" --poses "$work/p3.json" "${tiny[@]}" -o "$out"
expect 3 "pempty.json: the character's boxes are empty or outside the 64x96 frame" "$out" -- \
  animate -r "$ref" --poses "$work/pempty.json" --bundle "$bundle" --vision-models "$novision" -o "$out"
run 60 animate "${fast[@]}" "${tiny[@]}" -o "$work/w1.mp4" --window 1
[[ $got -eq 0 && $err == *"using --overlap 0"* ]] && ok "--window 1 alone picks a fitting overlap" || fail "--window 1: exit $got: $err"
if [[ -f $source_dir/models/vision/vision.json ]]; then
  ffmpeg -v error -y -i "$clip" -frames:v 2 -an -c:v libx264 -pix_fmt yuv420p "$work/two.mp4"
  expect 2 "--person 999: .*two.mp4 has no track 999 .*standin extract" "$out" -- \
    replace -i "$work/two.mp4" -r "$ref" -o "$out" --bundle "$bundle" --person 999 --vision-models "$source_dir/models/vision"
fi
no_partials "$work" "all cases"

exit $((failures > 0))
