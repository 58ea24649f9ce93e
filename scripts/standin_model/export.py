"""Bundle export: TorchScript (torch.jit.script) per module + model.json (docs/BUNDLE.md)."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from typing import Dict, Optional

import torch
from torch import nn

from . import contract as C
from .config import ModelConfig
from .layers import HAS_SDPA
from .model import StandinModel, build_model
from .scheduler import scheduler_config
from .unet import ObjectBlend, TemporalTransformer3DModel

FORMAT = "standin-bundle"
FORMAT_VERSION = 1

# model.json "scheduler" of a bundle exported without a preset (see scheduler.PRESETS)
SCHEDULER = scheduler_config("standin")

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def size_multiple(cfg: ModelConfig) -> int:
    return cfg.vae_scale_factor * 2 ** (len(cfg.unet.block_out_channels) - 1)


# ----------------------------------------------------------------------------- initialisation
def init_random(model: StandinModel, seed: int, exercise: bool = True) -> None:
    """Deterministic random weights for a bundle without a checkpoint.

    The constructors already zero-initialise the additions (extra conv_in channels, pose guider
    conv_out, motion-module proj_out, object-blend gates, pose modulation).  With ``exercise``
    those are re-drawn small and non-zero so that every input of every module influences the
    output (a test bundle must show it when a caller drops or mis-orders a condition).
    """
    # Drawn where the model lives: on the CPU (bundles) the numbers are the same on every machine;
    # a benchmark builds its model on the GPU, where the draws take seconds instead of a minute.
    dev = next(model.parameters()).device
    g = torch.Generator(device=dev).manual_seed(seed)

    def randn(shape):
        return torch.randn(shape, generator=g, device=dev)

    def _reset(m: nn.Module) -> None:
        for p in m.parameters(recurse=False):
            if p.dim() >= 2:
                fan_in = p[0].numel()
                with torch.no_grad():
                    p.copy_(randn(p.shape) / fan_in ** 0.5)
            elif p.dim() == 1:
                with torch.no_grad():
                    if isinstance(m, (nn.LayerNorm, nn.GroupNorm)):
                        if p is m.weight:
                            p.copy_(1.0 + 0.1 * randn(p.shape))
                        else:
                            p.copy_(0.1 * randn(p.shape))
                    else:
                        p.copy_(0.05 * randn(p.shape))

    with torch.no_grad():
        for m in model.modules():
            _reset(m)
        emb = model.image_encoder.vision_model.embeddings
        emb.class_embedding.copy_(randn(emb.class_embedding.shape) * 0.5)
        emb.position_embedding.weight.copy_(randn(emb.position_embedding.weight.shape) * 0.1)
        if not exercise:
            zero_additions(model)
        else:
            for m in model.modules():
                if isinstance(m, ObjectBlend):
                    m.gate.copy_(0.2 + 0.3 * torch.rand(m.gate.shape, generator=g, device=dev))
        calibrate(model, g, exercise)


def _std(x: torch.Tensor) -> float:
    return max(float(x.float().std()), 1e-8)


@torch.no_grad()
def calibrate(model: StandinModel, g: torch.Generator, exercise: bool) -> None:
    """Scale a few output layers of a random model so that its tensors have sane magnitudes on a
    fixed probe: scaled VAE latents ~ unit std, decoded images ~ 0.5 std, pose / object guider
    features comparable to the UNet's conv_in output."""
    cfg = model.cfg
    H = W = max(64, size_multiple(cfg))
    dev = g.device
    probe = torch.rand(2, 3, H, W, generator=g, device=dev) * 2 - 1
    vae = model.vae
    lc = cfg.vae.latent_channels
    k = 1.0 / (_std(vae.encode_mean(probe)) * cfg.vae.scaling_factor)
    vae.quant_conv.weight[:lc] *= k
    vae.quant_conv.bias[:lc] *= k
    lat = vae.encode_mean(probe)
    vae.decoder.conv_out.weight *= 0.5 / _std(vae.decode(lat))
    vae.decoder.conv_out.bias *= 0.0
    u = model.denoising_unet
    h, w = H // cfg.vae_scale_factor, W // cfg.vae_scale_factor
    ref = _std(u.conv_in(torch.randn(2, u.in_channels, h, w, generator=g, device=dev)))
    if exercise:
        pg = model.pose_guider
        pose = (torch.rand(2, 3, H, W, generator=g, device=dev) > 0.9).float()
        depth = torch.rand(2, 1, H, W, generator=g, device=dev) if cfg.pose_modulation else None
        pg.conv_out.weight *= 0.5 * ref / _std(pg(pose, depth))
        if model.object_guider is not None:
            outs = model.object_guider(lat * cfg.vae.scaling_factor)
            for conv, o in zip(model.object_guider.outs, outs):
                conv.weight *= 1.0 / _std(o)


def zero_additions(model: StandinModel) -> None:
    """Zero the parts that must be no-ops at init (what a fresh / imported model has)."""
    u = model.denoising_unet
    with torch.no_grad():
        u.conv_in.weight[:, u.cfg.in_channels:].zero_()
        model.pose_guider.conv_out.weight.zero_()
        model.pose_guider.conv_out.bias.zero_()
        for m in u.modules():
            if isinstance(m, TemporalTransformer3DModel):
                m.proj_out.weight.zero_()
                m.proj_out.bias.zero_()
            if isinstance(m, ObjectBlend):
                m.gate.zero_()
        if u.pose_temporal is not None:
            u.pose_temporal.weight.zero_()
            u.pose_temporal.bias.zero_()
        if model.pose_guider.modulation_attn is not None:
            model.pose_guider.modulation_attn.to_out[0].weight.zero_()
            model.pose_guider.modulation_attn.to_out[0].bias.zero_()


# ----------------------------------------------------------------------------- counting without memory
@contextlib.contextmanager
def meta_device():
    """Create tensors on the meta device unless a device is given (torch 1.13 has no default device)."""
    names = ["empty", "zeros", "ones", "randn", "rand", "arange"]
    saved = {n: getattr(torch, n) for n in names}

    def wrap(fn):
        def inner(*a, **k):
            if k.get("device") is None:
                k["device"] = "meta"
            return fn(*a, **k)
        return inner

    for n in names:
        setattr(torch, n, wrap(saved[n]))
    try:
        yield
    finally:
        for n, f in saved.items():
            setattr(torch, n, f)


def count_parameters(cfg: ModelConfig) -> Dict[str, int]:
    """Parameter counts per part, built on the meta device (no weight memory)."""
    with meta_device():
        m = StandinModel(cfg)
    u = m.denoising_unet

    def n(mod):
        return sum(p.numel() for p in mod.parameters()) if mod is not None else 0

    motion = sum(n(mm) for name, mm in u.named_modules() if name.endswith("motion_modules"))
    additions = (u.conv_in.weight[:, u.cfg.in_channels:].numel()
                 + n(u.mid_object_blender) + n(u.up_object_blenders) + n(u.pose_temporal))
    return {
        "vae": n(m.vae),
        "image_encoder": n(m.image_encoder),
        "reference_unet": n(m.reference_unet),
        "denoising_unet": n(u),
        "denoising_unet_motion_modules": motion,
        "denoising_unet_aa2_additions": additions,
        "denoising_unet_2d": n(u) - motion - additions,
        "pose_guider": n(m.pose_guider),
        "object_guider": n(m.object_guider),
        "total": n(m),
    }


# ----------------------------------------------------------------------------- export
def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dry_run_env(cfg: ModelConfig) -> Dict[str, int]:
    m = size_multiple(cfg)
    H = W = max(64, m)
    return {"N": 2, "B": 2, "F": 2, "H": H, "W": W, "h": H // cfg.vae_scale_factor, "w": W // cfg.vae_scale_factor}


def manifest(cfg: ModelConfig, model: StandinModel, name: str, dtype: str, weights: Dict,
             scheduler: Optional[Dict] = None) -> Dict:
    contracts = C.module_contracts(cfg, model.denoising_unet, dtype)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "config": cfg.name,
        "dtype": dtype,
        "geometry": {"width": cfg.width, "height": cfg.height, "vae_scale_factor": cfg.vae_scale_factor,
                     "latent_channels": cfg.vae.latent_channels, "clip_size": cfg.clip.image_size,
                     "context_dim": cfg.clip.projection_dim, "unet_in_channels": cfg.unet_in_channels,
                     "size_multiple": size_multiple(cfg), "max_window": cfg.unet.motion_max_len},
        "latent": {"scaling_factor": cfg.vae.scaling_factor},
        "conditioning": {"environment": cfg.environment, "mask_channel": cfg.mask_channel,
                         "reference_blocks": cfg.reference_blocks, "object_guider": cfg.use_object_guider,
                         "pose_channels": cfg.unet.block_out_channels[0], "pose_modulation": cfg.pose_modulation,
                         "num_reference": model.denoising_unet.num_reference,
                         "num_object_stages": len(cfg.unet.block_out_channels) + 1 if cfg.use_object_guider else 0},
        "scheduler": dict(scheduler or SCHEDULER),
        "defaults": {"steps": cfg.steps, "cfg": cfg.cfg, "window": cfg.window, "overlap": cfg.overlap,
                     "sampler": cfg.sampler, "mask_mode": cfg.mask_mode, "mask_dilate": cfg.mask_dilate,
                     "mask_blocks": cfg.mask_blocks, **({"feather": cfg.feather} if cfg.feather >= 0 else {})},
        "dry_run": dry_run_env(cfg),
        "weights": weights,
        "export": {"torch": torch.__version__, "attention": "sdpa" if HAS_SDPA else "math",
                   "method": "torch.jit.script"},
        "architecture": cfg.to_dict(),
        "modules": {k: dict(v) for k, v in contracts.items()},
    }


def export_bundle(model: StandinModel, out_dir: str, name: Optional[str] = None, dtype: str = "float32",
                  weights: Optional[Dict] = None, check: bool = True, log=print,
                  scheduler: Optional[Dict] = None) -> Dict:
    """Script every bundle module, save it to ``out_dir``, write model.json; returns the manifest.

    ``scheduler`` is model.json's "scheduler" block (default ``SCHEDULER``; see
    ``scheduler.scheduler_config`` for the public checkpoints' inference settings).

    With ``check`` (fp32 only) every saved file is loaded back, run on the dry-run inputs, its
    outputs compared with the eager module and with the contract (max-abs errors go into the
    returned manifest under ``"check"``, not into model.json).
    """
    cfg = model.cfg
    name = name or cfg.name
    os.makedirs(out_dir, exist_ok=True)
    model = model.eval().to(DTYPES[dtype])
    man = manifest(cfg, model, name, dtype, weights or {"source": "random"}, scheduler)
    mods = model.bundle_modules()
    errors = {}
    for mname, mod in mods.items():
        t0 = time.time()
        scripted = torch.jit.script(mod.eval())
        path = os.path.join(out_dir, f"{mname}.pt")
        tmp = path + ".tmp"
        torch.jit.save(scripted, tmp)
        os.replace(tmp, path)
        man["modules"][mname] = {"file": f"{mname}.pt", "sha256": sha256_file(path), **man["modules"][mname]}
        log(f"  {mname:15s} {os.path.getsize(path) / 1e6:9.2f} MB  {time.time() - t0:6.2f}s")
        if check and dtype == "float32":
            errors[mname] = check_module(path, mod, man["modules"][mname], man["dry_run"])
    with open(os.path.join(out_dir, "model.json.tmp"), "w") as f:
        json.dump(man, f, indent=2)
    os.replace(os.path.join(out_dir, "model.json.tmp"), os.path.join(out_dir, "model.json"))
    if errors:
        man = dict(man, check=errors)
    return man


def _flatten(v):
    return list(v) if isinstance(v, (list, tuple)) else [v]


def check_module(path: str, eager: nn.Module, spec: Dict, env: Dict[str, int], seed: int = 0) -> float:
    loaded = torch.jit.load(path)
    g = torch.Generator().manual_seed(seed)
    args = C.example_inputs("", spec, env, g)
    with torch.no_grad():
        a = eager(*args)
        b = loaded(*args)
    for o_spec in spec["outputs"]:
        C.check_value(o_spec, b, env, path)
    err = 0.0
    for x, y in zip(_flatten(a), _flatten(b)):
        err = max(err, (x.float() - y.float()).abs().max().item())
    if not all(torch.isfinite(t).all() for t in _flatten(b)):
        raise RuntimeError(f"{path}: non-finite outputs")
    return err


def build_random(cfg: ModelConfig, seed: int = 0, exercise: bool = True, device=None) -> StandinModel:
    """device: where to build and draw (default the CPU, whose draws every export repeats exactly;
    benchmarks pass their GPU: same distribution, other numbers, seconds instead of a minute)."""
    torch.manual_seed(seed)
    if device is None or torch.device(device).type == "cpu":
        model = build_model(cfg)
    else:
        with torch.device(device):
            model = build_model(cfg)
    init_random(model, seed, exercise=exercise)
    return model
