#!/usr/bin/python3
"""Contact sheet of random synthetic characters over background plates, to check by eye.

    /usr/bin/python3 scripts/synth/preview.py --pack DIR --backgrounds DIR --out sheet.png \
        [--split train|test|all] [--seed N] [--count 24]

Each tile is a pair: the composite, and the same with the OpenPose-18 skeleton drawn on it
(person's RIGHT side red, LEFT side blue, centre/face yellow; a hollow dot = keypoint flagged
not visible). The caption gives actor, animation kind and camera azimuth (0 = seen from the
front). With a correct (unmirrored) render a front view shows the red side on the image's left.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from synth import AssetPack, Camera, Light, render  # noqa: E402
from synth.skeleton import OPENPOSE_NAMES  # noqa: E402

LIMBS = [(1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
         (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17)]
RED, BLUE, YELLOW = (40, 40, 230), (230, 120, 30), (0, 220, 240)  # BGR


def side_colour(name: str):
    if name.startswith("r_"):
        return RED
    if name.startswith("l_"):
        return BLUE
    return YELLOW


def load_backgrounds(directory: str, split: str):
    import cv2
    with open(os.path.join(directory, "backgrounds.json")) as f:
        items = json.load(f)["files"]
    chosen = [e for e in items if split == "all" or e["split"] == split] or items
    return [(e["file"], cv2.imread(os.path.join(directory, e["file"]))) for e in chosen]


def random_crop(rng, img, w, h):
    import cv2
    ih, iw = img.shape[:2]
    s = rng.uniform(0.5, 1.0) * min(iw / w, ih / h)
    cw, ch = int(w * s), int(h * s)
    x = int(rng.integers(0, iw - cw + 1))
    y = int(rng.integers(0, ih - ch + 1))
    return cv2.resize(img[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_AREA)


def draw_keypoints(img, kp):
    import cv2
    out = img.copy()
    for a, b in LIMBS:
        pa, pb = kp[a], kp[b]
        colour = side_colour(OPENPOSE_NAMES[b])
        cv2.line(out, (int(pa[0]), int(pa[1])), (int(pb[0]), int(pb[1])), colour, 1, cv2.LINE_AA)
    for i, p in enumerate(kp):
        cv2.circle(out, (int(p[0]), int(p[1])), 2, side_colour(OPENPOSE_NAMES[i]),
                   -1 if p[3] > 0 else 1, cv2.LINE_AA)
    return out


def make_sheet(pack, backgrounds, split="train", seed=0, count=24, tile=(160, 240), cols=6):
    import cv2
    rng = np.random.default_rng(seed)
    w, h = tile
    tiles = []
    for k in range(count):
        ident = pack.sample_identity(rng, split=split)
        motion = pack.sample_motion(rng, frames=1, split=split, identity=ident)
        az = float(rng.choice([0.0, 0.0, 90.0, 180.0, 270.0]) + rng.uniform(-25, 25)) \
            if k % 2 == 0 else float(rng.uniform(0, 360))
        cam = Camera(azimuth_deg=az, elevation_deg=float(rng.uniform(0, 30)),
                     scale=float(h * rng.uniform(0.14, 0.17)),
                     origin_px=(w / 2 + float(rng.uniform(-8, 8)), h * 0.93),
                     fov_deg=float(rng.uniform(20, 40)))
        light = Light(direction=(float(rng.uniform(-1, 1)), float(rng.uniform(0.3, 1.0)),
                                 float(rng.uniform(-1, 1))),
                      ambient=float(rng.uniform(0.35, 0.6)), diffuse=float(rng.uniform(0.4, 0.7)),
                      tint=tuple(float(x) for x in rng.uniform(0.85, 1.1, 3)))
        out = render(pack, ident, motion.bones[0], cam, light, size=(w, h), supersample=2)
        name, bg = backgrounds[int(rng.integers(len(backgrounds)))]
        bg = cv2.cvtColor(random_crop(rng, bg, w, h), cv2.COLOR_BGR2RGB)
        comp = cv2.cvtColor(out.composite(bg), cv2.COLOR_RGB2BGR)
        marked = draw_keypoints(comp, out.keypoints)
        actor = ident.actor.split("/")[-2][:5] + "/" + ident.actor.split("/")[-1][:-4][:16]
        for img in (comp, marked):
            cv2.rectangle(img, (0, h - 24), (w, h), (0, 0, 0), -1)
        cv2.putText(comp, actor, (2, h - 14), cv2.FONT_HERSHEY_PLAIN, 0.7, (255, 255, 255))
        cv2.putText(comp, (ident.state or "-")[:20], (2, h - 3), cv2.FONT_HERSHEY_PLAIN, 0.7,
                    (255, 255, 255))
        cv2.putText(marked, f"{motion.kind} az{az % 360:.0f}", (2, h - 14),
                    cv2.FONT_HERSHEY_PLAIN, 0.7, (255, 255, 255))
        cv2.putText(marked, motion.name.split("/")[-1][:-4][:20], (2, h - 3),
                    cv2.FONT_HERSHEY_PLAIN, 0.7, (255, 255, 255))
        pair = np.hstack([comp, marked])
        cv2.rectangle(pair, (0, 0), (2 * w - 1, h - 1), (255, 255, 255), 1)
        tiles.append(pair)
    while len(tiles) % (cols // 2 if cols > 1 else 1):
        tiles.append(np.zeros_like(tiles[0]))
    per_row = max(1, cols // 2)
    rows = [np.hstack(tiles[i:i + per_row]) for i in range(0, len(tiles), per_row)]
    return np.vstack(rows)


def main(argv=None) -> int:
    import cv2
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pack", required=True)
    ap.add_argument("--backgrounds", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--split", default="train", choices=("train", "test", "all"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--count", type=int, default=24)
    args = ap.parse_args(argv)
    pack = AssetPack.load(args.pack)
    sheet = make_sheet(pack, load_backgrounds(args.backgrounds, args.split), args.split,
                       args.seed, args.count, cols=12)
    cv2.imwrite(args.out, sheet)
    print(f"{args.out}: {sheet.shape[1]}x{sheet.shape[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
