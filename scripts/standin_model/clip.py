"""CLIP vision tower with projection (transformers ``CLIPVisionModelWithProjection`` layout).

Keys: vision_model.embeddings.{class_embedding, patch_embedding.weight, position_embedding.weight},
vision_model.pre_layrnorm (sic), vision_model.encoder.layers.N.{self_attn.{q,k,v,out}_proj,
layer_norm1, mlp.fc1, mlp.fc2, layer_norm2}, vision_model.post_layernorm, visual_projection.weight.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import CLIPConfig
from .layers import attention


class CLIPVisionEmbeddings(nn.Module):
    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        d = cfg.hidden_size
        self.class_embedding = nn.Parameter(torch.randn(d) * d ** -0.5)
        self.patch_embedding = nn.Conv2d(3, d, cfg.patch_size, stride=cfg.patch_size, bias=False)
        num_pos = (cfg.image_size // cfg.patch_size) ** 2 + 1
        self.position_embedding = nn.Embedding(num_pos, d)
        nn.init.normal_(self.position_embedding.weight, std=0.02)
        # transformers keeps this buffer; newer versions do not save it (persistent=False)
        self.register_buffer("position_ids", torch.arange(num_pos).view(1, -1), persistent=False)

    def forward(self, pixels: Tensor) -> Tensor:
        n = pixels.shape[0]
        x = self.patch_embedding(pixels).flatten(2).transpose(1, 2)
        cls = self.class_embedding.view(1, 1, -1).expand(n, 1, x.shape[2])
        x = torch.cat([cls, x], dim=1)
        return x + self.position_embedding(self.position_ids)


class CLIPAttention(nn.Module):
    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        d = cfg.hidden_size
        self.heads = cfg.num_heads
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        h = self.heads
        q = self.q_proj(x).view(b, n, h, c // h).transpose(1, 2)
        k = self.k_proj(x).view(b, n, h, c // h).transpose(1, 2)
        v = self.v_proj(x).view(b, n, h, c // h).transpose(1, 2)
        o = attention(q, k, v, None).transpose(1, 2).reshape(b, n, c)
        return self.out_proj(o)


class CLIPMLP(nn.Module):
    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.fc2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size)

    def forward(self, x: Tensor) -> Tensor:
        x = self.fc1(x)
        x = x * torch.sigmoid(1.702 * x)  # quick_gelu
        return self.fc2(x)


class CLIPEncoderLayer(nn.Module):
    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.self_attn = CLIPAttention(cfg)
        self.layer_norm1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.mlp = CLIPMLP(cfg)
        self.layer_norm2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class CLIPEncoder(nn.Module):
    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.layers = nn.ModuleList([CLIPEncoderLayer(cfg) for _ in range(cfg.num_layers)])

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class CLIPVisionTransformer(nn.Module):
    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.embeddings = CLIPVisionEmbeddings(cfg)
        self.pre_layrnorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.encoder = CLIPEncoder(cfg)
        self.post_layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, pixels: Tensor) -> Tensor:
        """Returns the pooled output (post_layernorm of the class token)."""
        x = self.pre_layrnorm(self.embeddings(pixels))
        x = self.encoder(x)
        return self.post_layernorm(x[:, 0])


class CLIPVisionModelWithProjection(nn.Module):
    """Bundle module ``image_encoder``: pixels [N,3,S,S] (CLIP-normalised) -> embeds [N,1,D]."""

    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.vision_model = CLIPVisionTransformer(cfg)
        self.visual_projection = nn.Linear(cfg.hidden_size, cfg.projection_dim, bias=False)

    def forward(self, pixels: Tensor) -> Tensor:
        dtype = self.visual_projection.weight.dtype
        pooled = self.vision_model(pixels.to(dtype))
        return self.visual_projection(pooled)[:, None, :]
