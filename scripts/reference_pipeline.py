#!/usr/bin/env python3
"""Reference pipeline (eager PyTorch): docs/SAMPLING.md, step by step.  Parity oracle for the C++
generator and the speed baseline for the GPU benchmark.

CLI:
  /usr/bin/python3 scripts/reference_pipeline.py --bundle models/tiny --inputs conds.pt --out result.pt
  python scripts/reference_pipeline.py --bundle models/sd15 --inputs conds.pt --out r.pt \
      --eager --device cuda --dtype float16 --metrics m.json        # GPU baseline (fp16, SDPA)

``conds.pt`` is a dict (torch.save, or LibTorch's torch::pickle_save of a
c10::Dict<std::string, Tensor>) with reference [1,3,H,W], reference_clip [1,3,S,S],
environment [T,3,H,W], mask [T,1,H,W], pose [T,3,H,W], noise [1,4,T,h,w], optional
object [T,3,H,W] (object-region image, [-1,1], zeros elsewhere), optional depth [T,1,H,W]
(pose-modulation bundles), and scalar tensors steps, cfg, window, overlap, sampler
(0 = ddim, 1 = dpmpp_2m).  Command-line options override the scalars; --beta-schedule
(linear | scaled_linear) replaces model.json's scheduler.beta_schedule, like `standin
--beta-schedule`.  ``result.pt`` is {latents [1,4,T,h,w] float32, frames [T,3,H,W] float32 in
[-1,1]} (torch.save).

Library:
  from reference_pipeline import Bundle, generate
  result = generate(Bundle("models/tiny"), conds)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from standin_model.export import sha256_file  # noqa: E402
from standin_model.scheduler import SAMPLER_IDS, SAMPLERS, make_scheduler, with_beta_schedule  # noqa: E402

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class BundleError(RuntimeError):
    pass



class Bundle:
    """A loaded bundle: ``manifest`` (model.json) and ``modules`` (callables by bundle name).

    ``eager=False`` runs the bundle's TorchScript files.  ``eager=True`` rebuilds the plain
    PyTorch modules from ``manifest["architecture"]`` and loads the TorchScript files' weights
    into them (strict), optionally in another dtype / on another device; with torch >= 2 their
    attention uses scaled_dot_product_attention.
    """

    def __init__(self, path: str, eager: bool = False, device: str = "cpu", dtype: Optional[str] = None,
                 verify: bool = True):
        self.path = path
        with open(os.path.join(path, "model.json")) as f:
            self.manifest = m = json.load(f)
        if m.get("format") != "standin-bundle":
            raise BundleError(f"{path}: not a standin bundle")
        if m.get("format_version") != 1:
            raise BundleError(f"{path}: unsupported format_version {m.get('format_version')}")
        self.device = torch.device(device)
        self.dtype = DTYPES[dtype or m["dtype"]]
        self.modules: Dict[str, Callable] = {}
        scripted = {}
        for name, spec in m["modules"].items():
            file = os.path.join(path, spec["file"])
            if not os.path.exists(file):
                raise BundleError(f"{path}: module {name}: missing file {spec['file']}")
            if verify and sha256_file(file) != spec["sha256"]:
                raise BundleError(f"{path}: module {name}: sha256 mismatch")
            scripted[name] = torch.jit.load(file, map_location="cpu" if eager else self.device)
        if eager:
            from standin_model.config import config_from_dict
            from standin_model.model import build_model
            model = build_model(config_from_dict(m["architecture"]))
            eager_mods = model.bundle_modules()
            for name, ts in scripted.items():
                mod = eager_mods[name]
                sd = {k: v for k, v in ts.state_dict().items() if not k.endswith("position_ids")}
                missing, unexpected = mod.load_state_dict(sd, strict=False)
                missing = [k for k in missing if not k.endswith("position_ids")]
                if missing or unexpected:
                    raise BundleError(f"{name}: eager rebuild does not match the TorchScript weights "
                                      f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
                self.modules[name] = mod.to(device=self.device, dtype=self.dtype).eval()
        else:
            if self.dtype != DTYPES[m["dtype"]]:
                for ts in scripted.values():
                    ts.to(self.dtype)
            self.modules = scripted
        self.eager = eager

    def __getitem__(self, name: str) -> Callable:
        return self.modules[name]

    def __contains__(self, name: str) -> bool:
        return name in self.modules


def window_starts(T: int, window: int, overlap: int) -> List[int]:
    """SAMPLING.md step 3."""
    fw = min(window, T)
    stride = max(fw - overlap, 1)
    starts = []
    s = 0
    while s + fw < T:
        starts.append(s)
        s += stride
    if T - fw not in starts:
        starts.append(T - fw)
    return starts


def _chunks(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def generate(bundle: Bundle, conds: Dict[str, torch.Tensor], steps: Optional[int] = None,
             cfg: Optional[float] = None, window: Optional[int] = None, overlap: Optional[int] = None,
             sampler: Optional[str] = None, chunk: int = 8, decode: bool = True,
             progress: Optional[Callable[[int, int], None]] = None,
             timings: Optional[Dict[str, float]] = None,
             beta_schedule: Optional[str] = None, use_reference: bool = True) -> Dict[str, torch.Tensor]:
    """Run docs/SAMPLING.md; scalars default to conds[...] then model.json defaults;
    ``beta_schedule`` (None = model.json's) replaces scheduler.beta_schedule.
    ``use_reference=False`` samples without the reference (no reference tokens, zero context:
    the unconditional path for both halves), an ablation for evaluations."""
    man = bundle.manifest
    dev, dt = bundle.device, bundle.dtype
    defaults = man["defaults"]

    def scalar(name, given, cast):
        if given is not None:
            return cast(given)
        if name in conds:
            return cast(conds[name].item() if torch.is_tensor(conds[name]) else conds[name])
        return cast(defaults[name])

    steps = scalar("steps", steps, int)
    cfg = scalar("cfg", cfg, float)
    window = scalar("window", window, int)
    overlap = scalar("overlap", overlap, int)
    if sampler is None:
        sampler = SAMPLER_IDS[int(conds["sampler"].item())] if "sampler" in conds else defaults.get("sampler", "ddim")
    sf = float(man["latent"]["scaling_factor"])
    cond_cfg = man["conditioning"]
    t_ = timings if timings is not None else {}

    def f(name):  # float tensor on device in the module dtype
        return conds[name].to(device=dev, dtype=dt)

    def tic():
        _sync(dev)
        return time.perf_counter()

    # 1. reference, once
    t0 = tic()
    ref_latent = bundle["vae_encoder"](f("reference")) * sf
    embed = bundle["image_encoder"](f("reference_clip"))
    ref_tokens = bundle["reference_net"](ref_latent, embed)
    if not use_reference:
        embed, ref_tokens = torch.zeros_like(embed), []
    t_["reference"] = tic() - t0

    # 2. per-frame conditions
    t0 = tic()
    T = conds["environment"].shape[0] if "environment" in conds else conds["pose"].shape[0]
    noise = conds["noise"].to(device=dev, dtype=torch.float32)
    _, lc, _, h, w = noise.shape
    env_latent, mask_latent, pose_feat, obj_feats = [], [], [], []
    use_obj = "object" in conds and "object_guider" in bundle
    for sl in _chunks(T, chunk):
        if cond_cfg["environment"]:
            env_latent.append(bundle["vae_encoder"](f("environment")[sl]) * sf)
        if cond_cfg["mask_channel"]:
            mask_latent.append(F.avg_pool2d(f("mask")[sl], man["geometry"]["vae_scale_factor"]))
        if cond_cfg.get("pose_modulation", False):
            pose_feat.append(bundle["pose_guider"](f("pose")[sl], f("depth")[sl]))
        else:
            pose_feat.append(bundle["pose_guider"](f("pose")[sl]))
        if use_obj:
            obj_lat = bundle["vae_encoder"](f("object")[sl]) * sf
            obj_feats.append(bundle["object_guider"](obj_lat))
    env_latent = torch.cat(env_latent) if env_latent else None          # [T,4,h,w]
    mask_latent = torch.cat(mask_latent) if mask_latent else None       # [T,1,h,w]
    pose_feat = torch.cat(pose_feat)                                     # [T,C0,h,w]
    objects_all = ([torch.cat([o[j] for o in obj_feats]) for j in range(len(obj_feats[0]))]
                   if use_obj else [])                                   # each [T,C_j,h_j,w_j]
    t_["conditions"] = tic() - t0

    # 3./4. windows, timesteps, initial latents
    starts = window_starts(T, window, overlap)
    fw = min(window, T)
    sched = make_scheduler(sampler, with_beta_schedule(man["scheduler"], beta_schedule))
    timesteps = sched.set_timesteps(steps)
    latents = noise * sched.init_noise_sigma
    do_cfg = cfg > 1.0
    B = 2 if do_cfg else 1
    ctx = torch.cat([torch.zeros_like(embed), embed]) if do_cfg else embed
    keep = torch.tensor([0.0, 1.0] if do_cfg else [1.0], device=dev)

    def to_cf(x):  # [Fw, C, h, w] -> [1, C, Fw, h, w]
        return x.permute(1, 0, 2, 3).unsqueeze(0)

    t0 = tic()
    n_calls = 0
    for i, t in enumerate(timesteps):
        acc = torch.zeros_like(latents)
        count = torch.zeros(T, device=dev)
        tt = torch.full((B,), int(t), dtype=torch.long, device=dev)
        for s in starts:
            sl = slice(s, s + fw)
            parts = [latents[:, :, sl].to(dt)]
            if env_latent is not None:
                parts.append(to_cf(env_latent[sl]))
            if mask_latent is not None:
                parts.append(to_cf(mask_latent[sl]))
            inp = torch.cat(parts, dim=1)
            pose = to_cf(pose_feat[sl])
            objs = [torch.cat([o[sl]] * B) for o in objects_all]
            if B == 2:
                inp = torch.cat([inp, inp])
                pose = torch.cat([pose, pose])
            pred = bundle["denoising_unet"](inp, tt, ctx, pose, ref_tokens, keep, objs).float()
            n_calls += 1
            guided = pred[0:1] + cfg * (pred[1:2] - pred[0:1]) if B == 2 else pred
            acc[:, :, sl] += guided
            count[sl] += 1
        model_output = acc / count.view(1, 1, T, 1, 1)
        latents = sched.step(model_output, t, latents)
        if progress is not None:
            progress(i + 1, len(timesteps))
    t_["denoise"] = tic() - t0
    t_["unet_calls"] = n_calls

    out = {"latents": latents.float().cpu()}
    if decode:
        t0 = tic()
        frames = []
        lat = latents.squeeze(0).permute(1, 0, 2, 3)  # [T,4,h,w]
        for sl in _chunks(T, chunk):
            frames.append(bundle["vae_decoder"]((lat[sl] / sf).to(dt)).float().clamp(-1, 1).cpu())
        out["frames"] = torch.cat(frames)
        t_["decode"] = tic() - t0
    return out


def synthetic_conds(manifest: Dict, frames: int, seed: int = 0, height: Optional[int] = None,
                    width: Optional[int] = None, objects: bool = False, **scalars) -> Dict[str, torch.Tensor]:
    """Deterministic synthetic conditions of the right shapes (tests, benchmarks)."""
    g = torch.Generator().manual_seed(seed)
    geo = manifest["geometry"]
    H = height or geo["height"]
    W = width or geo["width"]
    S = geo["clip_size"]
    h, w = H // geo["vae_scale_factor"], W // geo["vae_scale_factor"]
    T = frames
    yy = torch.linspace(-1, 1, H).view(1, 1, H, 1)
    xx = torch.linspace(-1, 1, W).view(1, 1, 1, W)
    tt = torch.linspace(0, 1, T).view(T, 1, 1, 1)
    # a box moving left to right = the character region
    cx = -0.5 + tt
    mask = (((xx - cx).abs() < 0.3) & (yy.abs() < 0.6)).float()
    env = (torch.rand(T, 3, H, W, generator=g) * 2 - 1) * 0.5 + 0.3 * torch.sin(3 * xx + 2 * yy)
    env = env * (1 - mask)
    pose = torch.zeros(T, 3, H, W)
    pose[:, 0] = ((xx - cx).abs() < 0.03).float()[:, 0] * (yy.abs() < 0.5).float()[:, 0]
    pose[:, 1] = ((yy + 0.2).abs() < 0.03).float()[:, 0] * ((xx - cx).abs() < 0.25).float()[:, 0]
    c = {
        "reference": (torch.rand(1, 3, H, W, generator=g) * 2 - 1),
        "reference_clip": torch.randn(1, 3, S, S, generator=g),
        "environment": env.clamp(-1, 1),
        "mask": mask.expand(T, 1, H, W).contiguous(),
        "pose": pose,
        "noise": torch.randn(1, geo["latent_channels"], T, h, w, generator=g),
    }
    if objects:
        c["object"] = (torch.rand(T, 3, H, W, generator=g) * 2 - 1) * (xx > 0.6).float()
    if manifest["conditioning"].get("pose_modulation"):
        c["depth"] = torch.rand(T, 1, H, W, generator=g)
    for k, v in scalars.items():
        c[k] = torch.tensor(v)
    return c


def load_conds(path: str) -> Dict[str, torch.Tensor]:
    # torch >= 2.6 loads weights only by default, which refuses LibTorch's pickle_save dicts.
    kw = {"weights_only": False} if "weights_only" in torch.load.__code__.co_varnames else {}
    obj = torch.load(path, map_location="cpu", **kw)
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    return {str(k): v for k, v in obj.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--eager", action="store_true", help="rebuild eager modules (SDPA with torch >= 2)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=sorted(DTYPES), help="default: the bundle's dtype")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--cfg", type=float)
    ap.add_argument("--window", type=int)
    ap.add_argument("--overlap", type=int)
    ap.add_argument("--sampler", choices=sorted(SAMPLERS))
    ap.add_argument("--beta-schedule", choices=["linear", "scaled_linear"], help="default: the bundle's")
    ap.add_argument("--chunk", type=int, default=8, help="frames per VAE / guider call")
    ap.add_argument("--threads", type=int, help="torch CPU threads")
    ap.add_argument("--metrics", help="write timings (seconds) as JSON")
    ap.add_argument("--no-verify", action="store_true", help="skip the sha256 check")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    bundle = Bundle(args.bundle, eager=args.eager, device=args.device, dtype=args.dtype, verify=not args.no_verify)
    t_load = time.perf_counter() - t0
    conds = load_conds(args.inputs)

    def progress(i, n):
        if not args.quiet:
            print(f"\rstep {i}/{n}", end="\n" if i == n else "", file=sys.stderr, flush=True)

    timings: Dict[str, float] = {"load": t_load}
    t0 = time.perf_counter()
    result = generate(bundle, conds, steps=args.steps, cfg=args.cfg, window=args.window, overlap=args.overlap,
                      sampler=args.sampler, chunk=args.chunk, progress=progress, timings=timings,
                      beta_schedule=args.beta_schedule)
    timings["total"] = time.perf_counter() - t0
    torch.save(result, args.out)
    if args.metrics:
        with open(args.metrics, "w") as f:
            json.dump({"timings": timings, "eager": args.eager, "device": args.device,
                       "dtype": str(bundle.dtype).replace("torch.", ""), "torch": torch.__version__,
                       "frames": int(result["latents"].shape[2])}, f, indent=2)
    if not args.quiet:
        print(json.dumps({k: round(v, 4) for k, v in timings.items()}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
