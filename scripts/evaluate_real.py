#!/usr/bin/env python3
"""Self-reconstruction on real footage: a vtest pedestrian replaced by themselves.

  /usr/bin/python3 scripts/evaluate_real.py --bundle models/demo --bundle models/tiny --out eval/real

A clip of vtest.avi (frames START-LEAD .. START+FRAMES) goes through `standin extract`; the
target pedestrian's crop in the clip's first frame is the reference (the target is the track
`extract` picks in the first frame, followed by its id); `standin replace` redraws
them in every frame; the metrics compare the output with the source over frames LEAD.. only
(LEAD frames after the reference was taken, so the person has moved on).  vtest was used in
training only as background plates, never as a character to draw.  Rows: each --bundle, and
"background only" (the clean median plate pasted where the person's mask is, dilated by 8 px).
Metrics as in scripts/evaluate.py (standin_train/evaluate.py) with the box = the target's
tracked box (padded 4 px) per frame.  Each output is written losslessly (--crf 0, unless
--replace-args gives one): the background row never passes through a codec, so a lossy output
would charge the model's row with x264's loss over the whole frame.  Writes OUT/results.json, OUT/table.md, OUT/contact_sheet.png.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from standin_train import evaluate as E  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
VTEST = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"


def run(cmd, log):
    log(" ".join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    return r


def read_video(path: str) -> np.ndarray:
    """RGB frames [N,H,W,3] through the ffmpeg CLI, which converts with the matrix the stream is
    tagged with. OpenCV's reader ignores the tags and takes SD video for BT.601, so it read
    standin's BT.709-tagged output of this SD clip ~3 levels too green (0.7 dB of frame PSNR)."""
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream=width,height", "-of", "csv=p=0", path], capture_output=True, text=True)
    try:
        w, h = (int(v) for v in probe.stdout.strip().split(",")[:2])
    except ValueError:
        raise RuntimeError(f"{path}: not a video ({probe.stderr.strip()[-300:]})") from None
    r = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                       capture_output=True)
    if r.returncode != 0 or not r.stdout:
        raise RuntimeError(f"{path}: no frames ({r.stderr.decode(errors='replace').strip()[-300:]})")
    return np.frombuffer(r.stdout, np.uint8).reshape(-1, h, w, 3).copy()


def replace_command(standin: str, clip: str, reference: str, out: str, bundle: str, track: int,
                    metrics_path: str, crf: int, extra: list) -> list:
    """`standin replace` for one bundle's row; the output quality is `crf` unless `extra` sets it."""
    cmd = [standin, "-y", "replace", "-i", clip, "-r", reference, "-o", out, "--bundle", bundle,
           "--person", str(track), "--metrics", metrics_path]
    sets_crf = any(a == "--crf" or a.startswith("--crf=") for a in extra)  # CLI11 takes both spellings
    return cmd + ([] if sets_crf else ["--crf", str(crf)]) + extra


def median_plate(path: str, n: int = 100) -> np.ndarray:
    frames = read_video(path)
    idx = np.linspace(0, len(frames) - 1, min(n, len(frames))).astype(int)
    return np.median(frames[idx], axis=0).astype(np.uint8)


def target_boxes(poses_json: str, count: int):
    """The box of one person in every frame: the track that is extract's target in the first
    frame, followed by its track id (the per-frame "target" index may move to someone else
    once that person leaves)."""
    with open(poses_json) as f:
        doc = json.load(f)
    frames = [fr for fr in doc["frames"] if fr["frame"] < count]
    track = None
    for fr in frames:
        t = fr.get("target", -1)
        if fr["frame"] == 0 and 0 <= t < len(fr["people"]):
            track = fr["people"][t]["track_id"]
    boxes = [None] * count
    for fr in frames:
        for p in fr["people"]:
            if track is not None and p["track_id"] == track:
                boxes[fr["frame"]] = p["box"]
    return boxes, track


def metrics(out: np.ndarray, src: np.ndarray, boxes, lead: int) -> dict:
    vals = {"psnr_box": [], "ssim_box": [], "psnr_frame": [], "ssim_frame": []}
    prev = None
    flicker = []
    H, W = src.shape[1:3]
    for i in range(lead, len(src)):
        if boxes[i] is None:
            continue
        x, y, w, h = [int(round(v)) for v in boxes[i]]
        x0, y0, x1, y1 = max(0, x - 4), max(0, y - 4), min(W, x + w + 4), min(H, y + h + 4)
        if x1 <= x0 or y1 <= y0:
            continue
        o, g = out[i, y0:y1, x0:x1], src[i, y0:y1, x0:x1]
        vals["psnr_box"].append(E.psnr(o, g))
        vals["ssim_box"].append(E.ssim(o, g))
        vals["psnr_frame"].append(E.psnr(out[i], src[i]))
        vals["ssim_frame"].append(E.ssim(out[i], src[i]))
        if prev is not None and prev[0] == i - 1:
            pb = prev[1]
            do = out[i].astype(np.float32) - out[i - 1].astype(np.float32)
            dg = src[i].astype(np.float32) - src[i - 1].astype(np.float32)
            ys, xs = slice(min(y0, pb[1]), max(y1, pb[3])), slice(min(x0, pb[0]), max(x1, pb[2]))
            flicker.append(float(np.abs(do[ys, xs] - dg[ys, xs]).mean()))
        prev = (i, (x0, y0, x1, y1))
    if not vals["psnr_box"]:
        raise RuntimeError("the target is in none of the evaluated frames; choose another --start")
    res = {k: float(np.mean(v)) for k, v in vals.items() if v}
    if flicker:
        res["flicker"] = float(np.mean(flicker))
    res["frames"] = len(vals["psnr_box"])
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", action="append", required=True, help="a bundle to evaluate (repeatable)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--video", default=VTEST)
    ap.add_argument("--start", type=int, default=70, help="first evaluated frame of the video (70: a pedestrian who stays in view)")
    ap.add_argument("--frames", type=int, default=24, help="evaluated frames")
    ap.add_argument("--lead", type=int, default=30, help="frames between the reference and the evaluated part")
    ap.add_argument("--standin", default=os.path.join(ROOT, "build", "standin"))
    ap.add_argument("--replace-args", default="", help="extra arguments for `standin replace` (e.g. '--steps 10')")
    ap.add_argument("--crf", type=int, default=0,
                    help="x264 quality of each replaced video; 0 (lossless, the default) keeps the codec out of "
                         "the numbers, as the background row is never encoded")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    log = lambda m: print(m, flush=True)  # noqa: E731

    first = args.start - args.lead
    last = args.start + args.frames
    clip = os.path.join(args.out, "clip.mp4")
    run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", args.video, "-vf",
         f"select=between(n\\,{first}\\,{last - 1}),setpts=N/FRAME_RATE/TB", "-r", "10", "-c:v", "libx264",
         "-crf", "12", "-pix_fmt", "yuv420p", clip], log)
    ana = os.path.join(args.out, "analysis")
    run([args.standin, "-y", "extract", "-i", clip, "-o", ana], log)
    src = read_video(clip)
    boxes, track = target_boxes(os.path.join(ana, "poses.json"), len(src))
    if boxes[0] is None or track is None:
        raise RuntimeError("the target is not in the clip's first frame; choose another --start")
    present = sum(b is not None for b in boxes[args.lead:])
    if present < (len(src) - args.lead) // 2:
        raise RuntimeError(f"track {track} is in only {present} of the {len(src) - args.lead} evaluated frames; "
                           "choose another --start")
    # that person's own mask (extract's default mask follows whoever is the target in each frame)
    ana_track = os.path.join(args.out, f"analysis_track{track}")
    run([args.standin, "-y", "extract", "-i", clip, "-o", ana_track, "--person", str(track)], log)
    x, y, w, h = boxes[0]
    mx, my = 0.3 * w, 0.15 * h
    x0, y0 = int(max(0, x - mx)), int(max(0, y - my))
    x1, y1 = int(min(src.shape[2], x + w + mx)), int(min(src.shape[1], y + h + my))
    reference = os.path.join(args.out, "reference.png")
    cv2.imwrite(reference, cv2.cvtColor(src[0, y0:y1, x0:x1], cv2.COLOR_RGB2BGR))

    rows, outputs = {}, {}
    extra = args.replace_args.split()
    for bundle in args.bundle:
        name = os.path.basename(os.path.normpath(bundle))
        out = os.path.join(args.out, f"out_{name}.mp4")
        t0 = time.time()
        run(replace_command(args.standin, clip, reference, out, bundle, track,
                            os.path.join(args.out, f"metrics_{name}.json"), args.crf, extra), log)
        outputs[name] = read_video(out)
        rows[name] = dict(metrics(outputs[name], src, boxes, args.lead), seconds=time.time() - t0)
        log(f"{name}: {json.dumps({k: round(v, 3) for k, v in rows[name].items()})}")
    # background only: the median plate where the person's mask (dilated) is
    plate = median_plate(args.video)
    masks = read_video(os.path.join(ana_track, "mask.mp4"))[..., 0] > 127
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (17, 17))
    bg = np.stack([np.where(cv2.dilate(m.astype(np.uint8), kernel)[..., None] > 0, plate, s)
                   for m, s in zip(masks, src)])
    rows["background"] = metrics(bg, src, boxes, args.lead)
    log(f"background: {json.dumps({k: round(v, 3) for k, v in rows['background'].items()})}")

    log(E.write_results(args.out, {"video": args.video, "start": args.start, "frames": args.frames,
                                   "lead": args.lead, "track": track}, rows))
    # contact sheet: reference | source | each output, at the middle evaluated frame
    seen = [k for k in range(args.lead, len(src)) if boxes[k] is not None]
    i = seen[len(seen) // 2]
    x, y, w, h = [int(v) for v in boxes[i]]
    pad = int(0.5 * h)
    cx0, cy0 = max(0, x - pad), max(0, y - pad // 2)
    cx1, cy1 = min(src.shape[2], x + w + pad), min(src.shape[1], y + h + pad // 2)
    tiles = [cv2.resize(src[0, y0:y1, x0:x1], (cx1 - cx0, cy1 - cy0))]
    tiles += [src[i, cy0:cy1, cx0:cx1]] + [o[i, cy0:cy1, cx0:cx1] for o in outputs.values()]
    cv2.imwrite(os.path.join(args.out, "contact_sheet.png"), cv2.cvtColor(np.concatenate(tiles, 1), cv2.COLOR_RGB2BGR))
    return 0


if __name__ == "__main__":
    sys.exit(main())
