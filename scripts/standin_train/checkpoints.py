"""Run folders: the full training state, and the small fp16 weights that travel.

A run folder holds
  state.pt         everything to continue bit-for-bit on the same machine (fp32 weights, EMA,
                   optimizer, step, RNG states); large, never leaves the machine it was made on;
  weights/         the EMA weights in fp16, cut into shards of at most 15 MiB
                   (``weights.index.json`` lists them with their sha256), plus ``progress.json``
                   (stage, step, latent scaling factor): the part that comes back from a GPU call
                   and lets a later call on a fresh machine continue (with a fresh optimizer);
  log.jsonl        one line per logged step (stage, step, losses, throughput).

``save_shipping_weights`` writes the single fp16 file committed under models/ and read by
``scripts/export_bundle.py --weights``; from the shards:

  /usr/bin/python3 -m standin_train.checkpoints WEIGHTS_DIR configs/train/demo.json OUT.pth   (in scripts/)
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from typing import Dict, Iterable, List, Optional, Tuple

import torch

SHARD_BYTES = 15 << 20
UPDATES_KEY = "__ema_updates__"
WEIGHTS_FORMAT = "standin-weights"


def _atomic_write(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(source, map_location="cpu"):
    """torch.load of our own files (they hold plain Python values next to tensors)."""
    return torch.load(source, map_location=map_location, weights_only=False)


def _tensor_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def half_state(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {k: (v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu())
            for k, v in state.items()}


def write_shards(folder: str, state: Dict[str, torch.Tensor], progress: Dict) -> List[str]:
    """fp16 weights in shards of <= 15 MiB + index + progress; returns the file names."""
    os.makedirs(folder, exist_ok=True)
    shards: List[Dict[str, torch.Tensor]] = [{}]
    size = 0
    for k, v in half_state(state).items():
        n = v.numel() * v.element_size()
        if size + n > SHARD_BYTES and shards[-1]:
            shards.append({})
            size = 0
        shards[-1][k] = v
        size += n
    names = []
    index = {"format": WEIGHTS_FORMAT, "shards": []}
    for i, shard in enumerate(shards):
        name = f"weights.{i:02d}.pt"
        data = _tensor_bytes(shard)
        _atomic_write(os.path.join(folder, name), data)
        index["shards"].append({"file": name, "sha256": hashlib.sha256(data).hexdigest(), "keys": len(shard)})
        names.append(name)
    # stale shards of an earlier, larger save must not be picked up
    for f in os.listdir(folder):
        if f.startswith("weights.") and f.endswith(".pt") and f not in names:
            os.remove(os.path.join(folder, f))
    _atomic_write(os.path.join(folder, "weights.index.json"), json.dumps(index, indent=1).encode())
    _atomic_write(os.path.join(folder, "progress.json"), json.dumps(progress, indent=1).encode())
    return names + ["weights.index.json", "progress.json"]


def read_shards(folder: str) -> Tuple[Dict[str, torch.Tensor], Dict]:
    with open(os.path.join(folder, "weights.index.json")) as f:
        index = json.load(f)
    if index.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{folder}: not a standin weights folder")
    state: Dict[str, torch.Tensor] = {}
    for s in index["shards"]:
        path = os.path.join(folder, s["file"])
        with open(path, "rb") as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != s["sha256"]:
            raise ValueError(f"{path}: sha256 mismatch (incomplete copy?)")
        state.update(load(io.BytesIO(data)))
    with open(os.path.join(folder, "progress.json")) as f:
        progress = json.load(f)
    return state, progress


def save_shipping_weights(path: str, state: Dict[str, torch.Tensor], meta: Dict) -> None:
    """One fp16 file: {"format", "meta" (config name, scaling factor, training summary), "state"}."""
    _atomic_write(path, _tensor_bytes({"format": WEIGHTS_FORMAT, "meta": meta, "state": half_state(state)}))


def shipping_meta(train_cfg: Dict, progress: Dict) -> Dict:
    """What export_bundle.py needs besides the weights: the model config's name, the latent
    scaling factor and the noise schedule the model was trained with."""
    return {"config": train_cfg["model"], "scaling_factor": progress["scaling_factor"],
            "scheduler": train_cfg["scheduler"], "progress": progress}


def ship_from_shards(folder: str, train_cfg: Dict, out_path: str) -> Dict:
    """weights/ shards brought back from a GPU call -> the single committed fp16 file."""
    state, progress = read_shards(folder)
    meta = shipping_meta(train_cfg, progress)
    save_shipping_weights(out_path, state, meta)
    return meta


def load_shipping_weights(path: str) -> Tuple[Dict[str, torch.Tensor], Dict]:
    obj = load(path)
    if not isinstance(obj, dict) or obj.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{path}: not a standin weights file")
    return obj["state"], obj["meta"]


def read_any_weights(path: str) -> Tuple[Dict[str, torch.Tensor], float]:
    """A weights folder (shards) or a shipped .pth -> (state, latent scaling factor)."""
    if os.path.isdir(path):
        state, progress = read_shards(path)
        return state, float(progress["scaling_factor"])
    state, meta = load_shipping_weights(path)
    return state, float(meta["scaling_factor"])


def load_matching(model: torch.nn.Module, weights: Dict[str, torch.Tensor]) -> Dict[str, List[str]]:
    """Copy every tensor of ``weights`` whose name and shape fit ``model``; the rest of the model
    keeps its fresh initialisation. Returns the names "loaded", "reshaped" (same name, other
    shape: left fresh), "fresh" (not in weights) and "unused" (in weights, not in the model)."""
    own = model.state_dict()
    report: Dict[str, List[str]] = {"loaded": [], "reshaped": [], "fresh": [], "unused": []}
    with torch.no_grad():
        for name, target in own.items():
            source = weights.get(name)
            if source is None:
                report["fresh"].append(name)
            elif tuple(source.shape) != tuple(target.shape):
                report["reshaped"].append(name)
            else:
                target.copy_(source.to(target.dtype))
                report["loaded"].append(name)
    report["unused"] = sorted(set(weights) - set(own))
    return report


def save_state(path: str, state: Dict) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    _atomic_write(path, buf.getvalue())


class EMA:
    """Exponential moving average of the model's floating-point state (weights and buffers).

    The decay warms up as min(decay, (1 + n) / (10 + n)) over the n updates so far: with a plain
    decay of 0.999 a 1300-step stage would still hold 0.999^1300 = 27 % of the weights it started
    from (for a new network: its random initialisation) — which is what the first demo run shipped
    before this warm-up existed (docs/TRAINING.md says how its weights were corrected)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items() if v.is_floating_point()}

    def current_decay(self) -> float:
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module, names: Optional[Iterable[str]] = None) -> None:
        sd = model.state_dict()
        keys = names if names is not None else self.shadow.keys()
        d = self.current_decay()
        for k in keys:
            self.shadow[k].lerp_(sd[k].float(), 1.0 - d)
        self.updates += 1

    def state_dict(self) -> Dict[str, torch.Tensor]:
        return {**self.shadow, UPDATES_KEY: torch.tensor(self.updates)}

    def load_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        for k, v in state.items():
            if k == UPDATES_KEY:
                self.updates = int(v)
            elif k in self.shadow:
                self.shadow[k].copy_(v)

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        sd = model.state_dict()
        for k, v in self.shadow.items():
            sd[k].copy_(v.to(sd[k].dtype))


if __name__ == "__main__":
    import sys
    if len(sys.argv) != 4:
        sys.exit("usage: python -m standin_train.checkpoints WEIGHTS_DIR TRAIN_CONFIG.json OUT.pth")
    with open(sys.argv[2]) as f:
        meta = ship_from_shards(sys.argv[1], json.load(f), sys.argv[3])
    print(f"wrote {sys.argv[3]} ({os.path.getsize(sys.argv[3]) / 1e6:.1f} MB): {json.dumps(meta['progress'])}")
