"""The bundle tensor contract (docs/BUNDLE.md) as data: written into model.json and checked here.

A shape is a list of entries; an entry is an int or a string expression over the symbols
``N B F H W h w`` built from symbols/integers joined by ``*`` and ``/`` and evaluated strictly left
to right with integer arithmetic (e.g. ``"h/2*w/2"``, ``"B*F"``).  A tensor-list value has
``"type": "tensor_list"`` and ``"items"`` (one shape+dtype per element, fixed count; an
``"optional": true`` list may also be passed empty).
"""
from __future__ import annotations

import re
from typing import Dict, List, Sequence, Union

import torch

from .config import ModelConfig

Entry = Union[int, str]


def eval_dim(entry: Entry, env: Dict[str, int]) -> int:
    if isinstance(entry, int):
        return entry
    tokens = re.findall(r"[A-Za-z_]+|\d+|[*/]", entry.replace(" ", ""))
    if not tokens or "".join(tokens) != entry.replace(" ", ""):
        raise ValueError(f"bad shape expression {entry!r}")

    def val(t: str) -> int:
        return int(t) if t.isdigit() else env[t]

    acc = val(tokens[0])
    i = 1
    while i < len(tokens):
        op, v = tokens[i], val(tokens[i + 1])
        acc = acc * v if op == "*" else acc // v
        i += 2
    return acc


def eval_shape(shape: Sequence[Entry], env: Dict[str, int]) -> List[int]:
    return [eval_dim(e, env) for e in shape]


def _t(name: str, shape: List[Entry], dtype: str) -> Dict:
    return {"name": name, "type": "tensor", "shape": shape, "dtype": dtype}


def _frac(sym: str, f: int) -> Entry:
    return sym if f == 1 else f"{sym}/{f}"


def module_contracts(cfg: ModelConfig, unet, dtype: str) -> Dict[str, Dict]:
    """inputs/outputs of every bundle module, for model.json."""
    ch = cfg.unet.block_out_channels
    n = len(ch)
    D = cfg.clip.projection_dim
    C0 = ch[0]
    lat = cfg.vae.latent_channels
    S = cfg.clip.image_size
    # reference items, in UNet order
    ref_items = []
    for blk, f in _reference_block_factors(unet):
        L = "h*w" if f == 1 else f"h/{f}*w/{f}"
        ref_items.append({"shape": [1, L, blk], "dtype": dtype})
    rev = list(reversed(ch))
    obj_stage = [(ch[-1], 2 ** (n - 1))] + [(rev[i], 2 ** (n - 1 - i)) for i in range(n)]
    c = {}
    c["vae_encoder"] = {"inputs": [_t("image", ["N", 3, "H", "W"], dtype)],
                        "outputs": [_t("latent", ["N", lat, "h", "w"], dtype)]}
    c["vae_decoder"] = {"inputs": [_t("latent", ["N", lat, "h", "w"], dtype)],
                        "outputs": [_t("image", ["N", 3, "H", "W"], dtype)]}
    c["image_encoder"] = {"inputs": [_t("pixels", ["N", 3, S, S], dtype)],
                          "outputs": [_t("embeds", ["N", 1, D], dtype)]}
    c["reference_net"] = {"inputs": [_t("latent", [1, lat, "h", "w"], dtype), _t("context", [1, 1, D], dtype)],
                          "outputs": [{"name": "reference", "type": "tensor_list", "items": ref_items}]}
    pg_in = [_t("pose", ["N", 3, "H", "W"], dtype)]
    if cfg.pose_modulation:
        pg_in.append(_t("depth", ["N", 1, "H", "W"], dtype))
    c["pose_guider"] = {"inputs": pg_in, "outputs": [_t("features", ["N", C0, "h", "w"], dtype)]}
    if cfg.use_object_guider:
        c["object_guider"] = {
            "inputs": [_t("latent", ["N", lat, "h", "w"], dtype)],
            "outputs": [{"name": "objects", "type": "tensor_list",
                         "items": [{"shape": ["N", cc, _frac("h", f), _frac("w", f)], "dtype": dtype}
                                   for cc, f in obj_stage]}]}
    obj_in = {"name": "objects", "type": "tensor_list", "optional": True,
              "items": [{"shape": ["B*F", cc, _frac("h", f), _frac("w", f)], "dtype": dtype}
                        for cc, f in obj_stage] if cfg.use_object_guider else []}
    c["denoising_unet"] = {
        "inputs": [
            _t("sample", ["B", cfg.unet_in_channels, "F", "h", "w"], dtype),
            _t("timestep", ["B"], "int64"),
            _t("context", ["B", 1, D], dtype),
            _t("pose", ["B", C0, "F", "h", "w"], dtype),
            {"name": "reference", "type": "tensor_list", "optional": True, "items": ref_items},
            _t("reference_keep", ["B"], "float32"),
            obj_in,
        ],
        "outputs": [_t("prediction", ["B", cfg.unet.out_channels, "F", "h", "w"], dtype)],
    }
    return c


def _reference_block_factors(unet):
    """(channels, downscale factor) of each reference-reading block of the denoising UNet."""
    from .unet import BasicTransformerBlock
    n = len(unet.down_blocks)
    roots = [(b, 2 ** i) for i, b in enumerate(unet.down_blocks)]
    roots.append((unet.mid_block, 2 ** (n - 1)))
    roots += [(b, 2 ** (n - 1 - i)) for i, b in enumerate(unet.up_blocks)]
    out = []
    for root, f in roots:
        for m in root.modules():
            if isinstance(m, BasicTransformerBlock) and m.ref_mode != 0:
                out.append((m.norm1.normalized_shape[0], f))
    return out


def check_value(spec: Dict, value, env: Dict[str, int], where: str) -> None:
    """Raise ValueError if ``value`` (Tensor or list of Tensors) does not match ``spec``."""
    if spec["type"] == "tensor":
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{where}: expected a tensor")
        want = eval_shape(spec["shape"], env)
        if list(value.shape) != want:
            raise ValueError(f"{where}: shape {list(value.shape)} != {want}")
        if str(value.dtype).replace("torch.", "") != spec["dtype"]:
            raise ValueError(f"{where}: dtype {value.dtype} != {spec['dtype']}")
        return
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{where}: expected a tensor list")
    if len(value) == 0 and spec.get("optional"):
        return
    if len(value) != len(spec["items"]):
        raise ValueError(f"{where}: {len(value)} tensors, expected {len(spec['items'])}")
    for i, (item, v) in enumerate(zip(spec["items"], value)):
        check_value(dict(item, type="tensor"), v, env, f"{where}[{i}]")


def example_inputs(name: str, contract: Dict, env: Dict[str, int], gen: torch.Generator):
    """Random inputs matching a module's contract (for dry runs)."""
    out = []
    for spec in contract["inputs"]:
        if spec["type"] == "tensor":
            shape = eval_shape(spec["shape"], env)
            dt = getattr(torch, spec["dtype"])
            if spec["name"] == "timestep":
                out.append(torch.randint(0, 1000, shape, generator=gen, dtype=torch.int64))
            elif spec["name"] == "reference_keep":
                out.append(torch.tensor([float(i % 2) for i in range(shape[0])], dtype=dt))
            else:
                out.append(torch.randn(shape, generator=gen).to(dt))
        else:
            out.append([torch.randn(eval_shape(it["shape"], env), generator=gen).to(getattr(torch, it["dtype"]))
                        for it in spec["items"]])
    return out
