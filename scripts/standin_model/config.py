"""Architecture configurations (``tiny`` for tests, ``sd15`` for real checkpoints).

Every size-dependent number of the model lives here; the module code reads nothing else.
Module *names* follow the public diffusers / Moore-AnimateAnyone / transformers layouts so that
checkpoint import is (almost) an identity mapping, see ``checkpoint.py``.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Dict, List, Tuple


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

    @property
    def unet_in_channels(self) -> int:
        return self.unet.in_channels + (4 if self.environment else 0) + (1 if self.mask_channel else 0)

    def to_dict(self) -> Dict:
        return dataclasses.asdict(self)


def _sd15() -> ModelConfig:
    return ModelConfig(name="sd15")


def _tiny() -> ModelConfig:
    return ModelConfig(
        name="tiny",
        vae=VAEConfig(block_out_channels=(16, 32, 32, 32), layers_per_block=1, norm_num_groups=8),
        clip=CLIPConfig(image_size=224, patch_size=32, hidden_size=64, num_layers=2, num_heads=2,
                        intermediate_size=128, projection_dim=64),
        unet=UNetConfig(block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock", "DownBlock"),
                        layers_per_block=1, num_heads=2, cross_attention_dim=64, norm_num_groups=8,
                        motion_num_heads=2, motion_max_len=32),
        pose_guider=PoseGuiderConfig(block_out_channels=(8, 16, 16, 32), embedding_channels=32),
        object_guider=ObjectGuiderConfig(base_channels=16),
        width=64, height=96, steps=4, cfg=3.5, window=8, overlap=2,
    )


def _demo() -> ModelConfig:
    """The shipped demo model, trained from scratch on rendered characters (scripts/train.py).

    Sized to ship: every module together is 19.3M parameters (38.6 MB in fp16).  The VAE
    downsamples 4x (not 8x) so a character a third of the 128x192 work frame tall still spans
    ~16 latent rows."""
    return ModelConfig(
        name="demo",
        vae=VAEConfig(block_out_channels=(32, 64, 80), layers_per_block=1, norm_num_groups=16,
                      scaling_factor=1.0),
        clip=CLIPConfig(image_size=112, patch_size=16, hidden_size=128, num_layers=4, num_heads=4,
                        intermediate_size=384, projection_dim=128),
        unet=UNetConfig(block_out_channels=(64, 128, 128),
                        down_block_types=("CrossAttnDownBlock", "CrossAttnDownBlock", "CrossAttnDownBlock"),
                        layers_per_block=1, num_heads=4, cross_attention_dim=128, norm_num_groups=16,
                        motion_num_heads=4, motion_max_len=32),
        pose_guider=PoseGuiderConfig(block_out_channels=(16, 32, 64), embedding_channels=64),
        object_guider=ObjectGuiderConfig(base_channels=16),
        pose_modulation=True, reference_blocks="all",
        width=128, height=192, vae_scale_factor=4, steps=20, cfg=2.5, window=8, overlap=2,
    )


CONFIGS = {"tiny": _tiny, "sd15": _sd15, "demo": _demo}


def get_config(name: str, **overrides) -> ModelConfig:
    if name not in CONFIGS:
        raise KeyError(f"unknown config {name!r}; known: {sorted(CONFIGS)}")
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
