"""Scheduler numbers: timesteps, alpha tables and steps against independent float64 formulas."""
import math

import numpy as np
import pytest
import torch

from standin_model.scheduler import (DEFAULT, DDIMScheduler, DPMSolverMultistepScheduler, ddim_timesteps,
                                     dpm_timesteps, make_alphas_cumprod)


def ref_alphas_cumprod(rescale: bool, schedule="scaled_linear", N=1000, b0=0.00085, b1=0.012):
    if schedule == "scaled_linear":
        betas = np.linspace(b0 ** 0.5, b1 ** 0.5, N) ** 2
    else:
        betas = np.linspace(b0, b1, N)
    ac = np.cumprod(1 - betas)
    if rescale:
        s = np.sqrt(ac)
        s = (s - s[-1]) * s[0] / (s[0] - s[-1])
        ac = s ** 2
    return ac


def test_alphas_cumprod_tables():
    plain = make_alphas_cumprod(dict(DEFAULT, rescale_betas_zero_snr=False)).double().numpy()
    zsnr = make_alphas_cumprod(dict(DEFAULT)).double().numpy()
    np.testing.assert_allclose(plain, ref_alphas_cumprod(False), rtol=2e-5, atol=1e-7)
    np.testing.assert_allclose(zsnr, ref_alphas_cumprod(True), rtol=2e-5, atol=1e-6)
    assert abs(plain[0] - 0.99915) < 1e-7 and abs(plain[-1] - 0.0046601) < 1e-6   # SD1.5's well-known values
    assert zsnr[-1] == 0.0 and abs(zsnr[0] - 0.99915) < 1e-6
    lin = make_alphas_cumprod(dict(DEFAULT, beta_schedule="linear", rescale_betas_zero_snr=False)).double().numpy()
    np.testing.assert_allclose(lin, ref_alphas_cumprod(False, "linear"), rtol=2e-5, atol=1e-7)


def test_timesteps():
    cfg = dict(DEFAULT)
    assert ddim_timesteps(cfg, 25) == list(range(999, 0, -40))
    t30 = ddim_timesteps(cfg, 30)
    assert t30[:4] == [999, 966, 932, 899] and t30[-1] == 32 and len(t30) == 30
    assert ddim_timesteps(cfg, 16)[:4] == [999, 937, 874, 811]          # 937.5 -> 938 (half to even) - 1
    assert ddim_timesteps(dict(cfg, timestep_spacing="leading"), 10) == [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]
    assert ddim_timesteps(dict(cfg, timestep_spacing="linspace"), 10) == [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]
    assert dpm_timesteps(cfg, 25) == ddim_timesteps(cfg, 25)
    assert dpm_timesteps(dict(cfg, timestep_spacing="leading"), 10) == [901, 811, 721, 631, 541, 451, 361, 271, 181, 91]
    assert dpm_timesteps(dict(cfg, timestep_spacing="linspace"), 10) == [999, 899, 799, 699, 599, 500, 400, 300, 200, 100]


def test_ddim_step_hand_computed():
    s = DDIMScheduler(dict(DEFAULT))
    s.set_timesteps(25)
    ac = make_alphas_cumprod(dict(DEFAULT)).double().numpy()
    x = torch.tensor([1.0, -2.0, 0.5])
    v = torch.tensor([0.5, 0.25, -1.0])
    # t = 999: alpha_bar = 0 -> x0 = -v, eps = x ; prev index 959
    out = s.step(v, 999, x)
    ap = ac[959]
    exp = math.sqrt(ap) * (-v.double()) + math.sqrt(1 - ap) * x.double()
    np.testing.assert_allclose(out.double().numpy(), exp.numpy(), rtol=1e-5, atol=1e-6)
    # t = 39 (last): prev index -1 -> alpha_prev = 1 -> x_prev = x0
    a = ac[39]
    out = s.step(v, 39, x)
    x0 = math.sqrt(a) * x.double() - math.sqrt(1 - a) * v.double()
    np.testing.assert_allclose(out.double().numpy(), x0.numpy(), rtol=1e-5, atol=1e-6)
    # epsilon prediction, non-rescaled table, t = 500 with 10 leading steps: prev = 400
    e = DDIMScheduler(dict(DEFAULT, prediction_type="epsilon", rescale_betas_zero_snr=False,
                           timestep_spacing="leading"))
    e.set_timesteps(10)
    ac2 = ref_alphas_cumprod(False)
    out = e.step(v, 501, x)
    x0 = (x.double() - math.sqrt(1 - ac2[501]) * v.double()) / math.sqrt(ac2[501])
    exp = math.sqrt(ac2[401]) * x0 + math.sqrt(1 - ac2[401]) * v.double()
    np.testing.assert_allclose(out.double().numpy(), exp.numpy(), rtol=1e-5, atol=1e-5)


def ref_dpmpp_2m(ac, timesteps, model_fn, x, pred="v_prediction"):
    """Independent DPM-Solver++(2M) in log-SNR form, float64 (Lu et al. 2022, Alg. 2)."""
    ac = ac.copy()
    al = [math.sqrt(ac[t]) for t in timesteps] + [1.0]
    sg = [math.sqrt(1 - ac[t]) for t in timesteps] + [0.0]
    lam = [math.log(a / s) if s > 0 else math.inf for a, s in zip(al, sg)]
    prev_x0 = None
    for i, t in enumerate(timesteps):
        out = model_fn(x, t)
        x0 = al[i] * x - sg[i] * out if pred == "v_prediction" else (x - sg[i] * out) / al[i]
        if i == len(timesteps) - 1:
            x = x0
        else:
            h = lam[i + 1] - lam[i]
            if prev_x0 is None:
                d = x0
            else:
                r = (lam[i] - lam[i - 1]) / h
                d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * prev_x0
            x = (sg[i + 1] / sg[i]) * x - al[i + 1] * (math.exp(-h) - 1) * d
        prev_x0 = x0
    return x


@pytest.mark.parametrize("steps,pred,rescale", [(6, "v_prediction", True), (20, "v_prediction", True),
                                                 (8, "epsilon", False)])
def test_dpmpp_2m_matches_reference(steps, pred, rescale):
    cfg = dict(DEFAULT, prediction_type=pred, rescale_betas_zero_snr=rescale)
    s = DPMSolverMultistepScheduler(cfg)
    ts = s.set_timesteps(steps)
    ac = s.alphas_cumprod.double().numpy()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, generator=g, dtype=torch.float64)
    w = torch.randn(16, generator=g, dtype=torch.float64)

    def model_fn(xx, t):
        return torch.tanh(xx) * 0.5 + w * (t / 1000.0)

    exp = ref_dpmpp_2m(ac, ts, model_fn, x.clone(), pred)
    y = x.clone()
    for t in ts:
        y = s.step(model_fn(y, t), t, y)
    np.testing.assert_allclose(y.numpy(), exp.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("sampler", [DDIMScheduler, DPMSolverMultistepScheduler])
def test_oracle_denoiser_recovers_x0(sampler):
    """With a perfect denoiser for a point mass at x0, the deterministic samplers end at x0."""
    s = sampler(dict(DEFAULT))
    ts = s.set_timesteps(12)
    ac = make_alphas_cumprod(dict(DEFAULT)).double()
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(32, generator=g, dtype=torch.float64)
    x = torch.randn(32, generator=g, dtype=torch.float64)
    for t in ts:
        a = float(ac[t])
        v = (math.sqrt(a) * x - x0) / math.sqrt(1 - a)
        x = s.step(v, t, x)
    torch.testing.assert_close(x, x0, atol=1e-5, rtol=1e-5)
