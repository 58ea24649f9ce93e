"""What each training stage computes: the VAE's reconstruction loss and the denoising loss.

The diffusion forward is the bundle's inference computation (docs/SAMPLING.md) with a batch of
different references: reference tokens are repeated per frame, the reference is dropped for a
fraction of samples exactly the way the sampler's unconditional half drops it (context zeros,
``reference_keep`` 0), and the noise schedule is the bundle's (v-prediction, zero terminal SNR).
"""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from standin_model.model import StandinModel
from standin_model.scheduler import make_alphas_cumprod


# ----------------------------------------------------------------------------- VAE
def sobel(x: Tensor) -> Tensor:
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device, dtype=x.dtype)
    k = torch.stack([kx, kx.t()]).unsqueeze(1)  # [2,1,3,3]
    c = x.shape[1]
    return F.conv2d(x.reshape(-1, 1, *x.shape[2:]), k, padding=1).reshape(x.shape[0], c * 2, *x.shape[2:])


class VAEObjective(nn.Module):
    """Reconstruction (L1) + image-gradient L1 (edges; no pretrained perceptual network exists
    here) + a small KL term, weighted up inside the character (what the model must draw)."""

    def __init__(self, model: StandinModel, kl_weight: float = 1e-6, gradient_weight: float = 0.5,
                 character_weight: float = 3.0):
        super().__init__()
        self.vae = model.vae
        self.kl_weight = kl_weight
        self.gradient_weight = gradient_weight
        self.character_weight = character_weight

    def forward(self, images: Tensor, weight: Tensor) -> Dict[str, Tensor]:
        """images [N,3,H,W] in [-1,1], weight [N,1,H,W] (1 + character_weight inside the character)."""
        vae = self.vae
        moments = vae.quant_conv(vae.encoder(images))
        lc = vae.cfg.latent_channels
        mean, logvar = moments[:, :lc], moments[:, lc:].clamp(-30.0, 20.0)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        recon = vae.decode(z)
        w = 1.0 + self.character_weight * weight
        l1 = ((recon.float() - images).abs() * w).mean()
        grad = ((sobel(recon.float()) - sobel(images)).abs() * w).mean()
        kl = 0.5 * (mean.float() ** 2 + logvar.float().exp() - 1.0 - logvar.float()).mean()
        loss = l1 + self.gradient_weight * grad + self.kl_weight * kl
        return {"loss": loss, "l1": l1.detach(), "grad": grad.detach(), "kl": kl.detach()}


# ----------------------------------------------------------------------------- diffusion
class DiffusionObjective(nn.Module):
    """v-prediction loss of the denoising UNet with every condition of the bundle.

    ``trainable`` chooses the stage: "image" (everything but the VAE and the motion modules) or
    "video" (motion modules only, as the paper's second stage).

    ``temporal_weight`` (clips only) adds the frame-to-frame differences of the predicted clean
    latents against the true ones, weighted like the main loss: since the latents the prediction
    implies differ from the truth by sqrt(1 - alpha) times its v error, this is that error's change
    between neighbouring frames, weighted by the noise level. The plain loss lets each frame err on
    its own; this term makes errors that stay put from frame to frame cheaper than errors that
    flicker (docs/TRAINING.md "Where run 5's flicker comes from")."""

    def __init__(self, model: StandinModel, scheduler_cfg: Dict, reference_drop: float = 0.1,
                 outside_mask_weight: float = 0.25, temporal_weight: float = 0.0):
        super().__init__()
        self.model = model
        self.register_buffer("alphas_cumprod", make_alphas_cumprod(scheduler_cfg).float(), persistent=False)
        self.num_train_timesteps = int(scheduler_cfg["num_train_timesteps"])
        self.reference_drop = reference_drop
        self.outside_mask_weight = outside_mask_weight
        self.temporal_weight = temporal_weight
        self.vae_scale = model.cfg.vae_scale_factor
        self.sf = model.cfg.vae.scaling_factor

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        return self.model.vae.encode_mean(images) * self.sf

    def forward(self, batch: Dict[str, Tensor], use_objects: bool,
                generator: Optional[torch.Generator] = None) -> Dict[str, Tensor]:
        m = self.model
        frames = batch["frames"]                      # [B,F,3,H,W]
        B, Fr = frames.shape[:2]
        flat = lambda x: x.reshape(B * Fr, *x.shape[2:])  # noqa: E731
        dev = frames.device
        with torch.no_grad():
            x0 = self.encode(flat(frames))                            # [BF,4,h,w]
            env = self.encode(flat(batch["environment"]))
            ref_latent = self.encode(batch["reference"])               # [B,4,h,w]
            obj_latent = self.encode(flat(batch["object"])) if use_objects else None
        mask_lat = F.avg_pool2d(flat(batch["mask"]), self.vae_scale)   # [BF,1,h,w]
        h, w = x0.shape[-2:]

        def cf(x: Tensor) -> Tensor:  # [BF,C,h,w] -> [B,C,F,h,w]
            return x.reshape(B, Fr, *x.shape[1:]).permute(0, 2, 1, 3, 4)

        # reference (dropped for some samples: the unconditional path)
        keep = (torch.rand(B, device=dev, generator=generator) >= self.reference_drop).float()
        embed = m.image_encoder(batch["reference_clip"]) * keep.view(B, 1, 1)
        refs = m.reference_unet.reference_features(ref_latent, embed)
        refs = [r.repeat_interleave(Fr, dim=0) for r in refs]
        pose = m.pose_guider(flat(batch["pose"]), flat(batch["depth"]) if m.cfg.pose_modulation else None)
        objects: List[Tensor] = []
        if use_objects and m.object_guider is not None:
            objects = m.object_guider(obj_latent)

        # noise
        t = torch.randint(0, self.num_train_timesteps, (B,), device=dev, generator=generator)
        a = self.alphas_cumprod.to(dev)[t].view(B, 1, 1, 1, 1)
        x0 = cf(x0).float()
        noise = torch.randn(x0.shape, device=dev, generator=generator)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        v = a.sqrt() * noise - (1 - a).sqrt() * x0
        sample = torch.cat([xt, cf(env), cf(mask_lat)], dim=1)
        pred = m.denoising_unet(sample, t, embed, cf(pose), refs, keep, objects).float()
        weight = self.outside_mask_weight + (1 - self.outside_mask_weight) * (cf(mask_lat) > 0).float()
        loss = (((pred - v) ** 2) * weight).mean() / weight.mean()
        out = {"loss": loss, "mse": ((pred - v) ** 2).mean().detach()}
        if self.temporal_weight > 0 and Fr > 1:
            x0_pred = a.sqrt() * xt - (1 - a).sqrt() * pred  # v-prediction -> clean latents
            change_error = x0_pred.diff(dim=2) - x0.diff(dim=2)
            w = torch.maximum(weight[:, :, 1:], weight[:, :, :-1])
            temporal = ((change_error ** 2) * w).mean() / w.mean()
            out["loss"] = loss + self.temporal_weight * temporal
            out["temporal"] = temporal.detach()
        return out


def trainable_parameters(model: StandinModel, stage: str) -> List[nn.Parameter]:
    """Sets requires_grad for a stage and returns the parameters to optimise."""
    for p in model.parameters():
        p.requires_grad_(False)
    if stage == "vae":
        mods = [model.vae]
        params = [p for mod in mods for p in mod.parameters()]
    elif stage == "image":
        params = []
        for name, p in model.named_parameters():
            if name.startswith("vae.") or ".motion_modules." in name \
                    or name.startswith("denoising_unet.pose_temporal"):
                continue
            params.append(p)
    elif stage == "video":
        params = [p for name, p in model.named_parameters()
                  if ".motion_modules." in name or name.startswith("denoising_unet.pose_temporal")]
    else:
        raise ValueError(f"unknown stage {stage!r}")
    for p in params:
        p.requires_grad_(True)
    return params
