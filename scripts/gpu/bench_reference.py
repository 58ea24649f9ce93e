#!/usr/bin/env python3
"""Python side of the generator benchmark (scripts/gpu/bench.sh, docs/BENCHMARKS.md).

  bench_reference.py conds   --bundle B --frames 48 --out conds.pt            # same inputs for both sides
  bench_reference.py run     --bundle B --conds conds.pt --device cuda --dtype float16 \
                             --result py.pt --metrics py.json [--flops] [--peak]
  bench_reference.py compare --python-metrics py.json --python-result py.pt \
                             --cpp-metrics cpp.json [--replace replace.json] --summary OUT.md --json OUT.json

``run`` is the eager reference exactly as scripts/reference_pipeline.py runs it (its Bundle with
eager=True and its generate(), SDPA attention), after one untimed warm-up generation of
--warmup-steps steps (cuBLAS/cuDNN handles, allocator), so both sides are timed warm.
--flops counts the UNet's floating-point operations for one window with
torch.utils.flop_counter.FlopCounterMode (matmuls, convolutions, attention; elementwise ops and
norms are not counted), in both CFG formulations: "batched" (one call, B=2, reference masked for
the unconditional half) and "split" (two B=1 calls, the unconditional one without reference).
--peak measures the dense bf16 (and fp16) matmul rate on this GPU (8192^3, median of 20).
``compare`` checks that C++ and Python outputs agree and writes the side-by-side table.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import reference_pipeline as RP  # noqa: E402


def _sync(dev):
    if torch.device(dev).type == "cuda":
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------- conds
def cmd_conds(a) -> int:
    with open(os.path.join(a.bundle, "model.json")) as f:
        man = json.load(f)
    c = RP.synthetic_conds(man, a.frames, seed=a.seed, height=a.height, width=a.width, objects=a.objects,
                           steps=a.steps, cfg=a.cfg, window=a.window, overlap=a.overlap, sampler=0)
    c["cfg"] = torch.tensor(float(a.cfg), dtype=torch.float64)
    torch.save(c, a.out)
    print(f"conds: {a.frames} frames {c['pose'].shape[3]}x{c['pose'].shape[2]} -> {a.out}")
    return 0


# ----------------------------------------------------------------------------- peak
def measure_peak(dtype, n=8192, iters=20):
    g = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(n, n, device="cuda", dtype=dtype, generator=g)
    b = torch.randn(n, n, device="cuda", dtype=dtype, generator=g)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        a @ b
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e) / 1e3)
    times.sort()
    return {"n": n, "median_s": times[len(times) // 2], "tflops": 2 * n ** 3 / times[len(times) // 2] / 1e12,
            "best_tflops": 2 * n ** 3 / times[0] / 1e12}


# ----------------------------------------------------------------------------- one window's UNet inputs
def window_inputs(bundle, conds, window):
    """Reference tokens, pose features and a random sample for the first window (FLOPs and kernel
    times do not depend on the values)."""
    man = bundle.manifest
    dev, dt = bundle.device, bundle.dtype
    sf = float(man["latent"]["scaling_factor"])
    T, _, H, W = conds["pose"].shape
    fw = min(window, T)
    h, w = H // man["geometry"]["vae_scale_factor"], W // man["geometry"]["vae_scale_factor"]
    cin = man["geometry"]["unet_in_channels"]
    with torch.no_grad():
        ref_latent = bundle["vae_encoder"](conds["reference"].to(dev, dt)) * sf
        embed = bundle["image_encoder"](conds["reference_clip"].to(dev, dt))
        tokens = bundle["reference_net"](ref_latent, embed)
        pose = bundle["pose_guider"](conds["pose"][:fw].to(dev, dt)).permute(1, 0, 2, 3).unsqueeze(0)
        x = torch.randn(1, cin, fw, h, w, device=dev, dtype=dt)
    unet = bundle["denoising_unet"]
    t1 = torch.full((1,), 500, dtype=torch.long, device=dev)
    one = torch.ones(1, device=dev)

    def split_pair():
        with torch.no_grad():
            unet(x, t1, torch.zeros_like(embed), pose, [], one, [])
            unet(x, t1, embed, pose, tokens, one, [])

    return {"fw": fw, "h": h, "w": w, "ref_latent": ref_latent, "embed": embed, "tokens": tokens, "pose": pose,
            "x": x, "split_pair": split_pair}


# ----------------------------------------------------------------------------- profile
CATEGORIES = [("attention", ("flash", "fmha", "attention", "sdpa", "cudnn_sdpa")),
              ("conv", ("conv", "fprop", "dgrad", "implicit", "winograd", "xmma_fprop")),
              ("gemm", ("gemm", "nvjet", "cublas", "cutlass", "xmma", "sm90_")),
              ("norm", ("norm", "moments")),
              ("softmax", ("softmax",)),
              ("copy/cat/transpose", ("copy", "cat", "transpose", "permute", "contiguous")),
              ("elementwise", ("elementwise", "vectorized", "unrolled", "reduce", "gelu", "silu"))]


def category(name):
    low = name.lower()
    for cat, keys in CATEGORIES:
        if any(k in low for k in keys):
            return cat
    return "other"


def profile_split_pair(inp, top=25):
    from torch.profiler import ProfilerActivity, profile
    inp["split_pair"]()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        inp["split_pair"]()
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    rows = []
    for e in prof.key_averages():
        t = getattr(e, "self_device_time_total", None)
        if t is None:
            t = getattr(e, "self_cuda_time_total", 0)
        if t and t > 0:
            rows.append((e.key, t / 1e6, e.count))
    rows.sort(key=lambda r: -r[1])
    total = sum(r[1] for r in rows)
    cats = {}
    for name, t, n in rows:
        c = category(name)
        cats[c] = cats.get(c, 0.0) + t
    return {"wall_s_profiled": wall, "kernel_s": total,
            "categories": {k: {"s": v, "pct": 100 * v / total} for k, v in sorted(cats.items(), key=lambda kv: -kv[1])},
            "top": [{"kernel": n[:160], "s": t, "calls": c, "pct": 100 * t / total, "category": category(n)}
                    for n, t, c in rows[:top]]}


def sdpa_backends(inp, heads=8):
    """Top-level self-attention of the conditional call: queries [F, heads, h*w, C/heads], keys = own + reference
    tokens; per SDPA backend: median time and TFLOP/s. Also the batched call's masked form."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    fw, n = inp["fw"], inp["h"] * inp["w"]
    c = int(inp["tokens"][0].shape[-1])
    d = c // heads
    g = torch.Generator(device="cuda").manual_seed(0)
    dt = inp["x"].dtype

    def r(b, L):
        return torch.randn(b, L, heads, d, device="cuda", dtype=dt, generator=g).transpose(1, 2)

    cases = {"cond (keys = own + reference)": (fw, 2 * n, None),
             "uncond (own keys)": (fw, n, None)}
    bias = torch.zeros(2 * fw, 1, 1, 2 * n, device="cuda", dtype=dt)
    bias[:fw, :, :, n:] = float("-inf")
    cases["batched CFG, masked (B=2)"] = (2 * fw, 2 * n, bias)
    out = {"head_dim": d, "queries": n, "cases": {}}
    for label, (b, L, mask) in cases.items():
        q, k, v = r(b, n), r(b, L), r(b, L)
        flops = 4 * b * heads * n * L * d
        res = {}
        for name, be in (("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION),
                         ("cudnn", SDPBackend.CUDNN_ATTENTION)):
            try:
                with sdpa_kernel([be]):
                    for _ in range(2):
                        F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
                    torch.cuda.synchronize()
                    ts = []
                    for _ in range(5):
                        s_, e_ = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                        s_.record()
                        F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
                        e_.record()
                        e_.synchronize()
                        ts.append(s_.elapsed_time(e_) / 1e3)
                ts.sort()
                res[name] = {"median_s": ts[2], "tflops": flops / ts[2] / 1e12}
            except Exception as ex:  # backend not available for this input
                res[name] = {"error": str(ex).splitlines()[0][:200]}
        with torch.no_grad():  # what the default dispatch picks
            try:
                for _ in range(2):
                    F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                for _ in range(5):
                    F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
                torch.cuda.synchronize()
                tdef = (time.perf_counter() - t0) / 5
                res["default"] = {"median_s": tdef, "tflops": flops / tdef / 1e12}
            except Exception as ex:
                res["default"] = {"error": str(ex).splitlines()[0][:200]}
        out["cases"][label] = {"batch": b, "keys": L, "flops": flops, "backends": res}
        del q, k, v
    return out


# ----------------------------------------------------------------------------- flops
def count_flops(bundle, conds, window):
    from torch.utils.flop_counter import FlopCounterMode
    inp = window_inputs(bundle, conds, window)
    dev = bundle.device
    unet = bundle["denoising_unet"]
    x, pose, embed, tokens = inp["x"], inp["pose"], inp["embed"], inp["tokens"]
    with torch.no_grad():
        def flops(fn):
            with FlopCounterMode(display=False) as fc:
                fn()
            return int(fc.get_total_flops())

        t1 = torch.full((1,), 500, dtype=torch.long, device=dev)
        t2 = torch.full((2,), 500, dtype=torch.long, device=dev)
        one = torch.ones(1, device=dev)
        batched = flops(lambda: unet(torch.cat([x, x]), t2, torch.cat([torch.zeros_like(embed), embed]),
                                     torch.cat([pose, pose]), tokens, torch.tensor([0.0, 1.0], device=dev), []))
        cond = flops(lambda: unet(x, t1, embed, pose, tokens, one, []))
        uncond = flops(lambda: unet(x, t1, torch.zeros_like(embed), pose, [], one, []))
        # the reference pass (once per clip), for completeness
        refnet = flops(lambda: bundle["reference_net"](inp["ref_latent"], embed))
    return {"window": inp["fw"], "latent": [inp["h"], inp["w"]], "batched_per_window": batched,
            "split_per_window": cond + uncond, "split_cond": cond, "split_uncond": uncond, "reference_net": refnet,
            "counter": "torch.utils.flop_counter.FlopCounterMode (mm/bmm/conv/SDPA; norms, elementwise not counted)"}


# ----------------------------------------------------------------------------- run
def cmd_run(a) -> int:
    metrics = {"torch": torch.__version__, "device": a.device, "dtype": a.dtype}
    if torch.device(a.device).type == "cuda":
        p = torch.cuda.get_device_properties(0)
        metrics["gpu"] = {"name": p.name, "sm_count": p.multi_processor_count,
                          "memory_gib": p.total_memory / 2 ** 30}

    def save():
        if a.metrics:
            with open(a.metrics, "w") as f:
                json.dump(metrics, f, indent=2)

    if a.peak and torch.device(a.device).type == "cuda":
        metrics["peak_bf16"] = measure_peak(torch.bfloat16)
        metrics["peak_fp16"] = measure_peak(torch.float16)
        print(f"peak: bf16 {metrics['peak_bf16']['tflops']:.0f} TFLOP/s, fp16 {metrics['peak_fp16']['tflops']:.0f} TFLOP/s",
              flush=True)
        save()
    if a.no_generate and not a.flops:
        return 0

    t0 = time.perf_counter()
    bundle = RP.Bundle(a.bundle, eager=True, device=a.device, dtype=a.dtype, verify=not a.no_verify)
    metrics["load_s"] = time.perf_counter() - t0
    conds = RP.load_conds(a.conds)
    T = int(conds["pose"].shape[0])
    window = int(conds["window"].item()) if "window" in conds else bundle.manifest["defaults"]["window"]
    print(f"python: loaded eager bundle in {metrics['load_s']:.1f} s; {T} frames", flush=True)

    if a.flops:
        t0 = time.perf_counter()
        try:
            metrics["flops"] = count_flops(bundle, conds, window)
            metrics["flops"]["count_s"] = time.perf_counter() - t0
            f = metrics["flops"]
            print(f"flops per window: batched {f['batched_per_window'] / 1e12:.3f} T, split "
                  f"{f['split_per_window'] / 1e12:.3f} T (cond {f['split_cond'] / 1e12:.3f} + uncond "
                  f"{f['split_uncond'] / 1e12:.3f})", flush=True)
        except ImportError as e:  # torch < 2.1 has no flop counter
            metrics["flops_error"] = str(e)
            print(f"flops: not counted ({e})", flush=True)
        save()
    if a.no_generate:
        return 0

    if a.warmup_steps > 0:
        t0 = time.perf_counter()
        RP.generate(bundle, conds, steps=a.warmup_steps)
        _sync(a.device)
        metrics["warmup_s"] = time.perf_counter() - t0
        metrics["warmup_steps"] = a.warmup_steps
    if torch.device(a.device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    timings = {}
    _sync(a.device)
    t0 = time.perf_counter()
    result = RP.generate(bundle, conds, timings=timings)
    _sync(a.device)
    total = time.perf_counter() - t0
    starts = RP.window_starts(T, window, int(conds["overlap"].item()) if "overlap" in conds else 4)
    steps = int(conds["steps"].item()) if "steps" in conds else bundle.manifest["defaults"]["steps"]
    metrics["run"] = {"frames": T, "windows": len(starts), "steps": steps, "unet_calls": timings.get("unet_calls"),
                      "seconds": {k: v for k, v in timings.items() if k != "unet_calls"} | {"total": total},
                      "seconds_per_frame": total / T, "denoise_seconds_per_frame": timings["denoise"] / T}
    if torch.device(a.device).type == "cuda":
        metrics["run"]["memory"] = {"peak_allocated_gib": torch.cuda.max_memory_allocated() / 2 ** 30,
                                    "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2 ** 30}
    print(f"python eager: {T} frames in {total:.2f} s = {total / T:.4f} s/frame (denoise {timings['denoise']:.2f} s)",
          flush=True)
    if a.result:
        torch.save(result, a.result)
    save()
    del result
    if a.profile and torch.device(a.device).type == "cuda":
        inp = window_inputs(bundle, conds, window)
        try:
            metrics["profile_split_pair"] = prof = profile_split_pair(inp)
            print(f"profile of one split CFG pair: kernels {prof['kernel_s']:.3f} s (wall {prof['wall_s_profiled']:.3f} s)")
            for k, v in prof["categories"].items():
                print(f"  {k:20s} {v['s']:.4f} s  {v['pct']:5.1f} %")
            for r in prof["top"][:15]:
                print(f"  {r['pct']:5.1f} % {r['s']:.4f} s x{r['calls']:4d} [{r['category']}] {r['kernel'][:110]}")
        except Exception as ex:
            metrics["profile_error"] = str(ex)[:300]
            print("profile failed:", ex)
        save()
        try:
            metrics["sdpa_backends"] = sb = sdpa_backends(inp)
            print(f"SDPA at the top level (head dim {sb['head_dim']}, {sb['queries']} queries):")
            for label, cs in sb["cases"].items():
                parts = []
                for be, r in cs["backends"].items():
                    parts.append(f"{be} " + (f"{r['median_s'] * 1e3:.1f} ms {r['tflops']:.0f} TF/s" if "median_s" in r
                                             else "n/a"))
                print(f"  {label} (B={cs['batch']}, keys {cs['keys']}): " + "; ".join(parts))
        except Exception as ex:
            metrics["sdpa_error"] = str(ex)[:300]
            print("sdpa bench failed:", ex)
        save()
    return 0


# ----------------------------------------------------------------------------- compare
def _load(path):
    return RP.load_conds(path)  # a dict of tensors, also when LibTorch wrote it


def agreement(ref, other):
    out = {}
    for key in ("latents", "frames"):
        if key not in ref or key not in other:
            continue
        r, o = ref[key].float(), other[key].float()
        if r.shape != o.shape:
            out[key] = {"error": f"shape {tuple(o.shape)} vs {tuple(r.shape)}"}
            continue
        d = (o - r)
        entry = {"max_abs": float(d.abs().max()), "rel_l2": float(d.norm() / r.norm().clamp_min(1e-12)),
                 "ref_abs_max": float(r.abs().max()), "finite": bool(torch.isfinite(o).all())}
        if key == "frames":
            mse = float((d ** 2).mean())
            entry["psnr_db"] = float("inf") if mse == 0 else 10 * math.log10(4.0 / mse)  # range [-1,1]
        out[key] = entry
    return out


# fp16 end to end over 25 steps: the two sides run different kernels (flash vs masked
# mem-efficient attention, fused vs unfused elementwise), so rounding differs at ~1e-3 per op.
TOL = {"latents_rel_l2": 2e-2, "frames_psnr_db": 35.0}


def _fmt(x, nd=3):
    return "—" if x is None else (f"{x:.{nd}f}" if isinstance(x, float) else str(x))


def _pair_seconds(mode_result):
    """bench_compiled.py's seconds of one split CFG pair (cond + uncond) for a mode, or None."""
    sec = (mode_result or {}).get("seconds", {})
    return sum(sec.values()) if len(sec) == 2 else None


def _read_json(path):
    if path and os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return None


# Issue 11's targets (docs/BENCHMARKS.md "Targets of issue 11"): name -> (threshold, what "met" means)
TARGETS = {
    "cpp_vs_compile": (1.2, "C++ per window >= 1.2x faster than the better torch.compile mode"),
    "peak_fraction": (50.0, "denoising >= 50 % of the measured dense bf16 peak"),
    "fp8_speedup": (1.4, "FP8 variant >= 1.4x faster than fp16 (PSNR >= 35 dB over a 25-step generation)"),
    "two_gpus": (1.8, "2 GPUs >= 1.8x one GPU on a 96-frame job"),
    "frames_300": (60.0, "300 frames at 512x768, 25 steps, <= 60 s end to end incl. a warm bundle load"),
    "analysis_fps": (100.0, "analysis >= 100 frames/s at 768x576"),
    "window_memory": (24.0, "a 24-frame window fits in 24 GB (peak allocated, whole generation)"),
}


def analysis_run(rep, rep_warm):
    """The `replace` run whose analysis counts: the warm one when it has one (the cold run may
    share the machine with the background compile: bench.sh runs it while the compile warms up)."""
    return rep_warm if (rep_warm or {}).get("seconds", {}).get("analysis") else rep


def targets_table(rows, cpp, rep, compiled, fp8, projection, rep_warm=None):
    """One line per target of issue 11 from what this run measured; "not measured in this run"
    where its part was not run (another machine kind, a skipped phase). ``rep_warm``: a second
    `replace` of the same bundle, whose load is the warm start the 300-frame target counts (the
    first run's load also hashes the files and dry-runs the modules, once per bundle)."""
    out = {}

    def put(key, value, text, higher_is_better=True):
        limit = TARGETS[key][0]
        met = None if value is None else (value >= limit if higher_is_better else value <= limit)
        out[key] = {"value": value, "met": met, "measured": text}

    one_device = {k: v for k, v in rows.items() if k.startswith("C++") and "@" not in k}
    ub = {r["variant"]: r for r in (cpp.get("unet_bench") or []) if "median_s" in r}
    cpp_pair = ub.get("split", {}).get("median_s")
    best_compiled = None
    for mode in ("compile", "compile-max"):
        pair = _pair_seconds((compiled or {}).get("modes", {}).get(mode))
        if pair is not None and (best_compiled is None or pair < best_compiled[1]):
            best_compiled = (mode, pair)
    if cpp_pair and best_compiled:
        put("cpp_vs_compile", best_compiled[1] / cpp_pair,
            f"C++ {cpp_pair:.4f} s vs torch.compile ({best_compiled[0]}) {best_compiled[1]:.4f} s per pair: "
            f"{best_compiled[1] / cpp_pair:.2f}x")
    else:
        put("cpp_vs_compile", None, "not measured in this run" + ("" if cpp_pair else " (no C++ micro-benchmark)"))
    fracs = [v["peak_fraction_pct"] for v in one_device.values() if v.get("peak_fraction_pct")]
    put("peak_fraction", max(fracs) if fracs else None,
        f"{max(fracs):.1f} % (best one-device C++ run)" if fracs else "not measured in this run")
    # bench_fp8.py's "targets": the best speed-up over fp16 (eager and compiled), the variants whose
    # 25-step generation stays >= 35 dB; met only by a variant that is both fast and good enough
    fp8_t = (fp8 or {}).get("targets") or {}
    speeds = [(v["speedup"], k, v["variant"]) for k, v in (fp8_t.get("speed") or {}).items() if v]
    if speeds:
        good = set(fp8_t.get("quality_trained") or []) | set(fp8_t.get("quality_random") or [])
        ok = [x for x in speeds if x[2] in good]
        best = max(ok or speeds)
        value = best[0] if ok else min(best[0], TARGETS["fp8_speedup"][0] - 1e-9)  # fast but too far off is not met
        put("fp8_speedup", value, f"{best[0]:.2f}x ({best[2]}, {best[1]}); PSNR >= 35 dB: "
            + (", ".join(sorted(good)) if good else "no variant"))
    else:
        put("fp8_speedup", None, "not measured in this run")
    spread = [r for m, r in cpp.get("runs", {}).items() if "denoise_speedup_vs_1_device" in r]
    if spread:
        r = max(spread, key=lambda r: r["speedup_vs_1_device"])
        put("two_gpus", r["speedup_vs_1_device"],
            f"{r['speedup_vs_1_device']:.2f}x end to end (denoise {r['denoise_speedup_vs_1_device']:.2f}x) on "
            f"{r['frames']} frames, {r.get('devices_used', '?')} devices")
    else:
        put("two_gpus", None, "not measured in this run (one GPU)")
    if projection:  # the target's 25 steps, whatever this run used
        p = projection
        work = p["windows"] * 25 * p["s_per_window_step"] + 300 * (p["per_frame_other_s"] + p["analysis_per_frame_s"])
        warm = (rep_warm or {}).get("seconds", {}).get("load_bundle")
        load = warm if warm is not None else (rep or {}).get("seconds", {}).get("load_bundle")
        which = "warm bundle load (a second replace)" if warm is not None else "bundle load of the first replace (cold)"
        total = work + (load or 0.0)
        put("frames_300", total, f"{total:.1f} s projected ({p['windows']} windows x 25 steps x "
            f"{p['s_per_window_step']:.3f} s + per-frame work = {work:.1f} s"
            + (f", + {load:.1f} s {which}" if load is not None else "; bundle load not measured")
            + (")" if p["analysis_per_frame_s"] else "; analysis not measured)"), higher_is_better=False)
    else:
        put("frames_300", None, "not measured in this run")
    a_rep = analysis_run(rep, rep_warm)
    a_s = (a_rep or {}).get("seconds", {}).get("analysis")
    if a_s:
        fps = a_rep["frames"] / a_s
        put("analysis_fps", fps, f"{fps:.1f} frames/s at {a_rep.get('source_size', (rep or {}).get('source_size'))}"
            + (" (the warm run)" if a_rep is rep_warm else ""))
    else:
        put("analysis_fps", None, "not measured in this run")
    mems = [v["peak_mem_gib"] for v in one_device.values() if v.get("peak_mem_gib")]
    window = cpp.get("settings", {}).get("window")
    put("window_memory", min(mems) if mems else None,
        f"{min(mems):.2f} GiB peak allocated (window {window})" if mems else "not measured in this run",
        higher_is_better=False)
    lines = ["| target | measured | status |", "|---|---|---|"]
    for key, r in out.items():
        status = "not measured" if r["met"] is None else ("**met**" if r["met"] else "not met")
        lines.append(f"| {TARGETS[key][1]} | {r['measured']} | {status} |")
    return out, lines


def cmd_compare(a) -> int:
    py = _read_json(a.python_metrics) or {}  # absent with BENCH_PYTHON_REF=0
    cpp = _read_json(a.cpp_metrics) or {}
    rep = _read_json(a.replace)
    summary = {"python": py, "cpp": cpp, "replace": rep, "tolerance": TOL}
    peak = py.get("peak_bf16", {}).get("tflops")
    fl = py.get("flops") or {}
    lines = []
    gpu = py.get("gpu", {}).get("name", py.get("device"))
    lines.append(f"GPU: {gpu}; torch {py.get('torch')}; LibTorch {cpp.get('device', {}).get('libtorch', '?')}; "
                 f"measured dense matmul peak: bf16 {_fmt(peak, 0)} TFLOP/s, "
                 f"fp16 {_fmt(py.get('peak_fp16', {}).get('tflops'), 0)} TFLOP/s (8192^3)")
    if fl:
        lines.append(f"UNet FLOPs per window (F={fl['window']}, latent {fl['latent'][0]}x{fl['latent'][1]}), counted: "
                     f"batched CFG {fl['batched_per_window'] / 1e12:.2f} TFLOP, split CFG {fl['split_per_window'] / 1e12:.2f} "
                     f"TFLOP (cond {fl['split_cond'] / 1e12:.2f} + uncond {fl['split_uncond'] / 1e12:.2f}); "
                     f"ReferenceNet once {fl['reference_net'] / 1e12:.3f} TFLOP")
    lines.append("")
    lines.append("| run | s / output frame | total s | denoise s | other s (ref+cond+decode) | UNet TFLOP/s | % of bf16 peak "
                 "| peak GPU mem GiB | speed-up vs Python |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    rows = {}
    pr = py.get("run")

    def row(name, r, mode):
        s = r["seconds"]
        windows_steps = r["windows"] * r["steps"]
        fpw = fl.get(f"{mode}_per_window") if fl else None
        rate = fpw * windows_steps / s["denoise"] / 1e12 if fpw else None
        frac = 100 * rate / peak if (rate and peak) else None
        other = s["total"] - s["denoise"]
        mem = r.get("memory", {}).get("peak_allocated_gib")
        speed = pr["seconds_per_frame"] / r["seconds_per_frame"] if pr else None
        rows[name] = {"s_per_frame": r["seconds_per_frame"], "total_s": s["total"], "denoise_s": s["denoise"],
                      "tflops": rate, "peak_fraction_pct": frac, "peak_mem_gib": mem, "speedup_vs_python": speed,
                      "s_per_window_step": s["denoise"] / windows_steps}
        lines.append(f"| {name} | {r['seconds_per_frame']:.4f} | {s['total']:.2f} | {s['denoise']:.2f} | {other:.2f} | "
                     f"{_fmt(rate, 0)} | {_fmt(frac, 1)} | {_fmt(mem, 2)} | {_fmt(speed, 2)}x |")

    if pr:
        row(f"Python eager ({py.get('dtype')}, CFG batched)", pr, "batched")
    for mode, r in cpp.get("runs", {}).items():
        row(f"C++ standin ({cpp.get('dtype')}, CFG {mode})", r, mode)
    summary["rows"] = rows
    # bench_generate --devices: runs "<mode>@<N>dev" over N devices, against "<mode>" on the first alone
    spread = {mode: r for mode, r in cpp.get("runs", {}).items() if "speedup_vs_1_device" in r}
    if spread:
        summary["several_devices"] = {}
        lines.append("")
        for mode, r in spread.items():
            same = bool(r.get("latents_identical_to_1_device"))
            summary["several_devices"][mode] = {k: r.get(k) for k in ("speedup_vs_1_device", "denoise_speedup_vs_1_device",
                                                                      "latents_identical_to_1_device", "frames")}
            lines.append(f"CFG {mode}: {r['speedup_vs_1_device']:.2f}x one device's speed end to end (denoise "
                         f"{r['denoise_speedup_vs_1_device']:.2f}x) on {r['frames']} frames; latents bit-identical to "
                         f"one device: {'yes' if same else 'NO'}")

    ok = True
    if a.python_result and os.path.exists(a.python_result):
        ref = _load(a.python_result)
        summary["agreement"] = {}
        lines.append("")
        lines.append("| C++ run vs Python | latents rel-L2 | latents max-abs | frames max-abs | frames PSNR dB | within tolerance |")
        lines.append("|---|---|---|---|---|---|")
        for mode, r in cpp.get("runs", {}).items():
            if "result" not in r or not os.path.exists(r["result"]):
                continue
            ag = agreement(ref, _load(r["result"]))
            lat, fr = ag.get("latents", {}), ag.get("frames", {})
            good = (lat.get("finite", False) and lat.get("rel_l2", 1e9) <= TOL["latents_rel_l2"]
                    and fr.get("psnr_db", 0) >= TOL["frames_psnr_db"])
            ag["pass"] = bool(good)
            ok = ok and good
            summary["agreement"][mode] = ag
            lines.append(f"| CFG {mode} | {_fmt(lat.get('rel_l2'), 5)} | {_fmt(lat.get('max_abs'), 4)} | "
                         f"{_fmt(fr.get('max_abs'), 4)} | {_fmt(fr.get('psnr_db'), 1)} | {'yes' if good else 'NO'} |")
        lines.append(f"(tolerance: latents rel-L2 <= {TOL['latents_rel_l2']}, frames PSNR >= {TOL['frames_psnr_db']} dB)")

    ub = cpp.get("unet_bench")
    if ub:
        lines.append("")
        lines.append("| UNet micro-benchmark (one window, CFG pair) | median s | TFLOP/s | % of bf16 peak | peak mem GiB |")
        lines.append("|---|---|---|---|---|")
        for r in ub:
            if "error" in r:
                lines.append(f"| {r['variant']} | error: {r['error'][:80]} | | | |")
                continue
            mode = r["variant"].split("+")[0]
            fpw = fl.get(f"{mode}_per_window") if fl else None
            rate = fpw / r["median_s"] / 1e12 if fpw else None
            lines.append(f"| {r['variant']} | {r['median_s']:.4f} | {_fmt(rate, 0)} | "
                         f"{_fmt(100 * rate / peak if rate and peak else None, 1)} | "
                         f"{_fmt(r.get('memory', {}).get('peak_allocated_gib'), 2)} |")

    prof = py.get("profile_split_pair")
    if prof:
        lines.append("")
        lines.append(f"Kernel time of one split CFG pair (eager PyTorch, the same kernels the C++ side launches): "
                     f"{prof['kernel_s']:.3f} s of kernels in {prof['wall_s_profiled']:.3f} s (profiler on)")
        lines.append("")
        lines.append("| category | s | % |")
        lines.append("|---|---|---|")
        for k, v in prof["categories"].items():
            lines.append(f"| {k} | {v['s']:.4f} | {v['pct']:.1f} |")
        lines.append("")
        lines.append("| top kernels | category | calls | s | % |")
        lines.append("|---|---|---|---|---|")
        for r in prof["top"][:12]:
            lines.append(f"| `{r['kernel'][:90]}` | {r['category']} | {r['calls']} | {r['s']:.4f} | {r['pct']:.1f} |")
    sb = py.get("sdpa_backends")
    if sb:
        lines.append("")
        lines.append(f"SDPA at the top level (head dim {sb['head_dim']}, {sb['queries']} queries per frame), per backend:")
        lines.append("")
        lines.append("| case | flash | efficient | cudnn | default dispatch |")
        lines.append("|---|---|---|---|---|")
        for label, cs in sb["cases"].items():
            cells = []
            for be in ("flash", "efficient", "cudnn", "default"):
                r = cs["backends"].get(be, {})
                cells.append(f"{r['median_s'] * 1e3:.1f} ms, {r['tflops']:.0f} TF/s" if "median_s" in r else "n/a")
            lines.append(f"| {label} (B={cs['batch']}, keys {cs['keys']}) | " + " | ".join(cells) + " |")

    rep_warm = _read_json(a.replace_warm)
    for label, r in (("", rep), (" again (warm start)", rep_warm)):
        if not r:
            continue
        s = r.get("seconds", {})
        lines.append("")
        lines.append(f"`standin replace`{label} {r.get('input')} ({r.get('frames')} frames, source "
                     f"{r.get('source_size')}, work {r.get('work_size')}, {r.get('settings')}):")
        lines.append("")
        lines.append("| stage | seconds |")
        lines.append("|---|---|")
        for k, v in s.items():
            lines.append(f"| {k} | {v:.2f} |")
        lines.append(f"| seconds per frame (total) | {r.get('seconds_per_frame', 0):.3f} |")
        detail = r.get("analysis_detail")
        if detail:
            lines.append("")
            lines.append("analysis, of which: " + ", ".join(
                f"{k} {v:.3f} s" if isinstance(v, float) else f"{k} {v}" for k, v in detail.items()))

    compiled = _read_json(a.compiled)
    if compiled:
        lines.append("")
        lines.append(f"Compiled forms of the same UNet (scripts/gpu/bench_compiled.py, {compiled.get('config')} random "
                     f"{compiled.get('dtype')}, one {compiled.get('frames')}-frame {compiled.get('size')} window, split CFG pair):")
        lines.append("")
        lines.append("| mode | compile s | s per pair | max abs diff from eager (cond / uncond) | note |")
        lines.append("|---|---|---|---|---|")
        for mode, r in compiled.get("modes", {}).items():
            pair, diff = _pair_seconds(r), r.get("diff", {})
            d = " / ".join(_fmt(diff.get(k, {}).get("max_abs"), 4) for k in ("cond", "uncond"))
            lines.append(f"| {mode} | {_fmt(r.get('compile_s'), 0)} | {_fmt(pair, 4)} | {d} | "
                         f"{(r.get('error') or r.get('skipped') or '')[:80]} |")

    # 300 frames (10 s at 30 fps) projected from the measured per-window-step time and per-frame costs
    best = min((v for k, v in rows.items() if k.startswith("C++") and "@" not in k), key=lambda v: v["s_per_frame"],
               default=None)  # one device
    cr = None
    if best:
        for mode, r in cpp.get("runs", {}).items():
            if abs(r["seconds_per_frame"] - best["s_per_frame"]) < 1e-12:
                cr = r
    if best and cr:
        w300 = len(RP.window_starts(300, int(cpp["settings"]["window"]), int(cpp["settings"]["overlap"])))
        per_frame_other = (cr["seconds"]["total"] - cr["seconds"]["denoise"]) / cr["frames"]
        a_rep = analysis_run(rep, rep_warm)
        analysis_pf = (a_rep["seconds"]["analysis"] / a_rep["frames"]) if a_rep and "analysis" in a_rep.get("seconds", {}) else 0.0
        proj = w300 * cr["steps"] * best["s_per_window_step"] + 300 * (per_frame_other + analysis_pf)
        summary["projection_300"] = {"windows": w300, "s_per_window_step": best["s_per_window_step"],
                                     "per_frame_other_s": per_frame_other, "analysis_per_frame_s": analysis_pf,
                                     "seconds": proj}
        lines.append("")
        lines.append(f"300 frames at these settings, projected: {w300} windows x {cr['steps']} steps x "
                     f"{best['s_per_window_step']:.3f} s + 300 x ({per_frame_other:.3f} + analysis {analysis_pf:.3f}) s "
                     f"= {proj:.1f} s (target <= 60 s)")

    summary["targets"], target_lines = targets_table(rows, cpp, rep, compiled, _read_json(a.fp8),
                                                     summary.get("projection_300"), rep_warm)
    lines += ["", "Targets of issue 11 (this run):", ""] + target_lines

    text = "\n".join(lines) + "\n"
    print(text)
    if a.summary:
        with open(a.summary, "w") as f:
            f.write(text)
    summary["pass"] = ok
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=2, default=str)
    return 0 if ok else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("conds")
    c.add_argument("--bundle", required=True)
    c.add_argument("--frames", type=int, default=48)
    c.add_argument("--height", type=int)
    c.add_argument("--width", type=int)
    c.add_argument("--steps", type=int, default=25)
    c.add_argument("--cfg", type=float, default=3.5)
    c.add_argument("--window", type=int, default=24)
    c.add_argument("--overlap", type=int, default=4)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--objects", action="store_true")
    c.add_argument("--out", required=True)
    r = sub.add_parser("run")
    r.add_argument("--bundle", required=True)
    r.add_argument("--conds", required=True)
    r.add_argument("--device", default="cuda")
    r.add_argument("--dtype", default="float16")
    r.add_argument("--warmup-steps", type=int, default=1)
    r.add_argument("--result")
    r.add_argument("--metrics")
    r.add_argument("--flops", action="store_true")
    r.add_argument("--peak", action="store_true")
    r.add_argument("--profile", action="store_true", help="kernel profile of one split CFG pair + SDPA backends")
    r.add_argument("--no-generate", action="store_true", help="only --peak / --flops")
    r.add_argument("--no-verify", action="store_true")
    m = sub.add_parser("compare")
    m.add_argument("--python-metrics", required=True, help="python.json (a missing file: C++ rows only)")
    m.add_argument("--compiled", help="bench_compiled.py's JSON (torch.compile rows)")
    m.add_argument("--fp8", help="an FP8 benchmark's JSON with speedup and psnr_db")
    m.add_argument("--python-result")
    m.add_argument("--cpp-metrics")
    m.add_argument("--replace")
    m.add_argument("--replace-warm", help="the metrics of a second replace of the same bundle (its warm load)")
    m.add_argument("--summary")
    m.add_argument("--json")
    a = ap.parse_args(argv)
    return {"conds": cmd_conds, "run": cmd_run, "compare": cmd_compare}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
