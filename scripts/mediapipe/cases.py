#!/usr/bin/env python3
"""Fixed verification inputs built from real images (opencv-doc's vtest.avi pedestrians and
messi5.jpg).

A case is an RGB crop of a real image at HALF the model's input resolution (uint8), small
enough to keep in the repository (tests/data/vision/<case>.npz). The model input is
model_input(u8): a deterministic 2x bilinear upsampling (torch, CPU) scaled to the model's
input range; the same float tensor is fed to the TFLite runtime and to the converted module.
Decoding uses ffmpeg; the exact pre-processing does not matter for the comparison, only that
both runtimes see the same tensor.
"""
import argparse
import os
import subprocess

import numpy as np
import torch
import torch.nn.functional as F

DATA = "/usr/share/doc/opencv-doc/examples/data"
VTEST = os.path.join(DATA, "vtest.avi")
MESSI = os.path.join(DATA, "messi5.jpg")

# case -> (model, source, frame, crop box x0,y0,x1,y1 in source pixels or None=whole, mode)
CASES = {
    # detector: whole frame letterboxed to 224x224
    "det_vtest_f0": ("pose_detection", VTEST, 0, None, "letterbox"),
    "det_vtest_f0_crop": ("pose_detection", VTEST, 0, (178, 163, 358, 343), "letterbox"),
    "det_vtest_f0_crop2": ("pose_detection", VTEST, 0, (568, 192, 768, 392), "letterbox"),
    "det_messi": ("pose_detection", MESSI, 0, None, "letterbox"),
    # landmark: square crops around a person (like MediaPipe's ROI, without rotation)
    "lm_vtest_f0_p1": ("pose_landmark", VTEST, 0, (208, 203, 328, 323), "crop"),
    "lm_vtest_f0_p2": ("pose_landmark", VTEST, 0, (602, 222, 722, 342), "crop"),
    "lm_messi": ("pose_landmark", MESSI, 0, (62, -20, 462, 380), "crop"),
    # selfie segmentation (square and landscape)
    "seg_messi": ("selfie_segmentation", MESSI, 0, (62, -20, 462, 380), "crop"),
    "seg_vtest_f0_p1": ("selfie_segmentation", VTEST, 0, (208, 203, 328, 323), "crop"),
    "segl_messi": ("selfie_segmentation_landscape", MESSI, 0, None, "stretch"),
}
SIZES = {"pose_detection": (224, 224), "pose_landmark": (256, 256),
         "selfie_segmentation": (256, 256), "selfie_segmentation_landscape": (144, 256)}
# input value range per model family (MediaPipe's ImageToTensor settings)
RANGES = {"pose_detection": (-1.0, 1.0), "pose_landmark": (0.0, 1.0),
          "selfie_segmentation": (0.0, 1.0), "selfie_segmentation_landscape": (0.0, 1.0)}


def family(model_name):
    return "pose_landmark" if model_name.startswith("pose_landmark") else model_name


def decode(path, frame):
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream=width,height", "-of", "csv=p=0", path],
                           check=True, capture_output=True, text=True).stdout.split(",")
    w, h = int(probe[0]), int(probe[1])
    raw = subprocess.run(["ffmpeg", "-loglevel", "error", "-i", path, "-vf",
                          f"select=eq(n\\,{frame})", "-vsync", "0", "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(h, w, 3)


def resize(img, oh, ow):
    t = torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)[None]
    t = F.interpolate(t, size=(oh, ow), mode="bilinear", align_corners=False, antialias=True)
    return t[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def make_case(model, src, frame, box, mode):
    """uint8 RGB at half the model input size."""
    img = decode(src, frame)
    oh, ow = SIZES[model][0] // 2, SIZES[model][1] // 2
    if box is not None:
        x0, y0, x1, y1 = box
        h, w = img.shape[:2]
        canvas = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        canvas[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = img[sy0:sy1, sx0:sx1]
        img = canvas
    if mode == "letterbox":
        h, w = img.shape[:2]
        s = min(oh / h, ow / w)
        nh, nw = round(h * s), round(w * s)
        out = np.zeros((oh, ow, 3), np.uint8)
        top, left = (oh - nh) // 2, (ow - nw) // 2
        out[top:top + nh, left:left + nw] = resize(img, nh, nw)
        return out
    return resize(img, oh, ow)


def model_input(u8_half, family_name):
    """Half-size uint8 HxWx3 -> float32 NHWC tensor (1, 2H, 2W, 3) in the model's range."""
    t = torch.from_numpy(np.ascontiguousarray(u8_half)).float().permute(2, 0, 1)[None]
    t = F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)
    lo, hi = RANGES[family_name]
    t = t / 255.0 * (hi - lo) + lo
    return t.permute(0, 2, 3, 1).contiguous().numpy()
