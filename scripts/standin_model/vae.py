"""SD1.5 ``AutoencoderKL`` (diffusers layout: encoder.*, decoder.*, quant_conv, post_quant_conv)."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import VAEConfig
from .layers import Downsample2D, ResnetBlock2D, Upsample2D, attention

VAE_EPS = 1e-6


class VAEAttention(nn.Module):
    """Single-head spatial self-attention of the VAE mid block (group_norm, to_q/k/v, to_out.0)."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, channels, eps=VAE_EPS, affine=True)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels), nn.Dropout(0.0)])

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        r = x
        x = self.group_norm(x).view(n, c, h * w).transpose(1, 2)
        q = self.to_q(x)[:, None]
        k = self.to_k(x)[:, None]
        v = self.to_v(x)[:, None]
        x = attention(q, k, v, None)[:, 0]
        x = self.to_out[0](x)
        return x.transpose(1, 2).reshape(n, c, h, w) + r


class VAEMidBlock(nn.Module):
    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(channels, channels, None, groups, VAE_EPS),
                                      ResnetBlock2D(channels, channels, None, groups, VAE_EPS)])
        self.attentions = nn.ModuleList([VAEAttention(channels, groups)])

    def forward(self, x: Tensor) -> Tensor:
        x = self.resnets[0](x)
        x = self.attentions[0](x)
        return self.resnets[1](x)


class DownEncoderBlock(nn.Module):
    def __init__(self, cin: int, cout: int, layers: int, groups: int, add_downsample: bool):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(cin if i == 0 else cout, cout, None, groups, VAE_EPS)
                                      for i in range(layers)])
        self.downsamplers = nn.ModuleList([Downsample2D(cout, asymmetric_pad=True)]) if add_downsample else None

    def forward(self, x: Tensor) -> Tensor:
        for r in self.resnets:
            x = r(x)
        if self.downsamplers is not None:
            for d in self.downsamplers:
                x = d(x)
        return x


class UpDecoderBlock(nn.Module):
    def __init__(self, cin: int, cout: int, layers: int, groups: int, add_upsample: bool):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(cin if i == 0 else cout, cout, None, groups, VAE_EPS)
                                      for i in range(layers)])
        self.upsamplers = nn.ModuleList([Upsample2D(cout)]) if add_upsample else None

    def forward(self, x: Tensor) -> Tensor:
        for r in self.resnets:
            x = r(x)
        if self.upsamplers is not None:
            for u in self.upsamplers:
                x = u(x)
        return x


class Encoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        ch = cfg.block_out_channels
        g = cfg.norm_num_groups
        self.conv_in = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)
        blocks = []
        for i, c in enumerate(ch):
            blocks.append(DownEncoderBlock(ch[max(i - 1, 0)], c, cfg.layers_per_block, g, i < len(ch) - 1))
        self.down_blocks = nn.ModuleList(blocks)
        self.mid_block = VAEMidBlock(ch[-1], g)
        self.conv_norm_out = nn.GroupNorm(g, ch[-1], eps=VAE_EPS, affine=True)
        self.conv_out = nn.Conv2d(ch[-1], 2 * cfg.latent_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_in(x)
        for b in self.down_blocks:
            x = b(x)
        x = self.mid_block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class Decoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        rev = list(reversed(cfg.block_out_channels))
        g = cfg.norm_num_groups
        self.conv_in = nn.Conv2d(cfg.latent_channels, rev[0], 3, padding=1)
        self.mid_block = VAEMidBlock(rev[0], g)
        blocks = []
        prev = rev[0]
        for i, c in enumerate(rev):
            blocks.append(UpDecoderBlock(prev, c, cfg.layers_per_block + 1, g, i < len(rev) - 1))
            prev = c
        self.up_blocks = nn.ModuleList(blocks)
        self.conv_norm_out = nn.GroupNorm(g, rev[-1], eps=VAE_EPS, affine=True)
        self.conv_out = nn.Conv2d(rev[-1], cfg.in_channels, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        x = self.conv_in(z)
        x = self.mid_block(x)
        for b in self.up_blocks:
            x = b(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class AutoencoderKL(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quant_conv = nn.Conv2d(2 * cfg.latent_channels, 2 * cfg.latent_channels, 1)
        self.post_quant_conv = nn.Conv2d(cfg.latent_channels, cfg.latent_channels, 1)

    def encode_mean(self, image: Tensor) -> Tensor:
        """Posterior mean (NOT scaled by scaling_factor)."""
        moments = self.quant_conv(self.encoder(image))
        return moments[:, : self.cfg.latent_channels]

    def decode(self, latent: Tensor) -> Tensor:
        return self.decoder(self.post_quant_conv(latent))


class VAEEncoderModule(nn.Module):
    """Bundle module ``vae_encoder``: image [N,3,H,W] in [-1,1] -> posterior mean [N,4,h,w]."""

    def __init__(self, vae: AutoencoderKL):
        super().__init__()
        self.encoder = vae.encoder
        self.quant_conv = vae.quant_conv
        self.latent_channels = vae.cfg.latent_channels

    def forward(self, image: Tensor) -> Tensor:
        dtype = self.quant_conv.weight.dtype
        moments = self.quant_conv(self.encoder(image.to(dtype)))
        return moments[:, : self.latent_channels]


class VAEDecoderModule(nn.Module):
    """Bundle module ``vae_decoder``: latent [N,4,h,w] (already / scaling_factor) -> image [N,3,H,W]."""

    def __init__(self, vae: AutoencoderKL):
        super().__init__()
        self.decoder = vae.decoder
        self.post_quant_conv = vae.post_quant_conv

    def forward(self, latent: Tensor) -> Tensor:
        dtype = self.post_quant_conv.weight.dtype
        return self.decoder(self.post_quant_conv(latent.to(dtype)))
