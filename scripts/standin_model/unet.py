"""ReferenceNet (2-D UNet) and denoising UNet (3-D: spatial layers per frame + temporal attention).

One class, ``UNetModel``, builds both; parameter names follow diffusers' ``UNet2DConditionModel``
and Moore-AnimateAnyone's ``UNet3DConditionModel`` (motion modules ``*.motion_modules.N.
temporal_transformer.*`` with ``pos_encoder.pe``), so Moore-AA / MusePose checkpoints load
1:1.  Additions for Animate Anyone 2 (all zero-initialised, i.e. no-ops at init):

* ``conv_in`` takes ``4 + 4 (environment latent) + 1 (mask)`` channels; the extra 5 input
  channels' weights are zero so an SD/Moore-AA 4-channel ``conv_in`` loads into the first 4;
* ``mid_object_blender`` / ``up_object_blenders.N``: object-guider spatial blending at the end of
  each decoder stage, ``z = z + gate * a * (z_obj - z)``, ``a = sigmoid(conv(cat(z, z_obj)))``,
  ``gate`` (per channel) zero-initialised;
* ``pose_temporal`` (only with ``pose_modulation``): zero-initialised Conv3D (3x1x1) over the
  pose features.

Reference attention: each spatial ``BasicTransformerBlock`` that reads the reference (all of them
or those of mid + up blocks, ``reference_blocks``) attends over ``[own tokens ; reference
tokens]``; the reference tokens are the ReferenceNet's ``norm1`` outputs of the same block
(Moore-AA's "write" bank).  ``reference_keep`` = 0 for a batch element adds -inf to the
reference keys' logits, so that element attends to its own tokens only (equal to Moore-AA's
``uc_mask`` recomputation).
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig, UNetConfig
from .layers import (Attention, Downsample2D, FeedForward, ResnetBlock2D, TimestepEmbedding, Upsample2D,
                     timestep_embedding, zero_module)

REF_NONE = 0
REF_WRITE = 1
REF_READ = 2


# ----------------------------------------------------------------------------- spatial transformer
class BasicTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, cross_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, dim // heads)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, dim // heads, cross_attention_dim=cross_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)
        self.ref_mode = REF_NONE
        self.ref_index = -1

    def forward(self, x: Tensor, context: Tensor, refs: List[Tensor], ref_bias: Optional[Tensor]) -> Tensor:
        n = self.norm1(x)
        if self.ref_mode == 1:  # REF_WRITE
            refs.append(n)
            a = self.attn1(n)
        elif self.ref_mode == 2 and len(refs) > 0:  # REF_READ
            ref = refs[self.ref_index]
            bias: Optional[Tensor] = None
            if ref_bias is not None:
                bsz = n.shape[0]
                own = torch.zeros(bsz, 1, 1, n.shape[1], dtype=n.dtype, device=n.device)
                other = ref_bias.to(n.dtype).view(bsz, 1, 1, 1).expand(bsz, 1, 1, ref.shape[1])
                bias = torch.cat([own, other], dim=-1)
            a = self.attn1(n, None, ref, bias)
        else:
            a = self.attn1(n)
        x = x + a
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class Transformer2DModel(nn.Module):
    """diffusers ``Transformer2DModel`` with conv proj_in/proj_out (SD1.5: use_linear_projection False)."""

    def __init__(self, channels: int, heads: int, cross_dim: int, groups: int, layers: int = 1):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6, affine=True)
        self.proj_in = nn.Conv2d(channels, channels, 1)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(channels, heads, cross_dim)
                                                 for _ in range(layers)])
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor, context: Tensor, refs: List[Tensor], ref_bias: Optional[Tensor]) -> Tensor:
        n, c, h, w = x.shape
        r = x
        x = self.proj_in(self.norm(x))
        x = x.permute(0, 2, 3, 1).reshape(n, h * w, c)
        for blk in self.transformer_blocks:
            x = blk(x, context, refs, ref_bias)
        x = x.reshape(n, h, w, c).permute(0, 3, 1, 2)
        return self.proj_out(x) + r


class NoAttention(nn.Module):
    """Placeholder for blocks without spatial attention (no parameters)."""

    def forward(self, x: Tensor, context: Tensor, refs: List[Tensor], ref_bias: Optional[Tensor]) -> Tensor:
        return x


# ----------------------------------------------------------------------------- temporal (motion) module
class PositionalEncoding(nn.Module):
    def __init__(self, d_model: int, max_len: int):
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(1, max_len, d_model)
        pe[0, :, 0::2] = torch.sin(position * div_term)
        pe[0, :, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] > self.pe.shape[1]:
            raise RuntimeError("window longer than the motion module's temporal_position_encoding_max_len")
        return x + self.pe[:, : x.shape[1]].to(x.dtype)


class VersatileAttention(Attention):
    """AnimateDiff temporal self-attention over frames, with sinusoidal ``pos_encoder.pe``."""

    def __init__(self, dim: int, heads: int, max_len: int):
        super().__init__(dim, heads, dim // heads)
        self.pos_encoder = PositionalEncoding(dim, max_len)

    def temporal(self, x: Tensor, frames: int) -> Tensor:
        bf, d, c = x.shape
        b = bf // frames
        x = x.view(b, frames, d, c).permute(0, 2, 1, 3).reshape(b * d, frames, c)
        x = self.pos_encoder(x)
        x = self.forward(x)
        return x.view(b, d, frames, c).permute(0, 2, 1, 3).reshape(bf, d, c)


class TemporalTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, max_len: int):
        super().__init__()
        self.attention_blocks = nn.ModuleList([VersatileAttention(dim, heads, max_len) for _ in range(2)])
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(2)])
        self.ff = FeedForward(dim)
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, frames: int) -> Tensor:
        for attn, norm in zip(self.attention_blocks, self.norms):
            x = attn.temporal(norm(x), frames) + x
        return self.ff(self.ff_norm(x)) + x


class TemporalTransformer3DModel(nn.Module):
    def __init__(self, channels: int, heads: int, layers: int, groups: int, max_len: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6, affine=True)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList([TemporalTransformerBlock(channels, heads, max_len)
                                                 for _ in range(layers)])
        self.proj_out = zero_module(nn.Linear(channels, channels))

    def forward(self, x: Tensor, frames: int) -> Tensor:
        n, c, h, w = x.shape
        r = x
        x = self.norm(x).permute(0, 2, 3, 1).reshape(n, h * w, c)
        x = self.proj_in(x)
        for blk in self.transformer_blocks:
            x = blk(x, frames)
        x = self.proj_out(x)
        return x.reshape(n, h, w, c).permute(0, 3, 1, 2) + r


class VanillaTemporalModule(nn.Module):
    def __init__(self, channels: int, heads: int, layers: int, groups: int, max_len: int):
        super().__init__()
        self.temporal_transformer = TemporalTransformer3DModel(channels, heads, layers, groups, max_len)

    def forward(self, x: Tensor, frames: int) -> Tensor:
        return self.temporal_transformer(x, frames)


class NoMotion(nn.Module):
    def forward(self, x: Tensor, frames: int) -> Tensor:
        return x


# ----------------------------------------------------------------------------- object blending
class ObjectBlend(nn.Module):
    """z = z + gate * sigmoid(conv(cat(z, z_obj))) * (z_obj - z); gate zero-initialised."""

    def __init__(self, channels: int, index: int):
        super().__init__()
        self.conv = nn.Conv2d(2 * channels, 1, 3, padding=1)
        self.gate = nn.Parameter(torch.zeros(channels))
        self.index = index

    def forward(self, x: Tensor, objects: List[Tensor]) -> Tensor:
        if len(objects) <= self.index:
            return x
        o = objects[self.index].to(x.dtype)
        a = torch.sigmoid(self.conv(torch.cat([x, o], dim=1)))
        return x + self.gate.view(1, -1, 1, 1) * a * (o - x)


class NoObjectBlend(nn.Module):
    def forward(self, x: Tensor, objects: List[Tensor]) -> Tensor:
        return x


# ----------------------------------------------------------------------------- UNet blocks

def _attention_and_motion_layers(channels: int, cfg: UNetConfig, layers: int, has_attn: bool,
                                 motion: bool) -> Tuple[nn.ModuleList, nn.ModuleList]:
    """One spatial transformer and one temporal module per resnet of a block (placeholders where off)."""
    L, g = layers, cfg.norm_num_groups
    attentions = nn.ModuleList([
        Transformer2DModel(channels, cfg.num_heads, cfg.cross_attention_dim, g) if has_attn else NoAttention()
        for _ in range(L)])
    motion_modules = nn.ModuleList([
        VanillaTemporalModule(channels, cfg.motion_num_heads, cfg.motion_num_transformer_blocks, g,
                              cfg.motion_max_len) if motion else NoMotion()
        for _ in range(L)])
    return attentions, motion_modules

class DownBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int, cfg: UNetConfig, has_attn: bool, add_downsample: bool,
                 motion: bool):
        super().__init__()
        L = cfg.layers_per_block
        g = cfg.norm_num_groups
        self.resnets = nn.ModuleList([ResnetBlock2D(cin if i == 0 else cout, cout, temb, g, cfg.norm_eps)
                                      for i in range(L)])
        self.attentions, self.motion_modules = _attention_and_motion_layers(cout, cfg, L, has_attn, motion)
        self.downsamplers = nn.ModuleList([Downsample2D(cout)]) if add_downsample else None

    def forward(self, x: Tensor, temb: Tensor, context: Tensor, refs: List[Tensor], ref_bias: Optional[Tensor],
                frames: int, skips: List[Tensor]) -> Tensor:
        for res, attn, mm in zip(self.resnets, self.attentions, self.motion_modules):
            x = res(x, temb)
            x = attn(x, context, refs, ref_bias)
            x = mm(x, frames)
            skips.append(x)
        if self.downsamplers is not None:
            for d in self.downsamplers:
                x = d(x)
            skips.append(x)
        return x


class MidBlock(nn.Module):
    def __init__(self, ch: int, temb: int, cfg: UNetConfig, motion: bool):
        super().__init__()
        g = cfg.norm_num_groups
        self.resnets = nn.ModuleList([ResnetBlock2D(ch, ch, temb, g, cfg.norm_eps),
                                      ResnetBlock2D(ch, ch, temb, g, cfg.norm_eps)])
        self.attentions = nn.ModuleList([Transformer2DModel(ch, cfg.num_heads, cfg.cross_attention_dim, g)])
        self.motion_modules = nn.ModuleList([
            VanillaTemporalModule(ch, cfg.motion_num_heads, cfg.motion_num_transformer_blocks, g, cfg.motion_max_len)
            if motion else NoMotion()])

    def forward(self, x: Tensor, temb: Tensor, context: Tensor, refs: List[Tensor], ref_bias: Optional[Tensor],
                frames: int) -> Tensor:
        x = self.resnets[0](x, temb)
        x = self.attentions[0](x, context, refs, ref_bias)
        x = self.motion_modules[0](x, frames)
        return self.resnets[1](x, temb)


class UpBlock(nn.Module):
    def __init__(self, cin: int, cout: int, prev: int, temb: int, cfg: UNetConfig, has_attn: bool,
                 add_upsample: bool, motion: bool):
        super().__init__()
        L = cfg.layers_per_block + 1
        g = cfg.norm_num_groups
        res = []
        for i in range(L):
            skip_ch = cin if i == L - 1 else cout
            res_in = prev if i == 0 else cout
            res.append(ResnetBlock2D(res_in + skip_ch, cout, temb, g, cfg.norm_eps))
        self.resnets = nn.ModuleList(res)
        self.attentions, self.motion_modules = _attention_and_motion_layers(cout, cfg, L, has_attn, motion)
        self.upsamplers = nn.ModuleList([Upsample2D(cout)]) if add_upsample else None

    def forward(self, x: Tensor, skips: List[Tensor], temb: Tensor, context: Tensor, refs: List[Tensor],
                ref_bias: Optional[Tensor], frames: int) -> Tensor:
        for res, attn, mm in zip(self.resnets, self.attentions, self.motion_modules):
            x = torch.cat([x, skips.pop()], dim=1)
            x = res(x, temb)
            x = attn(x, context, refs, ref_bias)
            x = mm(x, frames)
        return x

    def upsample(self, x: Tensor) -> Tensor:
        if self.upsamplers is not None:
            for u in self.upsamplers:
                x = u(x)
        return x


# ----------------------------------------------------------------------------- the UNet
class UNetModel(nn.Module):
    """SD1.5-layout UNet.

    ``motion=True`` adds motion modules (denoising UNet); ``role`` is ``"read"`` (denoising UNet,
    attends to reference tokens), ``"write"`` (ReferenceNet, emits them) or ``"none"``.
    """

    def __init__(self, cfg: UNetConfig, in_channels: int = 4, motion: bool = False, role: str = "none",
                 reference_blocks: str = "all", object_blend: bool = False, pose_modulation: bool = False):
        super().__init__()
        self.cfg = cfg
        ch = cfg.block_out_channels
        temb = ch[0] * 4
        self.time_proj_dim = ch[0]
        self.in_channels = in_channels
        self.conv_in = nn.Conv2d(in_channels, ch[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(ch[0], temb)
        downs = []
        for i, t in enumerate(cfg.down_block_types):
            downs.append(DownBlock(ch[max(i - 1, 0)], ch[i], temb, cfg, t == "CrossAttnDownBlock",
                                   i < len(ch) - 1, motion))
        self.down_blocks = nn.ModuleList(downs)
        self.mid_block = MidBlock(ch[-1], temb, cfg, motion and cfg.motion_mid_block)
        rev = list(reversed(ch))
        ups = []
        prev = rev[0]
        for i, t in enumerate(cfg.up_block_types):
            cin = rev[min(i + 1, len(ch) - 1)]
            ups.append(UpBlock(cin, rev[i], prev, temb, cfg, t == "CrossAttnUpBlock", i < len(ch) - 1, motion))
            prev = rev[i]
        self.up_blocks = nn.ModuleList(ups)
        self.conv_norm_out = nn.GroupNorm(cfg.norm_num_groups, ch[0], eps=cfg.norm_eps, affine=True)
        self.conv_out = nn.Conv2d(ch[0], cfg.out_channels, 3, padding=1)
        if object_blend:
            self.mid_object_blender = ObjectBlend(ch[-1], 0)
            self.up_object_blenders = nn.ModuleList([ObjectBlend(rev[i], i + 1) for i in range(len(ch))])
        else:
            self.mid_object_blender = NoObjectBlend()
            self.up_object_blenders = nn.ModuleList([NoObjectBlend() for _ in range(len(ch))])
        self.pose_temporal = (zero_module(nn.Conv3d(ch[0], ch[0], (3, 1, 1), padding=(1, 0, 0)))
                              if pose_modulation else None)
        self.num_reference = self._assign_reference_roles(role, reference_blocks)
        # True in compiled exports of the split CFG mode (scripts/gpu/bench_compiled.py): there the
        # conditional call always keeps its reference, and the data-dependent test on
        # reference_keep below is what stops torch.export (and breaks torch.compile's graph).
        self.reference_always_kept: bool = False
        if in_channels > cfg.in_channels:
            zero_extra_input_channels(self, cfg.in_channels)

    # -- reference bookkeeping
    def reference_blocks(self, which: str) -> List[BasicTransformerBlock]:
        if which == "all":
            roots = [self.down_blocks, self.mid_block, self.up_blocks]
        elif which == "mid_up":
            roots = [self.mid_block, self.up_blocks]
        else:
            raise ValueError(f"reference_blocks must be 'all' or 'mid_up', got {which!r}")
        return [m for r in roots for m in r.modules() if isinstance(m, BasicTransformerBlock)]

    def _assign_reference_roles(self, role: str, which: str) -> int:
        mode = {"none": REF_NONE, "write": REF_WRITE, "read": REF_READ}[role]
        if mode == REF_NONE:
            return 0
        blocks = self.reference_blocks(which)
        for i, b in enumerate(blocks):
            b.ref_mode = mode
            b.ref_index = i
        return len(blocks)

    def reference_shapes(self, h: int, w: int) -> List[List[int]]:
        """[L_i, C_i] of each reference tensor for latent size h x w (in UNet order)."""
        out = []
        roots = []
        for i, blk in enumerate(self.down_blocks):
            roots.append((blk, 2 ** i))
        n = len(self.down_blocks)
        roots.append((self.mid_block, 2 ** (n - 1)))
        for i, blk in enumerate(self.up_blocks):
            roots.append((blk, 2 ** (n - 1 - i)))
        for root, f in roots:
            for m in root.modules():
                if isinstance(m, BasicTransformerBlock) and m.ref_mode != REF_NONE:
                    out.append([(h // f) * (w // f), m.norm1.normalized_shape[0]])
        return out

    def object_shapes(self, h: int, w: int) -> List[List[int]]:
        """[C_j, h_j, w_j] of each object feature (mid, up_0 .. up_{n-1}) for latent size h x w."""
        ch = self.cfg.block_out_channels
        n = len(ch)
        rev = list(reversed(ch))
        f = 2 ** (n - 1)
        shapes = [[ch[-1], h // f, w // f]]
        for i in range(n):
            f = 2 ** (n - 1 - i)
            shapes.append([rev[i], h // f, w // f])
        return shapes

    # -- forward
    def _embed_time(self, timestep: Tensor, dtype: torch.dtype) -> Tensor:
        return self.time_embedding(timestep_embedding(timestep, self.time_proj_dim).to(dtype))

    def body(self, x: Tensor, temb: Tensor, context: Tensor, refs: List[Tensor], ref_bias: Optional[Tensor],
             frames: int, objects: List[Tensor]) -> Tensor:
        skips: List[Tensor] = [x]
        for blk in self.down_blocks:
            x = blk(x, temb, context, refs, ref_bias, frames, skips)
        x = self.mid_block(x, temb, context, refs, ref_bias, frames)
        x = self.mid_object_blender(x, objects)
        for blk, blend in zip(self.up_blocks, self.up_object_blenders):
            x = blk(x, skips, temb, context, refs, ref_bias, frames)
            x = blend(x, objects)
            x = blk.upsample(x)
        return x

    def forward(self, sample: Tensor, timestep: Tensor, context: Tensor, pose: Tensor, reference: List[Tensor],
                reference_keep: Tensor, objects: List[Tensor]) -> Tensor:
        """Denoising UNet (bundle module ``denoising_unet``), see docs/BUNDLE.md.

        sample [B,C_in,F,h,w], timestep [B] int64, context [B,1,D], pose [B,C0,F,h,w],
        reference List[[1,L_i,C_i]] (empty = no reference), reference_keep [B] float32,
        objects List[[B*F,C_j,h_j,w_j]] (empty = no objects)  ->  prediction [B,4,F,h,w].
        """
        b, c, f, h, w = sample.shape
        if c != self.in_channels:
            raise RuntimeError("denoising_unet: wrong number of sample channels")
        if len(reference) != 0 and len(reference) != self.num_reference:
            raise RuntimeError("denoising_unet: wrong number of reference tensors")
        dtype = self.conv_in.weight.dtype
        x = sample.to(dtype).permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        if timestep.dim() == 0:
            timestep = timestep.expand(b)
        temb = self._embed_time(timestep, dtype).repeat_interleave(f, dim=0)
        ctx = context.to(dtype).repeat_interleave(f, dim=0)
        x = self.conv_in(x)
        p = pose.to(dtype)
        if self.pose_temporal is not None:
            p = p + self.pose_temporal(p)
        x = x + p.permute(0, 2, 1, 3, 4).reshape(b * f, p.shape[1], h, w)
        refs = [r.to(dtype) for r in reference]
        ref_bias: Optional[Tensor] = None
        if len(refs) > 0 and not self.reference_always_kept:
            drop = reference_keep < 0.5
            if bool(drop.any()):
                zero = torch.zeros(b, dtype=torch.float32, device=x.device)
                ref_bias = torch.where(drop.to(x.device), zero - float("inf"), zero).repeat_interleave(f, dim=0)
        x = self.body(x, temb, ctx, refs, ref_bias, f, objects)
        x = self.conv_out(F.silu(self.conv_norm_out(x)))
        return x.reshape(b, f, x.shape[1], h, w).permute(0, 2, 1, 3, 4)

    def reference_features(self, latent: Tensor, context: Tensor) -> List[Tensor]:
        """ReferenceNet pass at timestep 0; returns the norm1 outputs of the selected blocks."""
        dtype = self.conv_in.weight.dtype
        n = latent.shape[0]
        t = torch.zeros(n, dtype=torch.long, device=latent.device)
        temb = self._embed_time(t, dtype)
        x = self.conv_in(latent.to(dtype))
        bank: List[Tensor] = []
        self.body(x, temb, context.to(dtype), bank, None, 1, [])
        return bank

    def forward_2d(self, sample: Tensor, timestep: Tensor, context: Tensor) -> Tensor:
        """Plain UNet2DConditionModel forward (for tests)."""
        dtype = self.conv_in.weight.dtype
        temb = self._embed_time(timestep, dtype)
        x = self.conv_in(sample.to(dtype))
        x = self.body(x, temb, context.to(dtype), [], None, 1, [])
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class ReferenceNetModule(nn.Module):
    """Bundle module ``reference_net``: latent [1,4,h,w] (scaled), context [1,1,D] -> List[[1,L_i,C_i]]."""

    def __init__(self, unet: UNetModel):
        super().__init__()
        self.unet = unet

    def forward(self, latent: Tensor, context: Tensor) -> List[Tensor]:
        return self.unet.reference_features(latent, context)


def build_denoising_unet(cfg: ModelConfig) -> UNetModel:
    return UNetModel(cfg.unet, in_channels=cfg.unet_in_channels, motion=True, role="read",
                     reference_blocks=cfg.reference_blocks, object_blend=cfg.use_object_guider,
                     pose_modulation=cfg.pose_modulation)


def build_reference_net(cfg: ModelConfig) -> UNetModel:
    return UNetModel(cfg.unet, in_channels=cfg.unet.in_channels, motion=False, role="write",
                     reference_blocks=cfg.reference_blocks)


def zero_extra_input_channels(unet: UNetModel, base_channels: int = 4) -> None:
    """Zero the conv_in weights of the input channels beyond the first ``base_channels``."""
    with torch.no_grad():
        unet.conv_in.weight[:, base_channels:].zero_()
