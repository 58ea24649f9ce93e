#!/usr/bin/env python3
"""Write a standin model bundle (model.json + one TorchScript file per module).

  /usr/bin/python3 scripts/export_bundle.py --config tiny --out models/tiny
  /usr/bin/python3 scripts/export_bundle.py --config sd15 --checkpoint-dir /path/to/pretrained_weights \
      --dtype float16 --out models/sd15
  /usr/bin/python3 scripts/export_bundle.py --config sd15 --count-only

Without --checkpoint-dir the weights are random (seeded, deterministic).  See docs/BUNDLE.md.

model.json's noise schedule is what the checkpoint's authors sample with (--source auto: told
apart by the motion modules' position-table length; Moore-AnimateAnyone: beta_schedule linear,
MusePose: scaled_linear); random weights get the project default (scaled_linear).
--beta-schedule overrides either; `standin replace/animate --beta-schedule` overrides it per run.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from standin_model.config import CONFIGS, get_config  # noqa: E402


def _reexec_with_fixed_hash_seed() -> None:
    """TorchScript's printed code lists some constants in set order, which depends on Python's
    hash seed; fix it so the same arguments give byte-identical files (and sha256)."""
    if os.environ.get("PYTHONHASHSEED") != "0" and __name__ == "__main__":
        env = dict(os.environ, PYTHONHASHSEED="0")
        os.execve(sys.executable, [sys.executable] + sys.argv, env)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="tiny", choices=sorted(CONFIGS))
    ap.add_argument("--out", help="output directory (models/NAME)")
    ap.add_argument("--name", help="bundle name (default: the directory name)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint-dir", help="Moore-AnimateAnyone / MusePose pretrained_weights directory")
    ap.add_argument("--weights", help="weights trained by scripts/train.py (one fp16 file, e.g. "
                                      "models/standin-demo-v1.pth); records the scheduler it was trained with")
    ap.add_argument("--source", default="auto", choices=["auto", "moore-aa", "musepose", "standin"],
                    help="whose inference scheduler settings model.json records (auto: detected from the "
                         "checkpoint; standin without one)")
    ap.add_argument("--beta-schedule", choices=["linear", "scaled_linear"],
                    help="record this beta schedule instead of the source's")
    ap.add_argument("--reference-blocks", choices=["all", "mid_up"], help="override the config")
    ap.add_argument("--no-object-guider", action="store_true")
    ap.add_argument("--pose-modulation", action="store_true", help="AA2 depth-wise pose modulation")
    ap.add_argument("--no-exercise", action="store_true",
                    help="random weights keep the zero-initialised additions at zero")
    ap.add_argument("--no-check", action="store_true", help="skip the reload + dry-run check")
    ap.add_argument("--count-only", action="store_true", help="print parameter counts and exit")
    args = ap.parse_args(argv)

    import torch
    from standin_model import export as E
    from standin_model.scheduler import scheduler_config

    overrides = {}
    if args.reference_blocks:
        overrides["reference_blocks"] = args.reference_blocks
    if args.no_object_guider:
        overrides["use_object_guider"] = False
    if args.pose_modulation:
        overrides["pose_modulation"] = True
    cfg = get_config(args.config, **overrides)

    if args.count_only:
        counts = E.count_parameters(cfg)
        for k, v in counts.items():
            print(f"{k:32s} {v:15,d}  ({v / 1e6:.2f}M)")
        return 0
    if not args.out:
        ap.error("--out is required")

    torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))
    t0 = time.time()
    if args.checkpoint_dir:
        from standin_model.checkpoint import load_pretrained
        model, report = load_pretrained(cfg, args.checkpoint_dir)
        print(report.summary())
        weights = {"source": "checkpoint", "dir": os.path.abspath(args.checkpoint_dir), "files": report.files}
        source = args.source
        if source == "auto":
            if report.layout is None:
                print("error: cannot tell whose checkpoint this is (Moore-AnimateAnyone or MusePose) from its "
                      "motion modules; pass --source moore-aa|musepose (it picks the sampling schedule)",
                      file=sys.stderr)
                return 2
            source = report.layout
        weights["layout"] = report.layout
    elif args.weights:
        from standin_model.export import sha256_file
        from standin_train.checkpoints import load_shipping_weights
        state, meta = load_shipping_weights(args.weights)
        if meta.get("config") != cfg.name:
            print(f"error: {args.weights} holds a {meta.get('config')!r} model; pass --config {meta.get('config')}",
                  file=sys.stderr)
            return 2
        cfg.vae.scaling_factor = float(meta["scaling_factor"])
        from standin_model.model import build_model
        model = build_model(cfg)
        model.load_state_dict({k: v.float() for k, v in state.items()})
        weights = {"source": "trained", "file": os.path.basename(args.weights),
                   "sha256": sha256_file(args.weights), "training": meta.get("progress", {})}
        source = "standin"
    else:
        model = E.build_random(cfg, seed=args.seed, exercise=not args.no_exercise)
        weights = {"source": "random", "seed": args.seed, "exercised": not args.no_exercise}
        source = "standin" if args.source == "auto" else args.source
    scheduler = scheduler_config(source, args.beta_schedule)
    if args.weights and "scheduler" in meta:  # exactly what it was trained with
        from standin_model.scheduler import with_beta_schedule
        scheduler = with_beta_schedule(meta["scheduler"], args.beta_schedule)
    print(f"scheduler: {source} inference settings, beta_schedule {scheduler['beta_schedule']}"
          + (" (--beta-schedule)" if args.beta_schedule else ""))
    name = args.name or os.path.basename(os.path.normpath(args.out))
    print(f"exporting {cfg.name} ({args.dtype}) -> {args.out}")
    man = E.export_bundle(model, args.out, name=name, dtype=args.dtype, weights=weights,
                          check=not args.no_check, scheduler=scheduler)
    if "check" in man:
        print("eager vs exported max-abs error:", json.dumps(man["check"]))
    print(f"done in {time.time() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    _reexec_with_fixed_hash_seed()
    sys.exit(main())
