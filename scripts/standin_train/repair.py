"""Undo a plain EMA's pull towards the weights a stage started from (the first demo run).

Before ``checkpoints.EMA`` warmed its decay up, a stage's average after n updates was
    S = d^n * W0 + (1 - d) * sum_i d^(n-i) * W_i
i.e. it still held d^n of the stage's starting weights W0 (0.999^1300 = 27 % for the first demo
run's image stage: the UNets' random initialisation).  The bias-corrected average is
    (S - d^n * W0) / (1 - d^n).
W0 is reproducible: the model is built with ``torch.manual_seed(config seed)`` before anything
else, and the parameters a stage trains had not been touched by the stages before it.

  /usr/bin/python3 -m standin_train.repair WEIGHTS_DIR configs/train/demo.json OUT.pth \
      image:1300 video:350          (in scripts/; stage:updates for each stage to correct)
"""
from __future__ import annotations

import json
import sys
from typing import Dict

import torch

from standin_model.config import get_config
from standin_model.model import StandinModel
from standin_train import checkpoints as ckpt
from standin_train.objectives import trainable_parameters


def debias(state: Dict[str, torch.Tensor], train_cfg: Dict, updates: Dict[str, int]) -> Dict[str, torch.Tensor]:
    torch.manual_seed(int(train_cfg["seed"]))
    model = StandinModel(get_config(train_cfg["model"]))
    start = model.state_dict()
    decay = {s["name"]: float(s.get("ema", 0.999)) for s in train_cfg["stages"]}
    out = {k: v.float() for k, v in state.items()}
    for stage, n in updates.items():
        params = trainable_parameters(model, stage)
        names = [name for name, p in model.named_parameters() if any(p is q for q in params)]
        left = decay[stage] ** n
        for name in names:
            out[name] = (out[name] - left * start[name].float()) / (1.0 - left)
    return out


def main(argv) -> int:
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    weights_dir, config_path, out_path = argv[:3]
    updates = {a.split(":")[0]: int(a.split(":")[1]) for a in argv[3:]}
    with open(config_path) as f:
        train_cfg = json.load(f)
    state, progress = ckpt.read_shards(weights_dir)
    fixed = debias(state, train_cfg, updates)
    progress = dict(progress, ema_debiased=updates)
    ckpt.save_shipping_weights(out_path, fixed, ckpt.shipping_meta(train_cfg, progress))
    print(f"wrote {out_path}: corrected {updates}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
