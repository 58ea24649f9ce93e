#!/usr/bin/env python3
"""Evaluate a trained bundle by self-reconstruction (docs/TRAINING.md's table).

  /usr/bin/python3 scripts/evaluate.py --bundle models/demo --pack .train/pack \
      --backgrounds .train/backgrounds --clips 8 --frames 12 --out eval/
  python3 scripts/evaluate.py --weights models/standin-demo-v1.pth --clips-file clips.npz \
      --device cuda --out eval/              # GPU machine: eager modules, clips rendered here
                                             # (--save-clips clips.npz) since it has no pack

Held-out rendered clips (test identities, animations and backgrounds) through every row, then a
markdown table (eval/table.md), the numbers (eval/results.json) and a contact sheet
(eval/contact_sheet.png: reference | source | output, one case a row).  Rows:
  trained             the bundle as `replace` runs it
  no reference        the same bundle sampling without the reference (unconditional path)
  random weights      the same architecture with random weights (scripts/export_bundle.py)
  tiny (random)       the tiny random bundle at its own 64x96 size, scaled back up
  background only     the redraw region filled with the true background plate
a ceiling (--rows ...,vae_roundtrip): the true frames through the bundle's VAE and back,
and two diagnostic mixes of the trained row's frames with the truth (--rows ...,trained_character,
trained_fill; after "trained"): its pixels only on the true character (true background around it),
and the true character with its pixels around it (standin_train.evaluate.oracle_mixes).
The real-footage protocol (a vtest pedestrian) is scripts/evaluate_real.sh.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time

import cv2
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from reference_pipeline import DTYPES, Bundle, generate  # noqa: E402
from standin_model.scheduler import SAMPLERS  # noqa: E402
from standin_train import conditions as C  # noqa: E402
from standin_train import evaluate as E  # noqa: E402
from standin_train.data import Backgrounds, DataConfig, SampleMaker  # noqa: E402


def make_clips(pack_dir: str, backgrounds_dir: str, n: int, frames: int, seed: int, split: str = "test"):
    import synth
    cfg = DataConfig(frames=frames, inference_mask_probability=1.0, keypoint_drop=0.0, object_probability=0.0,
                     depth_unknown_probability=0.0, virtual_clip_frames=(frames, 3 * frames))
    maker = SampleMaker(synth.AssetPack.load(pack_dir), Backgrounds(backgrounds_dir, split), cfg, split=split)
    rng = np.random.default_rng(seed)
    clips = [maker.make_renderable(rng) for _ in range(n)]
    return clips


class EagerBundle:
    """What reference_pipeline.generate needs of a bundle, from eager modules (no export)."""

    def __init__(self, model, scheduler, name: str, device: str, dtype: str):
        from standin_model.export import manifest
        self.manifest = manifest(model.cfg, model, name, "float32", {"source": name}, scheduler)
        self.device = torch.device(device)
        self.dtype = DTYPES[dtype]
        self.modules = {k: m.to(self.device, self.dtype).eval() for k, m in model.bundle_modules().items()}

    def __getitem__(self, name):
        return self.modules[name]

    def __contains__(self, name):
        return name in self.modules

    def with_unet(self, unet) -> "EagerBundle":
        """The same bundle with another denoising UNet (a variant of the same model)."""
        other = copy.copy(self)
        other.modules = dict(self.modules, denoising_unet=unet)
        return other


def model_from_weights(path: str):
    """A shipped weights file -> (the float32 StandinModel on the CPU, the file's meta)."""
    from standin_model.config import get_config
    from standin_model.model import build_model
    from standin_train.checkpoints import load_shipping_weights
    state, meta = load_shipping_weights(path)
    cfg = get_config(meta["config"])
    cfg.vae.scaling_factor = float(meta["scaling_factor"])
    model = build_model(cfg)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model, meta


def eager_from_weights(path: str, device: str, dtype: str) -> "EagerBundle":
    model, meta = model_from_weights(path)
    return EagerBundle(model, meta.get("scheduler"), os.path.basename(path), device, dtype)


def eager_random(like: "EagerBundle", seed: int = 0) -> "EagerBundle":
    from standin_model.config import config_from_dict
    from standin_model.export import build_random
    cfg = config_from_dict(like.manifest["architecture"])
    return EagerBundle(build_random(cfg, seed=seed), like.manifest["scheduler"], "random", str(like.device),
                       str(like.dtype).replace("torch.", ""))


SAVED_KEYS = ("frames", "mask", "pose", "depth", "character", "background", "keypoints", "reference",
              "reference_clip")


def save_clips(clips, path: str) -> None:
    """The clips without what follows from the rest (environment) or is empty (object)."""
    np.savez_compressed(path, **{f"{i}/{k}": c[k] for i, c in enumerate(clips) for k in SAVED_KEYS})


def load_clips(path: str):
    data = np.load(path)
    clips = {}
    for key in data.files:
        i, k = key.split("/", 1)
        clips.setdefault(int(i), {})[k] = data[key]
    out = []
    for i in sorted(clips):
        out.append(with_environment(clips[i]))
    return out


def with_environment(clip):
    """The masked source the model sees, from the clip's frames and its redraw mask."""
    m = clip["mask"].astype(np.float32)
    clip["environment"] = np.stack([C.to_m11(f) * (1 - k)[None] for f, k in zip(clip["frames"], m)]).astype(np.float16)
    return clip


def region_settings(mode: str, dilate_px, blocks, defaults: dict):
    """--mask-mode/--mask-dilate/--mask-blocks as replace resolves them: "bundle" (and every
    value not given) takes the bundle's model.json defaults, absent there agnostic / 4 / 0."""
    if mode == "bundle":
        mode = defaults.get("mask_mode", "agnostic")
    dilate_px = defaults.get("mask_dilate", C.AGNOSTIC_DILATE_PX) if dilate_px is None else dilate_px
    blocks = defaults.get("mask_blocks", 0) if blocks is None else blocks
    return mode, dilate_px, blocks


def remask_clips(clips, mode: str, dilate_px: int, blocks: int):
    """The clips with replace's redraw region made from their true character masks at clip size
    (--mask-mode/--mask-dilate/--mask-blocks as replace takes them) instead of the renderer's."""
    out = []
    for c in clips:
        c = dict(c)
        c["mask"] = np.stack([(C.redraw_region(a, mode, dilate_px, blocks) > 0).astype(np.uint8)
                              for a in c["character"]])
        out.append(with_environment(c))
    return out


def bundle_row(bundle, steps: int, cfg: float, use_reference: bool = True, sampler=None, window=None, overlap=None):
    geo = bundle.manifest["geometry"]

    def run(sample, i):
        H, W = sample["frames"].shape[1:3]
        size = (geo["width"], geo["height"])
        conds = E.conds_from_sample(sample, size=size, seed=1000 + i, lc=geo["latent_channels"],
                                    vae_scale=geo["vae_scale_factor"])
        if geo["clip_size"] != sample["reference_clip"].shape[-1]:  # another image encoder size
            clip = torch.from_numpy(sample["reference_clip"].astype(np.float32))[None]
            conds["reference_clip"] = torch.nn.functional.interpolate(clip, size=(geo["clip_size"],) * 2,
                                                                      mode="bicubic", align_corners=False)
        out = generate(bundle, conds, steps=steps, cfg=cfg, use_reference=use_reference, sampler=sampler,
                       window=window, overlap=overlap)
        frames = E.frames_to_uint8(out["frames"])
        if frames.shape[1:3] != (H, W):
            frames = np.stack([cv2.resize(f, (W, H), interpolation=cv2.INTER_CUBIC) for f in frames])
        return frames
    return run


def vae_roundtrip_row(bundle):
    """The true frames through the bundle's VAE and back: what the best possible denoiser could draw."""
    def run(sample, i):
        frames = sample["frames"]
        x = torch.from_numpy(np.stack([C.to_m11(f) for f in frames])).to(bundle.device, bundle.dtype)
        with torch.no_grad():
            out = bundle["vae_decoder"](bundle["vae_encoder"](x)).float().clamp(-1, 1).cpu()
        return E.frames_to_uint8(out)
    return run


def background_row(sample, i):
    return np.repeat(sample["background"][None], sample["frames"].shape[0], axis=0)


def contact_sheet(clips, outputs, path: str, frame: int = -1):
    rows = []
    for s, out in zip(clips, outputs):
        f = frame if frame >= 0 else s["frames"].shape[0] // 2
        rows.append(np.concatenate([s["reference"], s["frames"][f], out[f]], axis=1))
    sheet = np.concatenate(rows, axis=0)
    cv2.imwrite(path, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", help="the trained bundle (TorchScript), or:")
    ap.add_argument("--weights", help="shipped weights (scripts/train.py --ship / models/*.pth), run eagerly")
    ap.add_argument("--pack", help="asset pack (to render the held-out clips)")
    ap.add_argument("--backgrounds", help="background plates (to render the held-out clips)")
    ap.add_argument("--clips-file", help="held-out clips saved by --save-clips (instead of rendering)")
    ap.add_argument("--save-clips", help="write the rendered clips here (.npz) and go on")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    ap.add_argument("--out", required=True)
    ap.add_argument("--split", default="test", choices=["test", "train"],
                    help="render held-out clips (test) or clips of the training identities, animations and plates "
                         "(train: the generalisation gap, not a result)")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--steps", type=int, help="default: the bundle's")
    ap.add_argument("--cfg", type=float, help="default: the bundle's")
    ap.add_argument("--sampler", choices=sorted(SAMPLERS), help="default: the bundle's")
    ap.add_argument("--window", type=int, help="frames per window (default: the bundle's)")
    ap.add_argument("--overlap", type=int, help="frames shared by neighbouring windows (default: the bundle's)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--random-bundle", help="random-weights bundle of the same architecture")
    ap.add_argument("--tiny-bundle", default="models/tiny")
    ap.add_argument("--rows", default="trained,no_reference,random,tiny,background")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--mask-mode", choices=("clip", "bundle") + C.REDRAW_MODES, default="clip",
                    help="redraw region: the renderer's (clip, default), or made here as replace makes it: "
                         "the bundle's default (bundle) or the one named")
    ap.add_argument("--mask-dilate", type=int, help="with --mask-mode (pixels; default: the bundle's)")
    ap.add_argument("--mask-blocks", type=int,
                    help="with --mask-mode agnostic: blocks per box side (default: the bundle's, one per 10 pixels)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    if args.clips_file:
        clips = load_clips(args.clips_file)
        args.frames = clips[0]["frames"].shape[0]
    else:
        clips = make_clips(args.pack, args.backgrounds, args.clips, args.frames, args.seed, args.split)
    if args.save_clips:
        save_clips(clips, args.save_clips)
    kind = "held-out" if args.split == "test" or args.clips_file else "training-split"
    print(f"{len(clips)} {kind} clips of {args.frames} frames in {time.time() - t0:.0f} s", flush=True)
    if args.weights:
        trained = eager_from_weights(args.weights, args.device, args.dtype)
    else:
        trained = Bundle(args.bundle, device=args.device, dtype=args.dtype if args.device != "cpu" else None)
    region = None
    if args.mask_mode != "clip":
        region = region_settings(args.mask_mode, args.mask_dilate, args.mask_blocks, trained.manifest["defaults"])
        clips = remask_clips(clips, *region)
        print(f"redraw region {region[0]}, dilate {region[1]}, blocks {region[2] or 'auto'}: "
              f"{np.mean([c['mask'].mean() for c in clips]):.4f} of the frame", flush=True)
    steps = args.steps or trained.manifest["defaults"]["steps"]
    cfg = args.cfg if args.cfg is not None else trained.manifest["defaults"]["cfg"]
    rows = {}
    wanted = args.rows.split(",")
    trained_generated = []  # the trained row's frames, for the diagnostic mixes and the contact sheet

    def keep(fn):
        def inner(s, i):
            o = fn(s, i)
            trained_generated.append(o)
            return o
        return inner

    def mixed(part):
        if len(trained_generated) != len(clips):
            raise SystemExit(f"--rows trained_{part} needs the trained row before it")
        return lambda s, i: E.oracle_mixes(trained_generated[i], s)[part]

    sampler = args.sampler or trained.manifest["defaults"].get("sampler", "ddim")
    windows = {"window": args.window, "overlap": args.overlap}
    plan = [("trained", lambda: keep(bundle_row(trained, steps, cfg, sampler=sampler, **windows))),
            ("no_reference", lambda: bundle_row(trained, steps, cfg, use_reference=False, sampler=sampler, **windows)),
            ("random", lambda: bundle_row(Bundle(args.random_bundle, device=args.device) if args.random_bundle
                                          else eager_random(trained), steps, cfg, sampler=sampler, **windows)),
            ("tiny", lambda: bundle_row(Bundle(args.tiny_bundle, device=args.device),
                                        Bundle(args.tiny_bundle).manifest["defaults"]["steps"], cfg)
             if os.path.exists(args.tiny_bundle) else None),
            ("background", lambda: background_row),
            ("vae_roundtrip", lambda: vae_roundtrip_row(trained)),
            ("trained_character", lambda: mixed("character")),
            ("trained_fill", lambda: mixed("fill"))]
    for name, make in plan:
        if name not in wanted:
            continue
        fn = make()
        if fn is None:
            print(f"skipping {name}: no bundle", flush=True)
            continue
        t1 = time.time()
        rows[name] = E.run_row(name, clips, fn, log=lambda m: print(m, flush=True))
        rows[name]["seconds"] = time.time() - t1
        print(f"{name}: " + json.dumps({k: round(v, 4) for k, v in rows[name].items()}), flush=True)
    print(E.write_results(args.out, {"clips": len(clips), "frames": args.frames, "steps": steps, "cfg": cfg, "sampler": sampler, **windows,
                                     "seed": args.seed, "bundle": args.bundle or args.weights,
                                     "mask": ({"mode": region[0], "dilate": region[1], "blocks": region[2]}
                                              if region else {"mode": "clip"}),
                                     "device": args.device, "dtype": args.dtype}, rows))
    if trained_generated:
        contact_sheet(clips, [E.paste(o, s["frames"], s["mask"]) for o, s in zip(trained_generated, clips)],
                      os.path.join(args.out, "contact_sheet.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
