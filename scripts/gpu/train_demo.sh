#!/usr/bin/env bash
# One GPU-machine call of the demo model's training (docs/TRAINING.md): continues the run for up
# to LIMIT seconds on every visible GPU (DDP through torchrun), then leaves under $OUT what the
# next call needs on a fresh machine: the fp16 weights (<= 15 MiB shards + index + progress) and
# train-logs.tar.gz (console log, log.jsonl, loss.png).
#
#   device call, repeated until it prints "training done": bash scripts/gpu/train_demo.sh
#   (carry .train; after each call copy the returned weights.* / progress.json into .train/weights)
#
# While the machine stays warm the full state (optimizer included) stays in $RUN and the next
# call continues exactly; on a fresh machine it starts from .train/weights with a new optimizer.
# From nothing: the same command with an empty .train/weights.
# From an earlier model (a changed architecture, docs/TRAINING.md "Run 2"): WARM_START=weights
# (folder or shipped .pth, carried) and START_STAGE=image to keep its VAE; used only when the run
# has neither state.pt nor INIT weights yet.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1 NUMBA_CACHE_DIR=/tmp/standin-numba OMP_NUM_THREADS=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
RUN=${RUN:-/tmp/standin-run}
CONFIG=${CONFIG:-configs/train/demo.json}
LIMIT=${LIMIT:-480}
OUT=${OUT:-/tmp/standin-out}
PACK=${PACK:-.train/pack}
BACKGROUNDS=${BACKGROUNDS:-.train/backgrounds}
INIT=${INIT:-.train/weights}
mkdir -p "$RUN" "$OUT"

nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader || true
gpus=$(python3 -c 'import torch; print(torch.cuda.device_count())')
args=(--config "$CONFIG" --run-dir "$RUN" --pack "$PACK" --backgrounds "$BACKGROUNDS" --time-limit "$LIMIT" --log-every 25)
if [[ ! -f $RUN/state.pt && -f $INIT/weights.index.json ]]; then
  args+=(--init "$INIT")
elif [[ ! -f $RUN/state.pt && -n ${WARM_START:-} ]]; then
  args+=(--warm-start "$WARM_START")
  [[ -n ${START_STAGE:-} ]] && args+=(--start-stage "$START_STAGE")
fi
[[ -n ${SHIP:-} ]] && args+=(--ship "$OUT/$SHIP")
echo "== $gpus GPU(s), limit ${LIMIT}s, run $RUN"
status=0
python3 -m torch.distributed.run --standalone --nproc_per_node="$gpus" scripts/train.py "${args[@]}" \
  2>&1 | tee "$RUN/console.log" || status=$?

cp "$RUN"/weights/weights.* "$RUN"/weights/progress.json "$OUT"/ 2>/dev/null || true
(cd scripts && python3 -m standin_train.plots "$RUN/log.jsonl" "$RUN/loss.png") || true
tar czf "$OUT/train-logs.tar.gz" -C "$RUN" console.log log.jsonl $(cd "$RUN" && ls loss.png 2>/dev/null) || true
python3 - "$RUN/weights/progress.json" <<'EOF' || true
import json, sys
p = json.load(open(sys.argv[1]))
print("training done" if p.get("done") else f"training continues: stage {p['stage_index']} step {p['step']}")
EOF
exit $status
