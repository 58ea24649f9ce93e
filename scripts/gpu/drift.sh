#!/usr/bin/env bash
# Long-shot drift, before and after the remedies (issue 13; docs/DRIFT.md): one >= 300-frame shot
# rendered four ways with the same seed and the same analysis (poses and masks extracted once),
#   baseline          averaged overlapping windows, no colour anchoring (the defaults)
#   chain             --chain-frames $DRIFT_CHAIN (windows in turn, each continuing the last)
#   anchor            --anchor-color on (each frame's character colour pulled to the reference's)
#   chain+anchor      both
# each with --matte, then scripts/measure_drift.py on each (mean Lab colour and SSIM of the
# character region against the first window, over time). The last lines printed are the table;
# JSON, logs and the renders' mattes go to $OUT.
#
# Here, once (fills .gpu/drift/: the shot and the reference, a few MB; carry .gpu):
#   bash scripts/gpu/drift.sh prepare
# On the GPU machine, from the repository root, with a CUDA build of standin and the trained
# bundle (BUNDLE=dir, or WEIGHTS=file.pth to export one with scripts/export_bundle.py --config demo):
#   STANDIN=/path/to/build/standin BUNDLE=/path/to/models/demo VISION=.gpu/vision bash scripts/gpu/drift.sh
# A CPU smoke test of the script itself (tiny bundle, 24 frames, 1 step; a minute, measures nothing):
#   DRIFT_DEVICE=cpu BUNDLE=models/tiny DRIFT_FRAMES=24 DRIFT_STEPS=1 DRIFT_WINDOW=8 DRIFT_CHAIN=2 \
#     STANDIN=build/standin VISION=models/vision OUT=/tmp/drift-smoke bash scripts/gpu/drift.sh
#
# Knobs: DRIFT_FRAMES (320 = 32 s of vtest at 10 fps), DRIFT_STEPS (bundle's), DRIFT_WINDOW (bundle's),
# DRIFT_CHAIN (2), DRIFT_DEVICE (cuda), DRIFT_DTYPE (bundle's), DRIFT_SEED (0), DRIFT_CFG (bundle's),
# DRIFT_SAMPLER (bundle's), DRIFT_VARIANTS ("baseline chain anchor chain+anchor": which to render,
# in that order), SHOT, REFERENCE, OUT.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
FRAMES="${DRIFT_FRAMES:-320}"

if [[ "${1:-}" == "prepare" ]]; then
  mkdir -p .gpu/drift
  scripts/make_sample_media.sh >/dev/null
  ffmpeg -hide_banner -loglevel error -y -i data/vtest.avi -frames:v "$FRAMES" -c:v libx264 -preset veryfast -crf 16 \
    -pix_fmt yuv420p .gpu/drift/shot.mp4
  ffmpeg -hide_banner -loglevel error -y -i data/person.png -q:v 2 .gpu/drift/person.jpg  # the GPU prefix decodes JPEG
  du -sh .gpu/drift
  exit 0
fi

OUT="${OUT:-/tmp/standin-drift-out}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
STANDIN="${STANDIN:-build/standin}"
SHOT="${SHOT:-.gpu/drift/shot.mp4}"
REFERENCE="${REFERENCE:-.gpu/drift/person.jpg}"
VISION="${VISION:-models/vision}"
DEVICE="${DRIFT_DEVICE:-cuda}"
CHAIN="${DRIFT_CHAIN:-2}"
SEED="${DRIFT_SEED:-0}"
WORK="$OUT/work"
mkdir -p "$WORK"
if [[ -n "${BENCH_PYTHON:-}" ]]; then PY="$BENCH_PYTHON"; elif [[ -x /opt/torch/.venv/bin/python3 ]]; then PY=/opt/torch/.venv/bin/python3; else PY=/usr/bin/python3; fi
T0=$(date +%s)
stamp() { echo "=== [$(( $(date +%s) - T0 )) s] $*"; }

[[ -x "$STANDIN" ]] || { echo "no standin binary at $STANDIN (build it as scripts/gpu/bench.sh does, then STANDIN=...)"; exit 1; }
[[ -f "$SHOT" ]] || { echo "no shot at $SHOT (run 'bash scripts/gpu/drift.sh prepare' here and carry .gpu)"; exit 1; }
BUNDLE="${BUNDLE:-}"
if [[ -z "$BUNDLE" && -n "${WEIGHTS:-}" ]]; then
  BUNDLE="$WORK/demo"
  stamp "export $WEIGHTS -> $BUNDLE"
  "$PY" scripts/export_bundle.py --config demo --weights "$WEIGHTS" --out "$BUNDLE" > "$WORK/export.log" 2>&1 ||
    { tail -20 "$WORK/export.log"; exit 1; }
fi
[[ -f "$BUNDLE/model.json" ]] || { echo "no bundle: set BUNDLE=dir or WEIGHTS=file.pth"; exit 1; }
git log -1 --format='commit %H %s' 2>/dev/null || true
echo "shot=$SHOT frames=$FRAMES bundle=$BUNDLE device=$DEVICE chain=$CHAIN seed=$SEED steps=${DRIFT_STEPS:-bundle} cfg=${DRIFT_CFG:-bundle} sampler=${DRIFT_SAMPLER:-bundle} reference=$REFERENCE"

# The shot, cut to FRAMES frames (the prepared one already is).
ffmpeg -hide_banner -loglevel error -y -i "$SHOT" -frames:v "$FRAMES" -c:v libx264 -preset veryfast -crf 16 -pix_fmt yuv420p \
  -an "$WORK/shot.mp4" || exit 1

stamp "extract poses and masks once"
"$STANDIN" extract -i "$WORK/shot.mp4" -o "$WORK/extract" --vision-models "$VISION" --device "$DEVICE" -y \
  > "$WORK/extract.log" 2>&1 || { tail -5 "$WORK/extract.log"; exit 1; }

COMMON=(replace -i "$WORK/shot.mp4" -r "$REFERENCE" --bundle "$BUNDLE" --vision-models "$VISION" --device "$DEVICE"
        --poses "$WORK/extract/poses.json" --mask "$WORK/extract/mask.mp4" --seed "$SEED" -y)
[[ -n "${DRIFT_STEPS:-}" ]] && COMMON+=(--steps "$DRIFT_STEPS")
[[ -n "${DRIFT_WINDOW:-}" ]] && COMMON+=(--window "$DRIFT_WINDOW")
[[ -n "${DRIFT_DTYPE:-}" ]] && COMMON+=(--dtype "$DRIFT_DTYPE")
[[ -n "${DRIFT_CFG:-}" ]] && COMMON+=(--cfg "$DRIFT_CFG")
[[ -n "${DRIFT_SAMPLER:-}" ]] && COMMON+=(--sampler "$DRIFT_SAMPLER")
WINDOW="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["defaults"]["window"])' "$BUNDLE/model.json")"
WINDOW="${DRIFT_WINDOW:-$WINDOW}"

declare -A VARIANTS=(
  [baseline]=""
  [chain]="--chain-frames $CHAIN"
  [anchor]="--anchor-color on"
  [chain+anchor]="--chain-frames $CHAIN --anchor-color on"
)
read -r -a ORDER <<< "${DRIFT_VARIANTS:-baseline chain anchor chain+anchor}"
for name in "${ORDER[@]}"; do
  [[ -n "${VARIANTS[$name]+set}" ]] || { echo "unknown variant '$name' in DRIFT_VARIANTS (baseline chain anchor chain+anchor)"; exit 1; }
done
for name in "${ORDER[@]}"; do
  file="${name//+/_}"
  stamp "render $name"
  # shellcheck disable=SC2086
  "$STANDIN" "${COMMON[@]}" ${VARIANTS[$name]} -o "$WORK/$file.mp4" --matte "$OUT/$file.matte.mkv" \
    --metrics "$OUT/$file.metrics.json" > "$WORK/$file.log" 2>&1 || { echo "render $name failed:"; tail -5 "$WORK/$file.log"; continue; }
  "$PY" scripts/measure_drift.py "$WORK/$file.mp4" --matte "$OUT/$file.matte.mkv" --window "$WINDOW" --label "$name" \
    --json "$OUT/$file.drift.json" --csv "$OUT/$file.drift.csv" || echo "measure $name failed"
done

stamp "table"
"$PY" - "$OUT" "${ORDER[@]}" <<'PY'
import json, os, sys
out, names = sys.argv[1], sys.argv[2:]
print("| variant | frames | dE first window | dE last 10 % | dE slope /min | SSIM first window | SSIM last 10 % | s/frame |")
print("|---|---|---|---|---|---|---|---|")
for name in names:
    f = name.replace("+", "_")
    try:
        s = json.load(open(os.path.join(out, f + ".drift.json")))["summary"]
        m = json.load(open(os.path.join(out, f + ".metrics.json")))
    except OSError:
        print(f"| {name} | failed |"); continue
    print(f"| {name} | {s['frames_measured']} | {s['delta_e_first_window']:.2f} | {s['delta_e_last10']:.2f} | "
          f"{s['delta_e_slope_per_min']:+.2f} | {s['ssim_first_window']:.3f} | {s['ssim_last10']:.3f} | "
          f"{m['seconds_per_frame']:.2f} |")
PY
