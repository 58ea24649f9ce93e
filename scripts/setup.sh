#!/usr/bin/env bash
# Fresh Debian 12 machine -> built standin, sample media, the default bundle (models/demo, exported
# from the committed trained weights), the tiny test bundle and the converted vision models.
# Safe to run again; each step skips work that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=${JOBS:-$(nproc)}

scripts/install_deps.sh
echo "== build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"

echo "== sample media (data/)"
scripts/make_sample_media.sh

echo "== models"
[[ -f models/tiny/model.json ]] || /usr/bin/python3 scripts/export_bundle.py --config tiny --out models/tiny
# The default bundle: again whenever the weights or the model config are newer than the export.
demo=models/demo/model.json
if [[ ! -f $demo || models/standin-demo.pth -nt $demo || configs/models/demo.json -nt $demo ]]; then
  /usr/bin/python3 scripts/export_bundle.py --config demo --weights models/standin-demo.pth --out models/demo
fi
if [[ -x scripts/fetch_mediapipe.sh ]]; then
  scripts/fetch_mediapipe.sh
  [[ -f models/vision/vision.json ]] || /usr/bin/python3 scripts/mediapipe/convert_all.py --out models/vision
fi
echo "standin is at $root/build/standin"
