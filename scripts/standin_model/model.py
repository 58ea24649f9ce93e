"""Assemble the whole model (all bundle modules) from a ModelConfig."""
from __future__ import annotations

from typing import Dict

import torch
from torch import nn

from .clip import CLIPVisionModelWithProjection
from .config import ModelConfig
from .guiders import ObjectGuider, PoseGuider
from .unet import ReferenceNetModule, UNetModel, build_denoising_unet, build_reference_net
from .vae import AutoencoderKL, VAEDecoderModule, VAEEncoderModule


class StandinModel(nn.Module):
    """Container of the trainable parts, with the public checkpoint names as prefixes:
    vae.*, image_encoder.*, reference_unet.*, denoising_unet.*, pose_guider.*, object_guider.*"""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.vae = AutoencoderKL(cfg.vae)
        self.image_encoder = CLIPVisionModelWithProjection(cfg.clip)
        self.reference_unet = build_reference_net(cfg)
        self.denoising_unet = build_denoising_unet(cfg)
        self.pose_guider = PoseGuider(cfg.pose_guider, cfg.pose_modulation)
        self.object_guider = ObjectGuider(cfg) if cfg.use_object_guider else None

    def bundle_modules(self) -> Dict[str, nn.Module]:
        """The modules exported as TorchScript files, by bundle name."""
        mods = {
            "vae_encoder": VAEEncoderModule(self.vae),
            "vae_decoder": VAEDecoderModule(self.vae),
            "image_encoder": self.image_encoder,
            "reference_net": ReferenceNetModule(self.reference_unet),
            "denoising_unet": self.denoising_unet,
            "pose_guider": self.pose_guider,
        }
        if self.object_guider is not None:
            mods["object_guider"] = self.object_guider
        return mods


def build_model(cfg: ModelConfig) -> StandinModel:
    return StandinModel(cfg).eval()
