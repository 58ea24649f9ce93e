#!/usr/bin/env bash
# Fills the git-ignored carry folders with what scripts/gpu/bench.sh needs on the GPU machine and
# cannot build there. The device tool carries the tracked tree (~42 MB since the trained demo
# weights are committed) plus the named folders, 64 MiB in all, so they are split over two calls
# made back to back (the machine keeps /tmp while it stays warm):
#   .gpu-vision/  call 1: pose_landmark_full.pt (13 MB); `bash scripts/gpu/stash_carry.sh .gpu-vision`
#                 keeps it in /tmp/standin-carry/vision for the next call
#   .gpu/         call 2, the benchmark: prefix.tar.xz (static FFmpeg + x264 + OpenCV, ../shared/device/),
#                 vision/ (the other converted MediaPipe models bench.sh's `replace` uses: detector,
#                 segmentation, vision.json), clip_audio.mp4 (scripts/make_sample_media.sh) and
#                 person.jpg (the prefix's FFmpeg decodes JPEG stills, not PNG)
# A call that does not run `replace` (BENCH_REPLACE=0, e.g. the 2-GPU scaling) needs only
# .gpu/prefix.tar.xz and no call 1.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
SHARED="${STANDIN_SHARED:-$ROOT/../shared}"
mkdir -p .gpu/vision .gpu-vision
[[ -f .gpu/prefix.tar.xz ]] || cp "$SHARED/device/prefix.tar.xz" .gpu/
if [[ ! -f models/vision/vision.json ]]; then
  scripts/fetch_mediapipe.sh
  /usr/bin/python3 scripts/mediapipe/convert_all.py --out models/vision
fi
cp -f models/vision/vision.json models/vision/pose_detection.pt models/vision/selfie_segmentation*.pt .gpu/vision/
cp -f models/vision/pose_landmark_full.pt .gpu-vision/
rm -f .gpu/vision/pose_landmark_*.pt
scripts/make_sample_media.sh >/dev/null
cp -f data/clip_audio.mp4 .gpu/
[[ -f .gpu/person.jpg ]] || ffmpeg -hide_banner -loglevel error -y -i data/person.png -q:v 2 .gpu/person.jpg
tree_mb=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
for d in .gpu-vision .gpu; do
  mb=$(du -sb "$d" | cut -f1)
  total=$(( tree_mb + mb ))
  echo "$d: $(( mb / 1000000 )) MB; with the tracked tree $(( total / 1000000 )) MB of the 67 MB (64 MiB) carry$( (( total > 67108864 )) && echo ' -- TOO BIG')"
done
