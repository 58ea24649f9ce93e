#!/usr/bin/python3
"""Render one synthetic character as a reference image (the README's sample reference).

    /usr/bin/python3 scripts/synth/render_reference.py --pack .train/pack --out samples/character.png \
        [--split test] [--seed 43] [--index 4] [--size 320x480] [--azimuth 15] [--sheet sheet.png]

The character is the --index-th identity drawn with numpy's default_rng(--seed) from --split
(held-out identities by default, so the sample never shows a character the demo model was
trained on), standing in an idle pose, seen slightly from its right, over white: the way
`standin` fits every reference. --sheet also writes a contact sheet of the first 8 candidates
of that seed, to choose an index by eye. The pack's art is CC-BY-SA 3.0 (Wildfire Games): so
is the image (samples/LICENSE.txt).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from synth import AssetPack, Camera, render  # noqa: E402

MAN_HEIGHT = 4.3  # world units from sole to crown (docs/SYNTH.md)


def parse_size(text: str):
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WxH, got {text!r}") from None
    if not (32 <= w <= 2048 and 32 <= h <= 2048):
        raise argparse.ArgumentTypeError(f"size must be within 32..2048 on each side, got {text!r}")
    return w, h


def candidates(pack: AssetPack, split: str, seed: int, count: int):
    """The first ``count`` identities of default_rng(seed), each with an idle pose."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        ident = pack.sample_identity(rng, split=split, state="")
        motion = pack.sample_motion(rng, frames=1, fps=10, split="train", kinds=["idle"])
        yield ident, motion.bones[0]


def draw(pack: AssetPack, ident, bones, size, azimuth: float) -> np.ndarray:
    w, h = size
    # the figure fills 80 % of the height, feet 5 % above the bottom edge
    cam = Camera(azimuth_deg=azimuth, elevation_deg=5, scale=h * 0.8 / MAN_HEIGHT,
                 origin_px=(w / 2, h * 0.95), fov_deg=25)
    out = render(pack, ident, bones, cam, size=size, supersample=2)
    return out.composite(np.full((h, w, 3), 255, np.uint8))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pack", required=True, help="asset pack folder (scripts/synth/build_asset_pack.py)")
    ap.add_argument("--out", required=True, help="PNG to write")
    ap.add_argument("--split", choices=("train", "test", "all"), default="test")
    ap.add_argument("--seed", type=int, default=43)
    ap.add_argument("--index", type=int, default=4, help="which of the seed's identities (0-based)")
    ap.add_argument("--size", type=parse_size, default=(320, 480), help="WxH (default 320x480)")
    ap.add_argument("--azimuth", type=float, default=15.0, help="degrees; 0 = seen from the front")
    ap.add_argument("--sheet", help="also write the first 8 candidates side by side here")
    args = ap.parse_args(argv)
    if args.index < 0:
        ap.error("--index must be >= 0")

    import cv2
    pack = AssetPack.load(args.pack)
    # drawing identities is cheap, rendering is not: render only the ones written
    drawn = list(candidates(pack, args.split, args.seed, max(args.index + 1, 8 if args.sheet else 0)))
    rendered = {}

    def render_one(i):
        if i not in rendered:
            rendered[i] = draw(pack, *drawn[i], args.size, args.azimuth)
        return rendered[i]

    if args.sheet:
        tiles = []
        for i in range(8):
            tile = render_one(i).copy()
            cv2.putText(tile, str(i), (6, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2)
            tiles.append(tile)
        if not cv2.imwrite(args.sheet, cv2.cvtColor(np.concatenate(tiles, 1), cv2.COLOR_RGB2BGR)):
            raise SystemExit(f"{args.sheet}: cannot write")
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        raise SystemExit(f"{folder}: no such folder")
    if not cv2.imwrite(args.out, cv2.cvtColor(render_one(args.index), cv2.COLOR_RGB2BGR),
                       [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise SystemExit(f"{args.out}: cannot write")
    print(f"{args.out}: {args.split} identity {args.index} of seed {args.seed}, "
          f"{args.size[0]}x{args.size[1]}, {os.path.getsize(args.out)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
