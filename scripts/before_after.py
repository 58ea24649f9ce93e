#!/usr/bin/env python3
"""One before/after figure of a replace run: reference | source frame | output frame.

  /usr/bin/python3 scripts/before_after.py --source data/clip_audio.mp4 --output out.mp4 \
      --reference samples/character.png --frame 20 --crop 200,60,270,360 --out docs/images/before_after.png

The frames are cut to --crop (x,y,w,h in source pixels; default: the whole frame) and the
reference is fitted to the same height over white. The README's figure is made this way.
"""
from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np


def read_frame(path: str, index: int) -> np.ndarray:
    cap = cv2.VideoCapture(path)
    frame = None
    for _ in range(index + 1):
        ok, frame = cap.read()
        if not ok:
            raise SystemExit(f"{path}: has no frame {index}")
    return frame


def fit_height(image: np.ndarray, height: int) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] == 4:  # alpha over white
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        image = (image[:, :, :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--frame", type=int, default=0)
    ap.add_argument("--crop", help="x,y,w,h in source pixels")
    ap.add_argument("--gap", type=int, default=4, help="white pixels between the panels")
    ap.add_argument("--out", required=True, help="the figure (.png)")
    args = ap.parse_args(argv)

    before, after = read_frame(args.source, args.frame), read_frame(args.output, args.frame)
    if before.shape != after.shape:
        raise SystemExit(f"source frame {before.shape[:2]} and output frame {after.shape[:2]} differ in size")
    if args.crop:
        x, y, w, h = (int(v) for v in args.crop.split(","))
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > before.shape[1] or y + h > before.shape[0]:
            raise SystemExit(f"--crop {args.crop} is not inside the {before.shape[1]}x{before.shape[0]} frame")
        before, after = before[y:y + h, x:x + w], after[y:y + h, x:x + w]
    reference = cv2.imread(args.reference, cv2.IMREAD_UNCHANGED)
    if reference is None:
        raise SystemExit(f"{args.reference}: not an image")
    panels = [fit_height(reference, before.shape[0]), before, after]
    gap = np.full((before.shape[0], args.gap, 3), 255, np.uint8)
    figure = np.concatenate([p for panel in panels for p in (panel, gap)][:-1], axis=1)
    if not cv2.imwrite(args.out, figure, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise SystemExit(f"{args.out}: could not write")
    print(f"{args.out}: {figure.shape[1]}x{figure.shape[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
