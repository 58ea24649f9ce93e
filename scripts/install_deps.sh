#!/usr/bin/env bash
# Installs everything standin needs on Debian 12 (run as root). Idempotent and quiet when done.
set -euo pipefail
# libopenblas0-pthread: Debian's torch and numpy otherwise use the reference BLAS (measured on
# a 2-core machine: sgemm 2.4 GFLOP/s, 112 with OpenBLAS; the demo model's CPU runs 5x faster).
packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libtorch-dev python3-torch python3-numpy python3-pytest python3-flatbuffers
  libopenblas0-pthread
  python3-opencv python3-numba python3-pil python3-matplotlib
  libopencv-dev
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libswresample-dev ffmpeg
  libcli11-dev libspdlog-dev nlohmann-json3-dev libgtest-dev googletest
  opencv-doc
)
# npm fetches the MediaPipe models; machines that already have Node.js keep theirs.
command -v npm >/dev/null || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo_cmd=""
  [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
