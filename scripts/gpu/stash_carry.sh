#!/usr/bin/env bash
# First of two back-to-back device calls (scripts/gpu/prepare_carry.sh): keeps the carried vision
# models in /tmp/standin-carry/vision, where scripts/gpu/bench.sh looks for what .gpu/vision lacks.
#   device call, carry [".gpu-vision"]: bash scripts/gpu/stash_carry.sh .gpu-vision
set -euo pipefail
cd "$(dirname "$0")/../.."
SRC="${1:-.gpu-vision}"
mkdir -p /tmp/standin-carry/vision
cp -f "$SRC"/* /tmp/standin-carry/vision/
ls -la /tmp/standin-carry/vision
