"""Architecture configurations: the dataclasses, and the named configurations as data.

The named configurations (``tiny`` for tests, ``sd15`` for real checkpoints, ``demo`` for the
shipped model, ...) are JSON files in the repository's top-level ``configs/models/`` folder, one
per name: the single source of truth for every size-dependent number of the model (the module
code reads nothing else). A file holds ``ModelConfig.to_dict()`` plus an optional
``description``; unknown keys are errors. Module *names* follow the public diffusers /
Moore-AnimateAnyone / transformers layouts so that checkpoint import is (almost) an identity
mapping, see ``checkpoint.py``.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Tuple

from .scheduler import SAMPLERS


@dataclass
class VAEConfig:
    """diffusers ``AutoencoderKL`` (SD1.5 / sd-vae-ft-mse)."""
    in_channels: int = 3
    latent_channels: int = 4
    block_out_channels: Tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    norm_num_groups: int = 32
    scaling_factor: float = 0.18215


@dataclass
class CLIPConfig:
    """transformers ``CLIPVisionModelWithProjection`` (ViT-L/14 for sd15)."""
    image_size: int = 224
    patch_size: int = 14
    hidden_size: int = 1024
    num_layers: int = 24
    num_heads: int = 16
    intermediate_size: int = 4096
    projection_dim: int = 768
    layer_norm_eps: float = 1e-5


@dataclass
class UNetConfig:
    """diffusers ``UNet2DConditionModel`` / Moore-AA ``UNet3DConditionModel`` layout.

    ``down_block_types`` entries are ``"CrossAttnDownBlock"`` or ``"DownBlock"``; the up blocks
    mirror them in reverse (``"UpBlock"`` / ``"CrossAttnUpBlock"``), as in SD1.5.
    """
    in_channels: int = 4
    out_channels: int = 4
    block_out_channels: Tuple[int, ...] = (320, 640, 1280, 1280)
    down_block_types: Tuple[str, ...] = ("CrossAttnDownBlock", "CrossAttnDownBlock",
                                         "CrossAttnDownBlock", "DownBlock")
    layers_per_block: int = 2
    num_heads: int = 8               # SD1.5 "attention_head_dim: 8" means 8 heads
    cross_attention_dim: int = 768
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    # motion modules (AnimateDiff "Vanilla" temporal module, as used by Moore-AA / MusePose)
    motion_num_heads: int = 8
    motion_num_transformer_blocks: int = 1
    motion_max_len: int = 32
    motion_mid_block: bool = True

    @property
    def up_block_types(self) -> Tuple[str, ...]:
        return tuple("CrossAttnUpBlock" if t == "CrossAttnDownBlock" else "UpBlock"
                     for t in reversed(self.down_block_types))


@dataclass
class PoseGuiderConfig:
    """Moore-AA ``PoseGuider``: conv_in, pairs of (3x3, 3x3 stride 2) convs, zero conv_out."""
    conditioning_channels: int = 3
    block_out_channels: Tuple[int, ...] = (16, 32, 96, 256)
    embedding_channels: int = 320    # = UNet block_out_channels[0]


@dataclass
class ObjectGuiderConfig:
    """Object guider (AA2): object latent -> one feature map per decoder stage (mid + up)."""
    base_channels: int = 64


@dataclass
class ModelConfig:
    name: str = "sd15"
    vae: VAEConfig = field(default_factory=VAEConfig)
    clip: CLIPConfig = field(default_factory=CLIPConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    pose_guider: PoseGuiderConfig = field(default_factory=PoseGuiderConfig)
    object_guider: ObjectGuiderConfig = field(default_factory=ObjectGuiderConfig)
    # conditioning
    environment: bool = True          # 4 environment-latent channels in conv_in
    mask_channel: bool = True         # + 1 mask channel
    reference_blocks: str = "all"     # "all" (Moore-AA) | "mid_up" (AA2)
    use_object_guider: bool = True
    pose_modulation: bool = False     # AA2 depth-wise pose modulation (needs a depth input)
    # bundle defaults
    width: int = 512
    height: int = 768
    vae_scale_factor: int = 8
    steps: int = 25
    cfg: float = 3.5
    window: int = 24
    overlap: int = 4
    sampler: str = "ddim"             # a key of scheduler.SAMPLERS
    # replace's redraw region (src/vision/mask.cpp): agnostic | tight | box, grown by mask_dilate
    # source pixels; mask_blocks per box side for agnostic (0: one per 10 pixels)
    mask_mode: str = "agnostic"
    mask_dilate: int = 4
    mask_blocks: int = 0
    # replace's compositing edge (--feather, source pixels); -1: replace's own rule (1 % of the
    # source's short side), which suits block regions; a tight region wants a narrow edge
    feather: int = -1

    @property
    def unet_in_channels(self) -> int:
        return self.unet.in_channels + (4 if self.environment else 0) + (1 if self.mask_channel else 0)

    def to_dict(self) -> Dict:
        return dataclasses.asdict(self)


# configs/models/ (``$STANDIN_MODEL_CONFIGS`` may name another folder, e.g. for experiments).
CONFIG_DIR = Path(os.environ.get("STANDIN_MODEL_CONFIGS") or Path(__file__).resolve().parents[2] / "configs" / "models")

_SUB_CONFIGS = {"vae": VAEConfig, "clip": CLIPConfig, "unet": UNetConfig, "pose_guider": PoseGuiderConfig,
                "object_guider": ObjectGuiderConfig}


def load_config_file(path) -> ModelConfig:
    """One configuration file (see the module docstring); every key is checked."""
    path = Path(path)
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a model configuration is a JSON object")
    data.pop("description", None)
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; known: {sorted(known)}")
    for key, cls in _SUB_CONFIGS.items():
        fields = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(data.get(key, {})) - fields)
        if bad:
            raise ValueError(f"{path}: unknown keys {bad} in {key!r}; known: {sorted(fields)}")
    if data.get("sampler", "ddim") not in SAMPLERS:
        raise ValueError(f"{path}: \"sampler\" must be one of {sorted(SAMPLERS)}, got {data['sampler']!r}")
    if data.get("mask_mode", "agnostic") not in ("agnostic", "tight", "box"):
        raise ValueError(f"{path}: \"mask_mode\" must be agnostic, tight or box, got {data['mask_mode']!r}")
    if data.get("name", path.stem) != path.stem:
        raise ValueError(f"{path}: \"name\" is {data['name']!r} but the file is {path.stem}.json")
    return config_from_dict(data)


def _config_names():
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json")) if CONFIG_DIR.is_dir() else []


# name -> factory, as before the configurations became data (export_bundle.py lists the names).
CONFIGS = {name: functools.partial(load_config_file, CONFIG_DIR / f"{name}.json") for name in _config_names()}


def get_config(name: str, **overrides) -> ModelConfig:
    if name not in CONFIGS:
        raise KeyError(f"unknown config {name!r}; known: {sorted(CONFIGS)} (files in {CONFIG_DIR})")
    cfg = CONFIGS[name]()
    for k, v in overrides.items():
        if not hasattr(cfg, k):
            raise KeyError(f"unknown config field {k!r}")
        setattr(cfg, k, v)
    return cfg


def replace(cfg: ModelConfig, **kw) -> ModelConfig:
    c = copy.deepcopy(cfg)
    for k, v in kw.items():
        setattr(c, k, v)
    return c


def config_from_dict(d: Dict) -> ModelConfig:
    """Inverse of ModelConfig.to_dict (model.json "architecture")."""
    sub = {"vae": VAEConfig, "clip": CLIPConfig, "unet": UNetConfig, "pose_guider": PoseGuiderConfig,
           "object_guider": ObjectGuiderConfig}
    kw = {}
    for k, v in d.items():
        if k in sub:
            fields = {f.name for f in dataclasses.fields(sub[k])}
            kw[k] = sub[k](**{kk: tuple(vv) if isinstance(vv, list) else vv for kk, vv in v.items() if kk in fields})
        elif k in {f.name for f in dataclasses.fields(ModelConfig)}:
            kw[k] = v
    return ModelConfig(**kw)
