#!/usr/bin/env bash
# Fetch MediaPipe's Apache-2.0 BlazePose / Selfie Segmentation .tflite models from the
# npm registry (`npm pack`, pinned versions) into third_party_models/mediapipe/ (git-ignored).
# Idempotent: a model already present with the recorded sha256 is kept as is.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${MEDIAPIPE_MODELS_DIR:-$ROOT/third_party_models/mediapipe}"
PY="${PYTHON:-/usr/bin/python3}"

POSE_PKG="@mediapipe/pose@0.5.1675469404"
SEG_PKG="@mediapipe/selfie_segmentation@0.1.1675465747"

# name  sha256   (the models of the pinned package versions)
read -r -d '' SUMS <<'SUMS_EOF' || true
pose_detection.tflite a63c614bef30d35947f13be361820b1e4e3bec9cfeebf4d11216a18373108e85
pose_landmark_lite.tflite f17bfbecadb61c3be1baa8b8d851cc6619c870a87167b32848ad20db306b9d61
pose_landmark_full.tflite e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f
pose_landmark_heavy.tflite 59e42d71bcd44cbdbabc419f0ff76686595fd265419566bd4009ef703ea8e1fe
selfie_segmentation.tflite 8d13b7fae74af625c641226813616a2117bd6bca19eb3b75574621fc08557f27
selfie_segmentation_landscape.tflite 4aafe6223bb8dac6fac8ca8ed56852870a33051ef3f6238822d282a109962894
SUMS_EOF

all_ok() {
  local name sum
  while read -r name sum; do
    [ -f "$DEST/$name" ] || return 1
    [ "$(sha256sum "$DEST/$name" | cut -d' ' -f1)" = "$sum" ] || return 1
  done <<< "$SUMS"
}

if all_ok; then
  ( cd "$DEST" && sha256sum *.tflite > SHA256SUMS )
  echo "fetch_mediapipe: models present and verified in $DEST"
  exit 0
fi

command -v npm >/dev/null || { echo "fetch_mediapipe: npm is required (apt-get install npm)" >&2; exit 1; }
mkdir -p "$DEST"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

( cd "$WORK" && npm pack --silent "$POSE_PKG" "$SEG_PKG" >/dev/null )
mkdir -p "$WORK/pose" "$WORK/seg"
tar xzf "$WORK"/mediapipe-pose-*.tgz -C "$WORK/pose"
tar xzf "$WORK"/mediapipe-selfie_segmentation-*.tgz -C "$WORK/seg"

for m in pose_landmark_lite pose_landmark_full pose_landmark_heavy; do
  install -m 0644 "$WORK/pose/package/$m.tflite" "$DEST/$m.tflite"
done
for m in selfie_segmentation selfie_segmentation_landscape; do
  install -m 0644 "$WORK/seg/package/$m.tflite" "$DEST/$m.tflite"
done
# pose_detection.tflite is packed inside an Emscripten file-packager bundle.
"$PY" "$ROOT/scripts/mediapipe/unpack_assets.py" \
  --data "$WORK/pose/package/pose_solution_packed_assets.data" \
  --loader "$WORK/pose/package/pose_solution_packed_assets_loader.js" \
  --out "$DEST"

if ! all_ok; then
  echo "fetch_mediapipe: sha256 mismatch; got:" >&2
  ( cd "$DEST" && sha256sum *.tflite ) >&2
  exit 1
fi
( cd "$DEST" && sha256sum *.tflite > SHA256SUMS )
echo "fetch_mediapipe: models fetched and verified in $DEST"
