#!/usr/bin/env python3
"""Does a trained model use its reference? The training loss on held-out clips three ways.

  /usr/bin/python3 scripts/reference_sensitivity.py --weights models/standin-demo.pth \
      --clips-file .train/eval_clips.npz --out /tmp/refsens.json

The same clips, noise levels and noise each time (the video stage's objective, every condition of
the bundle), with the clip's own reference, with another clip's reference (the batch rolled by one:
another identity) and with none (the unconditional path the model learns from reference drop).
A model that copies appearance from its reference loses clearly more with another identity's; one
that draws the figure from the pose and the surroundings alone scores all three alike (docs/TRAINING.md
"Run 4"). Cheaper than the evaluation's sampled rows (no sampling), so it can follow a run.
It also reports the share of the denoiser's self-attention weight that lands on the reference
tokens, per level (with as many reference tokens as own ones, uniform weights would give 50 %).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from collections import defaultdict

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from standin_train.data import to_tensors  # noqa: E402
from standin_train.objectives import DiffusionObjective  # noqa: E402

CASES = ("own", "other", "none")


def clip_batch(clips, frames: int) -> dict:
    """The first `frames` frames of each clip as one batch of the training tensors."""
    raw = {k: np.stack([c[k][:frames] for c in clips]) for k in ("frames", "environment", "mask", "pose", "depth",
                                                                 "character")}
    raw["reference"] = np.stack([c["reference"] for c in clips])
    raw["reference_clip"] = np.stack([c["reference_clip"] for c in clips])
    raw["object"] = np.zeros_like(raw["environment"])
    raw["has_object"] = np.zeros(len(clips), bool)
    return to_tensors(raw)


def with_other_references(batch: dict) -> dict:
    """Each clip given the next clip's reference (its image and its image-encoder input)."""
    out = dict(batch)
    out["reference"] = batch["reference"].roll(1, 0)
    out["reference_clip"] = batch["reference_clip"].roll(1, 0)
    return out


@contextlib.contextmanager
def reference_attention_shares(shares: dict):
    """While active, every attention call whose keys are its queries' own tokens followed by as
    many or more extra (reference) tokens adds its mean softmax weight on the extra ones to
    shares[number of queries]. The model modules look ``attention`` up in standin_model.layers."""
    import standin_model.layers as layers
    plain = layers.attention

    def observed(q, k, v, bias=None):
        n, m = q.shape[2], k.shape[2]
        if m >= 2 * n:
            scores = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(q.shape[-1])
            if bias is not None:
                scores = scores + bias.float()
            shares[n].append(float(scores.softmax(-1)[..., n:].sum(-1).mean()))
        return plain(q, k, v, bias)

    layers.attention = observed
    try:
        yield shares
    finally:
        layers.attention = plain


def sensitivity(model, scheduler_cfg: dict, batch: dict, seeds: int) -> dict:
    """Mean loss per case over `seeds` draws of timesteps and noise (the same draws for every case),
    on the model's device."""
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    keep = DiffusionObjective(model, scheduler_cfg, reference_drop=0.0).to(device)
    drop = DiffusionObjective(model, scheduler_cfg, reference_drop=1.0).to(device)
    inputs = {"own": (keep, batch), "other": (keep, with_other_references(batch)), "none": (drop, batch)}
    losses = {case: [] for case in CASES}
    shares = defaultdict(list)
    with torch.no_grad():
        for seed in range(seeds):
            for case, (objective, b) in inputs.items():
                watch = reference_attention_shares(shares) if case == "own" else contextlib.nullcontext()
                with watch:
                    out = objective(b, False, torch.Generator(device=device).manual_seed(seed))
                losses[case].append(float(out["loss"]))
    result = {case: {"mean": float(np.mean(v)), "per_seed": v} for case, v in losses.items()}
    result["reference_attention_share"] = {str(n): float(np.mean(v)) for n, v in sorted(shares.items())}
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="a shipped .pth (scripts/standin_train/checkpoints.py)")
    ap.add_argument("--clips-file", required=True, help="clips saved by evaluate.py --save-clips")
    ap.add_argument("--clips", type=int, default=8, help="the first N clips (at least 2: one lends the other its reference)")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (float32 either way: a loss, not a speed)")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    if a.clips < 2:
        ap.error("--clips must be at least 2")
    if a.threads:
        torch.set_num_threads(a.threads)
    import evaluate
    t0 = time.time()
    model, meta = evaluate.model_from_weights(a.weights)
    model.to(a.device).eval()
    clips = evaluate.load_clips(a.clips_file)[: a.clips]
    if len(clips) < 2:
        raise SystemExit(f"{a.clips_file}: {len(clips)} clip(s); two or more are needed")
    result = sensitivity(model, meta["scheduler"], clip_batch(clips, a.frames), a.seeds)
    own = result["own"]["mean"]
    print("| reference | loss | vs own |\n|---|---|---|")
    for case in CASES:
        print(f"| {case} | {result[case]['mean']:.4f} | {100 * (result[case]['mean'] / own - 1):+.1f} % |")
    print("attention weight on the reference tokens (own reference), by queries per frame: " + ", ".join(
        f"{n}: {100 * v:.1f} %" for n, v in result["reference_attention_share"].items()))
    print(f"{len(clips)} clips x {a.frames} frames, {a.seeds} noise draws, {time.time() - t0:.0f} s")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"weights": a.weights, "clips": len(clips), "frames": a.frames, "seeds": a.seeds, **result}, f,
                      indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
