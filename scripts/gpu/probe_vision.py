#!/usr/bin/env python3
"""How fast the converted MediaPipe networks run on the GPU through TorchScript, per call, by
batch size, with TorchScript's graph optimisation (profiling executor, fusers) on and off: the
executor is the one LibTorch runs, so this measures standin's analysis without building it.

  python3 scripts/gpu/probe_vision.py --dirs DIR[,DIR...] [--device cuda]

Each DIR holds vision.json and pose_detection.pt / pose_landmark_full.pt (converted by
scripts/mediapipe/convert_all.py, with whatever torch that machine has). Prints one table: for
each folder, network, optimisation setting and batch, the first call and the median of the next
calls (ms), and the number of nodes in the graph.
"""
import argparse
import json
import os
import statistics
import time

import torch


def timed(fn, dev, n):
    out = []
    for _ in range(n):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t = time.perf_counter()
        fn()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        out.append(1e3 * (time.perf_counter() - t))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dirs", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--calls", type=int, default=8)
    ap.add_argument("--out")
    a = ap.parse_args()
    dev = torch.device(a.device)
    rows = []
    print("| models | network | graph optimisation | batch | first call ms | median ms (next calls) | ms per image | graph nodes |")
    print("|---|---|---|---|---|---|---|---|")
    for d in a.dirs.split(","):
        meta = json.load(open(os.path.join(d, "vision.json")))
        for net, size, batches in (("pose_detection", 224, (1, 7)), ("pose_landmark_full", 256, (1, 2, 3, 4))):
            for optimize in (True, False):
                torch._C._set_graph_executor_optimize(optimize)
                m = torch.jit.load(os.path.join(d, net + ".pt"), map_location=dev).eval()
                nodes = len(list(m.graph.nodes()))
                for b in batches:
                    x = torch.rand(b, 3, size, size, device=dev)
                    with torch.no_grad():
                        t = timed(lambda: m(x), dev, a.calls + 1)
                    med = statistics.median(t[1:])
                    r = {"models": d, "torch_used": meta.get("torch_version_used"), "network": net, "optimize": optimize,
                         "batch": b, "first_ms": t[0], "median_ms": med, "nodes": nodes}
                    rows.append(r)
                    print(f"| {os.path.basename(d.rstrip('/'))} (torch {r['torch_used']}) | {net} | {'on' if optimize else 'off'} | {b} | "
                          f"{t[0]:.1f} | {med:.2f} | {med / b:.2f} | {nodes} |", flush=True)
    torch._C._set_graph_executor_optimize(True)
    if a.out:
        json.dump(rows, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
