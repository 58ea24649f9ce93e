"""scripts/before_after.py: reference | source crop | output crop, panels in that order and size."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(ROOT, "scripts", "before_after.py")


def write_video(path, colour_of_frame):
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"FFV1"), 10, (64, 48))
    assert writer.isOpened()
    for i in range(3):
        writer.write(np.full((48, 64, 3), colour_of_frame(i), np.uint8))
    writer.release()


def run(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)


def test_panels(tmp_path):
    src, out, ref, fig = (str(tmp_path / n) for n in ("src.avi", "out.avi", "ref.png", "fig.png"))
    write_video(src, lambda i: (10 * i, 0, 0))
    write_video(out, lambda i: (0, 0, 100 + 10 * i))
    cv2.imwrite(ref, np.full((40, 20, 3), (0, 200, 0), np.uint8))
    r = run("--source", src, "--output", out, "--reference", ref, "--frame", "2", "--crop", "8,4,30,20",
            "--gap", "2", "--out", fig)
    assert r.returncode == 0, r.stderr
    image = cv2.imread(fig)
    assert image.shape == (20, 10 + 2 + 30 + 2 + 30, 3)          # reference fitted to the crop's height
    assert np.abs(image[:, :10].astype(int) - (0, 200, 0)).max() <= 2
    assert np.abs(image[:, 12:42].astype(int) - (20, 0, 0)).max() <= 2     # source, frame 2
    assert np.abs(image[:, 44:].astype(int) - (0, 0, 120)).max() <= 2      # output, frame 2
    assert (image[:, 10:12] == 255).all()


def test_refusals(tmp_path):
    src, ref = str(tmp_path / "src.avi"), str(tmp_path / "ref.png")
    write_video(src, lambda i: (0, 0, 0))
    cv2.imwrite(ref, np.zeros((8, 8, 3), np.uint8))
    r = run("--source", src, "--output", src, "--reference", ref, "--crop", "40,0,30,10", "--out", str(tmp_path / "f.png"))
    assert r.returncode != 0 and "not inside" in r.stderr
    r = run("--source", src, "--output", src, "--reference", ref, "--frame", "9", "--out", str(tmp_path / "f.png"))
    assert r.returncode != 0 and "no frame 9" in r.stderr
