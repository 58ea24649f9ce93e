#!/usr/bin/python3
"""Background plates for synthetic training clips: vtest's empty street + freely licensed photos.

    /usr/bin/python3 scripts/synth/build_backgrounds.py --out DIR [--assets /work/assets/bg]

Writes DIR/*.jpg and DIR/backgrounds.json (one entry per file: file, kind, source, package,
author, licence, split, size). Sources:
- opencv-doc's vtest.avi (PETS 2009 scene, University of Reading; free for research with
  acknowledgement): the per-pixel median of ~100 frames of the training range (a clean plate,
  nobody in it; split 'train') and ~40 frames spread over the clip (pedestrians included); the
  frames of the last 15 % of the clip are 'test'.
- photographs from Debian 12 wallpaper packages (never installed: ``apt-get download`` +
  ``dpkg -x`` into --assets when not there yet), each with the licence its package's copyright
  file (and, for Plasma, the wallpaper's own metadata) gives. 15 % of them are 'test'.
Not used: opencv-doc's still sample photos (kept for evaluation) and Megamind.avi.
The whole directory is kept under 8 MB by lowering JPEG quality if needed.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import subprocess
import sys

import numpy as np

VTEST = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
VTEST_LICENCE = ("PETS 2009 benchmark data (University of Reading), free for research with "
                 "acknowledgement; shipped by Debian's opencv-doc as vtest.avi")
VTEST_FRAMES = 40
VTEST_MEDIAN_FRAMES = 100
VTEST_TEST_FRACTION = 0.15
PHOTO_TEST_FRACTION = 0.15
PHOTO_MAX_SIDE = 1024
BUDGET_BYTES = 7_900_000  # images; backgrounds.json adds ~30 kB

PLASMA = "usr/share/wallpapers/{}/contents/images/1920x1080.jpg"
# (package, path inside the package, author, licence as the package's copyright file states it).
# Chosen by looking at every image of these packages: photographs only (no illustrations).
PHOTOS = [
    ("plasma-workspace-wallpapers", PLASMA.format(n), None, None)
    for n in ("BytheWater", "ColdRipple", "DarkestHour", "EveningGlow", "FallenLeaf", "Grey", "Kite",
              "OneStandsOut", "Path", "summer_1am")
] + [
    ("mate-backgrounds", "usr/share/backgrounds/mate/nature/" + f, a, "GPL-2+")
    for f, a in (("Aqua.jpg", "Charles Barbin"), ("Blinds.jpg", "Lennart Poettering, Andrea Cimitan"),
                 ("Dune.jpg", "Marco Cogoni, Hylke Bons"), ("FreshFlower.jpg", "Jens Ansorg"),
                 ("Garden.jpg", "Charles Barbin"),
                 ("GreenMeadow.jpg", "Timothy Schellhase, Lapo Calamandrei"),
                 ("LadyBird.jpg", "Charles Barbin"), ("RainDrops.jpg", "blackcombwhistler07"),
                 ("Storm.jpg", "Sergey Nazarov"), ("TwoWings.jpg", "Charles Barbin, Hylke Bons"),
                 ("Wood.jpg", "Jean-Francois Fortin Tam"), ("YellowFlower.jpg", "Charles Barbin"))
] + [
    ("lomiri-wallpapers-20.04", "usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg",
     "Lukas Baubkus", "CC-BY-SA-3.0"),
] + [
    ("lomiri-wallpapers-16.04", "usr/share/backgrounds/" + f, a, lic)
    for f, a, lic in (
        ("Bridge_by_Sander_Klootwijk.jpg", "Sander Klootwijk", "CC-BY-SA-4.0"),
        ("Dragonfly_by_Bolly.jpg", "Bolly", "CC-BY-SA-4.0"),
        ("Picture_0B_by_freespace.jpg", "Trevor \"Freespace\"", "CC-BY-4.0"),
        ("Picture_1A_by_freespace.jpg", "Trevor \"Freespace\"", "CC-BY-4.0"),
        ("Wine_by_Jakkub_Mede.jpg", "Jakub Mede", "CC-BY-4.0"),
        ("aitzgorri_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0"),
        ("friends_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0"),
        ("greentock_by_Peter_Nerlich.jpg", "Peter Nerlich", "CC-BY-SA-4.0"),
        ("life_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0"),
        ("picosdeeuropa_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0"),
        ("seeding_by_Clements_Engelhardt.jpg", "Clemens Engelhardt", "CC0-1.0"),
        ("sunset_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0"))
]


class BuildError(RuntimeError):
    pass


def package_root(assets: str, package: str) -> str:
    """Where ``package`` is unpacked (dpkg -x), downloading it with apt-get if needed."""
    root = os.path.join(assets, f"x_{package}")
    if os.path.isdir(root):
        return root
    debs = sorted(glob.glob(os.path.join(assets, f"{package}_*.deb")))
    if not debs:
        print(f"apt-get download {package} (into {assets})", flush=True)
        r = subprocess.run(["apt-get", "download", package], cwd=assets, capture_output=True,
                           text=True)
        debs = sorted(glob.glob(os.path.join(assets, f"{package}_*.deb")))
        if r.returncode != 0 or not debs:
            raise BuildError(f"apt-get download {package} failed ({r.stderr.strip()[-300:]}); "
                             f"run 'apt-get update' first, or put {package}_*.deb in {assets}")
    subprocess.run(["dpkg", "-x", debs[-1], root], check=True)
    return root


def plasma_metadata(root: str, path: str):
    """(author, licence) from a Plasma wallpaper's metadata.json."""
    meta = os.path.join(root, path.split("/contents/")[0], "metadata.json")
    try:
        with open(meta) as f:
            plugin = json.load(f).get("KPlugin", {})
        authors = ", ".join(a.get("Name", "") for a in plugin.get("Authors", []))
        return authors or None, plugin.get("License")
    except (OSError, ValueError):
        return None, None


def encode(img_bgr: np.ndarray, quality: int) -> bytes:
    import cv2
    ok, buf = cv2.imencode(".jpg", img_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality,
                                             cv2.IMWRITE_JPEG_OPTIMIZE, 1])
    if not ok:
        raise BuildError("JPEG encoding failed")
    return buf.tobytes()


def vtest_plates(path: str):
    """(median plate, [(frame index, frame)]) and the frame count."""
    import cv2
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise BuildError(f"cannot open {path} (install opencv-doc)")
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    n = len(frames)
    if n < VTEST_FRAMES:
        raise BuildError(f"{path}: only {n} frames")
    test_start = int(round(n * (1.0 - VTEST_TEST_FRACTION)))
    med_idx = np.linspace(0, test_start - 1, VTEST_MEDIAN_FRAMES).round().astype(int)
    median = np.median(np.stack([frames[i] for i in med_idx]), axis=0).astype(np.uint8)
    pick = np.linspace(0, n - 1, VTEST_FRAMES).round().astype(int)
    return median, [(int(i), frames[i]) for i in pick], n, test_start


def build(out: str, assets: str, quality: int = 88) -> dict:
    import cv2
    os.makedirs(out, exist_ok=True)
    os.makedirs(assets, exist_ok=True)
    median, frames, nframes, test_start = vtest_plates(VTEST)
    items = []  # (entry, image)
    items.append(({"file": "vtest_median.jpg", "kind": "vtest_median", "source": VTEST,
                   "package": "opencv-doc", "author": "PETS 2009 / University of Reading",
                   "licence": VTEST_LICENCE, "split": "train",
                   "note": f"per-pixel median of {VTEST_MEDIAN_FRAMES} frames of 0..{test_start - 1}"},
                  median))
    for i, f in frames:
        items.append(({"file": f"vtest_{i:04d}.jpg", "kind": "vtest_frame",
                       "source": f"{VTEST}#frame={i}", "package": "opencv-doc",
                       "author": "PETS 2009 / University of Reading", "licence": VTEST_LICENCE,
                       "split": "test" if i >= test_start else "train", "frame": i}, f))
    photos = []
    for package, rel, author, licence in PHOTOS:
        root = package_root(assets, package)
        src = os.path.join(root, rel)
        if package == "plasma-workspace-wallpapers":
            author, meta_lic = plasma_metadata(root, rel)
            licence = f"{meta_lic} (wallpaper metadata); GPL-2+ (Debian copyright file)"
        img = cv2.imread(src, cv2.IMREAD_COLOR)
        if img is None:
            raise BuildError(f"cannot read {src}")
        h, w = img.shape[:2]
        f = PHOTO_MAX_SIDE / max(h, w)
        if f < 1:
            img = cv2.resize(img, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
        name = os.path.splitext(os.path.basename(rel if package != "plasma-workspace-wallpapers"
                                                 else rel.split("/")[3]))[0]
        photos.append(({"file": f"photo_{package.split('-')[0]}_{name}.jpg", "kind": "photo",
                        "source": f"/{rel}", "package": package, "author": author,
                        "licence": licence}, img))
    order = sorted(range(len(photos)),
                   key=lambda k: hashlib.sha1(photos[k][0]["file"].encode()).hexdigest())
    n_test = max(1, int(round(PHOTO_TEST_FRACTION * len(photos))))
    for rank, k in enumerate(order):
        photos[k][0]["split"] = "test" if rank < n_test else "train"
    items += photos
    # encode, lowering the quality until everything fits the budget
    for q in range(quality, 40, -4):
        blobs = [encode(img, q) for _, img in items]
        if sum(len(b) for b in blobs) <= BUDGET_BYTES:
            break
    for old in glob.glob(os.path.join(out, "*.jpg")):
        os.remove(old)
    entries = []
    for (entry, img), blob in zip(items, blobs):
        with open(os.path.join(out, entry["file"]), "wb") as fh:
            fh.write(blob)
        entry["size"] = [int(img.shape[1]), int(img.shape[0])]
        entry["jpeg_quality"] = q
        entries.append(entry)
    manifest = {"format": "standin-synth-backgrounds", "version": 1, "files": entries}
    with open(os.path.join(out, "backgrounds.json"), "w") as fh:
        json.dump(manifest, fh, indent=1)
    total = sum(len(b) for b in blobs)
    counts = {"files": len(entries), "bytes": total, "jpeg_quality": q,
              "vtest_frames": sum(e["kind"] == "vtest_frame" for e in entries),
              "photos": sum(e["kind"] == "photo" for e in entries),
              "train": sum(e["split"] == "train" for e in entries),
              "test": sum(e["split"] == "test" for e in entries)}
    return counts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--assets", default="/work/assets/bg",
                    help="where wallpaper packages are downloaded and unpacked")
    args = ap.parse_args(argv)
    try:
        counts = build(args.out, args.assets)
    except (BuildError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
