"""Self-reconstruction evaluation (the paper's protocol) on held-out rendered clips.

The reference is the same identity in another pose and view, the source is a rendered clip, so
the true frames are known: we compare the output with them.  Held out together: identities
(body textures), animations and background plates the model never saw (``split="test"``).

Every row runs docs/SAMPLING.md through ``reference_pipeline.generate`` (the C++ generator's
parity oracle) and pastes the generated pixels into the true frame through the redraw mask, as
``replace`` does.  Metrics per clip, averaged over clips:
  * PSNR / SSIM over the character's box (the union of its true boxes in the clip, + 4 px) and
    over the whole frame;
  * flicker: mean |(o_t - o_{t-1}) - (g_t - g_{t-1})| in the box (0..255), i.e. frame-to-frame
    change that the true clip does not have.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional

import cv2
import numpy as np
import torch

from . import conditions as C


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse <= 1e-10 else 10.0 * math.log10(255.0 ** 2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, on luma)."""
    def luma(x):
        x = x.astype(np.float64)
        return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2] if x.ndim == 3 else x
    x, y = luma(a), luma(b)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda z: cv2.GaussianBlur(z, (11, 11), 1.5)  # noqa: E731
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())


def character_box(alpha: np.ndarray, pad: int = 4) -> tuple:
    """Union of the clip's true character boxes (alpha [F,H,W] uint8), padded, clipped."""
    ys, xs = np.nonzero(alpha.max(axis=0) > 0)
    H, W = alpha.shape[1:]
    if len(xs) == 0:
        return (0, 0, W, H)
    x0, y0 = max(0, xs.min() - pad), max(0, ys.min() - pad)
    x1, y1 = min(W, xs.max() + 1 + pad), min(H, ys.max() + 1 + pad)
    return (int(x0), int(y0), int(x1 - x0), int(y1 - y0))


def clip_metrics(output: np.ndarray, truth: np.ndarray, alpha: np.ndarray) -> Dict[str, float]:
    """output / truth [F,H,W,3] uint8, alpha [F,H,W] uint8."""
    x, y, w, h = character_box(alpha)
    box = (slice(y, y + h), slice(x, x + w))
    out = {"psnr_box": float(np.mean([psnr(o[box], g[box]) for o, g in zip(output, truth)])),
           "ssim_box": float(np.mean([ssim(o[box], g[box]) for o, g in zip(output, truth)])),
           "psnr_frame": float(np.mean([psnr(o, g) for o, g in zip(output, truth)])),
           "ssim_frame": float(np.mean([ssim(o, g) for o, g in zip(output, truth)]))}
    if len(output) > 1:
        do = np.diff(output[:, box[0], box[1]].astype(np.float32), axis=0)
        dg = np.diff(truth[:, box[0], box[1]].astype(np.float32), axis=0)
        out["flicker"] = float(np.abs(do - dg).mean())
    return out


def conds_from_sample(sample: Dict, size: Optional[tuple] = None, seed: int = 0, lc: int = 4,
                      vae_scale: int = 4) -> Dict[str, torch.Tensor]:
    """A sample (data.SampleMaker.make, unbatched) -> reference_pipeline conditions, optionally
    at another work size (conditions re-made there: pose/depth redrawn from the keypoints)."""
    frames = sample["frames"]
    F, H, W = frames.shape[:3]
    mask = sample["mask"].astype(np.float32)
    env = sample["environment"].astype(np.float32)
    pose = sample["pose"]
    depth = sample["depth"].astype(np.float32)
    ref = sample["reference"]
    if size is not None and size != (W, H):
        w2, h2 = size
        sx, sy = w2 / W, h2 / H
        m = np.array([[sx, 0, 0], [0, sy, 0]], np.float64)
        mask = np.stack([(cv2.resize(k, (w2, h2), interpolation=cv2.INTER_AREA) > 0).astype(np.float32) for k in mask])
        fr = np.stack([cv2.resize(f, (w2, h2), interpolation=cv2.INTER_AREA) for f in frames])
        env = np.stack([C.to_m11(f) * (1 - k)[None] for f, k in zip(fr, mask)])
        pose = np.stack([C.render_pose_map([kp], (w2, h2), m) for kp in sample["keypoints"]])
        depth = np.stack([C.render_depth_map(kp, (w2, h2), m) for kp in sample["keypoints"]])
        ref = cv2.resize(ref, (w2, h2), interpolation=cv2.INTER_AREA)
        H, W = h2, w2
    g = torch.Generator().manual_seed(seed)
    return {
        "reference": torch.from_numpy(C.to_m11(ref))[None],
        "reference_clip": torch.from_numpy(sample["reference_clip"].astype(np.float32))[None],
        "environment": torch.from_numpy(np.ascontiguousarray(env)),
        "mask": torch.from_numpy(mask)[:, None],
        "pose": torch.from_numpy(np.ascontiguousarray(pose)).permute(0, 3, 1, 2).float() / 255.0,
        "depth": torch.from_numpy(depth)[:, None],
        "noise": torch.randn(1, lc, F, H // vae_scale, W // vae_scale, generator=g),
    }


def paste(generated: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """replace's compositing at work size: generated pixels where the redraw mask is set."""
    m = mask.astype(bool)[..., None]
    return np.where(m, generated, truth)


def oracle_mixes(generated: np.ndarray, sample: Dict) -> Dict[str, np.ndarray]:
    """Two mixes of a row's generated frames with the truth, to show which part of the redraw
    region costs the most (diagnostic rows, not methods): "character" keeps the generated pixels
    only where the true character is (true background around it), "fill" keeps the true character
    and the generated pixels around it (the invented background)."""
    a = sample["character"].astype(np.float32)[..., None] / 255.0
    g = generated.astype(np.float32)
    background = sample["background"].astype(np.float32)[None]
    truth = sample["frames"].astype(np.float32)
    mix = lambda x, y: np.clip(np.rint(a * x + (1 - a) * y), 0, 255).astype(np.uint8)  # noqa: E731
    return {"character": mix(g, background), "fill": mix(truth, g)}


def frames_to_uint8(frames: torch.Tensor) -> np.ndarray:
    """[F,3,H,W] in [-1,1] -> [F,H,W,3] uint8 (rounded like the C++ tensor_to_rgb)."""
    x = ((frames.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def run_row(name: str, samples: List[Dict], generate_fn: Callable[[Dict, int], np.ndarray],
            log=print) -> Dict[str, float]:
    """generate_fn(sample, index) -> generated frames [F,H,W,3] uint8 at the sample's size."""
    per = []
    for i, s in enumerate(samples):
        gen = generate_fn(s, i)
        out = paste(gen, s["frames"], s["mask"])
        m = clip_metrics(out, s["frames"], s["character"])
        per.append(m)
        log(f"  {name} clip {i}: " + " ".join(f"{k} {v:.3f}" for k, v in m.items()))
    keys = per[0].keys()
    return {k: float(np.mean([p[k] for p in per])) for k in keys}


def write_results(out_dir: str, meta: Dict, rows: Dict[str, Dict[str, float]]) -> str:
    """results.json (meta + rows) and table.md (one markdown row per row); returns the table."""
    import json
    import os
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(dict(meta, rows=rows), f, indent=1)
    lines = ["| row | PSNR box | SSIM box | PSNR frame | SSIM frame | flicker |", "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['psnr_box']:.2f} | {r['ssim_box']:.3f} | {r['psnr_frame']:.2f} | "
                     f"{r['ssim_frame']:.3f} | {r.get('flicker', float('nan')):.2f} |")
    table = "\n".join(lines)
    with open(os.path.join(out_dir, "table.md"), "w") as f:
        f.write(table + "\n")
    return table
