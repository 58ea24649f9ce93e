#!/usr/bin/env python3
"""How fast the compiled forms of the denoising UNet run one split CFG pair (issue 11).

  python3 scripts/gpu/bench_compiled.py --config sd15 --frames 24 --size 512x768 \
      --modes eager,aoti,compile,compile-max --budget 540 --out $OUT/compiled.json

One window of the project's own modules with random weights (build_random; values do not change
kernel times), the split CFG pair as the C++ generator runs it: the conditional call with the
reference tokens, the unconditional one without. Modes:
  eager        the modules as they are (SDPA attention)
  aoti         AOTInductor packages (torch.export -> aoti_compile_and_package), one per half of the
               pair (the reference token list is part of the graph's signature), loaded back with
               aoti_load_package, which is what LibTorch's AOTIModelPackageLoader runs in C++
  compile      torch.compile(unet), default mode
  compile-max  torch.compile(unet, mode="max-autotune-no-cudagraphs")
Each mode reports its compile time, the median time of each half over --iters calls (wall
clock with a device synchronise, after two warm calls; a pair is their sum) and its largest
difference from eager on the same inputs. --budget stops before a compile unlikely to finish in
time (the device call's limit), so one call always prints a table of what it reached. Results also go to --out (JSON).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from standin_model.config import get_config  # noqa: E402
from standin_model.export import build_random  # noqa: E402

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
# Rough compile times on an H200 for sd15 (seconds), to skip what cannot finish within --budget.
EXPECTED_COMPILE_S = {"eager": 10, "aoti": 200, "compile": 180, "compile-max": 420}
# The weights outside the shared object: sd15's UNet with its motion modules is over 2 GB in fp16,
# and a package holding them inside its .so compiled but crashed on load (torch 2.11, H200).
AOTI_CONFIGS = {"aot_inductor.package_constants_in_so": False,
                "aot_inductor.package_constants_on_disk_format": "binary_blob"}


class ConditionalHalf(nn.Module):
    """The conditional call with the reference tokens as separate inputs (export needs a fixed
    signature, not a list whose length changes between the halves)."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x, t, context, pose, keep, *tokens):
        return self.unet(x, t, context, pose, list(tokens), keep, [])


class UnconditionalHalf(nn.Module):
    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x, t, context, pose, keep):
        return self.unet(x, t, context, pose, [], keep, [])


def synchronize(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def median_seconds(fn, iters: int, dev: torch.device, warm: int = 2) -> float:
    for _ in range(warm):
        fn()
    synchronize(dev)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        synchronize(dev)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def difference(a: torch.Tensor, b: torch.Tensor) -> dict:
    d = (a.float() - b.float()).abs()
    return {"max_abs": float(d.max()), "mean_abs": float(d.mean()), "ref_abs_mean": float(b.float().abs().mean())}


def split_pair_inputs(cfg, mods, frames: int, H: int, W: int, dev, dt):
    """Random inputs of one window's split CFG pair at work size W x H (values do not change kernel
    times): latents x, timestep t, image embedding, pose features (with skeleton depth where the
    model modulates by it), reference_keep and the ReferenceNet's tokens."""
    vs = cfg.vae_scale_factor
    h, w = H // vs, W // vs
    g = torch.Generator(device=dev).manual_seed(0)
    with torch.no_grad():
        ref_latent = torch.randn(1, cfg.vae.latent_channels, h, w, device=dev, dtype=dt, generator=g)
        embed = torch.randn(1, 1, cfg.clip.projection_dim, device=dev, dtype=dt, generator=g)
        tokens = [tk.contiguous() for tk in mods["reference_net"](ref_latent, embed)]
        pose_maps = [torch.rand(frames, 3, H, W, device=dev, dtype=dt, generator=g)]
        if cfg.pose_modulation:
            pose_maps.append(torch.rand(frames, 1, H, W, device=dev, dtype=dt, generator=g))
        pose = mods["pose_guider"](*pose_maps).permute(1, 0, 2, 3).unsqueeze(0).contiguous()
        x = torch.randn(1, cfg.unet_in_channels, frames, h, w, device=dev, dtype=dt, generator=g)
    t = torch.full((1,), 500, dtype=torch.long, device=dev)
    keep = torch.ones(1, device=dev)
    return x, t, embed, pose, keep, tokens


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="sd15")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--size", default="512x768", help="WxH of the work frame")
    ap.add_argument("--dtype", default="float16", choices=sorted(DTYPES))
    ap.add_argument("--device", default="cuda", help="cuda (the benchmark) or cpu (a smoke test)")
    ap.add_argument("--modes", default="eager,aoti,compile,compile-max")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--budget", type=float, default=540, help="seconds this script may take")
    ap.add_argument("--expected-compile-s", type=float,
                    help="what a compile is expected to take, to skip one that cannot finish within --budget "
                         "(default: EXPECTED_COMPILE_S's cold figures; less when an earlier process left "
                         "Inductor's caches warm, as scripts/gpu/bench.sh's warm-up does)")
    ap.add_argument("--work", default="/tmp/standin-compiled")
    ap.add_argument("--out", help="results JSON")
    a = ap.parse_args(argv)
    t_start = time.time()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    dev, dt = torch.device(a.device), DTYPES[a.dtype]
    W, H = (int(v) for v in a.size.split("x"))
    cfg = get_config(a.config)
    model = build_random(cfg, seed=0, exercise=False, device=dev)  # drawn on the GPU: seconds, not a minute
    mods = {k: m.to(dev, dt).eval() for k, m in model.bundle_modules().items()}
    unet = mods["denoising_unet"]
    # The split pair's conditional call always keeps its reference: no data-dependent test on
    # reference_keep, so torch.export can trace the UNet and torch.compile gets one graph.
    unet.reference_always_kept = True
    h, w, F = H // cfg.vae_scale_factor, W // cfg.vae_scale_factor, a.frames
    x, t, embed, pose, keep, tokens = split_pair_inputs(cfg, mods, F, H, W, dev, dt)
    uncond_ctx = torch.zeros_like(embed)
    cond_args = (x, t, embed, pose, keep, *tokens)
    uncond_args = (x, t, uncond_ctx, pose, keep)
    halves = {"cond": ConditionalHalf(unet).eval(), "uncond": UnconditionalHalf(unet).eval()}
    with torch.no_grad():
        ref = {"cond": halves["cond"](*cond_args), "uncond": halves["uncond"](*uncond_args)}
    synchronize(dev)
    results = {"config": a.config, "frames": F, "size": a.size, "latent": [h, w], "dtype": a.dtype,
               "torch": torch.__version__, "gpu": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu", "modes": {}}
    print(f"{a.config} {F} frames {W}x{H} (latent {w}x{h}) {a.dtype}, torch {torch.__version__}, "
          f"{results['gpu']}; set-up {time.time() - t_start:.0f} s", flush=True)

    def report():
        print("| mode | compile s | s cond | s uncond | s per pair | vs eager | max abs diff (cond / uncond) |")
        print("|---|---|---|---|---|---|---|")
        base = results["modes"].get("eager", {}).get("seconds", {})
        for name, r in results["modes"].items():
            sec, diff = r.get("seconds", {}), r.get("diff", {})
            cells = [f"{sec[k]:.4f}" if k in sec else "-" for k in ("cond", "uncond")]
            pair = sum(sec.values()) if len(sec) == 2 else None
            if pair:
                speed = f"{sum(base.values()) / pair:.2f}x" if len(base) == 2 else "-"
            else:  # one half only: compare that half
                speed = "-" if not sec or not base else "; ".join(f"{k} {base[k] / v:.2f}x" for k, v in sec.items())
            d = " / ".join(f"{diff[k]['max_abs']:.2e}" if k in diff else "-" for k in ("cond", "uncond"))
            note = r.get("error", r.get("skipped", ""))[:80]
            print(f"| {name} | {r.get('compile_s', 0):.0f} | {cells[0]} | {cells[1]} | "
                  f"{f'{pair:.4f}' if pair else '-'} | {speed} | {d} {note} |", flush=True)
        if a.out:
            with open(a.out, "w") as f:
                json.dump(results, f, indent=1)

    args_of = {"cond": cond_args, "uncond": uncond_args}
    for mode in a.modes.split(","):
        left = a.budget - (time.time() - t_start)
        expected = EXPECTED_COMPILE_S.get(mode, 60)
        if a.expected_compile_s is not None and mode != "eager":
            expected = a.expected_compile_s
        if left < expected:
            results["modes"][mode] = {"skipped": f"{left:.0f} s of budget left, compile takes ~{expected:.0f} s"}
            report()
            continue
        r = results["modes"][mode] = {"seconds": {}, "diff": {}, "compile_s": 0.0}
        compiled = None
        if mode in ("compile", "compile-max") and hasattr(torch, "compile"):
            compiled = torch.compile(unet, **({"mode": "max-autotune-no-cudagraphs"} if mode == "compile-max" else {}))
        for half in ("cond", "uncond"):
            if half == "uncond" and mode == "aoti" and a.budget - (time.time() - t_start) < EXPECTED_COMPILE_S["aoti"] / 2:
                r["skipped"] = "no budget left for the unconditional half"
                break
            t0 = time.time()
            try:
                with torch.no_grad():
                    args = args_of[half]
                    if mode == "eager":
                        fn = (lambda m=halves[half], args=args: m(*args))
                    elif mode == "aoti":
                        os.makedirs(a.work, exist_ok=True)
                        ep = torch.export.export(halves[half], args)
                        path = torch._inductor.aoti_compile_and_package(
                            ep, package_path=os.path.join(a.work, f"unet_{half}.pt2"),
                            inductor_configs=AOTI_CONFIGS)
                        fn = (lambda runner=torch._inductor.aoti_load_package(path), args=args: runner(*args))
                    elif compiled is not None:
                        toks = tokens if half == "cond" else []
                        fn = (lambda ctx=args[2], toks=toks: compiled(x, t, ctx, pose, toks, keep, []))
                    else:
                        raise RuntimeError(f"mode {mode} needs torch.compile (torch >= 2)")
                    out = fn()  # compiles on first use
                    synchronize(dev)
                    r["compile_s"] += time.time() - t0
                    r["seconds"][half] = median_seconds(fn, a.iters, dev)
                r["diff"][half] = difference(out, ref[half])
            except Exception as e:  # one failing mode must not lose the others' numbers
                traceback.print_exc()
                r["error"] = f"{half}: {type(e).__name__}: {e}".splitlines()[0]
                break
        print(f"== {mode} done at {time.time() - t_start:.0f} s", flush=True)
        report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
