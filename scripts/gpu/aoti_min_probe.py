#!/usr/bin/env python3
"""Does AOTInductor work at all on this machine? (issue 11; docs/BENCHMARKS.md "Compiled UNet")

  python3 scripts/gpu/aoti_min_probe.py plain,plain-blob,tokens

Packages a one-Linear model with torch.export + aoti_compile_and_package, loads it back with
aoti_load_package (what LibTorch's AOTIModelPackageLoader runs in C++) and runs it, printing a
line after each stage, so a crash shows where it happened. Cases:
  plain       one input, the weights inside the package's shared object
  plain-blob  the same with the weights in a separate binary blob (torch >= 2.10)
  tokens      an extra tensor input, like the UNet's reference tokens
Run each case in its own process (a crash ends the process): `for c in plain plain-blob tokens;
do python3 scripts/gpu/aoti_min_probe.py $c; echo "$c exit $?"; done`.
"""
from __future__ import annotations

import sys
import time

import torch
from torch import nn

CASES = ("plain", "plain-blob", "tokens")
BLOB = {"aot_inductor.package_constants_in_so": False,
        "aot_inductor.package_constants_on_disk_format": "binary_blob"}


class OneLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(64, 64)

    def forward(self, x, *extra):
        y = self.linear(x)
        for e in extra:
            y = y + e
        return y


def probe(case: str, device: str = "cuda") -> None:
    model = OneLinear().to(device).half().eval()
    x = torch.randn(8, 64, device=device, dtype=torch.half)
    args = (x, torch.randn_like(x)) if case == "tokens" else (x,)
    t0 = time.time()
    with torch.no_grad():
        exported = torch.export.export(model, args)
        path = torch._inductor.aoti_compile_and_package(
            exported, package_path=f"/tmp/aoti_probe_{case}.pt2", inductor_configs=BLOB if case.endswith("blob") else {})
        print(f"{case}: compiled in {time.time() - t0:.1f} s", flush=True)
        runner = torch._inductor.aoti_load_package(path)
        print(f"{case}: loaded", flush=True)
        out = runner(*args)
        print(f"{case}: ran, max abs diff from eager {float((out - model(*args)).abs().max()):.2e}", flush=True)


if __name__ == "__main__":
    for c in (sys.argv[1] if len(sys.argv) > 1 else "plain").split(","):
        if c not in CASES:
            sys.exit(f"unknown case {c!r}; one of {', '.join(CASES)}")
        probe(c)
