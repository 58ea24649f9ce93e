#!/usr/bin/env python3
"""Check (and optionally convert) public Moore-AnimateAnyone / MusePose + SD1.5 VAE + CLIP checkpoints.

  /usr/bin/python3 scripts/import_checkpoint.py --checkpoint-dir pretrained_weights [--config sd15] \
      [--no-strict] [--save merged.pt]

Prints the per-part report (loaded / missing / unexpected / mismatched keys).  To write a bundle
from the same files use scripts/export_bundle.py --checkpoint-dir.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint-dir", required=True)
    ap.add_argument("--config", default="sd15", choices=["tiny", "sd15"])
    ap.add_argument("--no-strict", action="store_true")
    ap.add_argument("--save", help="save the merged StandinModel state dict (torch.save)")
    args = ap.parse_args(argv)
    import torch
    from standin_model.checkpoint import load_pretrained
    from standin_model.config import get_config
    try:
        model, rep = load_pretrained(get_config(args.config), args.checkpoint_dir, strict=not args.no_strict)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    print(rep.summary())
    if args.save:
        torch.save(model.state_dict(), args.save)
    return 0 if rep.ok else 1


if __name__ == "__main__":
    sys.exit(main())
