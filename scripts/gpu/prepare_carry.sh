#!/usr/bin/env bash
# Fills .gpu/ (git-ignored) with what scripts/gpu/bench.sh needs on the GPU machine and cannot
# build there, within the device tool's 64 MiB carry limit (about 40 MiB):
#   prefix.tar.xz   static FFmpeg + x264 + OpenCV (../shared/device/, see its README.md)
#   vision/         converted MediaPipe models without pose_landmark_heavy (55 MB; "full" is used)
#   clip_audio.mp4  the real clip for `standin replace` (scripts/make_sample_media.sh)
#   person.jpg      the reference image as JPEG: the prefix's FFmpeg decodes JPEG stills but not PNG
# Then, with the device tool: run `bash scripts/gpu/bench.sh` with carry [".gpu"].
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
mkdir -p .gpu
SHARED="${STANDIN_SHARED:-$ROOT/../shared}"
[[ -f .gpu/prefix.tar.xz ]] || cp "$SHARED/device/prefix.tar.xz" .gpu/
if [[ ! -f .gpu/vision/vision.json ]]; then
  scripts/fetch_mediapipe.sh
  /usr/bin/python3 scripts/mediapipe/convert_all.py --out .gpu/vision
fi
rm -f .gpu/vision/pose_landmark_heavy.pt
scripts/make_sample_media.sh >/dev/null
cp -f data/clip_audio.mp4 .gpu/
[[ -f .gpu/person.jpg ]] || ffmpeg -hide_banner -loglevel error -y -i data/person.png -q:v 2 .gpu/person.jpg
du -sh .gpu
