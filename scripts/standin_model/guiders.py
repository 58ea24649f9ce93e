"""Pose guider (Moore-AnimateAnyone layout) and object guider (Animate Anyone 2).

PoseGuider keys: conv_in, blocks.N (pairs: 3x3 conv, 3x3 stride-2 conv), conv_out (zero-init).
With ``pose_modulation`` (AA2 depth-wise pose modulation) a depth branch with the same layout
(``depth_conv_in``, ``depth_blocks.N``) is fused into the skeleton features by cross-attention
(``modulation_norm``, ``modulation_norm_depth``, ``modulation_attn``; output projection
zero-initialised) before ``conv_out``.  The temporal Conv3D part of the modulation lives in the
denoising UNet (``pose_temporal``) because it needs the frame axis.
"""
from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig, PoseGuiderConfig
from .layers import Attention, zero_module


def _conv_stack(cin: int, channels) -> (nn.Conv2d, nn.ModuleList):
    conv_in = nn.Conv2d(cin, channels[0], 3, padding=1)
    blocks = []
    for i in range(len(channels) - 1):
        blocks.append(nn.Conv2d(channels[i], channels[i], 3, padding=1))
        blocks.append(nn.Conv2d(channels[i], channels[i + 1], 3, padding=1, stride=2))
    return conv_in, nn.ModuleList(blocks)


class PoseGuider(nn.Module):
    """Bundle module ``pose_guider``: pose [N,3,H,W] in [0,1] -> features [N,C0,H/8,W/8]."""

    def __init__(self, cfg: PoseGuiderConfig, pose_modulation: bool = False):
        super().__init__()
        ch = cfg.block_out_channels
        self.conv_in, self.blocks = _conv_stack(cfg.conditioning_channels, ch)
        self.conv_out = zero_module(nn.Conv2d(ch[-1], cfg.embedding_channels, 3, padding=1))
        self.pose_modulation = pose_modulation
        if pose_modulation:
            self.depth_conv_in, self.depth_blocks = _conv_stack(1, ch)  # type: ignore[assignment]
            heads = max(1, ch[-1] // 64)
            self.modulation_norm = nn.LayerNorm(ch[-1])
            self.modulation_norm_depth = nn.LayerNorm(ch[-1])
            self.modulation_attn = Attention(ch[-1], heads, ch[-1] // heads)
            zero_module(self.modulation_attn.to_out[0])
        else:
            self.depth_conv_in = None
            self.depth_blocks = nn.ModuleList()
            self.modulation_norm = None
            self.modulation_norm_depth = None
            self.modulation_attn = None

    def forward(self, pose: Tensor, depth: Optional[Tensor] = None) -> Tensor:
        dtype = self.conv_in.weight.dtype
        x = F.silu(self.conv_in(pose.to(dtype)))
        for b in self.blocks:
            x = F.silu(b(x))
        if self.depth_conv_in is not None and depth is not None:
            d = F.silu(self.depth_conv_in(depth.to(dtype)))
            for db in self.depth_blocks:
                d = F.silu(db(d))
            if self.modulation_attn is not None and self.modulation_norm is not None \
                    and self.modulation_norm_depth is not None:
                n, c, h, w = x.shape
                xs = x.flatten(2).transpose(1, 2)
                ds = d.flatten(2).transpose(1, 2)
                xs = xs + self.modulation_attn(self.modulation_norm(xs), self.modulation_norm_depth(ds))
                x = xs.transpose(1, 2).reshape(n, c, h, w)
        return self.conv_out(x)


class ObjectGuider(nn.Module):
    """Bundle module ``object_guider``: object latent [N,4,h,w] -> one map per decoder stage.

    A pyramid of 3x3 convs (``conv_in``, ``down.N`` stride 2 from level 1 on) and one 3x3 output
    conv per stage (``outs.j``): j = 0 is the mid block, j = 1.. the up blocks in order.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        ch = cfg.unet.block_out_channels
        n = len(ch)
        base = cfg.object_guider.base_channels
        widths = [base * min(2 ** i, 4) for i in range(n)]
        self.conv_in = nn.Conv2d(cfg.vae.latent_channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList([
            nn.Conv2d(widths[max(i - 1, 0)], widths[i], 3, padding=1, stride=1 if i == 0 else 2)
            for i in range(n)])
        # stage j -> pyramid level
        levels = [n - 1] + [n - 1 - i for i in range(n)]
        rev = list(reversed(ch))
        outs_ch = [ch[-1]] + rev
        self.levels = levels
        self.outs = nn.ModuleList([nn.Conv2d(widths[lv], c, 3, padding=1) for lv, c in zip(levels, outs_ch)])

    def forward(self, latent: Tensor) -> List[Tensor]:
        dtype = self.conv_in.weight.dtype
        x = F.silu(self.conv_in(latent.to(dtype)))
        feats: List[Tensor] = []
        for d in self.down:
            x = F.silu(d(x))
            feats.append(x)
        out: List[Tensor] = []
        j = 0
        for conv in self.outs:
            out.append(conv(feats[self.levels[j]]))
            j += 1
        return out
