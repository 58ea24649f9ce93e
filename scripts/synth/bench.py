#!/usr/bin/python3
"""Renderer speed: ms per frame on one core, and the numba JIT cost.

    /usr/bin/python3 scripts/synth/bench.py [--pack .train/pack] [--frames 200]

Prints the first-call time in a fresh process with an empty numba cache (compilation) and with a
warm one, the cost of preparing an identity, and ms/frame for 128x192 and 256x384 at supersample
1 and 2 (train identities, their poses, random views; pinned to one core).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __package__ in (None, ""):
    sys.path.insert(0, HERE)

FIRST_CALL = """
import sys, time
t0 = time.perf_counter()
sys.path.insert(0, {here!r})
import numpy as np
from synth import AssetPack, Camera, render
pack = AssetPack.load({pack!r})
rng = np.random.default_rng(0)
ident = pack.sample_identity(rng)
motion = pack.sample_motion(rng, frames=1)
t1 = time.perf_counter()
render(pack, ident, motion.bones[0], Camera(), size=(128, 192), supersample=2)
t2 = time.perf_counter()
print(f"{{t1 - t0:.3f}} {{t2 - t1:.3f}}")
"""


def first_call(pack: str, cache_dir: str):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    code = FIRST_CALL.format(here=HERE, pack=pack)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    load_s, render_s = (float(x) for x in r.stdout.split())
    return load_s, render_s


def bench(pack_dir: str, identities: int, frames: int):
    """(ms/frame per (w, h, ss), ms to prepare an identity). Clip-like: ``identities``
    identities x ``frames`` poses each, random views; identities are prepared (textures decoded,
    coloured and baked) before the frame timing, as a training clip reuses them for all frames."""
    from synth import AssetPack, Camera, Light, prepare, render
    pack = AssetPack.load(pack_dir)
    rng = np.random.default_rng(1)
    jobs, idents = [], []
    for _ in range(identities):
        ident = pack.sample_identity(rng)
        idents.append(ident)
        motion = pack.sample_motion(rng, frames=frames, identity=ident)
        for f in range(frames):
            jobs.append((ident, motion.bones[f], float(rng.uniform(0, 360)),
                         float(rng.uniform(0, 30))))
    t = time.perf_counter()
    for ident in idents:
        prepare(pack, ident)
    prep_ms = (time.perf_counter() - t) / len(idents) * 1000.0
    pack.kit_cache.clear()
    results = {}
    for (w, h) in ((128, 192), (256, 384)):
        for ss in (1, 2):
            cams = [Camera(azimuth_deg=a, elevation_deg=e, scale=h * 0.19,
                           origin_px=(w / 2, h * 0.93)) for _, _, a, e in jobs]
            cpu = wall = 0.0
            for i in range(0, len(jobs), frames):  # one clip at a time, as training does
                ident = jobs[i][0]
                prepare(pack, ident)
                render(pack, ident, jobs[i][1], cams[i], Light(), size=(w, h), supersample=ss)
                t, c = time.perf_counter(), time.process_time()
                for (ident, bones, _, _), cam in zip(jobs[i:i + frames], cams[i:i + frames]):
                    render(pack, ident, bones, cam, Light(), size=(w, h), supersample=ss)
                wall += time.perf_counter() - t
                cpu += time.process_time() - c
            results[(w, h, ss)] = (cpu / len(jobs) * 1000.0, wall / len(jobs) * 1000.0)
    return results, prep_ms


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pack", default=os.path.join(HERE, "..", ".train", "pack"))
    ap.add_argument("--identities", type=int, default=25)
    ap.add_argument("--frames", type=int, default=8, help="poses per identity")
    ap.add_argument("--no-jit", action="store_true", help="skip the fresh-process JIT timing")
    args = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    pack = os.path.abspath(args.pack)
    if not args.no_jit:
        with tempfile.TemporaryDirectory() as cache:
            load_s, compile_s = first_call(pack, cache)
            _, cached_s = first_call(pack, cache)
        print(f"pack load + first identity: {load_s * 1000:.0f} ms")
        print(f"first render, empty numba cache (JIT compile): {compile_s:.2f} s")
        print(f"first render, warm numba cache: {cached_s:.2f} s")
    res, prep_ms = bench(pack, args.identities, args.frames)
    print(f"prepare an identity (decode + colour + bake its textures): {prep_ms:.1f} ms")
    print(f"ms/frame, one core, {args.identities} identities x {args.frames} poses, random views:")
    print("  (CPU time of this process; wall time in brackets, higher when the machine is busy)")
    for (w, h, ss), (cpu, wall) in res.items():
        print(f"  {w}x{h} supersample {ss}: {cpu:.2f} ms  [{wall:.2f} ms wall]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
