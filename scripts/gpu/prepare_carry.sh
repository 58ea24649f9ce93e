#!/usr/bin/env bash
# Fills the git-ignored .gpu/ with what scripts/gpu/bench.sh needs on the GPU machine and cannot
# build there. The device tool carries the tracked tree (~42 MB since the trained demo weights are
# committed) plus the named folders, 64 MiB in all, so the vision models travel as MediaPipe's
# .tflite files (10 MB, half precision) and bench.sh converts them there (convert_all.py, seconds;
# the converted TorchScript files are 26 MB):
#   .gpu/prefix.tar.xz   static FFmpeg + x264 + OpenCV (../shared/device/)
#   .gpu/mediapipe/      pose_detection, pose_landmark_full, selfie_segmentation(_landscape) .tflite
#   .gpu/clip_audio.mp4  scripts/make_sample_media.sh's clip
#   .gpu/person.jpg      the reference (the prefix's FFmpeg decodes JPEG stills, not PNG)
# A call that does not run `replace` (BENCH_REPLACE=0, e.g. the 2-GPU scaling) needs only
# .gpu/prefix.tar.xz.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
SHARED="${STANDIN_SHARED:-$ROOT/../shared}"
rm -rf .gpu/vision .gpu-vision   # the converted models of earlier versions of this script
mkdir -p .gpu/mediapipe
[[ -f .gpu/prefix.tar.xz ]] || cp "$SHARED/device/prefix.tar.xz" .gpu/
scripts/fetch_mediapipe.sh >/dev/null
for m in pose_detection pose_landmark_full selfie_segmentation selfie_segmentation_landscape; do
  cp -f "third_party_models/mediapipe/$m.tflite" .gpu/mediapipe/
done
scripts/make_sample_media.sh >/dev/null
cp -f data/clip_audio.mp4 .gpu/
[[ -f .gpu/person.jpg ]] || ffmpeg -hide_banner -loglevel error -y -i data/person.png -q:v 2 .gpu/person.jpg
tree_b=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
carry_b=$(du -sb .gpu | cut -f1)
total=$(( tree_b + carry_b ))
echo ".gpu: $(( carry_b / 1000000 )) MB; with the tracked tree $(( total / 1000000 )) MB of the 67 MB (64 MiB) carry$( (( total > 67108864 )) && echo ' -- TOO BIG')"
