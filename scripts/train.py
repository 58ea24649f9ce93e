#!/usr/bin/env python3
"""Train a standin model from nothing: VAE, then stage 1 (images), then stage 2 (motion).

  /usr/bin/python3 scripts/train.py --config configs/train/demo.json --run .train/run \
      --pack .train/pack --backgrounds .train/backgrounds                       # CPU, tiny runs
  torchrun --nproc_per_node=2 scripts/train.py --config configs/train/demo.json --run /tmp/run \
      --pack .train/pack --backgrounds .train/backgrounds --time-limit 540      # GPUs (DDP)

The run folder is resumable (standin_train/checkpoints.py): the same command continues where the
last one stopped, from ``state.pt`` when it is there (same machine: exact), else from the fp16
weights in ``weights/`` (a fresh machine: new optimizer state).  ``--time-limit`` stops cleanly
after that many seconds, so training fits in the GPU machine's 10-minute calls; ``--init``
seeds a run folder from a weights folder brought back by an earlier call. ``--warm-start``
starts a changed architecture from an earlier model's weights (every tensor whose name and
shape still fit), optionally skipping stages (``--start-stage image`` keeps its VAE).  The stages, batch
sizes and learning rates are data: configs/train/*.json.  docs/TRAINING.md tells the whole
recipe and its results.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Dict, Iterator, Optional

import numpy as np
import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from standin_model.config import get_config  # noqa: E402
from standin_model.model import StandinModel  # noqa: E402
from standin_train import checkpoints as ckpt  # noqa: E402
from standin_train.data import Backgrounds, DataConfig, SampleMaker, to_tensors  # noqa: E402
from standin_train.objectives import DiffusionObjective, VAEObjective, trainable_parameters  # noqa: E402


# ----------------------------------------------------------------------------- data
class Samples(torch.utils.data.IterableDataset):
    """An endless stream of rendered samples; every (rank, worker, session) draws its own."""

    def __init__(self, pack_dir: str, backgrounds_dir: str, data_cfg: DataConfig, seed: int):
        self.pack_dir, self.backgrounds_dir, self.data_cfg, self.seed = pack_dir, backgrounds_dir, data_cfg, seed
        self.maker: Optional[SampleMaker] = None

    def make_maker(self) -> SampleMaker:
        if self.maker is None:
            import synth
            self.maker = SampleMaker(synth.AssetPack.load(self.pack_dir), Backgrounds(self.backgrounds_dir, "train"),
                                     self.data_cfg, split="train")
        return self.maker

    def __iter__(self) -> Iterator[Dict]:
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        rng = np.random.default_rng([self.seed, worker])
        maker = self.make_maker()
        while True:
            yield maker.make_renderable(rng)


def stage_data_config(cfg_train: Dict, stage: Dict) -> DataConfig:
    """The data a stage renders: the run's data options, the stage's frames, the stage's overrides."""
    return DataConfig.from_dict({**cfg_train["data"], "frames": stage.get("frames", 1), **stage.get("data", {})})


def config_problem(cfg_train: Dict) -> Optional[str]:
    """What is wrong with a training config, checked before any work (a typo in the last stage's
    data options would otherwise surface only when that stage starts), or None."""
    for s in cfg_train["stages"]:
        if s.get("name") not in ("vae", "image", "video"):
            return f"stage {s.get('name')!r}: the stages are vae, image and video"
        repeats = s.get("sample_repeats", 1)
        if not isinstance(repeats, int) or repeats < 1 or (repeats > 1 and s["name"] == "vae"):
            return (f"stage {s['name']}: sample_repeats must be a whole number >= 1, "
                    f"and 1 in the vae stage (its loss draws no noise), got {repeats!r}")
        tw = s.get("temporal_weight", 0.0)
        if not isinstance(tw, (int, float)) or tw < 0 or (tw > 0 and s["name"] != "video"):
            return f"stage {s['name']}: temporal_weight must be a number >= 0, and only the video stage has frames to compare, got {tw!r}"
        try:
            stage_data_config(cfg_train, s)
        except (KeyError, TypeError, ValueError) as e:
            return f"stage {s['name']}: {e}"
    return None


def loader(args, data_cfg: DataConfig, batch: int, seed: int) -> Iterator[Dict]:
    ds = Samples(args.pack, args.backgrounds, data_cfg, seed)
    ds.make_maker().make_renderable(np.random.default_rng(seed))  # JIT-compile in the parent: workers fork it
    if args.workers == 0:
        def gen():
            it = iter(ds)
            while True:
                items = [next(it) for _ in range(batch)]
                yield torch.utils.data.default_collate(items)
        return gen()
    dl = torch.utils.data.DataLoader(ds, batch_size=batch, num_workers=args.workers, pin_memory=args.cuda,
                                     prefetch_factor=4, persistent_workers=False)
    return iter(dl)


# ----------------------------------------------------------------------------- helpers
def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def log(*a):
    if is_main():
        print(*a, flush=True)


def lr_at(stage: Dict, step: int) -> float:
    """Linear warm-up, then cosine decay to 10 % over the stage."""
    warm = max(1, stage.get("warmup", 100))
    if step < warm:
        return stage["lr"] * (step + 1) / warm
    p = min(1.0, (step - warm) / max(1, stage["steps"] - warm))
    return stage["lr"] * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def all_agree(flag: bool, device) -> bool:
    if not dist.is_initialized():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


@torch.no_grad()
def measure_latent_scale(model: StandinModel, batches: Iterator[Dict], device, n: int = 8) -> float:
    """1 / std of the VAE's posterior means over training frames (SD's scaling_factor idea)."""
    vals = []
    for _ in range(n):
        b = to_tensors(next(batches), device)
        imgs = torch.cat([b["frames"][:, 0], b["reference"]])
        vals.append(model.vae.encode_mean(imgs).float().flatten())
    std = torch.cat(vals).std()
    if dist.is_initialized():
        dist.all_reduce(std)
        std = std / dist.get_world_size()
    return float(1.0 / std)


# ----------------------------------------------------------------------------- one stage
def diffusion_objective(model: StandinModel, scheduler_cfg: Dict, stage: Dict) -> DiffusionObjective:
    """The image or video stage's objective with the stage's settings (defaults as in the recipe)."""
    return DiffusionObjective(model, scheduler_cfg, stage.get("reference_drop", 0.1), stage.get("outside_mask_weight", 0.25),
                              stage.get("temporal_weight", 0.0))


def make_optimizer(params, lr: float, cuda: bool) -> torch.optim.Optimizer:
    try:  # one fused kernel for the whole update on CUDA (torch >= 2)
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.01, betas=(0.9, 0.99), fused=cuda)
    except (TypeError, RuntimeError):
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.01, betas=(0.9, 0.99))


def apply_update(loss, opt, params, ema, model: StandinModel, trained_names) -> torch.Tensor:
    """One update from a step's loss: gradients, clipping at norm 1, AdamW, the EMA; the gradient norm."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    gn = torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    ema.update(model, trained_names)
    return gn


def run_stage(args, cfg_train: Dict, stage: Dict, model: StandinModel, state: Dict, device, started: float) -> bool:
    """Trains ``stage`` from state["step"]; returns True when the stage is finished."""
    name = stage["name"]
    frames = stage.get("frames", 1)
    data_cfg = stage_data_config(cfg_train, stage)
    world = dist.get_world_size() if dist.is_initialized() else 1
    rank = dist.get_rank() if dist.is_initialized() else 0
    seed = int(cfg_train["seed"]) * 1_000_003 + rank * 7919 + state["sessions"] * 104_729 + state["stage_index"]
    batches = loader(args, data_cfg, stage["batch"], seed)
    # Each rendered sample enters the batch this many times, each copy with its own noise level and
    # noise: more examples per step where the renderer, not the GPU, would be the limit.
    repeats = int(stage.get("sample_repeats", 1))
    gen = torch.Generator(device=device).manual_seed(seed)
    step_rng = np.random.default_rng(seed)

    params = trainable_parameters(model, name)
    if name == "vae":
        objective = VAEObjective(model, stage.get("kl_weight", 1e-6), stage.get("gradient_weight", 0.5),
                                 stage.get("character_weight", 3.0)).to(device)
    else:
        model.cfg.vae.scaling_factor = state["scaling_factor"]
        objective = diffusion_objective(model, cfg_train["scheduler"], stage).to(device)
    wrapped = objective
    if dist.is_initialized():
        wrapped = torch.nn.parallel.DistributedDataParallel(objective, device_ids=[device.index] if args.cuda else None,
                                                            find_unused_parameters=True)
    opt = make_optimizer(params, stage["lr"], args.cuda)
    ema = ckpt.EMA(model, stage.get("ema", 0.999))
    trained_names = [n for n, p in model.named_parameters() if p.requires_grad]
    if state.get("optimizer") is not None and state.get("optimizer_stage") == state["stage_index"]:
        opt.load_state_dict(state["optimizer"])
    if state.get("ema") is not None:
        ema.load_state_dict(state["ema"])
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if args.cuda else torch.autocast("cpu", enabled=False)

    step = state["step"]
    t_log, n_log, wait = time.time(), 0, 0.0
    sums: Dict[str, float] = {}
    finished = step >= stage["steps"]
    while not finished:
        t0 = time.time()
        raw = next(batches)
        b = to_tensors(raw, device)
        if repeats > 1:
            b = {k: v.repeat_interleave(repeats, dim=0) if torch.is_tensor(v) else v for k, v in b.items()}
        examples = int(b["frames"].shape[0])  # per process
        wait += time.time() - t0
        for g in opt.param_groups:
            g["lr"] = lr_at(stage, step)
        with amp:
            if name == "vae":
                # the frames (weighted up on the character), the masked frames the UNet's
                # environment input shows, and references over white
                frames_, char_ = b["frames"].flatten(0, 1), b["character"].flatten(0, 1)
                images = torch.cat([frames_, b["environment"].flatten(0, 1), b["reference"]])
                weight = torch.cat([char_, torch.zeros_like(char_), torch.zeros_like(char_[: b["reference"].shape[0]])])
                out = wrapped(images, weight)
            else:
                use_obj = bool(step_rng.random() < stage.get("object_steps", 0.3))
                out = wrapped(b, use_obj, gen)
        gn = apply_update(out["loss"], opt, params, ema, model, trained_names)
        step += 1
        n_log += 1
        for k, v in out.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        sums["grad_norm"] = sums.get("grad_norm", 0.0) + float(gn)
        finished = step >= stage["steps"]
        args.steps_done += 1
        # every rank runs the same steps: the step cap needs no agreement, the clock does
        stop = bool(args.max_steps_this_call) and args.steps_done >= args.max_steps_this_call
        if args.time_limit and step % 10 == 0:
            stop = stop or all_agree(time.time() - started > args.time_limit, device)
        if step % args.log_every == 0 or finished or stop:
            dt = time.time() - t_log
            rec = {"stage": name, "step": step, "lr": lr_at(stage, step - 1),
                   **{k: v / n_log for k, v in sums.items()},
                   "steps_per_s": n_log / dt, "samples_per_s": n_log * stage["batch"] * world * frames / dt,
                   "examples_per_step": examples, "examples_per_s": n_log * examples * world * frames / dt,
                   "data_wait": wait / dt, "elapsed": time.time() - started}
            if is_main():
                with open(os.path.join(args.run, "log.jsonl"), "a") as f:
                    f.write(json.dumps(rec) + "\n")
                log(f"{name} {step:6d}/{stage['steps']}  loss {rec['loss']:.4f}  "
                    f"{rec['steps_per_s']:.2f} it/s  {rec['samples_per_s']:.0f} frames/s  wait {rec['data_wait']:.0%}")
            t_log, n_log, wait, sums = time.time(), 0, 0.0, {}
        if stop:
            break

    state["step"] = step
    state["optimizer"] = opt.state_dict()
    state["optimizer_stage"] = state["stage_index"]
    state["ema"] = ema.state_dict()
    if finished:
        ema.copy_to(model)  # the next stage starts from (and ships) the averaged weights
        state["ema"] = None
        state["optimizer"] = None
        if name == "vae":
            state["scaling_factor"] = measure_latent_scale(model, batches, device)
            log(f"latent scaling factor {state['scaling_factor']:.4f}")
    return finished


# ----------------------------------------------------------------------------- run folder
def shipped_weights(model: StandinModel, state: Dict) -> Dict[str, torch.Tensor]:
    """The averaged weights: the EMA while a stage is under way, else the model itself."""
    ema_state = state.get("ema")
    shipped = dict(model.state_dict())
    if ema_state:
        shipped.update({k: ema_state[k] for k in shipped if k in ema_state})
    return shipped


def save_run(args, cfg_train: Dict, model: StandinModel, state: Dict) -> Dict:
    """state.pt (exact resume here) + weights/ (fp16 shards that travel); rank 0 writes."""
    progress = {k: state[k] for k in ("stage_index", "step", "sessions", "scaling_factor")}
    progress["done"] = state["stage_index"] >= len(cfg_train["stages"])
    progress["config"] = cfg_train["model"]
    if is_main():
        ckpt.write_shards(os.path.join(args.run, "weights"), shipped_weights(model, state), progress)
        ckpt.save_state(os.path.join(args.run, "state.pt"), {**state, "model": model.state_dict()})
    return progress


def warm_start(args, model, state: Dict, stages) -> None:
    """A new run from an earlier model's weights: tensors that fit are loaded, the rest stay fresh.
    Skipping the VAE stage is only sound when the whole VAE came over (its latent scale too)."""
    names = [s["name"] for s in stages]
    start = args.start_stage or names[0]
    if start not in names:
        raise SystemExit(f"--start-stage {start!r}: the config's stages are {names}")
    weights, scaling_factor = ckpt.read_any_weights(args.warm_start)
    report = ckpt.load_matching(model, weights)
    if not report["loaded"]:
        raise SystemExit(f"--warm-start {args.warm_start}: no tensor fits this model (another architecture?)")
    skipped = names[:names.index(start)]
    if "vae" in skipped:
        vae_misfits = [n for n in report["reshaped"] + report["fresh"] if n.startswith("vae.")]
        if vae_misfits:
            raise SystemExit(f"--start-stage {start} skips the VAE stage, but {len(vae_misfits)} VAE tensors of "
                             f"this model are not in {args.warm_start} (e.g. {vae_misfits[0]}): start at 'vae'")
        state["scaling_factor"] = scaling_factor
    state["stage_index"], state["step"] = names.index(start), 0
    own = model.state_dict()
    count = lambda keys: sum(own[k].numel() for k in keys)  # noqa: E731
    log(f"warm start from {args.warm_start}: {len(report['loaded'])} tensors ({count(report['loaded']) / 1e6:.2f}M "
        f"parameters) loaded, {len(report['reshaped'])} reshaped and {len(report['fresh'])} new left fresh "
        f"({count(report['reshaped'] + report['fresh']) / 1e6:.2f}M), {len(report['unused'])} unused; "
        f"starting at stage {start}")


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="training config (configs/train/*.json)")
    ap.add_argument("--run-dir", dest="run", required=True, help="run folder (created; resumed when it exists)")
    ap.add_argument("--pack", required=True, help="asset pack (scripts/synth/build_asset_pack.py)")
    ap.add_argument("--backgrounds", required=True, help="background plates (scripts/synth/build_backgrounds.py)")
    ap.add_argument("--init", help="weights folder (weights.index.json + progress.json) to start from")
    ap.add_argument("--warm-start", metavar="WEIGHTS",
                    help="a new run starts from these weights (folder or shipped .pth) wherever name and shape fit")
    ap.add_argument("--start-stage", help="with --warm-start: the stage to begin with (default: the first)")
    ap.add_argument("--time-limit", type=float, default=0, help="stop cleanly after this many seconds")
    ap.add_argument("--max-steps-this-call", type=int, default=0, help="stop after this many steps (tests)")
    ap.add_argument("--workers", type=int, default=-1, help="data workers per process (default: cores/processes - 1)")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--override", action="append", default=[],
                    help="stage.key=value, e.g. image.batch=8 (tests, quick experiments)")
    ap.add_argument("--ship", help="also write the shippable fp16 weights file here (at the end)")
    args = ap.parse_args(argv)
    if args.warm_start and args.init:
        ap.error("--init continues a run, --warm-start begins a new one: give one of them")
    if args.start_stage and not args.warm_start:
        ap.error("--start-stage needs --warm-start (a run started from nothing begins with its first stage)")
    args.steps_done = 0
    started = time.time()

    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    args.cuda = torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device("cuda", local) if args.cuda else torch.device("cpu")
    if args.cuda:
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    procs = dist.get_world_size() if dist.is_initialized() else 1
    if args.workers < 0:
        args.workers = max(0, (os.cpu_count() or 2) // max(1, torch.cuda.device_count() if args.cuda else procs) - 1)

    with open(args.config) as f:
        cfg_train = json.load(f)
    for o in args.override:
        key, value = o.split("=", 1)
        sname, field = key.split(".", 1)
        for s in cfg_train["stages"]:
            if s["name"] == sname:
                s[field] = json.loads(value)
    problem = config_problem(cfg_train)
    if problem:
        ap.error(f"{args.config}: {problem}")
    model_cfg = get_config(cfg_train["model"])
    torch.manual_seed(int(cfg_train["seed"]))
    model = StandinModel(model_cfg).to(device)

    os.makedirs(args.run, exist_ok=True)
    state_path = os.path.join(args.run, "state.pt")
    weights_dir = os.path.join(args.run, "weights")  # where save_run writes the shards
    state = {"stage_index": 0, "step": 0, "sessions": 0, "scaling_factor": 1.0, "optimizer": None, "ema": None}
    if os.path.exists(state_path):
        saved = ckpt.load(state_path)
        model.load_state_dict(saved.pop("model"))
        state.update(saved)
        log(f"resumed {state_path}: stage {state['stage_index']} step {state['step']}")
    elif os.path.exists(os.path.join(args.init or weights_dir, "weights.index.json")):
        src = args.init or weights_dir
        weights, progress = ckpt.read_shards(src)
        model.load_state_dict({k: v.float() for k, v in weights.items()})
        state.update({k: progress[k] for k in ("stage_index", "step", "sessions", "scaling_factor")})
        log(f"started from weights {src}: stage {state['stage_index']} step {state['step']} (fresh optimizer)")
    elif args.warm_start:
        warm_start(args, model, state, cfg_train["stages"])
    state["sessions"] += 1

    stages = cfg_train["stages"]
    while state["stage_index"] < len(stages):
        stage = stages[state["stage_index"]]
        log(f"== stage {stage['name']} ({state['step']}/{stage['steps']} steps, {procs} process(es), "
            f"{args.workers} workers each)")
        finished = run_stage(args, cfg_train, stage, model, state, device, started)
        if not finished:
            break
        state["stage_index"] += 1
        state["step"] = 0
        save_run(args, cfg_train, model, state)  # a finished stage survives whatever comes next
        if args.time_limit and all_agree(time.time() - started > args.time_limit, device):
            break
        if args.max_steps_this_call and args.steps_done >= args.max_steps_this_call:
            break

    progress = save_run(args, cfg_train, model, state)
    if is_main() and args.ship:
        ckpt.save_shipping_weights(args.ship, shipped_weights(model, state), ckpt.shipping_meta(cfg_train, progress))
    log(f"saved {args.run} ({time.time() - started:.0f} s); done: {progress['done']}")
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
