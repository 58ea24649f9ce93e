"""Training samples: rendered characters over real background plates, with every condition made
the way the C++ pipeline makes it at inference (conditions.py).

One sample is a clip of F frames (F = 1 for the image stage) of one character identity:

1. a *virtual source video*: a background plate at its own resolution, the character rendered
   into it along a trajectory (walking cycles move forward, other animations drift a little);
2. the framing of ``replace``: ``fit_box`` around the union of the character's boxes over the
   whole virtual clip (which may be longer than the F frames we train on), 15 % margin;
3. the F frames rendered straight at work resolution through the same crop (the camera is
   scaled and shifted, which is exactly a crop + resize of the source image), composited over
   the plate's crop (``to_work``);
4. conditions: the redraw region, by default the training variant of the shape-agnostic mask
   (random blocks and rescale), for a share of clips replace's own regions (the inference
   agnostic mask; the "tight" silhouette grown by a few pixels, the demo bundle's default),
   environment = frame x (1 - mask), pose map and skeleton depth map from the true keypoints
   (jittered and sometimes dropped like a tracker's), held objects as object masks (also
   joined into the redraw region, as ``--object-mask`` does);
5. the reference: the same identity in another pose and view over another background, framed
   like ``prepare_reference`` (person box + 10 %, fitted over white) with its CLIP input.

Arrays travel as uint8 / float16 to keep worker -> trainer traffic small; ``to_tensors`` makes
the float tensors the model takes.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from . import conditions as C


@dataclass
class DataConfig:
    width: int = 128
    height: int = 192
    frames: int = 1
    clip_size: int = 112
    supersample: int = 2                       # character renders at this multiple, area-averaged
    character_height: Tuple[float, float] = (0.10, 0.55)   # of the plate height
    virtual_clip_frames: Tuple[int, int] = (1, 60)        # frames the framing is made over
    fps: Sequence[float] = (8.0, 10.0, 12.0, 15.0, 24.0, 30.0)
    elevation_deg: Tuple[float, float] = (0.0, 35.0)
    fov_deg: Tuple[float, float] = (15.0, 45.0)
    object_probability: float = 0.5           # use held objects as object masks (when any)
    inference_mask_probability: float = 0.2   # the inference agnostic mask instead of the training one
    tight_mask_probability: float = 0.0       # replace's "tight" region (the silhouette, grown) instead of either
    tight_dilate_px: Tuple[int, int] = (0, 2)  # how far the tight region is grown, work pixels (inclusive)
    keypoint_jitter: float = 0.01             # of the body height (tracker noise)
    keypoint_drop: float = 0.03               # a shown joint is hidden (score 0)
    depth_unknown_probability: float = 0.1    # depth map drawn as "unknown" (all 0.5)
    reference_white: float = 0.45             # reference background: white / plain colour / plate
    reference_plain: float = 0.15
    locomotion_probability: float = 0.5
    identity_reuse: float = 0.75              # draw from the last few identities (their textures are baked)
    identity_pool: int = 8
    body_hue_jitter: float = 0.05             # turns of hue shift of a body texture (0.5: any hue)

    def __post_init__(self):
        if not 0.0 <= self.tight_mask_probability <= 1.0:
            raise ValueError(f"tight_mask_probability must be within 0..1, got {self.tight_mask_probability!r}")
        lo, hi = self.tight_dilate_px
        if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi):
            raise ValueError(f"tight_dilate_px must be two whole numbers 0 <= low <= high, got {self.tight_dilate_px!r}")

    @classmethod
    def from_dict(cls, d: Dict) -> "DataConfig":
        kw = {}
        for k, v in d.items():
            if k not in cls.__dataclass_fields__:
                raise KeyError(f"unknown data option {k!r}")
            kw[k] = tuple(v) if isinstance(v, list) else v
        return cls(**kw)


class Backgrounds:
    """The background plates of one split (scripts/synth/build_backgrounds.py), decoded lazily."""

    def __init__(self, folder: str, split: str):
        with open(os.path.join(folder, "backgrounds.json")) as f:
            meta = json.load(f)
        entries = meta["files"] if isinstance(meta, dict) else meta
        self.folder = folder
        self.files = [e["file"] for e in entries if e.get("split", "train") == split]
        if not self.files:
            raise ValueError(f"{folder}: no backgrounds in split {split!r}")
        self._cache: Dict[str, np.ndarray] = {}

    def get(self, rng: np.random.Generator) -> np.ndarray:
        name = self.files[int(rng.integers(len(self.files)))]
        img = self._cache.get(name)
        if img is None:
            bgr = cv2.imread(os.path.join(self.folder, name), cv2.IMREAD_COLOR)
            if bgr is None:
                raise IOError(f"cannot read background {name}")
            img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if len(self._cache) < 64:
                self._cache[name] = img
        return img


def _area_down(img: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return img
    h, w = img.shape[:2]
    return cv2.resize(img, (w // factor, h // factor), interpolation=cv2.INTER_AREA)


def _max_down(mask: np.ndarray, factor: int) -> np.ndarray:
    """Any coverage of a work pixel counts (as SceneConditions' threshold at 0)."""
    if factor == 1:
        return mask
    h, w = mask.shape
    return mask.reshape(h // factor, factor, w // factor, factor).max(axis=(1, 3))


def _union(a, b):
    if a is None:
        return b
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return (x0, y0, x1 - x0, y1 - y0)


def _box_xywh(box) -> Optional[Tuple[float, float, float, float]]:
    x0, y0, x1, y1 = [float(v) for v in box]
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1 - x0, y1 - y0)


class SampleMaker:
    """Makes training / evaluation samples from an asset pack and background plates."""

    def __init__(self, pack, backgrounds: Backgrounds, cfg: DataConfig, split: str = "train",
                 reference_backgrounds: Optional[Backgrounds] = None):
        import synth  # scripts/synth (on sys.path next to standin_train)
        self.synth = synth
        self.pack = pack
        self.backgrounds = backgrounds
        self.reference_backgrounds = reference_backgrounds or backgrounds
        self.cfg = cfg
        self.split = split
        self._recent: List = []

    def _identity(self, rng):
        """A new identity, or often one of the last few: baking an identity's textures costs more
        than rendering it, and a batch still mixes many identities."""
        cfg = self.cfg
        if self._recent and rng.random() < cfg.identity_reuse:
            return self._recent[int(rng.integers(len(self._recent)))]
        ident = self.pack.sample_identity(rng, split=self.split, hue_jitter=cfg.body_hue_jitter)
        self._recent = (self._recent + [ident])[-cfg.identity_pool:]
        return ident

    # -- pieces ---------------------------------------------------------------------------
    def _camera(self, scale: float, origin: Tuple[float, float], azimuth: float, elevation: float,
                fov: float, roll: float = 0.0):
        return self.synth.Camera(azimuth_deg=float(azimuth), elevation_deg=float(elevation), scale=float(scale),
                                 origin_px=(float(origin[0]), float(origin[1])), roll_deg=float(roll),
                                 fov_deg=float(fov))

    def _light(self, rng):
        az = rng.uniform(0, 2 * math.pi)
        el = rng.uniform(0.3, 1.3)
        d = (math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az))
        tint = tuple(float(v) for v in np.clip(1.0 + rng.normal(0, 0.06, 3), 0.8, 1.2))
        return self.synth.Light(direction=d, ambient=float(rng.uniform(0.35, 0.6)),
                                diffuse=float(rng.uniform(0.4, 0.8)), tint=tint)

    def _render(self, ident, bones, cam, light, size, offset=(0.0, 0.0), supersample=1):
        return self.synth.render(self.pack, ident, bones, cam, light, size=size, supersample=supersample,
                                 world_offset=offset)

    # -- the sample -----------------------------------------------------------------------
    def make_renderable(self, rng: np.random.Generator, attempts: int = 1000) -> Dict[str, np.ndarray]:
        """``make`` drawn again until a sample renders (``make`` raises RuntimeError when the
        draw cannot be shown, e.g. the character walks out of the frame)."""
        for _ in range(attempts - 1):
            try:
                return self.make(rng)
            except RuntimeError:
                continue
        return self.make(rng)  # the last attempt's error reaches the caller

    def make(self, rng: np.random.Generator) -> Dict[str, np.ndarray]:
        cfg = self.cfg
        W, H, F, ss = cfg.width, cfg.height, cfg.frames, cfg.supersample
        ident = self._identity(rng)
        fps = float(rng.choice(cfg.fps))
        locomotion = rng.random() < cfg.locomotion_probability
        kinds = ["locomotion"] if locomotion else None
        motion = self.pack.sample_motion(rng, frames=F, fps=fps, split=self.split, kinds=kinds, identity=ident)
        plate = self.backgrounds.get(rng)
        Hs, Ws = plate.shape[:2]

        # 1. the virtual source clip
        char_h = rng.uniform(*cfg.character_height) * Hs
        scale = char_h / 4.3  # a man is ~4.3 world units tall
        azimuth = rng.uniform(0, 360)
        elevation = cfg.elevation_deg[0] + (cfg.elevation_deg[1] - cfg.elevation_deg[0]) * rng.beta(1.3, 2.0)
        fov = rng.uniform(*cfg.fov_deg)
        origin = (rng.uniform(0.2, 0.8) * Ws, rng.uniform(0.45, 0.95) * Hs)
        velocity = tuple(getattr(motion, "velocity", (0.0, 0.0))) if locomotion else (0.0, 0.0)
        if locomotion and not any(velocity):
            velocity = (0.0, rng.uniform(1.0, 2.0))
        drift = rng.normal(0, 0.15, 2)

        def offset(t: float) -> Tuple[float, float]:
            if locomotion:  # 0 A.D.'s cycles walk in place: move the character along the ground
                return (velocity[0] * t, velocity[1] * t)
            return (float(drift[0] * t), float(drift[1] * t))

        virtual = int(rng.integers(cfg.virtual_clip_frames[0], cfg.virtual_clip_frames[1] + 1))
        virtual = max(virtual, F)
        first = int(rng.integers(0, virtual - F + 1))  # our F frames inside the virtual clip
        roll = rng.normal(0, 1.5)
        light = self._light(rng)

        # framing: boxes of our frames from a cheap low-resolution pass; the rest of the virtual
        # clip by moving the first box along the trajectory's projection
        low = 4
        cam_low = self._camera(scale / low, (origin[0] / low, origin[1] / low), azimuth, elevation, fov, roll)
        low_size = (max(8, Ws // low), max(8, Hs // low))
        union = None
        first_box = None
        for f in range(F):
            t = (first + f) / fps
            out = self._render(ident, motion.bones[f], cam_low, light, low_size, offset(t))
            b = _box_xywh(out.box)
            if b is None:
                continue
            b = (b[0] * low - low, b[1] * low - low, b[2] * low + 2 * low, b[3] * low + 2 * low)
            if not (0 <= b[0] + b[2] / 2 < Ws and 0 <= b[1] + b[3] / 2 < Hs):
                raise RuntimeError("character walks out of the frame")
            union = _union(union, b)
            if first_box is None:
                first_box, first_t = b, t
        if union is None:
            raise RuntimeError("character not in view")
        if virtual > F:
            # the rest of the virtual clip: the first box moved as the character's ground point moves
            anchor = cam_low.project([[0.0, 0.0, 0.0]], low_size, offset(first_t))[0, :2]
            for t_frame in (0, virtual - 1):
                p = cam_low.project([[0.0, 0.0, 0.0]], low_size, offset(t_frame / fps))[0, :2]
                dx, dy = (p - anchor) * low
                union = _union(union, (first_box[0] + dx, first_box[1] + dy, first_box[2], first_box[3]))
        # replace's union box comes from masks inside the frame
        x0, y0 = max(0.0, union[0]), max(0.0, union[1])
        x1, y1 = min(float(Ws), union[0] + union[2]), min(float(Hs), union[1] + union[3])
        if x1 - x0 < 4 or y1 - y0 < 4:
            raise RuntimeError("character not in view")
        g = C.fit_box((Ws, Hs), (W, H), (x0, y0, x1 - x0, y1 - y0), 0.15)
        s = g.scale

        # 2. our frames at work resolution (x supersample), through the crop: the same camera,
        # its image cropped and scaled (the renderer's focal length follows the image height,
        # so the field of view shrinks with the crop)
        big = (W * ss, H * ss)
        fov_work = math.degrees(2 * math.atan(g.crop[3] / Hs * math.tan(math.radians(fov) / 2)))
        cam_w = self._camera(scale * s * ss,
                             ((origin[0] - g.crop[0]) * s * ss, (origin[1] - g.crop[1]) * s * ss),
                             azimuth, elevation, fov_work, roll)
        background = C.to_work(plate, g)
        use_objects = rng.random() < cfg.object_probability
        # drawn only when asked for, so that configs without tight regions keep their samples
        tight = cfg.tight_mask_probability > 0 and rng.random() < cfg.tight_mask_probability
        tight_grow = int(rng.integers(cfg.tight_dilate_px[0], cfg.tight_dilate_px[1] + 1)) * ss if tight else 0
        agn_train = rng.random() >= cfg.inference_mask_probability
        block_lo = max(1, int(round(5 * s * ss)))
        block_hi = max(block_lo + 1, int(round(40 * s * ss)))
        dilate = max(0, int(round(C.AGNOSTIC_DILATE_PX * s * ss)))
        mask_rng = np.random.default_rng(rng.integers(1 << 62))  # one mask layout per clip
        mask_seed = int(mask_rng.integers(1 << 62))
        frames, envs, masks, poses, depths, objects, alphas, keypoints = [], [], [], [], [], [], [], []
        any_objects = False
        depth_unknown = rng.random() < cfg.depth_unknown_probability
        for f in range(F):
            t = (first + f) / fps
            out = self._render(ident, motion.bones[f], cam_w, light, big, offset(t))
            alpha_big = out.alpha
            rgb = _area_down(out.rgb, ss).astype(np.float32)
            alpha = _area_down(alpha_big, ss).astype(np.float32)
            frame = np.clip(rgb + background.astype(np.float32) * (1 - alpha[..., None]) + 0.5, 0, 255).astype(np.uint8)
            char_big = (alpha_big > 0).astype(np.uint8) * 255
            if tight:
                region = C.redraw_region(char_big, "tight", tight_grow)
            elif agn_train:
                region = C.shape_agnostic_mask_training(char_big, np.random.default_rng(mask_seed),
                                                        block_px=(block_lo, block_hi))
            else:
                box = C.mask_bounding_box(char_big)
                bh = max(1, int(round(10 * s * ss)))
                region = C.shape_agnostic_mask(char_big, box, max(1, box[3] // bh), max(1, box[2] // bh))
            if dilate > 0 and not tight:
                region = cv2.dilate(region, C._ellipse_kernel(dilate))
            obj_work = np.zeros((H, W), np.float32)
            if use_objects and out.props_alpha is not None:
                props_big = (out.props_alpha > 0.5).astype(np.uint8) * 255
                if props_big.any():
                    any_objects = True
                    # grown like the region, as replace grows --object-mask by --mask-dilate
                    region |= cv2.dilate(props_big, C._ellipse_kernel(tight_grow if tight else max(1, dilate)))
                    obj_work = (_area_down(props_big, ss) > 127).astype(np.float32)
            mask = (_max_down(region, ss) > 0).astype(np.float32)
            kp = self._tracker_like(rng, out.keypoints, ss)
            frames.append(frame)
            envs.append((C.to_m11(frame) * (1 - mask)[None]))
            masks.append(mask)
            poses.append(C.render_pose_map([kp], (W, H)))
            depth_kp = kp.copy()
            if depth_unknown:
                depth_kp[:, 3] = np.nan
            depths.append(C.render_depth_map(depth_kp, (W, H)))
            objects.append(C.to_m11(frame) * obj_work[None])
            alphas.append(alpha)
            keypoints.append(depth_kp)

        ref_rgb, ref_clip = self._reference(rng, ident)
        sample = {
            "frames": np.stack(frames),                                          # [F,H,W,3] uint8
            "environment": np.stack(envs).astype(np.float16),                    # [F,3,H,W]
            "mask": np.stack(masks).astype(np.uint8),                            # [F,H,W] 0/1
            "pose": np.stack(poses),                                             # [F,H,W,3] uint8
            "depth": np.stack(depths).astype(np.float16),                        # [F,H,W]
            "object": np.stack(objects).astype(np.float16),                      # [F,3,H,W]
            "has_object": np.array(any_objects, np.bool_),
            "character": (np.stack(alphas) * 255 + 0.5).astype(np.uint8),         # [F,H,W] true alpha
            "background": background,                                            # [H,W,3] uint8
            "keypoints": np.stack(keypoints).astype(np.float32),                 # [F,18,4] x,y,score,z (work px)
            "reference": ref_rgb,                                                # [H,W,3] uint8
            "reference_clip": ref_clip.astype(np.float16),                       # [3,S,S]
        }
        return sample

    def _tracker_like(self, rng, keypoints: np.ndarray, ss: int) -> np.ndarray:
        """True keypoints -> what a pose tracker would report at work resolution: rows
        (x, y, score, z), jittered, face points hidden when not visible, some joints dropped."""
        kp = np.zeros((18, 4), np.float32)
        kp[:, 0:2] = keypoints[:, 0:2] / ss
        kp[:, 3] = keypoints[:, 2] / ss
        visible = keypoints[:, 3] > 0.5
        body_h = max(float(kp[:, 1].max() - kp[:, 1].min()), 4.0)
        kp[:, 0:2] += rng.normal(0, self.cfg.keypoint_jitter * body_h, (18, 2))
        kp[:, 3] += rng.normal(0, 0.05 * body_h, 18)
        score = np.ones(18, np.float32)
        face = [0, 14, 15, 16, 17]
        score[face] = np.where(visible[face], 1.0, 0.0)
        # body joints: a tracker still reports self-occluded limbs; only off-image ones vanish
        inside = (kp[:, 0] >= 0) & (kp[:, 0] < self.cfg.width) & (kp[:, 1] >= 0) & (kp[:, 1] < self.cfg.height)
        score = np.where(inside, score, 0.0)
        drop = rng.random(18) < self.cfg.keypoint_drop
        score[drop] = 0.0
        kp[:, 2] = score
        return kp

    def _reference(self, rng, ident) -> Tuple[np.ndarray, np.ndarray]:
        cfg = self.cfg
        motion = self.pack.sample_motion(rng, frames=1, fps=10.0, split=self.split, identity=ident)
        rh = int(rng.integers(int(cfg.height * 1.2), cfg.height * 2 + 1))
        rw = int(rh * rng.uniform(0.5, 1.0))
        az = rng.normal(0, 35) if rng.random() < 0.7 else rng.uniform(0, 360)
        char_h = rh * rng.uniform(0.55, 0.85)
        cam = self._camera(char_h / 4.3, (rw * rng.uniform(0.4, 0.6), rh * rng.uniform(0.85, 0.95)),
                           az, rng.uniform(0, 20), rng.uniform(15, 40), rng.normal(0, 1.5))
        out = self._render(ident, motion.bones[0], cam, self._light(rng), (rw, rh), supersample=1)
        u = rng.random()
        if u < cfg.reference_white:
            bg = np.full((rh, rw, 3), 255, np.uint8)
        elif u < cfg.reference_white + cfg.reference_plain:
            bg = np.empty((rh, rw, 3), np.uint8)
            bg[:] = rng.integers(150, 256, 3).astype(np.uint8)
        else:
            plate = self.reference_backgrounds.get(rng)
            ph, pw = plate.shape[:2]
            k = min(pw / rw, ph / rh) * rng.uniform(0.4, 1.0)  # a random part of the plate
            cw, ch = max(1, int(rw * k)), max(1, int(rh * k))
            x, y = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, ph - ch + 1))
            bg = cv2.resize(plate[y:y + ch, x:x + cw], (rw, rh), interpolation=cv2.INTER_AREA)
        img = np.clip(out.rgb.astype(np.float32) + bg.astype(np.float32) * (1 - out.alpha[..., None]) + 0.5,
                      0, 255).astype(np.uint8)
        box = _box_xywh(out.box)
        if box is None:
            box = (0, 0, rw, rh)
        crop = C.reference_crop(box, (rw, rh))
        return C.prepare_reference(img, crop, (cfg.width, cfg.height), cfg.clip_size)


def to_tensors(batch: Dict, device=None) -> Dict:
    """Collated numpy sample arrays -> float tensors in the model's conventions:
    frames/environment/object/reference in [-1, 1] [B,F,3,H,W] (reference [B,3,H,W]), mask,
    depth and character [B,F,1,H,W] in [0, 1], pose [B,F,3,H,W] in [0, 1]."""
    import torch

    def t(x):
        x = x if torch.is_tensor(x) else torch.from_numpy(np.asarray(x))
        return x.to(device, non_blocking=True) if device is not None else x

    out = {}
    out["frames"] = t(batch["frames"]).permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0
    out["pose"] = t(batch["pose"]).permute(0, 1, 4, 2, 3).float() / 255.0
    out["reference"] = t(batch["reference"]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    out["environment"] = t(batch["environment"]).float()
    out["object"] = t(batch["object"]).float()
    out["mask"] = t(batch["mask"]).float().unsqueeze(2)
    out["depth"] = t(batch["depth"]).float().unsqueeze(2)
    out["character"] = t(batch["character"]).float().unsqueeze(2) / 255.0
    out["reference_clip"] = t(batch["reference_clip"]).float()
    out["has_object"] = t(batch["has_object"]).bool()
    return out
