#!/usr/bin/env python3
"""FP8 (e4m3) linears against fp16 in the denoising UNet: speed and quality (issue 11).

  python3 scripts/gpu/bench_fp8.py --config sd15 --frames 24 --size 512x768 \
      --trained models/standin-demo.pth --budget 540 --out $OUT/fp8.json

CPU smoke test (FP8 emulated by scripts/standin_model/fp8.py's hand-made e4m3 rounding; ~3 min on
two cores, most of it the trained model's generations):
  /usr/bin/python3 scripts/gpu/bench_fp8.py --config tiny --device cpu --dtype float32 --frames 8 \
      --size 64x96 --steps 4 --quality-frames 8 --min-features 16 --trained models/standin-demo.pth

The UNet is the project's own module with random weights (build_random; values do not change kernel
times) in --dtype, its nn.Linear layers swapped for Fp8Linear (convert_linears). Variants are
WEIGHTS/ACTIVATIONS scalings: channel/tensor (per-output-channel weight scales, one dynamic scale per
activation tensor; row-wise kernels), tensor/tensor (tensor-wise kernels), channel/row (a scale per
activation row); a "+fp32acc" suffix turns off _scaled_mm's fast accumulation. Stages, each printed
and written to --out as it ends, so a call cut short still reports what it reached:
  1. the top level's three linear shapes (C -> C, C -> 8C, 4C -> C for the first block width C,
     on frames x latent pixels rows): fp16, the FP8 product alone, FP8 with the activation's
     quantisation; the real FP8 product against its emulation (the same quantisation: they must
     agree to ~1e-3).
  2. eager timing of the split CFG pair of one window (as bench_compiled.py: the conditional call
     with the reference tokens, the unconditional one without): median of --iters after 2 warm calls.
  3. quality: reference_pipeline.generate, a whole --steps generation of --quality-frames frames on
     synthetic conditions with the fp16 UNet and with each FP8 UNet from the same noise: latents
     rel-L2 and frames PSNR (target >= 35 dB). With --trained, first the same on the trained model of
     that weights file, at its own size and settings (random weights are a weak stand-in for trained
     ones), then on the random --config weights.
  4. torch.compile of the first variant's FP8 UNet, then of the fp16 one, while --budget allows.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
import traceback

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import reference_pipeline as RP  # noqa: E402
from bench_compiled import median_seconds, split_pair_inputs, synchronize  # noqa: E402
from bench_reference import TOL, agreement  # noqa: E402
from evaluate import EagerBundle, eager_from_weights  # noqa: E402
from standin_model.config import get_config  # noqa: E402
from standin_model.export import build_random  # noqa: E402
from standin_model.fp8 import Fp8Linear, convert_linears, fp8_matmul_available  # noqa: E402

SPEED_TARGET = 1.4
# sd15 on an H200: torch.compile of the UNet's two halves took 182 s (docs/BENCHMARKS.md)
EXPECTED_COMPILE_S = {"sd15": 200}
EXPECTED_GENERATE_S = {"sd15": 25}


def parse_variant(spec: str) -> dict:
    base, _, suffix = spec.partition("+")
    weights, _, acts = base.partition("/")
    if suffix not in ("", "fp32acc") or not acts:
        raise SystemExit(f"bad variant {spec!r}: WEIGHTS/ACTIVATIONS[+fp32acc], e.g. channel/tensor")
    return {"weight_scaling": weights, "act_scaling": acts, "fast_accum": suffix != "fp32acc"}


def rel_l2(a, b):
    a, b = a.float(), b.float()
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def weight_gb(module):
    return sum(t.numel() * t.element_size() for t in module.state_dict().values()) / 1e9


def fp8_unet(unet, variant, min_features):
    u = copy.deepcopy(unet)
    report = convert_linears(u, min_features=min_features, **parse_variant(variant))
    paths = {"emulated" if m.emulate else "torch._scaled_mm" for m in u.modules() if isinstance(m, Fp8Linear)}
    report["path"] = "/".join(sorted(paths))
    return u, report


def linear_check(K, N, M, dev, dt, variants, iters):
    """Stage 1: one linear K -> N on M rows."""
    g = torch.Generator(device=dev).manual_seed(0)
    lin = nn.Linear(K, N).to(dev, dt).eval()
    x = torch.randn(M, K, device=dev, dtype=dt, generator=g)
    out = {"K": K, "N": N, "M": M, "variants": {}}
    with torch.no_grad():
        ref = lin(x)
        out["dense_s"] = median_seconds(lambda: lin(x), iters, dev)
        for v in variants:
            r = out["variants"][v] = {}
            try:
                f = Fp8Linear.from_linear(lin, **parse_variant(v))
                x_q, scale_a = f.quantize_input(x)
                r["path"] = "emulated" if f.emulate else "torch._scaled_mm"
                r["gemm_s"] = median_seconds(lambda: f.matmul(x_q, scale_a, dt), iters, dev)
                r["with_quantize_s"] = median_seconds(lambda: f(x), iters, dev)
                y = f(x)
                r["rel_l2_vs_dense"] = rel_l2(y, ref)
                if not f.emulate:
                    emulated = Fp8Linear.from_linear(lin, **parse_variant(v), emulate=True)
                    r["rel_l2_vs_emulated"] = rel_l2(y, emulated(x))
            except Exception as e:  # one failing variant must not lose the others
                traceback.print_exc()
                r["error"] = f"{type(e).__name__}: {e}".splitlines()[0]
    return out


def quality(bundle, unets, conds, dev):
    """Stage 3: the fp16 generation, then one per FP8 UNet from the same conditions and noise."""
    for u in [bundle["denoising_unet"], *unets.values()]:
        u.reference_always_kept = False  # generate() batches the CFG pair and masks the reference
    timings = {}
    ref = RP.generate(bundle, conds, timings=timings)
    res = {"reference_denoise_s": timings["denoise"], "variants": {}}
    for name, u in unets.items():
        t = {}
        try:
            out = RP.generate(bundle.with_unet(u), conds, timings=t)
            ag = agreement(ref, out)
            ag["denoise_s"] = t["denoise"]
            ag["pass"] = bool(ag["frames"].get("psnr_db", 0) >= TOL["frames_psnr_db"] and ag["latents"]["finite"])
            res["variants"][name] = ag
        except Exception as e:
            traceback.print_exc()
            res["variants"][name] = {"error": f"{type(e).__name__}: {e}".splitlines()[0]}
        synchronize(dev)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="sd15")
    ap.add_argument("--frames", type=int, default=24, help="frames of the timed window")
    ap.add_argument("--size", default="512x768", help="WxH of the work frame")
    ap.add_argument("--dtype", default="float16", choices=sorted(RP.DTYPES))
    ap.add_argument("--device", default="cuda", help="cuda (the benchmark) or cpu (a smoke test, FP8 emulated)")
    ap.add_argument("--variants", default="channel/tensor,tensor/tensor,channel/row")
    ap.add_argument("--min-features", type=int, default=64, help="linears with K or N below stay in --dtype")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--quality-frames", type=int, default=24)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--cfg", type=float, default=3.5)
    ap.add_argument("--window", type=int, default=24)
    ap.add_argument("--overlap", type=int, default=4)
    ap.add_argument("--trained", help="also check quality on this trained weights file (models/standin-demo.pth)")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--budget", type=float, default=540, help="seconds this script may take")
    ap.add_argument("--out", help="results JSON")
    a = ap.parse_args(argv)
    t_start = time.time()

    def left():
        return a.budget - (time.time() - t_start)

    dev, dt = torch.device(a.device), RP.DTYPES[a.dtype]
    variants = a.variants.split(",")
    for v in variants:
        parse_variant(v)
    W, H = (int(v) for v in a.size.split("x"))
    cfg = get_config(a.config)
    # exercised: every layer, motion modules included, reaches the output; drawn on --device
    model = build_random(cfg, seed=0, device=dev)
    bundle = EagerBundle(model, None, "random", a.device, a.dtype)
    man, mods = bundle.manifest, bundle.modules
    unet = mods["denoising_unet"]
    unets, conversions = {}, {}
    for v in variants:
        try:
            unets[v], conversions[v] = fp8_unet(unet, v, a.min_features)
        except Exception as e:
            traceback.print_exc()
            conversions[v] = {"error": f"{type(e).__name__}: {e}".splitlines()[0]}
    vs = cfg.vae_scale_factor
    h, w, F = H // vs, W // vs, a.frames
    results = {"config": a.config, "frames": F, "size": a.size, "dtype": a.dtype, "torch": torch.__version__,
               "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
               "fp8_available": fp8_matmul_available(dev), "min_features": a.min_features,
               "conversions": conversions,
               "weights_gb": {a.dtype: weight_gb(unet), **{v: weight_gb(u) for v, u in unets.items()}}}
    print(f"{a.config} {F} frames {W}x{H} (latent {w}x{h}) {a.dtype}, torch {torch.__version__}, {results['gpu']}, "
          f"FP8 products {'on torch._scaled_mm' if results['fp8_available'] else 'EMULATED'}; "
          f"set-up {time.time() - t_start:.0f} s", flush=True)
    for v, c in conversions.items():
        print(f"  {v}: {c.get('converted', 0)} linears converted, {c.get('skipped', 0)} skipped "
              f"{list(c.get('skipped_layers', {}).items())[:3]} {c.get('error', '')}", flush=True)

    def save():
        if a.out:
            with open(a.out, "w") as f:
                json.dump(results, f, indent=1)

    # 1. the top level's linear shapes: attention projections, GEGLU in, feed-forward out
    C = cfg.unet.block_out_channels[0]
    results["linear"] = []
    for K, N in ((C, C), (C, 8 * C), (4 * C, C)):
        lin = linear_check(K, N, F * h * w, dev, dt, variants, max(a.iters, 20))
        results["linear"].append(lin)
        print(f"== linear {K} -> {N} on {lin['M']} rows: {a.dtype} {lin['dense_s'] * 1e3:.3f} ms", flush=True)
        for v, r in lin["variants"].items():
            if "error" in r:
                print(f"  {v}: {r['error']}")
                continue
            print(f"  {v} ({r['path']}): product alone {r['gemm_s'] * 1e3:.3f} ms "
                  f"({lin['dense_s'] / r['gemm_s']:.2f}x), with the activation's quantisation "
                  f"{r['with_quantize_s'] * 1e3:.3f} ms ({lin['dense_s'] / r['with_quantize_s']:.2f}x); "
                  f"rel-L2 vs {a.dtype} {r['rel_l2_vs_dense']:.4f}"
                  + (f", vs emulation {r['rel_l2_vs_emulated']:.1e}" if "rel_l2_vs_emulated" in r else ""), flush=True)
        save()

    # 2. eager split CFG pair
    x, t, embed, pose, keep, tokens = split_pair_inputs(cfg, mods, F, H, W, dev, dt)
    uncond_ctx = torch.zeros_like(embed)

    def pair(u):
        def run():
            with torch.no_grad():
                return u(x, t, embed, pose, tokens, keep, []), u(x, t, uncond_ctx, pose, [], keep, [])
        return run

    results["eager"] = eager = {}
    with torch.no_grad():
        cond_ref = pair(unet)()[0]
    for name, u in [(a.dtype, unet), *unets.items()]:
        u.reference_always_kept = True  # the split pair's conditional call keeps its reference
        try:
            eager[name] = {"pair_s": median_seconds(pair(u), a.iters, dev)}
            if u is not unet:
                eager[name]["cond_rel_l2"] = rel_l2(pair(u)()[0], cond_ref)
        except Exception as e:
            traceback.print_exc()
            eager[name] = {"error": f"{type(e).__name__}: {e}".splitlines()[0]}
        print(f"== eager {name}: {eager[name]}", flush=True)
    save()

    # 3. quality over a whole generation: the trained model first (the check that matters, and quick),
    #    then the random sd15 weights, as far as the budget goes
    good = {v: u for v, u in unets.items() if "error" not in eager.get(v, {})}
    if a.trained and left() < 30:
        results["quality_trained"] = {"skipped": f"{left():.0f} s of budget left"}
    elif a.trained:
        try:
            tbundle = eager_from_weights(a.trained, a.device, a.dtype)
            geo = tbundle.manifest["geometry"]
            tunets = {v: fp8_unet(tbundle["denoising_unet"], v, a.min_features)[0] for v in good}
            tconds = RP.synthetic_conds(tbundle.manifest, a.quality_frames, seed=0, steps=a.steps)
            results["quality_trained"] = quality(tbundle, tunets, tconds, dev)
            results["quality_trained"]["model"] = f"{tbundle.manifest['config']} {geo['width']}x{geo['height']} ({os.path.basename(a.trained)})"
            del tunets, tbundle
        except Exception as e:
            traceback.print_exc()
            results["quality_trained"] = {"error": f"{type(e).__name__}: {e}".splitlines()[0]}
        print_quality(f"quality, trained model {results['quality_trained'].get('model', '')}", results["quality_trained"])
        save()

    per_generation = EXPECTED_GENERATE_S.get(a.config, 5)
    if left() > per_generation * (1 + len(good)):
        conds = RP.synthetic_conds(man, a.quality_frames, seed=0, height=H, width=W, steps=a.steps, cfg=a.cfg,
                                   window=a.window, overlap=a.overlap, sampler=0)
        results["quality"] = quality(bundle, good, conds, dev)
        print_quality(f"quality ({a.quality_frames} frames, {a.steps} steps)", results["quality"])
    else:
        results["quality"] = {"skipped": f"{left():.0f} s of budget left"}
    save()

    # 4. compiled (the table so far first: a compile that overruns the device call loses nothing else)
    if not a.no_compile and hasattr(torch, "compile") and dev.type == "cuda":
        report(results, a.dtype, variants)
        save()
    results["compiled"] = compiled = {}
    order = [(variants[0], unets.get(variants[0])), (a.dtype, unet)]
    for name, u in order:
        expected = EXPECTED_COMPILE_S.get(a.config, 60)
        if a.no_compile or not hasattr(torch, "compile") or dev.type != "cuda" or u is None:
            compiled[name] = {"skipped": "--no-compile" if a.no_compile else "needs torch.compile on a CUDA device"
                              if u is not None else "no FP8 UNet"}
            continue
        if left() < expected:
            compiled[name] = {"skipped": f"{left():.0f} s of budget left, compile takes ~{expected} s"}
            continue
        u.reference_always_kept = True
        try:
            t0 = time.time()
            fn = pair(torch.compile(u))
            out = fn()[0]  # compiles both halves' graphs
            synchronize(dev)
            compiled[name] = {"compile_s": time.time() - t0, "pair_s": median_seconds(fn, a.iters, dev),
                              "cond_rel_l2_vs_eager": rel_l2(out, pair(u)()[0])}
        except Exception as e:
            traceback.print_exc()
            compiled[name] = {"error": f"{type(e).__name__}: {e}".splitlines()[0]}
        print(f"== compiled {name}: {compiled[name]}", flush=True)
        save()

    report(results, a.dtype, variants)
    save()
    return 0


def print_quality(title, res):
    if "variants" not in res:
        print(f"== {title}: {res}", flush=True)
        return
    print(f"== {title}: reference denoise {res['reference_denoise_s']:.1f} s", flush=True)
    for v, r in res["variants"].items():
        if "error" in r:
            print(f"  {v}: {r['error']}", flush=True)
            continue
        print(f"  {v}: latents rel-L2 {r['latents']['rel_l2']:.4f}, frames PSNR {r['frames']['psnr_db']:.1f} dB, "
              f"denoise {r['denoise_s']:.1f} s", flush=True)


def report(results, base, variants):
    """One markdown table, then the issue's two targets."""
    eager, comp = results.get("eager", {}), results.get("compiled", {})
    q, qt = results.get("quality", {}).get("variants", {}), (results.get("quality_trained") or {}).get("variants", {})

    def num(d, key, fmt):
        return format(d[key], fmt) if key in d else "-"

    def speed(table, name):
        b, r = table.get(base, {}), table.get(name, {})
        return f"{b['pair_s'] / r['pair_s']:.2f}x" if "pair_s" in b and "pair_s" in r else "-"

    def note(d):
        return (d.get("error") or d.get("skipped") or "")[:60]

    print()
    print(f"| variant (weights / activations) | FP8 linears (skipped) | UNet weights GB | eager s per pair | vs {base} "
          f"| compiled s per pair | vs {base} compiled | cond call rel-L2 | generation: latents rel-L2 "
          f"| frames PSNR dB | PSNR, trained model |")
    print("|" + "---|" * 11)
    print(f"| {base} | - | {results['weights_gb'][base]:.2f} | {num(eager.get(base, {}), 'pair_s', '.4f')} | 1.00x | "
          f"{num(comp.get(base, {}), 'pair_s', '.4f')} {note(comp.get(base, {}))} | "
          f"{'1.00x' if 'pair_s' in comp.get(base, {}) else '-'} | - | - | - | - |")
    best = {"eager": None, "compiled": None}
    for v in variants:
        c = results["conversions"].get(v, {})
        e, k = eager.get(v, {}), comp.get(v, {})
        qv, qtv = q.get(v, {}), qt.get(v, {})
        psnr = qv.get("frames", {}).get("psnr_db")
        tpsnr = qtv.get("frames", {}).get("psnr_db")
        print(f"| {v} ({c.get('path', '?')}) | {c.get('converted', '-')} ({c.get('skipped', '-')}) | "
              f"{results['weights_gb'].get(v, float('nan')):.2f} | {num(e, 'pair_s', '.4f')} {note(e)} | {speed(eager, v)} | "
              f"{num(k, 'pair_s', '.4f')} {note(k)} | {speed(comp, v)} | {num(e, 'cond_rel_l2', '.4f')} | "
              f"{num(qv.get('latents', {}), 'rel_l2', '.4f')} {note(qv)} | {'-' if psnr is None else f'{psnr:.1f}'} | "
              f"{'-' if tpsnr is None else f'{tpsnr:.1f}'} {note(qtv)} |")
        for table, key in ((eager, "eager"), (comp, "compiled")):
            if "pair_s" in table.get(v, {}) and "pair_s" in table.get(base, {}):
                s = table[base]["pair_s"] / table[v]["pair_s"]
                if best[key] is None or s > best[key][0]:
                    best[key] = (s, v)
    print()
    for key, b in best.items():
        if b:
            print(f"speed target (FP8 >= {SPEED_TARGET}x {base}), {key}: best {b[0]:.2f}x ({b[1]}): "
                  f"{'met' if b[0] >= SPEED_TARGET else 'NOT met'}")
    for label, table in (("random weights", q), ("trained model", qt)):
        passed = [v for v, r in table.items() if r.get("pass")]
        if table:
            print(f"quality target (frames PSNR >= {TOL['frames_psnr_db']} dB over the whole generation), {label}: "
                  f"met by {', '.join(passed) if passed else 'no variant'}")
    results["targets"] = {"speed": {k: b and {"speedup": b[0], "variant": b[1]} for k, b in best.items()},
                          "quality_random": [v for v, r in q.items() if r.get("pass")],
                          "quality_trained": [v for v, r in qt.items() if r.get("pass")]}


if __name__ == "__main__":
    sys.exit(main())
