#!/usr/bin/env bash
# Fetch the reference TFLite runtime used to verify the converter: the WebAssembly build of
# the TFLite interpreter (+ XNNPACK delegate) shipped in the npm package @tensorflow/tfjs-tflite.
# Only its Emscripten module (wasm/tflite_web_api_cc*.{js,wasm}) is used, directly from Node.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
DEST="${TFLITE_WEB_DIR:-$ROOT/third_party_models/tflite-web}"
PKG="@tensorflow/tfjs-tflite@0.0.1-alpha.10"
if [ -f "$DEST/tflite_web_api_cc_simd.wasm" ] && [ -f "$DEST/tflite_web_api_cc_simd.js" ]; then
  echo "fetch_tflite_runtime: present in $DEST"; exit 0
fi
WORK="$(mktemp -d)"; trap 'rm -rf "$WORK"' EXIT
( cd "$WORK" && npm pack --silent "$PKG" >/dev/null && tar xzf tensorflow-tfjs-tflite-*.tgz )
mkdir -p "$DEST"
cp "$WORK"/package/wasm/tflite_web_api_cc_simd.{js,wasm} "$WORK"/package/wasm/tflite_web_api_cc.{js,wasm} "$DEST"/
cp "$WORK"/package/package.json "$DEST"/package.json.orig
echo "fetch_tflite_runtime: $PKG wasm runtime in $DEST"
