#!/usr/bin/python3
"""Milliseconds per UNet frame evaluation of model configurations on this machine's CPU.

    /usr/bin/python3 scripts/bench_unet_cpu.py [--configs demo demo-run1] [--threads 2] [--repeats 2]

Random weights (the cost does not depend on them): one CFG pair of an 8-frame window at the
config's work size with its reference features, timed after a warm-up; the best of --repeats.
Run it with the allocator settings `standin` uses (docs/BENCHMARKS.md "CPU"), e.g.
MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=2147483647, to compare like with like.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from standin_model.config import CONFIGS, get_config  # noqa: E402
from standin_model.export import build_random, count_parameters  # noqa: E402


def ms_per_frame_evaluation(name: str, repeats: int) -> float:
    cfg = get_config(name)
    model = build_random(cfg).eval()
    unet = model.denoising_unet
    f = cfg.vae_scale_factor
    h, w = cfg.height // f, cfg.width // f
    batch, frames = 2, 8  # the conditional and unconditional halves of one window
    with torch.no_grad():
        refs = model.reference_unet.reference_features(torch.randn(1, cfg.unet.in_channels, h, w),
                                                       torch.randn(1, 1, cfg.unet.cross_attention_dim))
        x = torch.randn(batch, unet.conv_in.in_channels, frames, h, w)
        t = torch.full((batch,), 500)
        context = torch.randn(batch, 1, cfg.unet.cross_attention_dim)
        pose = torch.randn(batch, cfg.unet.block_out_channels[0], frames, h, w)
        keep = torch.ones(batch)
        unet(x, t, context, pose, refs, keep, [])  # warm-up
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            unet(x, t, context, pose, refs, keep, [])
            best = min(best, time.perf_counter() - start)
    return best / (batch * frames) * 1000


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", nargs="+", default=["demo", "demo-run1"], choices=sorted(CONFIGS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("| config | parameters | work size | ms per UNet frame evaluation |")
    print("|---|---|---|---|")
    for name in args.configs:
        cfg = get_config(name)
        ms = ms_per_frame_evaluation(name, args.repeats)
        print(f"| {name} | {count_parameters(cfg)['total'] / 1e6:.2f}M | {cfg.width}x{cfg.height} | {ms:.0f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
