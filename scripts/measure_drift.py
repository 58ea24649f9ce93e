#!/usr/bin/python3
"""Drift of a rendered character over a long shot (issue 13): how far its colour and look move
away from the first window as the shot goes on.

    /usr/bin/python3 scripts/measure_drift.py RENDER.mp4 --matte RENDER.mkv [--window 24]
        [--json drift.json] [--csv drift.csv] [--label NAME]

RENDER is a `standin replace` output and the matte its `--matte` file (the compositing alpha of
every frame: where the generated character is). For every frame with a character (alpha > 0.5
over at least --min-pixels pixels):

  * mean CIE Lab colour of the character region (OpenCV's float Lab: L 0..100), and
    delta_e = its CIE76 distance to the first window's mean (the mean over the first --window
    frames with a character);
  * ssim = the SSIM of the character's L channel, cropped to the region's box and resized to
    64x128, against the most similar crop of the first window (poses change; the best match
    is the fair reference), averaged over the region (Gaussian 11x11, sigma 1.5, the usual
    constants).

The summary gives both over time (--bin seconds per row) and the first-window / last-10 %
comparison that docs/ quote: delta_e_last10 (mean delta E over the last 10 % of the frames),
delta_e_slope_per_min (least-squares slope) and ssim_first_window / ssim_last10 (medians).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys

import cv2
import numpy as np

CROP_W, CROP_H = 64, 128


def read_frames(path: str):
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise SystemExit(f"{path}: cannot open")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        yield fps, frame
    cap.release()


def gaussian_ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM map of two float images in 0..255 (Wang et al. 2004 constants)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5)  # noqa: E731
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def character_crop(lab_l: np.ndarray, region: np.ndarray):
    """The region's box of the L channel (0..255 scale), resized; pixels outside the region
    take the region's mean so the background does not count."""
    ys, xs = np.nonzero(region)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    crop = lab_l[y0:y1, x0:x1].astype(np.float32) * 2.55
    mask = region[y0:y1, x0:x1]
    crop = np.where(mask, crop, crop[mask].mean())
    crop = cv2.resize(crop, (CROP_W, CROP_H), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(mask.astype(np.float32), (CROP_W, CROP_H), interpolation=cv2.INTER_AREA) > 0.5
    return crop, mask


def measure(render: str, matte: str, window: int, min_pixels: int):
    rows, first_crops = [], []
    fps = 25.0
    for index, ((fps, frame), (_, alpha)) in enumerate(zip(read_frames(render), read_frames(matte))):
        region = alpha[:, :, 0] > 127
        if int(region.sum()) < min_pixels:
            continue
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)
        mean = lab[region].mean(axis=0)
        crop, crop_mask = character_crop(lab[:, :, 0], region)
        rows.append({"frame": index, "time_s": index / fps, "pixels": int(region.sum()),
                     "L": float(mean[0]), "a": float(mean[1]), "b": float(mean[2]), "_crop": crop, "_mask": crop_mask})
        if len(first_crops) < window:
            first_crops.append(crop)
    if not rows:
        raise SystemExit(f"{matte}: no frame has a character region of {min_pixels} pixels or more")
    first = rows[:window]
    anchor = np.mean([[r["L"], r["a"], r["b"]] for r in first], axis=0)
    for r in rows:
        r["delta_e"] = float(np.linalg.norm(np.array([r["L"], r["a"], r["b"]]) - anchor))
        m = r["_mask"]
        best = -1.0
        for ref in first_crops:
            s = gaussian_ssim_map(r["_crop"], ref)
            best = max(best, float(s[m].mean()) if m.any() else float(s.mean()))
        r["ssim"] = best
        del r["_crop"], r["_mask"]
    return rows, anchor, fps


def summarise(rows, anchor, fps, window, bin_s, label):
    times = np.array([r["time_s"] for r in rows])
    de = np.array([r["delta_e"] for r in rows])
    ss = np.array([r["ssim"] for r in rows])
    n_last = max(1, int(math.ceil(0.1 * len(rows))))
    slope = float(np.polyfit(times, de, 1)[0] * 60.0) if len(rows) > 2 and np.ptp(times) > 0 else 0.0
    bins = []
    for start in np.arange(0.0, float(times.max()) + 1e-9, bin_s):
        sel = (times >= start) & (times < start + bin_s)
        if sel.any():
            bins.append({"from_s": float(start), "frames": int(sel.sum()), "delta_e": float(de[sel].mean()),
                         "ssim": float(np.median(ss[sel]))})
    return {
        "label": label, "frames_measured": len(rows), "first_frame": rows[0]["frame"], "last_frame": rows[-1]["frame"],
        "duration_s": float(times.max() - times.min()), "window": window,
        "first_window_lab": [float(x) for x in anchor],
        "delta_e_first_window": float(de[:window].mean()), "delta_e_last10": float(de[-n_last:].mean()),
        "delta_e_max": float(de.max()), "delta_e_slope_per_min": slope,
        "ssim_first_window": float(np.median(ss[:window])), "ssim_last10": float(np.median(ss[-n_last:])),
        "bins": bins,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("render")
    ap.add_argument("--matte", required=True, help="the render's --matte file (.mkv)")
    ap.add_argument("--window", type=int, default=24, help="frames in the first window (the reference)")
    ap.add_argument("--min-pixels", type=int, default=64)
    ap.add_argument("--bin", type=float, default=5.0, help="seconds per row of the over-time table")
    ap.add_argument("--label", default="")
    ap.add_argument("--json", help="write the summary and every frame's numbers here")
    ap.add_argument("--csv", help="write every frame's numbers here")
    args = ap.parse_args(argv)
    if args.window < 1:
        ap.error("--window must be >= 1")
    rows, anchor, fps = measure(args.render, args.matte, args.window, args.min_pixels)
    summary = summarise(rows, anchor, fps, args.window, args.bin, args.label or args.render)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "frames": rows}, f, indent=1)
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
            w.writeheader()
            w.writerows(rows)
    print(f"{summary['label']}: {summary['frames_measured']} frames over {summary['duration_s']:.1f} s; "
          f"delta E first window {summary['delta_e_first_window']:.2f}, last 10 % {summary['delta_e_last10']:.2f}, "
          f"slope {summary['delta_e_slope_per_min']:+.2f}/min; SSIM first window {summary['ssim_first_window']:.3f}, "
          f"last 10 % {summary['ssim_last10']:.3f}")
    for b in summary["bins"]:
        print(f"  {b['from_s']:7.1f} s  {b['frames']:4d} frames  delta E {b['delta_e']:6.2f}  SSIM {b['ssim']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
