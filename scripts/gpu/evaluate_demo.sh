#!/usr/bin/env bash
# The held-out self-reconstruction rows of a finished demo run, on the GPU machine
# (docs/TRAINING.md "Self-reconstruction"): the run's EMA shards become one weights file, then
# scripts/evaluate.py runs the rows that need the model on the clips rendered beforehand here.
#
#   device call (after train_demo.sh printed "training done", machine still warm; carry the clips):
#   bash scripts/gpu/evaluate_demo.sh
#
# Leaves under $OUT one file, eval.tar.gz: eval-<variant>.json per sampling variant
# (eval-default.json: the renderer's redraw region; eval-bundle-region.json: replace's default one),
# reference_sensitivity.json (scripts/reference_sensitivity.py) and
# contact_sheet.png (one file, so that with train_demo.sh's six in the same call the $OUT limit of
# eight files holds). The rows that need no GPU (tiny bundle, background only) run here with
# --rows tiny,background.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1
RUN=${RUN:-/tmp/standin-run}
OUT=${OUT:-/tmp/standin-out}
CONFIG=${CONFIG:-configs/train/demo.json}
CLIPS=${CLIPS:-.train/eval_clips.npz}
ROWS=${ROWS:-trained,no_reference,random}
# extra sampling variants of the trained row, "steps:cfg" each (the bundle's own come first)
VARIANTS=${VARIANTS:-}
WEIGHTS=$RUN/standin-demo.pth
EVAL=$RUN/eval
mkdir -p "$OUT" "$EVAL"

(cd scripts && python3 -m standin_train.checkpoints "$RUN/weights" "../$CONFIG" "$WEIGHTS")
python3 scripts/evaluate.py --weights "$WEIGHTS" --clips-file "$CLIPS" --device cuda --rows "$ROWS" \
  --out "$RUN/eval-default"
cp "$RUN/eval-default/results.json" "$EVAL/eval-default.json"
cp "$RUN/eval-default/contact_sheet.png" "$EVAL/" 2>/dev/null || true
# the same rows with the region replace redraws by default (the bundle's mask_* defaults)
python3 scripts/evaluate.py --weights "$WEIGHTS" --clips-file "$CLIPS" --device cuda --rows "$ROWS" \
  --mask-mode bundle --out "$RUN/eval-bundle-region"
cp "$RUN/eval-bundle-region/results.json" "$EVAL/eval-bundle-region.json"
for v in $VARIANTS; do
  steps=${v%%:*} cfg=${v##*:}
  python3 scripts/evaluate.py --weights "$WEIGHTS" --clips-file "$CLIPS" --device cuda --rows trained \
    --steps "$steps" --cfg "$cfg" --out "$RUN/eval-$steps-$cfg"
  cp "$RUN/eval-$steps-$cfg/results.json" "$EVAL/eval-$steps-$cfg.json"
done
# does the model use its reference? (docs/TRAINING.md "Run 4"; seconds on a GPU)
python3 scripts/reference_sensitivity.py --weights "$WEIGHTS" --clips-file "$CLIPS" --device cuda \
  --out "$EVAL/reference_sensitivity.json" || echo "reference_sensitivity exit $?"
tar czf "$OUT/eval.tar.gz" -C "$EVAL" .
