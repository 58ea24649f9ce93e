#!/usr/bin/env python3
"""How well one training step uses the GPU, and what a bigger batch costs (issue 10's throughput).

  python3 scripts/gpu/profile_train.py --config configs/train/demo-run3.json --stage image \
      --batches 96,192,384 --steps 8 --out $OUT/profile_train.json

Renders one batch with the project's tiny test pack (synth.testing: cheap boxes, but the same
work size, conditions and tensors as the real data; the model's cost does not depend on what the
pixels show), then runs train.py's step on it (the stage's objective under bf16 autocast, AdamW,
gradient clipping, EMA) for each batch size, the batch repeated: wall time per step after two warm
steps, samples/s, and for the first batch size one profiled step: the GPU's kernel time as a share
of the step's wall time (low = the step waits on the host: launches, syncs, Python). Data loading is
not part of it (train.py's log has the loader's wait). On the CPU it is a smoke test (tiny batches).
--sdpa cudnn,flash,... repeats the table with attention limited to each kernel family (the image
stage's step spends about three quarters of its GPU time in attention at head size 32).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from standin_model.config import get_config  # noqa: E402
from standin_model.model import StandinModel  # noqa: E402
from standin_train import checkpoints as ckpt  # noqa: E402
from standin_train.data import Backgrounds, SampleMaker, to_tensors  # noqa: E402
from standin_train.objectives import trainable_parameters  # noqa: E402
from train import apply_update, diffusion_objective, make_optimizer, stage_data_config  # noqa: E402


def tiny_assets(root: str):
    import cv2
    from synth import testing as T
    pack = os.path.join(root, "pack")
    T.build_tiny_pack(pack)
    bg = os.path.join(root, "backgrounds")
    os.makedirs(bg, exist_ok=True)
    rng = np.random.default_rng(0)
    img = (rng.random((480, 640, 3)) * 200).astype(np.uint8)
    cv2.imwrite(os.path.join(bg, "plate.jpg"), img)
    with open(os.path.join(bg, "backgrounds.json"), "w") as f:
        json.dump({"files": [{"file": "plate.jpg", "split": "train"}]}, f)
    return pack, bg


def one_batch(cfg_train, stage, n, pack, bg):
    import synth
    data_cfg = stage_data_config(cfg_train, stage)
    maker = SampleMaker(synth.AssetPack.load(pack), Backgrounds(bg, "train"), data_cfg, split="train")
    rng = np.random.default_rng(0)
    items = [maker.make_renderable(rng) for _ in range(n)]
    return torch.utils.data.default_collate(items)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/train/demo-run3.json")
    ap.add_argument("--stage", default="image", choices=["image", "video"])
    ap.add_argument("--batches", default="96,192,384", help="batch sizes per GPU to time")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--render", type=int, default=16, help="distinct samples rendered (repeated up to the batch)")
    ap.add_argument("--deadline", type=float, default=240, help="seconds: skip batch sizes past this")
    ap.add_argument("--sdpa", default="default",
                    help="attention kernels to time, comma-separated: default (PyTorch's choice), cudnn, flash, "
                         "efficient, math (torch.nn.attention.sdpa_kernel; GPU only)")
    ap.add_argument("--model", help="the model configuration to time instead of the config's (configs/models/NAME.json), "
                                    "e.g. an architecture before training it")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    t_start = time.time()
    cuda = torch.cuda.is_available()
    dev = torch.device("cuda" if cuda else "cpu")
    for backend in a.sdpa.split(","):
        attention_kernels(backend, cuda)  # refuses an unknown or unavailable choice before the set-up
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    with open(a.config) as f:
        cfg_train = json.load(f)
    stage = next(s for s in cfg_train["stages"] if s["name"] == a.stage)
    with tempfile.TemporaryDirectory() as tmp:
        pack, bg = tiny_assets(tmp)
        raw = one_batch(cfg_train, stage, a.render, pack, bg)
    base = to_tensors(raw, dev)
    model_name = a.model or cfg_train["model"]
    model = StandinModel(get_config(model_name)).to(dev)
    params = trainable_parameters(model, a.stage)
    objective = diffusion_objective(model, cfg_train["scheduler"], stage).to(dev)
    opt = make_optimizer(params, stage["lr"], cuda)
    ema = ckpt.EMA(model, stage.get("ema", 0.999))
    trained_names = [n for n, p in model.named_parameters() if p.requires_grad]
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
    gen = torch.Generator(device=dev).manual_seed(0)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    frames = stage.get("frames", 1)
    results = {"config": a.config, "model": model_name, "stage": a.stage, "gpu": torch.cuda.get_device_name() if cuda else "cpu",
               "torch": torch.__version__, "frames_per_sample": frames, "runs": [], "profile_top": {}}
    print(f"{results['gpu']}, torch {torch.__version__}, stage {a.stage}, {frames} frame(s) per sample, "
          f"set-up {time.time() - t_start:.0f} s", flush=True)

    def step(b):
        with amp:
            out = objective(b, False, gen)
        apply_update(out["loss"], opt, params, ema, model, trained_names)
        return float(out["loss"])  # train.py reads the loss every step (a sync), so does this

    def time_batch(backend, i, n):
        """Seconds per step at batch n (the rendered samples repeated); the first batch size of each
        kernel choice also gets one profiled step: the GPU's kernel time as a share of the wall time."""
        reps = -(-n // a.render)
        b = {k: (v.repeat(reps, *([1] * (v.dim() - 1)))[:n] if torch.is_tensor(v) else v) for k, v in base.items()}
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        try:
            for _ in range(2):
                step(b)
            sync()
            t0 = time.time()
            for _ in range(a.steps):
                step(b)
            sync()
            per = (time.time() - t0) / a.steps
            busy = None
            if i == 0 and cuda:
                from torch.profiler import ProfilerActivity, profile
                with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                    t1 = time.time()
                    step(b)
                    sync()
                    wall = time.time() - t1
                # kernels only: an operator's row repeats the time of the kernels it launched
                kernel_us = sum(e.self_device_time_total for e in prof.key_averages()
                                if e.device_type == torch.autograd.DeviceType.CUDA)
                busy = kernel_us / 1e6 / wall
                results["profile_top"][backend] = prof.key_averages().table(sort_by="self_cuda_time_total",
                                                                            row_limit=12)
            peak = torch.cuda.max_memory_allocated() / 2 ** 30 if cuda else 0.0
            return {"attention": backend, "batch": n, "s_per_step": per, "samples_per_s": n / per,
                    "frames_per_s": n * frames / per, "gpu_busy": busy, "peak_gib": peak}
        except torch.cuda.OutOfMemoryError if cuda else MemoryError as e:  # noqa: E501
            return {"attention": backend, "batch": n, "error": f"out of memory: {str(e).splitlines()[0][:80]}"}

    print("| attention | batch | s per step | samples/s | frames/s | GPU busy | peak GiB |", flush=True)
    print("|---|---|---|---|---|---|---|", flush=True)
    runs = [(backend, i, int(n)) for backend in a.sdpa.split(",") for i, n in enumerate(a.batches.split(","))]
    for backend, i, n in runs:
        if time.time() - t_start > a.deadline:
            print(f"| {backend} | {n} | skipped: past --deadline | | | | |", flush=True)
            continue
        with attention_kernels(backend, cuda):
            r = time_batch(backend, i, n)
        results["runs"].append(r)
        if "error" in r:
            print(f"| {backend} | {n} | {r['error']} | | | | |", flush=True)
        else:
            busy = r["gpu_busy"]
            print(f"| {backend} | {n} | {r['s_per_step']:.4f} | {r['samples_per_s']:.0f} | {r['frames_per_s']:.0f} | "
                  f"{'-' if busy is None else f'{100 * busy:.0f} %'} | {r['peak_gib']:.1f} |", flush=True)
        if a.out:
            with open(a.out, "w") as f:
                json.dump(results, f, indent=1)
    for backend, table in results["profile_top"].items():
        print(f"-- {backend}\n{table}", flush=True)
    print(f"done in {time.time() - t_start:.0f} s", flush=True)
    return 0


def attention_kernels(backend: str, cuda: bool):
    """A context that limits scaled_dot_product_attention to one kernel family ("default": no limit)."""
    import contextlib
    if backend == "default":
        return contextlib.nullcontext()
    if not cuda:
        raise SystemExit(f"--sdpa {backend}: choosing attention kernels needs a GPU")
    from torch.nn.attention import SDPBackend, sdpa_kernel
    names = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
             "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}
    if backend not in names:
        raise SystemExit(f"--sdpa {backend}: one of default, {', '.join(names)}")
    return sdpa_kernel([names[backend]])


if __name__ == "__main__":
    sys.exit(main())
