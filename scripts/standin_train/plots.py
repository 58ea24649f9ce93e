"""Loss curves of a run (log.jsonl written by scripts/train.py) as one PNG, a panel per stage.

  /usr/bin/python3 -m standin_train.plots RUN/log.jsonl loss.png     (from scripts/)
"""
from __future__ import annotations

import json
import sys
from collections import OrderedDict
from typing import Dict, List


def read_log(path: str) -> "OrderedDict[str, List[Dict]]":
    stages: "OrderedDict[str, List[Dict]]" = OrderedDict()
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rec = json.loads(line)
                stages.setdefault(rec["stage"], []).append(rec)
    return stages


def plot(log_path: str, out_png: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = read_log(log_path)
    if not stages:
        raise ValueError(f"{log_path}: no records")
    fig, axes = plt.subplots(1, len(stages), figsize=(4.5 * len(stages), 3.4), squeeze=False)
    for ax, (name, recs) in zip(axes[0], stages.items()):
        recs = sorted({r["step"]: r for r in recs}.values(), key=lambda r: r["step"])  # resumed runs
        steps = [r["step"] for r in recs]
        keys = ["loss"] + [k for k in ("l1", "grad", "mse") if k in recs[0]]
        for k in keys:
            ax.plot(steps, [r[k] for r in recs], label=k, lw=1.2)
        ax.set_title(f"stage {name}")
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m standin_train.plots LOG.jsonl OUT.png")
    plot(sys.argv[1], sys.argv[2])
