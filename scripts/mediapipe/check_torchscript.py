#!/usr/bin/env python3
"""Load the exported TorchScript files (models/vision/*.pt) on a device and compare them with the
TFLite runtime's expected values in tests/data/vision/.

  python3 scripts/mediapipe/check_torchscript.py --models-dir models/vision --device cuda

Needs only torch + numpy (no converter, no .tflite): it checks what the C++ side will load.
Prints one line per (model, case) with max abs errors; exits 1 on a tolerance failure.
"""
import argparse
import glob
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import cases as C  # noqa: E402


def compare(name, outs, exp):
    """max abs errors of the named outputs against the stored subsets."""
    e = {}
    if "landmarks" in outs:
        g = outs["landmarks"].reshape(-1, 5)
        r = exp["landmarks"].reshape(-1, 5)
        e["landmarks_xy_px"] = float(np.abs(g[:, :2] - r[:, :2]).max())
        e["world_landmarks"] = float(np.abs(outs["world_landmarks"] - exp["world_landmarks"]).max())
        e["pose_flag"] = float(np.abs(outs["pose_flag"] - exp["pose_flag"]).max())
        hm = np.transpose(outs["heatmap"][0], (1, 2, 0))[::8, ::8, :]
        e["heatmap"] = float(np.abs(hm - exp["heatmap_sub8"]).max())
    if "segmentation" in outs:
        seg = outs["segmentation"][0, 0, ::4, ::4]
        ref = exp["segmentation_sub4"]
        if name.startswith("pose_landmark"):
            seg, ref = 1 / (1 + np.exp(-np.clip(seg, -80, 80))), 1 / (1 + np.exp(-np.clip(ref, -80, 80)))
        e["segmentation_prob"] = float(np.abs(seg - ref).max())
    if "scores" in outs:
        e["scores"] = float(np.abs(outs["scores"] - exp["scores"]).max())
        b = outs["boxes"][0]
        e["boxes"] = max(float(np.abs(b[exp["boxes_top_index"]] - exp["boxes_top"]).max()),
                         float(np.abs(b[exp["boxes_stride_index"]] - exp["boxes_stride"]).max()))
    return e


LIMITS = {"landmarks_xy_px": 0.5, "world_landmarks": 0.01, "pose_flag": 0.01, "heatmap": 0.5,
          "segmentation_prob": 0.02, "scores": 0.5, "boxes": 0.5}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models-dir", default=os.path.join(ROOT, "models", "vision"))
    ap.add_argument("--data-dir", default=os.path.join(ROOT, "tests", "data", "vision"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-tf32", action="store_true",
                    help="disable TF32 for cuDNN convolutions / matmuls (CUDA)")
    a = ap.parse_args(argv)
    if a.no_tf32:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    meta = json.load(open(os.path.join(a.models_dir, "vision.json")))
    ok = True
    print("torch", torch.__version__, "device", a.device, "tf32", torch.backends.cudnn.allow_tf32,
          torch.cuda.get_device_name(0) if a.device.startswith("cuda") else "")
    for name, entry in meta["models"].items():
        path = os.path.join(a.models_dir, entry["file"])
        if not os.path.exists(path):
            print(f"{name}: {path} not present, skipped")
            continue
        extra = {"meta.json": ""}
        m = torch.jit.load(path, map_location=a.device, _extra_files=extra)
        names = [o["name"] for o in json.loads(extra["meta.json"])["outputs"]]
        for p in sorted(glob.glob(os.path.join(a.data_dir, f"{name}__*.npz"))):
            case = os.path.basename(p)[len(name) + 2:-4]
            u8 = np.load(os.path.join(a.data_dir, case + ".input.npz"))["rgb_half"]
            x = torch.from_numpy(C.model_input(u8, C.family(name))).permute(0, 3, 1, 2)
            with torch.no_grad():
                ys = m(x.contiguous().to(a.device))
            outs = {n: y.float().cpu().numpy() for n, y in zip(names, ys)}
            e = compare(name, outs, dict(np.load(p)))
            bad = [k for k, v in e.items() if v > LIMITS[k]]
            ok &= not bad
            print(f"{name} {case} {json.dumps(e)}" + (f" FAIL {bad}" if bad else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
