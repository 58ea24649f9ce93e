#!/usr/bin/env bash
# Issue 13 end to end (what artists and pipelines ask for), on the sample clip with the tiny
# bundle. One part per run, each its own ctest entry (cli_artist_PART):
#   masks       --mask-mode / --mask-blocks / --mask-dilate / --feather, the preview, validation
#   matte       --matte: lossless FFV1 in MKV, frame-aligned with the output; refused up front
#   people      --person ID=IMAGE, repeated: two people replaced, everyone else untouched
#   retarget    animate retargets to the reference's proportions by default; --retarget on|off
#   presets     --preset preview|standard|final, explicit options win, bad presets
#   pose_detail model.json conditioning.pose_hands_face changes the pose maps; --pose-smoothing
#   drift       --chain-frames and --anchor-color code paths, scripts/measure_drift.py on the result
#   batch       every new option as a batch job key (a list for --person)
# Parts that need the converted vision models (people, retarget, pose_detail, batch) skip
# without them.
#   artist_e2e.sh STANDIN TINY_BUNDLE DATA_DIR PART
set -u
standin=$1 bundle=$2 data=$3 part=$4
export OMP_WAIT_POLICY=PASSIVE  # as scripts/test.sh; standin would otherwise restart itself to set it
source_dir=$(cd "$(dirname "$0")/../../.." && pwd)
vision=$source_dir/models/vision
failures=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
py() { /usr/bin/python3 "$@"; }

"$source_dir/scripts/make_sample_media.sh" "$data" >/dev/null || { echo "sample media failed"; exit 1; }
ref=$data/person.png
# The first 10 frames of the sample clip (with its audio): two pedestrians, seconds per render.
clip=$work/clip.mp4
ffmpeg -v error -y -i "$data/clip_audio.mp4" -frames:v 10 -c:v libx264 -pix_fmt yuv420p -c:a copy "$clip"
have_vision() { [[ -f $vision/vision.json ]]; }
frames_of() { ffprobe -v error -select_streams v:0 -count_frames -show_entries stream=nb_read_frames -of csv=p=0 "$1"; }
times_of() { ffprobe -v error -select_streams v:0 -show_entries frame=pts_time -of csv=p=0 "$1" | cut -d, -f1 | grep . | tr '\n' ' '; }

# expect CODE PATTERN OUTPUT -- ARGS...: the exit code, one error line matching PATTERN, and
# nothing left at OUTPUT (unless CODE is 0).
expect() {
  local want=$1 pattern=$2 out=$3
  shift 4
  local err got lines
  err=$(timeout 120 "$standin" "$@" 2>&1 >/dev/null)
  got=$?
  lines=$(printf '%s\n' "$err" | grep -c 'error')
  if [[ $got -ne $want ]]; then fail "standin $* exited $got, want $want: $err"
  elif [[ -n $pattern && ! $err =~ $pattern ]]; then fail "standin $*: stderr does not match '$pattern': $err"
  elif [[ $err == *"Segmentation"* || $err == *"terminate called"* || $err == *"internal error"* ]]; then fail "standin $*: crashed: $err"
  elif [[ $want -ne 0 && $lines -ne 1 ]]; then fail "standin $*: want one error line, got: $err"
  elif [[ $want -ne 0 && -n $out && -e $out ]]; then fail "standin $*: left $out behind"
  else ok "[$got] $(printf '%s\n' "$err" | grep -m1 'error' || printf '%s' "${err%%$'\n'*}")"; fi
}
render() {  # render LOG ARGS...: a run that must succeed
  local log=$1
  shift
  if ! timeout 300 "$standin" "$@" >"$log" 2>&1; then fail "standin $* failed: $(tail -3 "$log")"; return 1; fi
}
# matte_stats MATTE.mkv: "frames covered_pixels soft_pixels" over all frames (alpha > 0, 0 < alpha < 255)
matte_stats() {
  py - "$1" <<'PY'
import sys, cv2
cap = cv2.VideoCapture(sys.argv[1]); n = covered = soft = 0
while True:
    ok, f = cap.read()
    if not ok: break
    g = f[:, :, 0]; n += 1; covered += int((g > 0).sum()); soft += int(((g > 0) & (g < 255)).sum())
print(n, covered, soft)
PY
}

# A character mask video: an ellipse over the walker on the left (not a box, so the modes differ).
make_mask() {
  ffmpeg -v error -y -f lavfi -i "color=black:s=768x576:r=10:d=1" \
    -vf "geq=lum='if(lt(pow((X-280)/22\,2)+pow((Y-262)/52\,2)\,1)\,255\,0)':cb=128:cr=128" \
    -frames:v 10 -c:v libx264 -pix_fmt yuv420p "$work/mask.mp4"
  echo '{"width": 768, "height": 576, "frames": []}' >"$work/no_poses.json"
}
# No vision models for runs with --poses and --mask: nothing to track, seconds per run.
fast=(--bundle "$bundle" --vision-models "$work/none" --steps 1 -y)

case $part in
masks)
  make_mask
  base=(replace -i "$clip" -r "$ref" --mask "$work/mask.mp4" --poses "$work/no_poses.json" "${fast[@]}")
  expect 2 "--mask-mode" "$work/x.mp4" -- "${base[@]}" -o "$work/x.mp4" --mask-mode loose
  expect 2 "--mask-blocks" "$work/x.mp4" -- "${base[@]}" -o "$work/x.mp4" --mask-blocks 0
  expect 2 "--mask-dilate" "$work/x.mp4" -- "${base[@]}" -o "$work/x.mp4" --mask-dilate -3
  expect 2 "--feather" "$work/x.mp4" -- "${base[@]}" -o "$work/x.mp4" --feather wide
  declare -A area soft
  for mode in tight agnostic blocks2 box dilate20 hard; do
    case $mode in
      blocks2) extra=(--mask-mode agnostic --mask-blocks 2) ;;
      dilate20) extra=(--mask-mode tight --mask-dilate 20) ;;
      hard) extra=(--mask-mode tight --feather 0) ;;
      *) extra=(--mask-mode "$mode") ;;
    esac
    render "$work/$mode.log" "${base[@]}" "${extra[@]}" -o "$work/$mode.mp4" --matte "$work/$mode.mkv" \
      --preview "$work/$mode.preview.mp4" || continue
    read -r n covered softpx < <(matte_stats "$work/$mode.mkv")
    area[$mode]=$covered soft[$mode]=$softpx
    [[ $n == 10 && $(frames_of "$work/$mode.preview.mp4") == 10 ]] || fail "$mode: matte/preview frames $n / $(frames_of "$work/$mode.preview.mp4")"
  done
  echo "matte pixels over 10 frames: ${area[*]@K}"
  if (( area[tight] < area[agnostic] && area[agnostic] < area[blocks2] && area[blocks2] <= area[box] + area[box] / 50 )); then
    ok "redraw regions grow tight < agnostic < 2x2 blocks ~ box"
  else fail "mask modes do not order by size: ${area[*]@K}"; fi
  (( area[dilate20] > area[tight] * 13 / 10 )) && ok "--mask-dilate 20 grows the region" || fail "--mask-dilate 20 did not grow the region"
  (( soft[hard] == 0 && soft[tight] > 0 )) && ok "--feather 0 is a hard edge, the default a soft one" ||
    fail "feather: hard edge has ${soft[hard]} soft pixels, default ${soft[tight]}"
  # The preview shows the mask used: tight and box previews differ, their results' backgrounds do not.
  cmp -s "$work/tight.preview.mp4" "$work/box.preview.mp4" && fail "tight and box previews are identical" || ok "the preview shows the mode's mask"
  ;;

matte)
  make_mask
  base=(replace -i "$clip" -r "$ref" --mask "$work/mask.mp4" --poses "$work/no_poses.json" "${fast[@]}")
  expect 3 "matte.mp4.*name the file .mkv" "$work/out.mp4" -- "${base[@]}" -o "$work/out.mp4" --matte "$work/matte.mp4"
  expect 3 "\.mkv" "$work/out.mp4" -- "${base[@]}" -o "$work/out.mp4" --matte "$work/matte.png"
  expect 3 "does not exist" "$work/out.mp4" -- "${base[@]}" -o "$work/out.mp4" --matte "$work/nope/matte.mkv"
  expect 2 "--matte is for replace" "$work/out.mp4" -- animate -i "$clip" -r "$ref" "${fast[@]}" -o "$work/out.mp4" --matte "$work/m.mkv"
  # --feather 0: a binary matte, so "replaced" and "untouched" pixels are exactly its two values.
  render "$work/r.log" "${base[@]}" -o "$work/out.mp4" --matte "$work/matte.mkv" --feather 0 || exit 1
  info=$(ffprobe -v error -select_streams v:0 -show_entries stream=codec_name,pix_fmt,width,height -of csv=p=0 "$work/matte.mkv")
  [[ $info == "ffv1,768,576,gray" ]] && ok "matte is FFV1 gray 768x576 in MKV" || fail "matte stream: $info"
  [[ $(frames_of "$work/matte.mkv") == "$(frames_of "$work/out.mp4")" ]] && ok "matte has the output's frame count" || fail "frame counts differ"
  [[ $(times_of "$work/matte.mkv") == "$(times_of "$work/out.mp4")" ]] && ok "matte has the output's timestamps" ||
    fail "timestamps differ: $(times_of "$work/matte.mkv") vs $(times_of "$work/out.mp4")"
  # What was composited: outside the matte the output is the source (up to re-encoding), inside it is not.
  "$standin" compare "$clip" "$work/out.mp4" --mask "$work/matte.mkv" --json >"$work/cmp.json" || fail "compare failed"
  py - "$work/cmp.json" <<'PY' && ok "the matte marks exactly the replaced pixels" || fail "matte does not match the composite: $(cat "$work/cmp.json")"
import json, sys
r = json.load(open(sys.argv[1])); out, inside = r["outside_mask"]["psnr_db"], r["inside_mask"]["psnr_db"]
print(f"source vs output: outside the matte {out} dB, inside {inside:.1f} dB")
sys.exit(0 if (out == "inf" or out >= 45) and inside < 25 else 1)
PY
  ;;

people)
  have_vision || { echo "skip: no vision models in $vision"; exit 0; }
  render "$work/extract.log" extract -i "$clip" -o "$work/ex" --vision-models "$vision" -y || exit 1
  ids=$(py - "$work/ex/poses.json" <<'PY'
import json, sys, collections
seen = collections.Counter(p["track_id"] for f in json.load(open(sys.argv[1]))["frames"] for p in f["people"])
print(" ".join(str(i) for i, n in seen.most_common(2) if n >= 8))
PY
)
  read -r a b <<<"$ids"
  [[ -n ${b:-} ]] || { fail "extract found fewer than two people in 8+ frames: '$ids'"; exit 1; }
  ffmpeg -v error -y -i "$data/vtest.avi" -vf "select=eq(n\,100),crop=120:200:230:180,scale=180:300" -frames:v 1 "$work/ref2.png"
  common=(replace -i "$clip" --bundle "$bundle" --vision-models "$vision" --steps 1 -y)
  expect 2 "--reference and --person ID=IMAGE" "$work/x.mp4" -- "${common[@]}" -o "$work/x.mp4" -r "$ref" --person "$a=$ref"
  expect 2 "named twice" "$work/x.mp4" -- "${common[@]}" -o "$work/x.mp4" --person "$a=$ref" --person "$a=$work/ref2.png"
  expect 2 "cannot be mixed" "$work/x.mp4" -- "${common[@]}" -o "$work/x.mp4" --person auto --person "$a=$ref"
  expect 2 "expected ID=IMAGE" "$work/x.mp4" -- "${common[@]}" -o "$work/x.mp4" --person "x=$ref"
  expect 3 "missing.png" "$work/x.mp4" -- "${common[@]}" -o "$work/x.mp4" --person "$a=$work/missing.png"
  expect 2 "animate draws one character" "$work/x.mp4" -- animate -i "$clip" --bundle "$bundle" -y -o "$work/x.mp4" --person "$a=$ref"
  expect 2 "has no track 99" "$work/x.mp4" -- "${common[@]}" -o "$work/x.mp4" --person "$a=$ref" --person "99=$ref"
  render "$work/two.log" "${common[@]}" -o "$work/two.mp4" --person "$a=$work/ref2.png" --person "$b=$ref" \
    --matte "$work/two.mkv" --metrics "$work/two.json" --preview "$work/two.preview.mp4" || exit 1
  grep -q "pass 2/2: person $b" "$work/two.log" && ok "one generation pass per person" || fail "no second pass in the log"
  [[ $(frames_of "$work/two.mp4") == 10 ]] || fail "output frames $(frames_of "$work/two.mp4")"
  # Each person's region holds the matte; nobody else's does; everything outside is the source.
  py - "$work/ex/poses.json" "$work/two.mkv" "$a" "$b" <<'PY' && ok "both people replaced, nobody else" || fail "matte regions are not the two people"
import json, sys, cv2, numpy as np
poses = json.load(open(sys.argv[1]))["frames"]; named = {int(sys.argv[3]), int(sys.argv[4])}
cap = cv2.VideoCapture(sys.argv[2]); bad = 0
for f in poses:
    ok, m = cap.read(); g = m[:, :, 0] > 127; inside = np.zeros_like(g)
    for p in f["people"]:
        x, y, w, h = (int(round(v)) for v in p["box"]); pad = 25
        box = (slice(max(0, y - pad), y + h + pad), slice(max(0, x - pad), x + w + pad))
        if p["track_id"] in named:
            inside[box] = True
            if g[box].sum() < 0.2 * w * h: bad += 1; print("frame", f["frame"], "person", p["track_id"], "not replaced")
    if (g & ~inside).sum() > 0: bad += 1; print("frame", f["frame"], ":", int((g & ~inside).sum()), "matte pixels away from the named people")
sys.exit(1 if bad else 0)
PY
  # compare splits at 127; count every pixel the feathered matte touches as "inside".
  ffmpeg -v error -y -i "$work/two.mkv" -vf "lut=y='if(gt(val,0),255,0)'" -c:v ffv1 "$work/touched.mkv"
  "$standin" compare "$clip" "$work/two.mp4" --mask "$work/touched.mkv" --json >"$work/cmp.json" || fail "compare failed"
  py - "$work/cmp.json" <<'PY' && ok "background untouched (>= 45 dB outside the matte)" || fail "background changed: $(cat "$work/cmp.json")"
import json, sys
r = json.load(open(sys.argv[1])); psnr = r["outside_mask"]["psnr_db"]
print(f"outside the matte {psnr} dB, inside {r['inside_mask']['psnr_db']:.1f} dB")
sys.exit(0 if psnr == "inf" or psnr >= 45 else 1)
PY
  # The old way still works: one person, by id, with -r.
  render "$work/one.log" "${common[@]}" -o "$work/one.mp4" -r "$ref" --person "$b" --matte "$work/one.mkv" || exit 1
  read -r _ one_px _ < <(matte_stats "$work/one.mkv")
  read -r _ two_px _ < <(matte_stats "$work/two.mkv")
  (( two_px > one_px * 3 / 2 )) && ok "two people cover more than one ($two_px vs $one_px matte pixels)" || fail "two-person matte $two_px vs one $one_px"
  ;;

retarget)
  have_vision || { echo "skip: no vision models in $vision"; exit 0; }
  common=(animate -i "$clip" -r "$ref" --bundle "$bundle" --vision-models "$vision" --steps 1 -y)
  expect 2 "--retarget" "$work/x.mp4" -- "${common[@]}" -o "$work/x.mp4" --retarget maybe
  render "$work/on.log" "${common[@]}" -o "$work/on.mp4" --metrics "$work/on.json" || exit 1
  render "$work/off.log" "${common[@]}" -o "$work/off.mp4" --metrics "$work/off.json" --retarget off || exit 1
  py - "$work/on.json" "$work/off.json" <<'PY' && ok "animate retargets by default, --retarget off does not" || fail "retarget metrics wrong"
import json, sys
on, off = (json.load(open(p)) for p in sys.argv[1:])
print("bones measured:", on["people"][0]["retargeted_bones"])
assert on["settings"]["retarget"] is True and on["people"][0]["retargeted_bones"] >= 8
assert off["settings"]["retarget"] is False and off["people"][0]["retargeted_bones"] == 0
PY
  cmp -s "$work/on.mp4" "$work/off.mp4" && fail "retargeting did not change the render" || ok "retargeted pose maps change the render"
  render "$work/rep.log" replace -i "$clip" -r "$ref" --bundle "$bundle" --vision-models "$vision" --steps 1 -y \
    -o "$work/rep.mp4" --metrics "$work/rep.json" --retarget on || exit 1
  py -c "import json,sys; m=json.load(open(sys.argv[1])); assert m['settings']['retarget'] and m['people'][0]['retargeted_bones'] > 0" "$work/rep.json" &&
    ok "replace --retarget on retargets" || fail "replace --retarget on did not retarget"
  ;;

presets)
  make_mask
  base=(replace -i "$clip" -r "$ref" --mask "$work/mask.mp4" --poses "$work/no_poses.json" --bundle "$bundle" --vision-models "$work/none" -y)
  expect 2 "no such preset.*final.*preview" "$work/x.mp4" -- "${base[@]}" -o "$work/x.mp4" --preset cinematic
  echo '{"steps": 0}' >"$work/bad.json"
  expect 3 "bad.json: \"steps\"" "$work/x.mp4" -- "${base[@]}" -o "$work/x.mp4" --preset "$work/bad.json"
  render "$work/p.log" "${base[@]}" -o "$work/p.mp4" --preset preview --metrics "$work/p.json" || exit 1
  render "$work/q.log" "${base[@]}" -o "$work/q.mp4" --preset preview --steps 2 --sampler ddim --metrics "$work/q.json" || exit 1
  echo '{"description": "mine", "size": "32x48", "steps": 1, "overlap": 7}' >"$work/mine.json"
  render "$work/m.log" "${base[@]}" -o "$work/m.mp4" --preset "$work/mine.json" --metrics "$work/m.json" || exit 1
  py - "$work/p.json" "$work/q.json" "$work/m.json" "$source_dir/configs/presets/preview.json" "$bundle/model.json" <<'PY' &&
import json, math, sys
p, q, m, preset, bundle = (json.load(open(a)) for a in sys.argv[1:])
s = p["settings"]
assert (s["steps"], s["sampler"], s["overlap"]) == (preset["steps"], "dpmpp_2m", preset["overlap"]), s
g = bundle["geometry"]
want = [max(1, math.floor(g[k] * preset["work_scale"] / g["size_multiple"] + 0.5)) * g["size_multiple"] for k in ("width", "height")]
assert p["work_size"] == want, (p["work_size"], want)
assert s["preset"] == "preview" and s["cfg"] == bundle["defaults"]["cfg"]  # not in the preset: the bundle's
assert (q["settings"]["steps"], q["settings"]["sampler"]) == (2, "ddim"), q["settings"]  # explicit options win
assert q["work_size"] == want
assert m["work_size"] == [32, 48] and m["settings"]["steps"] == 1
assert m["settings"]["overlap"] == m["settings"]["window"] - 1  # clamped to the window
print("preview:", s["steps"], s["sampler"], p["work_size"], "| explicit:", q["settings"]["steps"], q["settings"]["sampler"])
PY
    ok "presets fill unset settings, explicit options win" || fail "preset settings wrong"
  for name in standard final; do
    "$standin" replace --help | grep -q -- "--preset" || fail "--preset not in the help"
    [[ -f $source_dir/configs/presets/$name.json ]] || fail "configs/presets/$name.json missing"
  done
  ;;

pose_detail)
  have_vision || { echo "skip: no vision models in $vision"; exit 0; }
  expect 2 "--pose-smoothing" "$work/x.mp4" -- replace -i "$clip" -r "$ref" -o "$work/x.mp4" --pose-smoothing -1
  expect 2 "--pose-smoothing" "" -- extract -i "$clip" -o "$work/ex_bad" --pose-smoothing nan
  render "$work/ex.log" extract -i "$clip" -o "$work/ex" --vision-models "$vision" -y || exit 1
  render "$work/ex0.log" extract -i "$clip" -o "$work/ex0" --vision-models "$vision" --pose-smoothing 0 -y || exit 1
  cmp -s "$work/ex/poses.json" "$work/ex0/poses.json" && fail "--pose-smoothing 0 changed nothing" || ok "--pose-smoothing changes the tracked poses"
  cp -r "$bundle" "$work/hands"
  py - "$work/hands/model.json" <<'PY'
import json, sys
p = sys.argv[1]; m = json.load(open(p)); m["conditioning"]["pose_hands_face"] = True; json.dump(m, open(p, "w"), indent=2)
PY
  # The same poses (with landmarks; the target's hands are visible) and tracked masks; only the
  # bundle's flag differs.
  run_with() { render "$work/$1.log" replace -i "$clip" -r "$ref" --poses "$work/ex/poses.json" \
                 --bundle "$2" --vision-models "$vision" --steps 1 --seed 3 -y -o "$work/$1.mp4" --metrics "$work/$1.json"; }
  run_with body "$bundle" && run_with detail "$work/hands" || exit 1
  py -c "import json,sys; assert json.load(open(sys.argv[1]))['settings']['pose_hands_face'] is True" "$work/detail.json" ||
    fail "metrics do not show pose_hands_face"
  cmp -s "$work/body.mp4" "$work/detail.mp4" && fail "hand/face detail changed nothing" || ok "pose_hands_face bundles get hand and face points"
  run_with body_again "$bundle"
  cmp -s "$work/body.mp4" "$work/body_again.mp4" && ok "the same run twice is bit-identical (the difference above is the flag)" || fail "the same run twice differs"
  ;;

drift)
  make_mask
  nosteps=(replace -i "$clip" -r "$ref" --mask "$work/mask.mp4" --poses "$work/no_poses.json" --bundle "$bundle"
           --vision-models "$work/none" -y --window 4)
  base=("${nosteps[@]}" --steps 1)
  expect 2 "--chain-frames" "$work/x.mp4" -- "${base[@]}" -o "$work/x.mp4" --chain-frames 4
  expect 2 "--anchor-color" "$work/x.mp4" -- "${base[@]}" -o "$work/x.mp4" --anchor-color maybe
  render "$work/plain.log" "${base[@]}" --overlap 2 -o "$work/plain.mp4" --matte "$work/plain.mkv" --metrics "$work/plain.json" || exit 1
  render "$work/both.log" "${base[@]}" --chain-frames 2 --anchor-color on -o "$work/both.mp4" --matte "$work/both.mkv" \
    --metrics "$work/both.json" || exit 1
  py - "$work/plain.json" "$work/both.json" <<'PY' && ok "chained windows: same window count and UNet calls" || fail "drift metrics wrong"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert b["settings"]["chain_frames"] == 2 and b["settings"]["anchor_color"] is True
assert (a["windows"], a["unet_calls"]) == (b["windows"], b["unet_calls"]) == (4, 4), (a["windows"], b["windows"])
PY
  cmp -s "$work/plain.mp4" "$work/both.mp4" && fail "the remedies changed nothing" || ok "the remedies change the render"
  # Resumable when chained: interrupt after the first window's state, resume, same file.
  render "$work/straight.log" "${nosteps[@]}" --chain-frames 2 --steps 3 -o "$work/straight.mp4" || exit 1
  "$standin" "${nosteps[@]}" --chain-frames 2 --steps 3 -o "$work/resumed.mp4" --cache "$work/cache" 2>/dev/null &
  pid=$!
  for _ in $(seq 1 600); do sleep 0.1; compgen -G "$work/cache/*/state.pt" >/dev/null && break; done
  kill -TERM $pid 2>/dev/null
  wait $pid
  [[ -e $work/resumed.mp4 ]] && fail "the interrupted run left an output"
  render "$work/resume.log" "${nosteps[@]}" --chain-frames 2 --steps 3 -o "$work/resumed.mp4" --cache "$work/cache" -v || exit 1
  grep -q "resuming from" "$work/resume.log" && ok "the chained render resumed" || echo "note: the first run finished before it was interrupted"
  cmp -s "$work/straight.mp4" "$work/resumed.mp4" && ok "chained render resumes bit-identically" || fail "resumed chained render differs"
  for v in plain both; do
    py "$source_dir/scripts/measure_drift.py" "$work/$v.mp4" --matte "$work/$v.mkv" --window 4 --bin 0.5 --json "$work/$v.drift.json" \
      >"$work/$v.drift.txt" || fail "measure_drift.py failed on $v"
  done
  py - "$work/plain.drift.json" "$work/both.drift.json" <<'PY' && ok "measure_drift.py: Lab and SSIM over time" || fail "drift JSON incomplete"
import json, sys, math
for p in sys.argv[1:]:
    d = json.load(open(p)); s = d["summary"]
    assert s["frames_measured"] == 10 and len(d["frames"]) == 10 and s["bins"], s
    for k in ("delta_e_first_window", "delta_e_last10", "delta_e_slope_per_min", "ssim_first_window", "ssim_last10"):
        assert math.isfinite(s[k]), k
    assert all(-1 <= f["ssim"] <= 1 and f["delta_e"] >= 0 for f in d["frames"])
    print(p.split("/")[-1], "dE last 10 %", round(s["delta_e_last10"], 2), "SSIM last 10 %", round(s["ssim_last10"], 3))
PY
  ;;

batch)
  have_vision || { echo "skip: no vision models in $vision"; exit 0; }
  make_mask
  render "$work/extract.log" extract -i "$clip" -o "$work/ex" --vision-models "$vision" -y || exit 1
  read -r a b < <(py -c "
import json,sys,collections
c=collections.Counter(p['track_id'] for f in json.load(open(sys.argv[1]))['frames'] for p in f['people'])
print(*[i for i,n in c.most_common(2)])" "$work/ex/poses.json")
  cat >"$work/jobs.jsonl" <<JOBS
{"input": "$clip", "output": "$work/j0.mp4", "bundle": "$bundle", "vision_models": "$vision", "steps": 1, "person": ["$a=$ref", "$b=$ref"], "matte": "$work/j0.mkv", "mask_mode": "tight", "mask_dilate": 6, "feather": 2, "pose_smoothing": 2}
{"input": "$clip", "reference": "$ref", "output": "$work/j1.mp4", "bundle": "$bundle", "vision_models": "$work/none", "mask": "$work/mask.mp4", "poses": "$work/no_poses.json", "preset": "preview", "steps": 1, "mask_blocks": 3, "chain_frames": 1, "anchor_color": "on", "window": 4}
{"command": "animate", "input": "$clip", "reference": "$ref", "output": "$work/j2.mp4", "bundle": "$bundle", "vision_models": "$vision", "steps": 1, "retarget": "off"}
JOBS
  timeout 600 "$standin" batch "$work/jobs.jsonl" 2>"$work/batch.log" || fail "batch failed: $(tail -3 "$work/batch.log"); $(tail -3 "$work"/jobs.logs/*.log)"
  py - "$work/jobs.status.json" <<'PY' && ok "batch jobs with the new keys ran" || fail "batch status: $(cat "$work/jobs.status.json")"
import json, sys
jobs = json.load(open(sys.argv[1]))["jobs"]
assert [j["status"] for j in jobs] == ["done"] * 3, jobs
PY
  [[ -f $work/j0.mkv ]] && ok "batch wrote the matte" || fail "no matte from the batch job"
  grep -q -- "--person $a=$ref --person $b=$ref" "$work/jobs.logs/job0.log" && ok "a list becomes repeated --person" || fail "job0 arguments: $(head -1 "$work/jobs.logs/job0.log")"
  ;;

*)
  echo "unknown part '$part'"
  exit 2
  ;;
esac
exit $((failures > 0))
