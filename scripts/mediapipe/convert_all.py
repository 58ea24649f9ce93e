#!/usr/bin/env python3
"""Convert all MediaPipe models to TorchScript and write vision.json.

  /usr/bin/python3 scripts/mediapipe/convert_all.py --out models/vision

Reads third_party_models/mediapipe/*.tflite (scripts/fetch_mediapipe.sh), writes
<out>/<name>.pt (torch.jit.trace of tflite_to_torch.TFLiteModule; input NCHW float32, returns
a tuple of outputs in vision.json order; rank-4 outputs NCHW) and <out>/vision.json.
Each .pt also carries its own entry of vision.json as the extra file "meta.json".
"""
import argparse
import hashlib
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import tflite_to_torch as T  # noqa: E402
import vision_meta as V  # noqa: E402

MODELS = ["pose_detection", "pose_landmark_lite", "pose_landmark_full", "pose_landmark_heavy",
          "selfie_segmentation", "selfie_segmentation_landscape"]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def trace(mod, example):
    """torch.jit.trace records aten::_convolution with the *current* cuDNN flags as constants
    (benchmark, deterministic, cudnn_enabled, allow_tf32). Trace with allow_tf32=False so the
    exported graph runs convolutions in IEEE fp32 on CUDA too: with TF32 the landmark model's
    large-magnitude activations drift (segmentation logits off by ~9% on an H100)."""
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark,
             torch.backends.cudnn.deterministic, torch.backends.cudnn.enabled)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = False
    torch.backends.cudnn.enabled = True
    try:
        return torch.jit.trace(mod, example, check_trace=False)
    finally:
        (torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark,
         torch.backends.cudnn.deterministic, torch.backends.cudnn.enabled) = saved


def convert(name, models_dir, out_dir):
    src = os.path.join(models_dir, name + ".tflite")
    if not os.path.exists(src):
        raise FileNotFoundError(f"{src} missing: run scripts/fetch_mediapipe.sh first")
    spec = V.MODEL_SPECS[name]
    mod = T.load(src)
    tfl_names = [mod.m.tensors[i].name for i in mod.output_ids]
    names = [spec["outputs_by_tflite_name"][n] for n in tfl_names]
    h, w = spec["input"]["height"], spec["input"]["width"]
    lo, hi = spec["input"]["range"]
    torch.manual_seed(0)
    example = torch.rand(1, 3, h, w) * (hi - lo) + lo
    with torch.no_grad():
        eager = mod(example)
        traced = trace(mod, example)
    outputs = []
    for n, tn, y in zip(names, tfl_names, eager):
        outputs.append({"name": n, "tflite_name": tn, "shape": list(y.shape),
                        "layout": "NCHW" if y.dim() == 4 else "as TFLite",
                        "meaning": spec["notes"].get(n, "")})
    entry = {
        "file": name + ".pt",
        "source": {"file": name + ".tflite", "sha256": sha256(src)},
        "input": {"name": "image", "shape": [1, 3, h, w], "layout": "NCHW", "dtype": "float32",
                  "channels": "RGB", "range": [lo, hi]},
        "outputs": outputs,
        "op_counts": mod.op_counts,
    }
    dst = os.path.join(out_dir, name + ".pt")
    traced.save(dst, _extra_files={"meta.json": json.dumps(entry)})
    # reload and check that the saved module reproduces the eager module
    re = torch.jit.load(dst)
    with torch.no_grad():
        again = re(example)
    for a, b, o in zip(eager, again, outputs):
        err = float((a - b).abs().max())
        if err > 1e-4 * max(1.0, float(a.abs().max())):
            raise RuntimeError(f"{name}/{o['name']}: traced module differs by {err}")
    entry["sha256"] = sha256(dst)
    print(f"{name}: {dst} outputs " + ", ".join(f"{o['name']}{o['shape']}" for o in outputs))
    return entry


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "vision"))
    ap.add_argument("--models-dir", default=os.path.join(ROOT, "third_party_models", "mediapipe"))
    ap.add_argument("--models", nargs="*", default=MODELS)
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    doc = {
        "schema": "standin.vision/1",
        "torch_version_used": torch.__version__,
        "notes": "TorchScript (torch.jit.trace) modules; forward(image NCHW float32) returns a "
                 "tuple in 'outputs' order. Constants are buffers: module.to(device) works.",
        "models": {},
        "mediapipe": V.MEDIAPIPE,
    }
    for name in a.models:
        doc["models"][name] = convert(name, a.models_dir, a.out)
    with open(os.path.join(a.out, "vision.json"), "w") as fh:
        json.dump(doc, fh, indent=1)
    print("wrote", os.path.join(a.out, "vision.json"))


if __name__ == "__main__":
    main()
