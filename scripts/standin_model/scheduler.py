"""DDIM (eta 0) and DPM-Solver++ 2M, numerically following diffusers' ``DDIMScheduler`` and
``DPMSolverMultistepScheduler`` (algorithm_type "dpmsolver++", solver_order 2, solver_type
"midpoint", lower_order_final True, final_sigmas_type "zero").  docs/SAMPLING.md states the
formulas; src/diffusion/scheduler.cpp implements the same.

Both work on whole latent tensors; the coefficients are Python floats (float64) computed from
the float32 ``alphas_cumprod`` (as diffusers does), the tensor arithmetic is in the latents'
dtype.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import Tensor

DEFAULT = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
           "beta_schedule": "scaled_linear", "prediction_type": "v_prediction",
           "rescale_betas_zero_snr": True, "timestep_spacing": "trailing",
           "steps_offset": 1, "clip_sample": False}

BETA_SCHEDULES = ("linear", "scaled_linear")

# What each public checkpoint's own inference code samples with: the noise_scheduler_kwargs of
# its inference config (diffusers' DDIMScheduler defaults for the keys it leaves out:
# num_train_timesteps 1000, set_alpha_to_one True, eta 0).  Both set beta_start 0.00085,
# beta_end 0.012, clip_sample false, steps_offset 1, prediction_type v_prediction,
# rescale_betas_zero_snr true, timestep_spacing trailing; they differ in beta_schedule only.
#   moore-aa  Moore-AnimateAnyone configs/inference/inference_v2.yaml (scripts/pose2vid.py, app.py):
#             "linear" (its training scheduler is scaled_linear; its validation samples linear too)
#   musepose  MusePose configs/inference_v2.yaml (test_stage_2.py): "scaled_linear"
# "standin" is this project's own default (random test bundles, own training).
PRESETS = {
    "standin": dict(DEFAULT),
    "moore-aa": dict(DEFAULT, beta_schedule="linear"),
    "musepose": dict(DEFAULT, beta_schedule="scaled_linear"),
}


def scheduler_config(preset: str = "standin", beta_schedule: Optional[str] = None) -> Dict:
    """model.json's "scheduler" block: a preset, optionally with another beta schedule."""
    if preset not in PRESETS:
        raise ValueError(f"unknown scheduler preset {preset!r}; known: {sorted(PRESETS)}")
    return with_beta_schedule(PRESETS[preset], beta_schedule)


def with_beta_schedule(config: Dict, beta_schedule: Optional[str]) -> Dict:
    """A copy of ``config`` with ``beta_schedule`` replaced (None keeps it)."""
    out = dict(config)
    if beta_schedule is not None:
        if beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"unsupported beta_schedule {beta_schedule!r}; known: {list(BETA_SCHEDULES)}")
        out["beta_schedule"] = beta_schedule
    return out


def make_betas(num_train_timesteps: int, beta_start: float, beta_end: float, beta_schedule: str) -> Tensor:
    if beta_schedule == "scaled_linear":
        return torch.linspace(beta_start ** 0.5, beta_end ** 0.5, num_train_timesteps, dtype=torch.float32) ** 2
    if beta_schedule == "linear":
        return torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float32)
    raise ValueError(f"unsupported beta_schedule {beta_schedule!r}")


def rescale_zero_terminal_snr(betas: Tensor) -> Tensor:
    """Lin et al. 2023, Algorithm 1 (as in diffusers)."""
    alphas = 1.0 - betas
    alphas_bar_sqrt = torch.cumprod(alphas, dim=0).sqrt()
    a0 = alphas_bar_sqrt[0].clone()
    aT = alphas_bar_sqrt[-1].clone()
    alphas_bar_sqrt = alphas_bar_sqrt - aT
    alphas_bar_sqrt = alphas_bar_sqrt * (a0 / (a0 - aT))
    alphas_bar = alphas_bar_sqrt ** 2
    alphas = torch.cat([alphas_bar[0:1], alphas_bar[1:] / alphas_bar[:-1]])
    return 1.0 - alphas


def make_alphas_cumprod(cfg: Dict) -> Tensor:
    betas = make_betas(cfg["num_train_timesteps"], cfg["beta_start"], cfg["beta_end"], cfg["beta_schedule"])
    if cfg.get("rescale_betas_zero_snr", False):
        betas = rescale_zero_terminal_snr(betas)
    return torch.cumprod(1.0 - betas, dim=0)


def _check_len(ts: np.ndarray, steps: int) -> np.ndarray:
    if len(ts) != steps:
        raise ValueError(f"spacing produced {len(ts)} timesteps for {steps} steps")
    return ts


def ddim_timesteps(cfg: Dict, steps: int) -> List[int]:
    N = cfg["num_train_timesteps"]
    spacing = cfg.get("timestep_spacing", "leading")
    if steps > N or steps < 1:
        raise ValueError(f"steps must be in 1..{N}")
    if spacing == "linspace":
        ts = np.linspace(0, N - 1, steps).round()[::-1].copy().astype(np.int64)
    elif spacing == "leading":
        ratio = N // steps
        ts = (np.arange(0, steps) * ratio).round()[::-1].copy().astype(np.int64) + cfg.get("steps_offset", 0)
    elif spacing == "trailing":
        ratio = N / steps
        ts = np.round(np.arange(N, 0, -ratio)).astype(np.int64) - 1
    else:
        raise ValueError(f"unsupported timestep_spacing {spacing!r}")
    return [int(t) for t in _check_len(ts, steps)]


def dpm_timesteps(cfg: Dict, steps: int) -> List[int]:
    N = cfg["num_train_timesteps"]
    spacing = cfg.get("timestep_spacing", "linspace")
    if steps > N or steps < 1:
        raise ValueError(f"steps must be in 1..{N}")
    if spacing == "linspace":
        ts = np.linspace(0, N - 1, steps + 1).round()[::-1][:-1].copy().astype(np.int64)
    elif spacing == "leading":
        ratio = N // (steps + 1)
        ts = (np.arange(0, steps + 1) * ratio).round()[::-1][:-1].copy().astype(np.int64) + cfg.get("steps_offset", 0)
    elif spacing == "trailing":
        ratio = N / steps
        ts = np.arange(N, 0, -ratio).round().copy().astype(np.int64) - 1
    else:
        raise ValueError(f"unsupported timestep_spacing {spacing!r}")
    return [int(t) for t in _check_len(ts, steps)]


class DDIMScheduler:
    """diffusers DDIMScheduler with eta = 0 (set_alpha_to_one True)."""

    init_noise_sigma = 1.0

    def __init__(self, config: Optional[Dict] = None, set_alpha_to_one: bool = True):
        self.config = dict(DEFAULT, **(config or {}))
        self.alphas_cumprod = make_alphas_cumprod(self.config)
        self.final_alpha_cumprod = 1.0 if set_alpha_to_one else float(self.alphas_cumprod[0])
        self.timesteps: List[int] = []
        self.num_inference_steps = 0

    def set_timesteps(self, steps: int) -> List[int]:
        self.num_inference_steps = steps
        self.timesteps = ddim_timesteps(self.config, steps)
        return self.timesteps

    def coefficients(self, t: int):
        """(alpha_prod_t, alpha_prod_prev) as Python floats (from the float32 table)."""
        prev_t = t - self.config["num_train_timesteps"] // self.num_inference_steps
        a_t = float(self.alphas_cumprod[t])
        a_prev = float(self.alphas_cumprod[prev_t]) if prev_t >= 0 else self.final_alpha_cumprod
        return a_t, a_prev

    def step(self, model_output: Tensor, t: int, sample: Tensor) -> Tensor:
        a_t, a_prev = self.coefficients(int(t))
        b_t = 1.0 - a_t
        pt = self.config["prediction_type"]
        if pt == "epsilon":
            x0 = (sample - math.sqrt(b_t) * model_output) / math.sqrt(max(a_t, 2.0 ** -24))
            eps = model_output
        elif pt == "v_prediction":
            x0 = math.sqrt(a_t) * sample - math.sqrt(b_t) * model_output
            eps = math.sqrt(a_t) * model_output + math.sqrt(b_t) * sample
        elif pt == "sample":
            x0 = model_output
            eps = (sample - math.sqrt(a_t) * x0) / math.sqrt(max(b_t, 2.0 ** -24))
        else:
            raise ValueError(f"unsupported prediction_type {pt!r}")
        if self.config.get("clip_sample", False):
            r = float(self.config.get("clip_sample_range", 1.0))
            x0 = x0.clamp(-r, r)
        return math.sqrt(a_prev) * x0 + math.sqrt(1.0 - a_prev) * eps


class DPMSolverMultistepScheduler:
    """diffusers DPMSolverMultistepScheduler: dpmsolver++, order 2, midpoint, final sigma 0."""

    init_noise_sigma = 1.0

    def __init__(self, config: Optional[Dict] = None, lower_order_final: bool = True):
        self.config = dict(DEFAULT, **(config or {}))
        ac = make_alphas_cumprod(self.config)
        if self.config.get("rescale_betas_zero_snr", False):
            ac[-1] = 2.0 ** -24  # as diffusers: close to 0 so the first sigma is finite
        self.alphas_cumprod = ac
        self.lower_order_final = lower_order_final
        self.timesteps: List[int] = []
        self.sigmas: List[float] = []
        self.reset()

    def reset(self) -> None:
        self.model_outputs: List[Optional[Tensor]] = [None, None]
        self.lower_order_nums = 0
        self.step_index = 0

    def set_timesteps(self, steps: int) -> List[int]:
        self.timesteps = dpm_timesteps(self.config, steps)
        sig = ((1.0 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5  # float32, as diffusers (numpy f32)
        self.sigmas = [float(sig[t]) for t in self.timesteps] + [0.0]
        self.reset()
        return self.timesteps

    @staticmethod
    def _alpha_sigma(sigma: float):
        alpha = 1.0 / math.sqrt(sigma * sigma + 1.0)
        return alpha, sigma * alpha

    @staticmethod
    def _lambda(alpha: float, sigma: float) -> float:
        return math.log(alpha) - math.log(sigma)

    def convert_model_output(self, model_output: Tensor, sample: Tensor) -> Tensor:
        alpha_t, sigma_t = self._alpha_sigma(self.sigmas[self.step_index])
        pt = self.config["prediction_type"]
        if pt == "epsilon":
            return (sample - sigma_t * model_output) / alpha_t
        if pt == "v_prediction":
            return alpha_t * sample - sigma_t * model_output
        if pt == "sample":
            return model_output
        raise ValueError(f"unsupported prediction_type {pt!r}")

    def step(self, model_output: Tensor, t: int, sample: Tensor) -> Tensor:
        i = self.step_index
        if self.timesteps[i] != int(t):
            raise ValueError(f"DPM-Solver++ steps must be taken in order (expected t={self.timesteps[i]}, got {t})")
        n = len(self.timesteps)
        lower_final = i == n - 1  # final_sigmas_type "zero" => the last step is always first order
        x0 = self.convert_model_output(model_output, sample)
        self.model_outputs = [self.model_outputs[1], x0]
        s_next, s_cur = self.sigmas[i + 1], self.sigmas[i]
        if self.lower_order_nums < 1 or lower_final:
            prev = self._first_order(x0, sample, s_cur, s_next)
        else:
            prev = self._second_order(self.model_outputs[1], self.model_outputs[0], sample,
                                      self.sigmas[i - 1], s_cur, s_next)
        if self.lower_order_nums < 2:
            self.lower_order_nums += 1
        self.step_index += 1
        return prev

    def _first_order(self, x0: Tensor, sample: Tensor, sigma_s: float, sigma_t: float) -> Tensor:
        if sigma_t == 0.0:
            return x0 * 1.0  # alpha_t = 1, exp(-h) = 0
        alpha_t, sig_t = self._alpha_sigma(sigma_t)
        alpha_s, sig_s = self._alpha_sigma(sigma_s)
        h = self._lambda(alpha_t, sig_t) - self._lambda(alpha_s, sig_s)
        return (sig_t / sig_s) * sample - (alpha_t * (math.exp(-h) - 1.0)) * x0

    def _second_order(self, m0: Tensor, m1: Tensor, sample: Tensor, sigma_s1: float, sigma_s0: float,
                      sigma_t: float) -> Tensor:
        alpha_t, sig_t = self._alpha_sigma(sigma_t)
        alpha_s0, sig_s0 = self._alpha_sigma(sigma_s0)
        alpha_s1, sig_s1 = self._alpha_sigma(sigma_s1)
        lam_t = self._lambda(alpha_t, sig_t)
        lam_s0 = self._lambda(alpha_s0, sig_s0)
        lam_s1 = self._lambda(alpha_s1, sig_s1)
        h = lam_t - lam_s0
        h0 = lam_s0 - lam_s1
        r0 = h0 / h
        d0 = m0
        d1 = (1.0 / r0) * (m0 - m1)
        c = alpha_t * (math.exp(-h) - 1.0)
        return (sig_t / sig_s0) * sample - c * d0 - 0.5 * c * d1


SAMPLERS = {"ddim": DDIMScheduler, "dpmpp_2m": DPMSolverMultistepScheduler}
SAMPLER_IDS = {0: "ddim", 1: "dpmpp_2m"}


def make_scheduler(sampler: str, config: Optional[Dict] = None):
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; known: {sorted(SAMPLERS)}")
    return SAMPLERS[sampler](config)
