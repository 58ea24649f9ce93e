"""The model's conditions, made exactly as the C++ pipeline makes them at inference.

Each function here is a port of a named C++ function (OpenCV in both, so the pixels agree):

* framing      ``compose::fit_box`` / ``compose::to_work`` / ``compose::mask_to_work``
* masks        ``vision::shape_agnostic_mask`` (+ the inference and training variants)
* pose maps    ``vision::render_pose_map`` (OpenPose-18 skeleton on black)
* depth maps   ``vision::render_depth_map`` (the skeleton's relative depth, for pose modulation)
* reference    ``pipeline::prepare_reference`` (work canvas over white + CLIP input)

tests/python/test_train_conditions.py checks them against the C++ functions through
``build/tools/dump_conditions``.  Images are RGB uint8 HxWx3 numpy arrays; boxes are
(x, y, w, h); keypoints are OpenPose-18 rows (x, y, score[, z]).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

# include/standin/vision/pose.hpp
POSE_SCORE_THRESHOLD = 0.3
POSE_STICK_WIDTH = 4
POSE_JOINT_RADIUS = 4
OPENPOSE_LIMBS = [(1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
                  (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17)]
OPENPOSE_COLORS = [(255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
                   (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
                   (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85)]
R_HIP, L_HIP = 8, 11
# src/pipeline/generate.cpp: the agnostic mask grows past its blocks by this many source pixels.
AGNOSTIC_DILATE_PX = 4
# src/vision/tracker.cpp (analyze_reference): the reference crop is the person box + 10 % a side.
REFERENCE_MARGIN = 0.1
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)


def lround(x: float) -> int:
    """std::lround: halves away from zero (Python's round() goes to even)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


# ----------------------------------------------------------------------------- framing
@dataclass(frozen=True)
class WorkGeometry:
    source: Tuple[int, int]   # (width, height)
    work: Tuple[int, int]     # (width, height)
    crop: Tuple[int, int, int, int]  # (x, y, w, h) in source pixels; may exceed the source

    @property
    def scale(self) -> float:
        return self.work[0] / self.crop[2]

    @property
    def scale_y(self) -> float:
        return self.work[1] / self.crop[3]

    def affine(self) -> np.ndarray:
        """Source pixels -> work pixels (the pose-map transform of SceneConditions::pose)."""
        s, sy = self.scale, self.scale_y
        return np.array([[s, 0, -s * self.crop[0]], [0, sy, -sy * self.crop[1]]], np.float64)


def _place(centre: float, size: int, n: int) -> int:
    if size <= n:
        return min(max(lround(centre - size / 2.0), 0), n - size)
    return int(math.floor((n - size) / 2.0))


def _crop_size(min_w: float, min_h: float, work: Tuple[int, int]) -> Tuple[int, int]:
    aspect = work[0] / work[1]
    w = max(min_w, min_h * aspect)
    cw = max(1, int(math.ceil(w - 1e-9)))
    ch = max(1, lround(cw / aspect))
    if ch < math.ceil(min_h - 1e-9):
        ch = int(math.ceil(min_h - 1e-9))
        cw = max(1, lround(ch * aspect))
    return cw, ch


def fit_frame_pad(source: Tuple[int, int], work: Tuple[int, int]) -> WorkGeometry:
    sx, sy = work[0] / source[0], work[1] / source[1]
    s = min(sx, sy)
    cw, ch = lround(work[0] / s), lround(work[1] / s)
    if s == sx:
        cw = source[0]
    if s == sy:
        ch = source[1]
    return WorkGeometry(source, work, (int(math.floor((source[0] - cw) / 2.0)),
                                       int(math.floor((source[1] - ch) / 2.0)), cw, ch))


def fit_box(source: Tuple[int, int], work: Tuple[int, int], box: Sequence[float],
            margin: float = 0.15) -> WorkGeometry:
    x, y, w, h = box
    if w <= 0 or h <= 0:
        return fit_frame_pad(source, work)
    cw, ch = _crop_size(w * (1 + 2 * margin), h * (1 + 2 * margin), work)
    cx, cy = x + w / 2, y + h / 2
    return WorkGeometry(source, work, (_place(cx, cw, source[0]), _place(cy, ch, source[1]), cw, ch))


def to_work(image: np.ndarray, g: WorkGeometry, upscale: int = cv2.INTER_LINEAR,
            pad_value=0) -> np.ndarray:
    """compose::to_work: crop (padding outside the source), then resize (area when shrinking)."""
    sw, sh = g.source
    assert image.shape[1] == sw and image.shape[0] == sh, "image does not match the geometry's source"
    x, y, w, h = g.crop
    vx0, vy0 = max(x, 0), max(y, 0)
    vx1, vy1 = min(x + w, sw), min(y + h, sh)
    if (vx0, vy0, vx1, vy1) == (x, y, x + w, y + h):
        region = image[y:y + h, x:x + w]
    elif vx1 <= vx0 or vy1 <= vy0:
        region = np.full((h, w) + image.shape[2:], pad_value, image.dtype)
    else:
        value = pad_value if np.isscalar(pad_value) else tuple(pad_value)
        region = cv2.copyMakeBorder(np.ascontiguousarray(image[vy0:vy1, vx0:vx1]), vy0 - y, y + h - vy1,
                                    vx0 - x, x + w - vx1, cv2.BORDER_CONSTANT, value=value)
    if region.shape[1] == g.work[0] and region.shape[0] == g.work[1]:
        return region.copy()
    shrinking = g.work[0] < region.shape[1] or g.work[1] < region.shape[0]
    interp = cv2.INTER_AREA if shrinking and upscale != cv2.INTER_NEAREST else upscale
    return cv2.resize(np.ascontiguousarray(region), g.work, interpolation=interp)


def mask_to_work(mask: np.ndarray, g: WorkGeometry) -> np.ndarray:
    return to_work(mask, g, cv2.INTER_LINEAR, 0)


# ----------------------------------------------------------------------------- masks
def _ellipse_kernel(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def mask_bounding_box(mask: np.ndarray, threshold: int = 0) -> Tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask > threshold)
    if len(xs) == 0:
        return (0, 0, 0, 0)
    return (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))


def shape_agnostic_mask(mask: np.ndarray, box: Sequence[int], k_h: int, k_w: int) -> np.ndarray:
    """Inside ``box`` split into about k_h x k_w blocks; each block becomes its maximum."""
    assert mask.dtype == np.uint8
    out = np.zeros_like(mask)
    H, W = mask.shape
    x, y, w, h = box
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x1 <= x0 or y1 <= y0:
        return out
    bx, by, bw_, bh_ = x0, y0, x1 - x0, y1 - y0
    k_h = min(max(k_h, 1), bh_)
    k_w = min(max(k_w, 1), bw_)
    bh = (bh_ + k_h - 1) // k_h
    bw = (bw_ + k_w - 1) // k_w
    ny, nx = (bh_ + bh - 1) // bh, (bw_ + bw - 1) // bw
    region = np.zeros((ny * bh, nx * bw), np.uint8)  # zero padding leaves every block's max alone
    region[:bh_, :bw_] = mask[by:by + bh_, bx:bx + bw_]
    blocks = region.reshape(ny, bh, nx, bw).max(axis=(1, 3))
    out[by:by + bh_, bx:bx + bw_] = np.repeat(np.repeat(blocks, bh, axis=0), bw, axis=1)[:bh_, :bw_]
    return out


def shape_agnostic_mask_inference(mask: np.ndarray, dilate_px: int = AGNOSTIC_DILATE_PX,
                                  blocks: int = 0) -> np.ndarray:
    """replace's default region: ``blocks`` per box side (0: a block per 10 pixels), then grown."""
    box = mask_bounding_box(mask)
    k_h = blocks if blocks > 0 else max(1, box[3] // 10)
    k_w = blocks if blocks > 0 else max(1, box[2] // 10)
    out = shape_agnostic_mask(mask, box, k_h, k_w)
    if dilate_px > 0:
        out = cv2.dilate(out, _ellipse_kernel(dilate_px))
    return out


REDRAW_MODES = ("agnostic", "tight", "box")


def redraw_region(character: np.ndarray, mode: str = "agnostic", dilate_px: int = AGNOSTIC_DILATE_PX,
                  blocks: int = 0) -> np.ndarray:
    """src/vision/mask.cpp redraw_region (replace's --mask-mode/--mask-dilate/--mask-blocks):
    uint8 0/255 region from a character mask (any value > 0 is the character)."""
    binary = (character > 0).astype(np.uint8) * 255
    if mode == "agnostic":
        return shape_agnostic_mask_inference(binary, dilate_px, blocks)
    if mode == "tight":
        out = binary
    elif mode == "box":
        out = np.zeros_like(binary)
        x, y, w, h = mask_bounding_box(binary)
        out[y:y + h, x:x + w] = 255
    else:
        raise ValueError(f"mask mode must be one of {REDRAW_MODES}, got {mode!r}")
    if dilate_px > 0:
        out = cv2.dilate(out, _ellipse_kernel(dilate_px))
    return out


def shape_agnostic_mask_training(mask: np.ndarray, rng: np.random.Generator, block_px=(5, 40),
                                 scale=(1.0, 1.3), scale_probability: float = 0.5) -> np.ndarray:
    """The paper's training variant: random block sizes per axis and a randomly enlarged box (the
    character grown about its centre), so the mask can exceed the silhouette and never traces it."""
    box = mask_bounding_box(mask)
    if box[2] == 0:
        return np.zeros_like(mask)
    block_h = int(rng.integers(block_px[0], block_px[1] + 1))
    block_w = int(rng.integers(block_px[0], block_px[1] + 1))
    source = mask
    x, y, w, h = box
    if scale[1] > scale[0] and rng.random() < scale_probability:
        sx, sy = rng.uniform(scale[0], scale[1], size=2)
        cx, cy = x + w * 0.5, y + h * 0.5
        nw, nh = w * sx, h * sy
        grow = int(max(nw - w, nh - h) / 2)
        box = (lround(cx - nw / 2), lround(cy - nh / 2), lround(nw), lround(nh))
        if grow > 0:
            source = cv2.dilate(mask, _ellipse_kernel(grow))
    return shape_agnostic_mask(source, box, max(1, box[3] // block_h), max(1, box[2] // block_w))


def binary_work_mask(source_mask: np.ndarray, g: WorkGeometry) -> np.ndarray:
    """SceneConditions: any coverage of a work pixel counts (float32 0/1)."""
    return (mask_to_work(source_mask, g) > 0).astype(np.float32)


# ----------------------------------------------------------------------------- pose and depth maps
def _shown(k) -> bool:
    return k[2] >= POSE_SCORE_THRESHOLD and math.isfinite(k[0]) and math.isfinite(k[1])


def _transform(m: Optional[np.ndarray], k) -> Tuple[float, float]:
    if m is None:
        return float(k[0]), float(k[1])
    return (m[0, 0] * k[0] + m[0, 1] * k[1] + m[0, 2], m[1, 0] * k[0] + m[1, 1] * k[1] + m[1, 2])


def _limb_polygon(a, b, stick: int) -> np.ndarray:
    mx, my = 0.5 * (a[0] + b[0]), 0.5 * (a[1] + b[1])
    length = math.hypot(a[0] - b[0], a[1] - b[1])
    angle = math.atan2(a[1] - b[1], a[0] - b[0]) * 180.0 / math.pi
    return cv2.ellipse2Poly((int(mx), int(my)), (int(length / 2), stick), int(angle), 0, 360, 1)


def render_pose_map(bodies: Sequence[np.ndarray], size: Tuple[int, int], m: Optional[np.ndarray] = None) -> np.ndarray:
    """OpenPose-18 skeleton(s) on black, RGB uint8 HxWx3 (size = (width, height))."""
    canvas = np.zeros((size[1], size[0], 3), np.uint8)
    for body in bodies:
        for i, (ja, jb) in enumerate(OPENPOSE_LIMBS):
            if not _shown(body[ja]) or not _shown(body[jb]):
                continue
            poly = _limb_polygon(_transform(m, body[ja]), _transform(m, body[jb]), POSE_STICK_WIDTH)
            cv2.fillConvexPoly(canvas, poly, OPENPOSE_COLORS[i], cv2.LINE_8)
    # limbs at 60 % (colours are multiples of 85, so x0.6 is exact)
    canvas = (canvas.astype(np.uint16) * 3 // 5).astype(np.uint8)
    for body in bodies:
        for j in range(18):
            if not _shown(body[j]):
                continue
            p = _transform(m, body[j])
            cv2.circle(canvas, (int(p[0]), int(p[1])), POSE_JOINT_RADIUS, OPENPOSE_COLORS[j], cv2.FILLED, cv2.LINE_8)
    return canvas


def joint_depth_values(body: np.ndarray) -> Optional[np.ndarray]:
    """Per-joint depth-map value, float32 in [0.02, 1]: 0.5 at the hips' mid depth, nearer =
    brighter, one body height (the shown joints' vertical extent) in front of the hips = 1.
    None when the depth is unknown (a hip not shown or without a finite z).
    Float32 arithmetic in this order, as in C++."""
    if body.shape[1] < 4:
        return None
    b = body.astype(np.float32)
    shown = np.array([_shown(k) for k in b])
    if not (shown[R_HIP] and shown[L_HIP]) or not (math.isfinite(b[R_HIP, 3]) and math.isfinite(b[L_HIP, 3])):
        return None
    half = np.float32(0.5)
    z0 = half * (b[R_HIP, 3] + b[L_HIP, 3])
    ys = b[shown, 1]
    extent = max(np.float32(ys.max() - ys.min()), np.float32(1.0))
    z = np.where(np.isfinite(b[:, 3]), b[:, 3], z0).astype(np.float32)
    values = half - half * (z - z0) / extent
    return np.clip(values, np.float32(0.02), np.float32(1.0)).astype(np.float32)


def render_depth_map(body: np.ndarray, size: Tuple[int, int], m: Optional[np.ndarray] = None) -> np.ndarray:
    """The skeleton's relative depth, float32 HxW in [0, 1] (0 = nothing drawn).

    Same limb ellipses and joint discs as the pose map, each filled with its depth value (a
    limb: the mean of its two joints), drawn far to near so nearer parts cover farther ones.
    Unknown depth (see joint_depth_values) draws every part at 0.5.
    """
    canvas = np.zeros((size[1], size[0]), np.float32)
    values = joint_depth_values(body)
    if values is None:
        values = np.full(len(body), 0.5, np.float32)
    parts = []  # (depth, order, kind, payload)
    for i, (ja, jb) in enumerate(OPENPOSE_LIMBS):
        if _shown(body[ja]) and _shown(body[jb]):
            parts.append((np.float32(0.5) * (values[ja] + values[jb]), i, 0, (ja, jb)))
    for j in range(18):
        if _shown(body[j]):
            parts.append((values[j], len(OPENPOSE_LIMBS) + j, 1, j))
    parts.sort(key=lambda p: (p[0], p[1]))  # far (small) first; ties in drawing order
    for value, _, kind, payload in parts:
        v = float(np.float32(value))
        if kind == 0:
            ja, jb = payload
            poly = _limb_polygon(_transform(m, body[ja]), _transform(m, body[jb]), POSE_STICK_WIDTH)
            cv2.fillConvexPoly(canvas, poly, v, cv2.LINE_8)
        else:
            p = _transform(m, body[payload])
            cv2.circle(canvas, (int(p[0]), int(p[1])), POSE_JOINT_RADIUS, v, cv2.FILLED, cv2.LINE_8)
    return canvas


# ----------------------------------------------------------------------------- reference
def reference_crop(person_box: Sequence[float], image_size: Tuple[int, int]) -> Tuple[int, int, int, int]:
    """tracker.analyze_reference: the person's box grown by 10 % a side, clipped to the image."""
    x, y, w, h = (np.float32(v) for v in person_box)  # float32 throughout, as the C++ computes
    mx, my = np.float32(REFERENCE_MARGIN) * w, np.float32(REFERENCE_MARGIN) * h
    x0, y0 = math.floor(x - mx), math.floor(y - my)
    cw, ch = math.ceil(w + np.float32(2) * mx), math.ceil(h + np.float32(2) * my)
    X0, Y0 = max(x0, 0), max(y0, 0)
    X1, Y1 = min(x0 + cw, image_size[0]), min(y0 + ch, image_size[1])
    if X1 <= X0 or Y1 <= Y0:
        return (0, 0, 0, 0)  # cv::Rect's empty intersection
    return (X0, Y0, X1 - X0, Y1 - Y0)


def prepare_reference(image: np.ndarray, crop: Sequence[int], work: Tuple[int, int],
                      clip_size: int) -> Tuple[np.ndarray, np.ndarray]:
    """pipeline::prepare_reference -> (work RGB uint8 over white, CLIP input float32 [3,S,S])."""
    H, W = image.shape[:2]
    g = fit_box((W, H), work, crop, 0.0)
    work_rgb = to_work(image, g, cv2.INTER_LINEAR, (255, 255, 255))
    x, y, w, h = crop
    region = image[y:y + h, x:x + w]
    s = clip_size / min(region.shape[1], region.shape[0])
    rw = max(clip_size, lround(region.shape[1] * s))
    rh = max(clip_size, lround(region.shape[0] * s))
    resized = cv2.resize(np.ascontiguousarray(region), (rw, rh), interpolation=cv2.INTER_CUBIC)
    ox, oy = (rw - clip_size) // 2, (rh - clip_size) // 2
    centre = resized[oy:oy + clip_size, ox:ox + clip_size].astype(np.float32) / 255.0
    clip = ((centre - CLIP_MEAN) / CLIP_STD).transpose(2, 0, 1)
    return work_rgb, np.ascontiguousarray(clip, dtype=np.float32)


def to_m11(rgb: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 -> float32 [3,H,W] in [-1, 1] (to_tensor_m11)."""
    return (rgb.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)
