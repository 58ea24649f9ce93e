#!/usr/bin/env bash
# Build the diffusion stage + diffusion_smoke against the CUDA LibTorch of the GPU machine with
# plain g++ (no CMake, no OpenCV/FFmpeg needed), export the tiny bundle with that torch, and run
# the generator on cuda (fp32/fp16/bf16) and cpu; prints stage times and CUDA-vs-CPU differences.
#   tests/cpp/diffusion/gpu_smoke.sh [python-with-torch] [build-dir]
set -euo pipefail
PY=${1:-/opt/torch/.venv/bin/python3}
B=${2:-/tmp/standin-diffusion-smoke}
mkdir -p "$B"
TI=$("$PY" -c "import torch,os;print(os.path.dirname(torch.__file__))")
ABI=$("$PY" -c "import torch;print(int(torch._C._GLIBCXX_USE_CXX11_ABI))")
INC="-I$TI/include -I$TI/include/torch/csrc/api/include -I/usr/local/cuda/include"
CXX="g++ -std=c++17 -O2 -Wall -Wextra -Wno-unused-parameter -Iinclude -D_GLIBCXX_USE_CXX11_ABI=$ABI"
# Without Torch include paths (Torch 2.x bundles its own fmt, which clashes with spdlog's).
for f in src/core/log.cpp src/core/progress.cpp src/core/output.cpp; do
  $CXX -c "$f" -o "$B/$(basename "$f").o" &
done
for f in src/diffusion/bundle.cpp src/diffusion/generator.cpp src/diffusion/scheduler.cpp src/diffusion/sha256.cpp \
         tests/cpp/diffusion/diffusion_smoke.cpp; do
  $CXX -DSTANDIN_TORCH_CUDA=1 -DSTANDIN_SOURCE_DIR="\"$PWD\"" -DSTANDIN_BINARY_DIR="\"$B\"" $INC -c "$f" \
    -o "$B/$(basename "$f").o" &
done
wait
LIBS=$(pkg-config --libs spdlog 2>/dev/null || echo "-lspdlog -lfmt")
g++ "$B"/*.o -o "$B/smoke" -L"$TI/lib" -Wl,-rpath,"$TI/lib" -Wl,--no-as-needed -ltorch -ltorch_cpu -ltorch_cuda \
  -lc10 -lc10_cuda $LIBS -lpthread
[ -f "$B/tiny/model.json" ] || "$PY" scripts/export_bundle.py --config tiny --out "$B/tiny" > "$B/export.log" 2>&1
for d in "cpu fp32" "cuda fp32" "cuda fp16" "cuda bf16"; do
  set -- $d
  echo "== $1 $2"
  SMOKE_SAVE="$B/lat_$1_$2.pt" "$B/smoke" "$B/tiny" "$1" "$2" 20 3 8 2
done
"$PY" - "$B" <<'PY'
import sys, torch
b = sys.argv[1]
a = torch.load(f"{b}/lat_cpu_fp32.pt", weights_only=False)["latents"]
for n in ["cuda_fp32", "cuda_fp16", "cuda_bf16"]:
    x = torch.load(f"{b}/lat_{n}.pt", weights_only=False)["latents"]
    print(f"{n} vs cpu fp32: latents max-abs {(a - x).abs().max().item():.3g} (range {a.abs().max().item():.3g})")
PY
echo "== errors"
"$B/smoke" "$B/tiny" cuda:7 fp32 4 || echo "exit $? (expected 2: no such device)"
"$B/smoke" "$B/tiny" cpu fp16 4 || echo "exit $? (expected 2: fp16 needs CUDA)"
