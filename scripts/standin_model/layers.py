"""Shared building blocks (diffusers-compatible parameter names), written TorchScript-friendly.

All modules here are scriptable with torch 1.13 and torch 2.x.  ``attention`` is the single
place that chooses between ``F.scaled_dot_product_attention`` (torch >= 2.0) and a plain math
implementation (torch 1.13): the choice is made when this file is imported, so a module scripted
under torch 1.13 contains only the math path (and loads in LibTorch 1.13 and 2.x), while one
scripted under torch 2.x uses SDPA.
"""
from __future__ import annotations

import math
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

HAS_SDPA = hasattr(F, "scaled_dot_product_attention")


def math_attention(q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """softmax(q·kᵀ/√d + bias)·v without SDPA (the path of bundles scripted under torch < 2).

    q and k are each multiplied by d^-1/4 *before* the product, so q·kᵀ is never formed at √d
    times its final size: in fp16 the unscaled scores of the VAE's single 512-wide head are ~22×
    the scaled ones and overflow where the scaled ones (what upstream computes) do not.
    """
    scale = 1.0 / math.sqrt(math.sqrt(float(q.shape[-1])))
    scores = torch.matmul(q * scale, (k * scale).transpose(-1, -2))
    if bias is not None:
        scores = scores + bias
    return torch.matmul(torch.softmax(scores, dim=-1), v)


# CUDA's fused attention kernels put batch x heads on one grid axis (at most 65535 blocks); the
# temporal attention of a big window (one sequence per latent pixel) has far more, so it runs in
# slices of the batch (the limit is a literal in the function: TorchScript cannot read a
# module-level int, and torch 2.x scripts this branch).

if HAS_SDPA:
    def attention(q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor] = None) -> Tensor:
        """q [B,H,Nq,d], k/v [B,H,Nk,d], additive bias broadcastable to [B,H,Nq,Nk]."""
        b, h = q.shape[0], q.shape[1]
        max_batch_heads = 32768
        if b * h <= max_batch_heads:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        step = max(1, max_batch_heads // h)
        outs: List[Tensor] = []
        for i in range(0, b, step):
            j = min(b, i + step)
            part: Optional[Tensor] = None
            if bias is not None:
                part = bias[i:j] if bias.shape[0] == b else bias
            outs.append(F.scaled_dot_product_attention(q[i:j], k[i:j], v[i:j], attn_mask=part))
        return torch.cat(outs, dim=0)
else:
    def attention(q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor] = None) -> Tensor:
        """q [B,H,Nq,d], k/v [B,H,Nk,d], additive bias broadcastable to [B,H,Nq,Nk]."""
        return math_attention(q, k, v, bias)


class Attention(nn.Module):
    """diffusers ``Attention``: to_q, to_k, to_v (no bias), to_out.0 (bias).

    ``extra`` ([1 or B, L, C_q]) is a set of additional key/value tokens (reference features)
    projected with the same to_k/to_v and appended after the regular keys.
    """

    def __init__(self, query_dim: int, heads: int, dim_head: int, cross_attention_dim: Optional[int] = None,
                 qkv_bias: bool = False):
        super().__init__()
        inner = heads * dim_head
        kv_dim = query_dim if cross_attention_dim is None else cross_attention_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=qkv_bias)
        self.to_k = nn.Linear(kv_dim, inner, bias=qkv_bias)
        self.to_v = nn.Linear(kv_dim, inner, bias=qkv_bias)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim), nn.Dropout(0.0)])

    def forward(self, x: Tensor, context: Optional[Tensor] = None, extra: Optional[Tensor] = None,
                bias: Optional[Tensor] = None) -> Tensor:
        kv_in = x if context is None else context
        q = self.to_q(x)
        k = self.to_k(kv_in)
        v = self.to_v(kv_in)
        if extra is not None:
            ke = self.to_k(extra)
            ve = self.to_v(extra)
            if ke.shape[0] != k.shape[0]:
                ke = ke.expand(k.shape[0], ke.shape[1], ke.shape[2])
                ve = ve.expand(v.shape[0], ve.shape[1], ve.shape[2])
            k = torch.cat([k, ke], dim=1)
            v = torch.cat([v, ve], dim=1)
        b, n, c = q.shape
        h = self.heads
        d = c // h
        q = q.view(b, n, h, d).transpose(1, 2)
        k = k.view(b, k.shape[1], h, d).transpose(1, 2)
        v = v.view(b, v.shape[1], h, d).transpose(1, 2)
        out = attention(q, k, v, bias)
        out = out.transpose(1, 2).reshape(b, n, c)
        return self.to_out[0](out)


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: Tensor) -> Tensor:
        h, gate = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(gate)


class FeedForward(nn.Module):
    """diffusers ``FeedForward`` with GEGLU: net.0.proj, net.2."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        inner = dim * mult
        self.net = nn.ModuleList([GEGLU(dim, inner), nn.Dropout(0.0), nn.Linear(inner, dim)])

    def forward(self, x: Tensor) -> Tensor:
        for m in self.net:
            x = m(x)
        return x


class ResnetBlock2D(nn.Module):
    """diffusers ``ResnetBlock2D`` (time_embedding_norm 'default', output_scale_factor 1)."""

    def __init__(self, in_channels: int, out_channels: int, temb_channels: Optional[int], groups: int,
                 eps: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps, affine=True)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels) if temb_channels is not None else None
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps, affine=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: Tensor, temb: Optional[Tensor] = None) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.time_emb_proj is not None:
            if temb is not None:
                h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return x + h


class Downsample2D(nn.Module):
    """Stride-2 3x3 conv named ``conv``.  ``asymmetric_pad`` = VAE encoder variant (pad 0,1,0,1)."""

    def __init__(self, channels: int, asymmetric_pad: bool = False):
        super().__init__()
        self.asymmetric_pad = asymmetric_pad
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0 if asymmetric_pad else 1)

    def forward(self, x: Tensor) -> Tensor:
        if self.asymmetric_pad:
            x = F.pad(x, [0, 1, 0, 1])
        return self.conv(x)


class Upsample2D(nn.Module):
    """Nearest x2 then 3x3 conv named ``conv``."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x)


def timestep_embedding(timesteps: Tensor, dim: int) -> Tensor:
    """diffusers ``get_timestep_embedding`` (flip_sin_to_cos=True, downscale_freq_shift=0, scale 1,
    max_period 10000) in float32 and in diffusers' order of operations, which rounds differently
    from folding -ln(10000)/half into one constant (up to 3e-5 apart at t = 999, width 320):
    exponent = (-ln(10000) · k) / half, frequency = exp(exponent), [cos(t·f), sin(t·f)]."""
    half = dim // 2
    exponent = -math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=timesteps.device)
    exponent = exponent / half
    emb = timesteps[:, None].to(torch.float32) * torch.exp(exponent)[None, :]
    return torch.cat([torch.cos(emb), torch.sin(emb)], dim=-1)


class TimestepEmbedding(nn.Module):
    def __init__(self, in_channels: int, time_embed_dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, time_embed_dim)
        self.linear_2 = nn.Linear(time_embed_dim, time_embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


def zero_module(m: nn.Module) -> nn.Module:
    for p in m.parameters():
        nn.init.zeros_(p)
    return m


class Skip(nn.Module):
    """Parameter-free placeholder keeping ModuleLists aligned (no state-dict keys)."""

    def forward(self, x: Tensor) -> Tensor:
        return x
