"""Training conditions == inference conditions.

scripts/standin_train/conditions.py (what training feeds the model) against the C++ functions
replace/animate use, run through build/tools/dump_conditions on the same seeded random inputs:
framing crops, pose maps, depth maps, shape-agnostic masks, to_work / mask_to_work, the
reference's work canvas and CLIP input.  Both sides link the same OpenCV here (Debian's 4.6, C++
and python3-opencv), so every uint8 output must match exactly; a training machine whose cv2 is a
different build (pip's opencv-python) is not covered by this test.

The tool is built by scripts/setup.sh; a missing tool is a failure, not a skip.
"""
import json
import math
import os
import subprocess

import cv2
import numpy as np
import pytest

from standin_train import conditions as C

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DUMP = os.path.join(ROOT, "build", "tools", "dump_conditions")

CASES = 10  # random scenes; each checks every function
REFERENCE_CROPS = 40  # reference crops per scene


@pytest.fixture(scope="module")
def dump():
    assert os.path.isfile(DUMP) and os.access(DUMP, os.X_OK), (
        f"{DUMP} is missing: build it (scripts/setup.sh, or cmake --build build --target dump_conditions)")
    return DUMP


class Requests:
    """Collects requests and their input arrays, runs the tool once, loads the outputs."""

    def __init__(self, folder):
        self.folder = str(folder)
        self.items = []

    def array(self, name, a):
        a = np.ascontiguousarray(a, dtype=np.uint8)
        path = os.path.join(self.folder, name + ".in")
        a.tofile(path)
        return {"path": path, "shape": list(a.shape)}

    def add(self, name, op, **fields):
        self.items.append(dict(name=name, op=op, **fields))

    def run(self, tool):
        request = os.path.join(self.folder, "request.json")
        with open(request, "w") as f:
            json.dump({"requests": self.items}, f, allow_nan=False)
        done = subprocess.run([tool, request, self.folder], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


def load(entry):
    return np.fromfile(entry["path"], dtype=entry["dtype"]).reshape(entry["shape"])


def f32(x):
    return float(np.float32(x))


def random_scene(rng, i):
    """A source frame size, a work size and a character box (sometimes partly or wholly outside
    the frame, sometimes empty), odd sizes included."""
    source = (int(rng.integers(40, 700)) | (i % 2), int(rng.integers(40, 700)) | 1)
    work = [(128, 192), (96, 160), (64, 96), (71, 103), (192, 128)][i % 5]
    w, h = rng.uniform(1, 1.5 * source[0]), rng.uniform(1, 1.5 * source[1])
    x, y = rng.uniform(-0.5 * w, source[0] - 0.3 * w), rng.uniform(-0.5 * h, source[1] - 0.3 * h)
    box = [f32(x), f32(y), f32(w), f32(h)]
    if i == 3:
        box = [0.0, 0.0, 0.0, 0.0]  # no box: the whole frame, padded to the work aspect
    margin = [0.15, 0.0, 0.3][i % 3]
    return source, work, box, margin


def random_body(rng, box, i):
    """18 OpenPose rows (x, y, score, z) as float32: joints around the box (some off-image), low
    scores, NaN coordinates and NaN depths; case 5 hides a hip, case 7 has no depth at all."""
    x, y, w, h = box if box[2] > 0 else (0, 0, 200, 300)
    body = np.zeros((18, 4), np.float32)
    body[:, 0] = rng.uniform(x - 0.3 * w, x + 1.3 * w, 18)
    body[:, 1] = rng.uniform(y - 0.3 * h, y + 1.3 * h, 18)
    body[:, 2] = rng.uniform(0, 1, 18)
    body[:, 3] = rng.normal(0, 0.3 * max(w, h), 18)
    body[C.R_HIP, 2] = body[C.L_HIP, 2] = 0.9
    body[rng.random(18) < 0.15, 3] = np.nan
    body[C.R_HIP, 3] = rng.normal(0, 5)
    body[C.L_HIP, 3] = rng.normal(0, 5)
    if i % 4 == 1:
        body[int(rng.integers(0, 18)), 0] = np.nan
    if i == 5:
        body[C.L_HIP, 2] = 0.1
    if i == 7:
        body[:, 3] = np.nan
    return body


def rows(body):
    return [[None if math.isnan(v) else float(v) for v in row] for row in body]


def random_mask(rng, size, i):
    """Blobs on black, hard or soft edges; case 0 is empty."""
    mask = np.zeros((size[1], size[0]), np.uint8)
    if i == 0:
        return mask
    for _ in range(int(rng.integers(1, 4))):
        centre = (int(rng.integers(0, size[0])), int(rng.integers(0, size[1])))
        axes = (int(rng.integers(2, max(3, size[0] // 3))), int(rng.integers(2, max(3, size[1] // 2))))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    if i % 2:
        mask = cv2.GaussianBlur(mask, (7, 7), 2)
    return mask


def random_image(rng, size):
    """Noise over gradients: resampling differences cannot hide in flat areas."""
    yy, xx = np.mgrid[0:size[1], 0:size[0]]
    base = np.stack([xx * 255 // max(1, size[0] - 1), yy * 255 // max(1, size[1] - 1), (xx + yy) % 256], -1)
    noise = rng.integers(-40, 41, (size[1], size[0], 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def random_affine(rng, box, canvas):
    """Rotation and scale taking the box's centre near the canvas centre (some joints fall off)."""
    x, y, w, h = box if box[2] > 0 else (0, 0, 200, 300)
    a = math.radians(rng.uniform(-40, 40))
    s = rng.uniform(0.5, 1.3) * min(canvas[0] / w, canvas[1] / h)
    c, si = s * math.cos(a), s * math.sin(a)
    cx, cy = x + w / 2, y + h / 2
    tx, ty = canvas[0] / 2 + rng.uniform(-10, 10), canvas[1] / 2 + rng.uniform(-10, 10)
    return np.array([[c, -si, tx - (c * cx - si * cy)], [si, c, ty - (si * cx + c * cy)]], np.float64)


@pytest.fixture(scope="module")
def parity(dump, tmp_path_factory):
    """Every case through both sides: {case: {name: (python, c++)}}."""
    rng = np.random.default_rng(20240611)
    req = Requests(tmp_path_factory.mktemp("conditions"))
    expected = {}
    for i in range(CASES):
        source, work, box, margin = random_scene(rng, i)
        g = C.fit_box(source, work, box, margin)
        geometry = {"source": list(source), "work": list(work), "box": box, "margin": margin}
        body = random_body(rng, box, i)
        canvas = (int(rng.integers(20, 300)), int(rng.integers(20, 300)))
        affine = random_affine(rng, box, canvas)
        image = random_image(rng, source)
        mask = random_mask(rng, source, i)
        ex = expected[i] = {}

        req.add(f"c{i}_fit", "fit_box", **geometry)
        ex["fit"] = g.crop
        req.add(f"c{i}_pose", "render_pose_map", keypoints=rows(body), geometry=geometry)
        ex["pose"] = C.render_pose_map([body], g.work, g.affine())
        req.add(f"c{i}_pose_affine", "render_pose_map", keypoints=rows(body), canvas=list(canvas),
                affine=affine.tolist())
        ex["pose_affine"] = C.render_pose_map([body], canvas, affine)
        req.add(f"c{i}_depth", "render_depth_map", keypoints=rows(body), geometry=geometry)
        ex["depth"] = C.render_depth_map(body, g.work, g.affine())
        req.add(f"c{i}_depth_affine", "render_depth_map", keypoints=rows(body), canvas=list(canvas),
                affine=affine.tolist())
        ex["depth_affine"] = C.render_depth_map(body, canvas, affine)
        req.add(f"c{i}_agnostic", "agnostic_mask", mask=req.array(f"c{i}_mask", mask),
                dilate_px=C.AGNOSTIC_DILATE_PX)
        ex["agnostic"] = C.shape_agnostic_mask_inference(mask)
        mode = C.REDRAW_MODES[i % 3]
        own = np.random.default_rng(1000 + i)  # its own draws: the other cases stay as they were
        dilate, blocks = int(own.integers(0, 6)), int(own.integers(0, 4)) * int(own.integers(1, 20))
        req.add(f"c{i}_region", "redraw_region", mask=req.array(f"c{i}_mask", mask), mode=mode,
                dilate_px=dilate, blocks=blocks)
        ex["region"] = C.redraw_region(mask, mode, dilate, blocks)
        req.add(f"c{i}_to_work", "to_work", image=req.array(f"c{i}_image", image), geometry=geometry)
        ex["to_work"] = C.to_work(image, g)
        req.add(f"c{i}_mask_to_work", "mask_to_work", mask=req.array(f"c{i}_mask", mask), geometry=geometry)
        ex["mask_to_work"] = C.mask_to_work(mask, g)

        # The reference: a crop inside the image (analyze_reference clips it), any aspect.
        cw, ch = int(rng.integers(1, source[0] + 1)), int(rng.integers(1, source[1] + 1))
        crop = [int(rng.integers(0, source[0] - cw + 1)), int(rng.integers(0, source[1] - ch + 1)), cw, ch]
        clip_size = [224, 32, 17][i % 3]
        req.add(f"c{i}_ref", "reference", image=req.array(f"c{i}_image", image), crop=crop, work=list(work),
                clip_size=clip_size)
        ex["ref"] = C.prepare_reference(image, crop, work, clip_size)

        # analyze_reference's crop around the character's area (float32 boxes); some areas end
        # a rounding error away from whole pixels, where float and double arithmetic disagree.
        for k in range(REFERENCE_CROPS):
            w, h = f32(rng.uniform(1, source[0])), f32(rng.uniform(1, source[1]))
            x, y = f32(rng.uniform(-0.2 * w, source[0] - 0.5 * w)), f32(rng.uniform(-0.2 * h, source[1] - 0.5 * h))
            if k % 2:
                x, y = f32(round(x) + 0.1 * w), f32(round(y) + 0.1 * h)
            req.add(f"c{i}_refcrop{k}", "reference_crop", area=[x, y, w, h], image=list(source))
            ex[f"refcrop{k}"] = C.reference_crop((x, y, w, h), source)

    out = req.run(dump)
    return {i: {k: (v, out[f"c{i}_{k}"]) for k, v in ex.items()} for i, ex in expected.items()}


def pairs(parity, key):
    return [(i, *parity[i][key]) for i in sorted(parity)]


def test_crops_equal(parity):
    for i, py, cpp in pairs(parity, "fit"):
        assert tuple(py) == tuple(cpp["crop"]), f"case {i}"


@pytest.mark.parametrize("key", ["pose", "pose_affine"])
def test_pose_maps_pixel_identical(parity, key):
    drawn = 0
    for i, py, cpp in pairs(parity, key):
        c = load(cpp["map"])
        assert c.shape == py.shape, f"case {i}"
        diff = np.argwhere(np.any(c != py, axis=-1))
        assert len(diff) == 0, f"case {i}: {len(diff)} pixels differ, first at {diff[:3].tolist()}"
        drawn += int(np.count_nonzero(py.any(-1)))
    assert drawn > 1000  # the cases draw skeletons, not empty canvases


@pytest.mark.parametrize("key", ["depth", "depth_affine"])
def test_depth_maps_match(parity, key):
    levels = set()
    for i, py, cpp in pairs(parity, key):
        c = load(cpp["map"])
        assert c.dtype == np.float32 and py.dtype == np.float32 and c.shape == py.shape, f"case {i}"
        assert float(np.abs(c - py).max()) <= 1e-6, f"case {i}"
        levels |= set(np.unique(py).tolist())
    assert len(levels) > 20  # many different depths, not only the unknown-depth 0.5


def test_depth_map_covers_the_pose_map(parity):
    for i in parity:
        pose, depth = parity[i]["pose"][0], parity[i]["depth"][0]
        assert np.array_equal(pose.any(-1), depth > 0), f"case {i}"


def test_agnostic_masks_identical(parity):
    for i, py, cpp in pairs(parity, "agnostic"):
        assert np.array_equal(load(cpp["mask"]), py), f"case {i}"


def test_redraw_regions_identical(parity):
    """replace's --mask-mode/--mask-dilate/--mask-blocks as scripts/evaluate.py remakes them."""
    for i, py, cpp in pairs(parity, "region"):
        assert np.array_equal(load(cpp["mask"]), py), f"case {i}"


def test_redraw_region_modes():
    character = np.zeros((40, 30), np.uint8)
    character[5:30, 10:14] = 255
    character[12:16, 6:22] = 128  # arms: any value > 0 is the character
    tight = C.redraw_region(character, "tight", dilate_px=0)
    assert np.array_equal(tight > 0, character > 0)
    box = C.redraw_region(character, "box", dilate_px=0)
    assert (box > 0).sum() == 25 * 16 and box[5:30, 6:22].all()
    agnostic = C.redraw_region(character, "agnostic", dilate_px=0)
    assert np.array_equal(agnostic, C.shape_agnostic_mask_inference(character, 0))
    assert (tight > 0).sum() < (agnostic > 0).sum() <= (box > 0).sum()
    assert (C.redraw_region(character, "tight", dilate_px=2) > 0).sum() > (tight > 0).sum()
    with pytest.raises(ValueError):
        C.redraw_region(character, "blob")


@pytest.mark.parametrize("key,field", [("to_work", "image"), ("mask_to_work", "mask")])
def test_work_resampling_identical(parity, key, field):
    for i, py, cpp in pairs(parity, key):
        c = load(cpp[field])
        assert c.shape == py.shape, f"case {i}"
        assert np.array_equal(c, py), f"case {i}: max |diff| {np.abs(c.astype(int) - py).max()}"


def test_reference_crops_equal(parity):
    for i in parity:
        for k in range(REFERENCE_CROPS):
            py, cpp = parity[i][f"refcrop{k}"]
            assert tuple(py) == tuple(cpp["crop"]), f"case {i}.{k}"


def test_reference_inputs_match(parity):
    for i, (py_work, py_clip), cpp in pairs(parity, "ref"):
        assert np.array_equal(load(cpp["work_rgb"]), py_work), f"case {i}"
        c = load(cpp["clip"])
        assert c.shape == py_clip.shape, f"case {i}"
        assert float(np.abs(c - py_clip).max()) <= 1e-5, f"case {i}"
