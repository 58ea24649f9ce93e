"""Public checkpoints sample as their authors' code samples them (issue 12): the noise schedule
each source's inference config names, fp16-safe attention, upstream's checkpoint load order and
diffusers' timestep embedding.  Expected numbers come from the formulas (float64, written here)
and from facts about the upstream configs, not from upstream code."""
import json
import math

import numpy as np
import pytest
import torch

from standin_model.layers import HAS_SDPA, attention, math_attention, timestep_embedding
from standin_model.scheduler import (BETA_SCHEDULES, DDIMScheduler, DPMSolverMultistepScheduler, ddim_timesteps,
                                     make_alphas_cumprod, scheduler_config, with_beta_schedule)

N = 1000


# ----------------------------------------------------------------------------- schedules
def betas64(schedule):
    """diffusers' documented definitions: linear in beta, or linear in sqrt(beta) ("scaled_linear")."""
    if schedule == "linear":
        return np.array([0.00085 + (0.012 - 0.00085) * i / (N - 1) for i in range(N)])
    r0, r1 = math.sqrt(0.00085), math.sqrt(0.012)
    return np.array([(r0 + (r1 - r0) * i / (N - 1)) ** 2 for i in range(N)])


def alphas_cumprod64(schedule, zero_snr):
    ac = np.cumprod(1.0 - betas64(schedule))
    if zero_snr:  # Lin et al. 2023, Alg. 1: shift sqrt(alpha_bar) to end at 0, keep its start
        s = np.sqrt(ac)
        ac = ((s - s[-1]) * s[0] / (s[0] - s[-1])) ** 2
    return ac


# Both inference configs (Moore-AA configs/inference/inference_v2.yaml, MusePose
# configs/inference_v2.yaml) set these; num_train_timesteps is diffusers' default.
COMMON = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "prediction_type": "v_prediction",
          "rescale_betas_zero_snr": True, "timestep_spacing": "trailing", "steps_offset": 1, "clip_sample": False}


def test_presets_are_the_authors_inference_settings():
    assert scheduler_config("moore-aa") == dict(COMMON, beta_schedule="linear")
    assert scheduler_config("musepose") == dict(COMMON, beta_schedule="scaled_linear")
    assert scheduler_config("standin") == dict(COMMON, beta_schedule="scaled_linear")
    assert scheduler_config("musepose", "linear")["beta_schedule"] == "linear"
    assert with_beta_schedule(scheduler_config("moore-aa"), None) == scheduler_config("moore-aa")
    with pytest.raises(ValueError, match="beta_schedule"):
        scheduler_config("moore-aa", "cosine")
    with pytest.raises(ValueError, match="preset"):
        scheduler_config("animatediff")


@pytest.mark.parametrize("schedule", BETA_SCHEDULES)
@pytest.mark.parametrize("zero_snr", [False, True])
def test_alphas_cumprod_against_formula(schedule, zero_snr):
    ours = make_alphas_cumprod(dict(COMMON, beta_schedule=schedule, rescale_betas_zero_snr=zero_snr)).double().numpy()
    ref = alphas_cumprod64(schedule, zero_snr)
    err = np.abs(ours - ref).max()
    print(f"{schedule} zero_snr={zero_snr}: float32 table vs float64 formula max-abs {err:.2e}")
    assert err < 2e-6
    assert abs(ours[0] - 0.99915) < 1e-6                 # 1 - beta_start, both schedules
    if zero_snr:
        assert ours[-1] == 0.0
    elif schedule == "scaled_linear":
        assert abs(ours[-1] - 0.0046601) < 1e-6          # SD1.5's terminal alpha_bar
    else:
        assert abs(ours[-1] - 0.0015790) < 1e-6


def test_the_two_schedules_differ_as_stated():
    """The numbers of the issue: with zero-SNR, t=500 gives 0.241 (scaled_linear) vs 0.142 (linear);
    the largest difference is 0.124."""
    lin = make_alphas_cumprod(scheduler_config("moore-aa")).double().numpy()
    scl = make_alphas_cumprod(scheduler_config("musepose")).double().numpy()
    assert abs(lin[500] - 0.14151) < 1e-5 and abs(scl[500] - 0.24102) < 1e-5
    assert abs(np.abs(lin - scl).max() - 0.12372) < 1e-4


@pytest.mark.parametrize("source,steps", [("moore-aa", 30), ("musepose", 20), ("moore-aa", 25)])
def test_ddim_timesteps_and_alphas_of_the_authors_defaults(source, steps):
    """Trailing spacing (Lin et al. 2023, Table 2): t_i = round(N - i*N/steps) - 1, half to even;
    DDIM's previous alpha is alpha_bar[t - N//steps], or 1 past the start (set_alpha_to_one).
    Step counts: Moore-AA scripts/pose2vid.py 30, its app.py 25; MusePose test_stage_2.py 20."""
    cfg = scheduler_config(source)
    expected_t = [int(round(N - i * N / steps)) - 1 for i in range(steps)]
    if steps == 20:
        assert expected_t == list(range(999, 0, -50))
    if steps == 30:
        assert expected_t[:4] == [999, 966, 932, 899] and expected_t[-1] == 32
    assert ddim_timesteps(cfg, steps) == expected_t
    s = DDIMScheduler(cfg)
    assert s.set_timesteps(steps) == expected_t
    ref = alphas_cumprod64(cfg["beta_schedule"], True)
    for t in expected_t:
        a_t, a_prev = s.coefficients(t)
        prev = t - N // steps
        assert abs(a_t - ref[t]) < 2e-6
        assert abs(a_prev - (ref[prev] if prev >= 0 else 1.0)) < 2e-6
    d = DPMSolverMultistepScheduler(cfg)
    assert d.set_timesteps(steps) == expected_t
    sig = [math.sqrt((1 - ref[t]) / ref[t]) if ref[t] > 0 else None for t in expected_t]
    assert sig[0] is None and d.sigmas[0] == pytest.approx(math.sqrt((1 - 2.0 ** -24) / 2.0 ** -24), rel=1e-6)
    np.testing.assert_allclose(d.sigmas[1:-1], sig[1:], rtol=2e-5)


# ----------------------------------------------------------------------------- export records the source's schedule
def test_export_records_the_detected_source(tmp_path):
    import export_bundle
    from standin_model.checkpoint import LAYOUT_BY_MOTION_LEN, detect_layout
    from test_model_checkpoint import LAYOUTS, _materialise, _write_safetensors, animatediff_motion  # public layouts
    assert LAYOUT_BY_MOTION_LEN == {32: "moore-aa", 128: "musepose"}
    L = LAYOUTS["tiny"]
    g = torch.Generator().manual_seed(0)
    for max_len, layout, schedule in ((32, "moore-aa", "linear"), (128, "musepose", "scaled_linear")):
        d = tmp_path / layout / "pretrained_weights"
        (d / "sd-vae-ft-mse").mkdir(parents=True)
        (d / "image_encoder").mkdir()
        torch.save(_materialise(L["unet"](), g), d / "denoising_unet.pth")
        torch.save(_materialise(L["unet"](), g), d / "reference_unet.pth")
        motion = _materialise(animatediff_motion((32, 64), 1, max_len), g)
        assert detect_layout({"denoising_unet": motion}) == layout
        torch.save(motion, d / "motion_module.pth")
        torch.save(_materialise(L["pose"](), g), d / "pose_guider.pth")
        _write_safetensors(d / "sd-vae-ft-mse" / "diffusion_pytorch_model.safetensors", _materialise(L["vae"](True), g))
        torch.save(_materialise(L["clip"](), g), d / "image_encoder" / "pytorch_model.bin")
        out = tmp_path / f"{layout}-bundle"
        assert export_bundle.main(["--config", "tiny", "--checkpoint-dir", str(d), "--out", str(out), "--no-check"]) == 0
        man = json.load(open(out / "model.json"))
        assert man["scheduler"] == dict(COMMON, beta_schedule=schedule)
        assert man["weights"]["layout"] == layout
        assert man["geometry"]["max_window"] == max_len
    # an explicit beta schedule overrides the source's
    out = tmp_path / "override"
    assert export_bundle.main(["--config", "tiny", "--checkpoint-dir", str(tmp_path / "moore-aa"), "--out", str(out),
                               "--no-check", "--beta-schedule", "scaled_linear"]) == 0
    assert json.load(open(out / "model.json"))["scheduler"]["beta_schedule"] == "scaled_linear"
    assert detect_layout({"denoising_unet": animatediff_motion((32, 64), 1, 24)}) is None


def test_random_bundles_keep_the_project_default(tiny_bundle):
    assert tiny_bundle[2]["scheduler"] == dict(COMMON, beta_schedule="scaled_linear")


def test_reference_pipeline_beta_schedule_override(tiny_bundle):
    """Overriding at run time equals a bundle that records the other schedule, and changes the result."""
    import shutil
    from reference_pipeline import Bundle, generate, synthetic_conds
    path = tiny_bundle[0]
    b = Bundle(path)
    conds = synthetic_conds(b.manifest, 3, seed=7)
    kw = dict(steps=3, cfg=2.0, window=4, overlap=1, sampler="ddim", decode=False)
    default = generate(b, conds, **kw)["latents"]
    same = generate(b, conds, beta_schedule="scaled_linear", **kw)["latents"]
    linear = generate(b, conds, beta_schedule="linear", **kw)["latents"]
    assert torch.equal(default, same)
    assert (linear - default).abs().max() > 1e-3
    other = path + "-linear"
    shutil.copytree(path, other, dirs_exist_ok=True)
    man = json.load(open(other + "/model.json"))
    man["scheduler"]["beta_schedule"] = "linear"
    json.dump(man, open(other + "/model.json", "w"))
    assert torch.equal(generate(Bundle(other), conds, **kw)["latents"], linear)


# ----------------------------------------------------------------------------- fp16 attention
class Fp16Storage(torch.Tensor):
    """Float32 arithmetic whose every result is rounded to fp16: what fp16 kernels on a GPU store
    (matmul accumulates in fp32, softmax computes in fp32; both write fp16).  The CPU has no fp16
    matmul in torch 1.13, so this is how the math path's fp16 behaviour is checked here."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        out = super().__torch_function__(func, types, args, kwargs or {})
        with torch._C.DisableTorchFunction():
            if isinstance(out, torch.Tensor) and out.is_floating_point():
                out = out.half().float().as_subclass(cls)
        return out


def product_then_scale(q, k, v):
    """The order the math path used before: q·kᵀ formed unscaled, then multiplied by 1/√d."""
    return torch.matmul(torch.softmax(torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1]), -1), v)


def as_fp16(*ts):
    return [t.half().float().as_subclass(Fp16Storage) for t in ts]


def test_fp16_attention_does_not_overflow_where_fp32_does_not():
    """The VAE's attention: one 512-wide head.  Inputs whose scaled scores (~3e3) fit fp16 easily
    but whose unscaled product (~7.5e4) does not."""
    g = torch.Generator().manual_seed(0)
    d = 512
    q, k = (torch.randn(1, 1, 64, d, generator=g) * 30 for _ in range(2))
    v = torch.randn(1, 1, 64, d, generator=g)
    q, k, v = (t.half().float() for t in (q, k, v))       # the same fp16 values for every variant
    unscaled = torch.matmul(q, k.transpose(-1, -2)).abs().max().item()
    assert unscaled > 65504 > 4 * unscaled / math.sqrt(d)   # the regime of the bug
    ref = math_attention(q, k, v)                          # fp32
    assert torch.isfinite(ref).all()
    fp16 = math_attention(*as_fp16(q, k, v)).as_subclass(torch.Tensor)
    err = (fp16 - ref).abs().max().item()
    old = product_then_scale(*as_fp16(q, k, v)).as_subclass(torch.Tensor)
    print(f"emulated fp16 attention vs fp32: max-abs {err:.3g} (product-then-scale: "
          f"{int((~torch.isfinite(old)).sum())} non-finite of {old.numel()})")
    assert torch.isfinite(fp16).all() and err < 0.1
    assert not torch.isfinite(old).all()                   # the old order overflows on these inputs
    # ordinary magnitudes: fp16 emulation stays close to fp32
    qs, ks, vs = (t / 30 for t in (q, k, v))
    small = math_attention(*as_fp16(qs, ks, vs)).as_subclass(torch.Tensor)
    assert (small - math_attention(qs, ks, vs)).abs().max() < 5e-3
    if not HAS_SDPA:
        assert attention is not None and torch.equal(attention(q, k, v), ref)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="native fp16 matmul needs CUDA with torch 1.13")
def test_fp16_attention_native_cuda():
    g = torch.Generator().manual_seed(0)
    d = 512
    q, k = (torch.randn(1, 1, 64, d, generator=g) * 30 for _ in range(2))
    v = torch.randn(1, 1, 64, d, generator=g)
    ref = math_attention(*(t.half().float() for t in (q, k, v)))
    out = math_attention(*(t.cuda().half() for t in (q, k, v))).float().cpu()
    assert torch.isfinite(out).all() and (out - ref).abs().max() < 0.1


def test_math_attention_matches_softmax_definition():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 3, 5, 40, generator=g, dtype=torch.float64) for _ in range(3))
    bias = torch.zeros(2, 1, 1, 5, dtype=torch.float64)
    bias[1, ..., 2:] = float("-inf")
    ref = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(40) + bias, -1) @ v
    torch.testing.assert_close(math_attention(q, k, v, bias), ref, atol=1e-12, rtol=1e-12)


# ----------------------------------------------------------------------------- load order
def test_denoising_unet_wins_over_motion_module():
    """Upstream loads motion_module.pth into the UNet first and denoising_unet.pth over it."""
    from standin_model.checkpoint import merge_unet_sources, shared_unet_keys
    key = "down_blocks.0.motion_modules.0.temporal_transformer.proj_out.weight"
    unet = {"conv_in.weight": torch.ones(1), key: torch.full((1,), 2.0)}
    motion = {key: torch.full((1,), 3.0), "up_blocks.0.motion_modules.0.temporal_transformer.proj_in.bias": torch.ones(1)}
    merged = merge_unet_sources(unet, motion)
    assert merged[key].item() == 2.0
    assert set(merged) == set(unet) | set(motion)
    assert shared_unet_keys(unet, motion) == [key]
    assert merge_unet_sources(None, motion)[key].item() == 3.0


def test_load_order_in_a_full_import(tmp_path):
    from test_model_checkpoint import LAYOUTS, _materialise
    from standin_model.checkpoint import load_pretrained
    from standin_model.config import get_config
    L = LAYOUTS["tiny"]
    g = torch.Generator().manual_seed(2)
    d = tmp_path / "w"
    (d / "sd-vae-ft-mse").mkdir(parents=True)
    (d / "image_encoder").mkdir()
    motion = _materialise(L["motion"](), g)
    unet = dict(_materialise(L["unet"](), g))
    key = "up_blocks.1.motion_modules.0.temporal_transformer.proj_out.weight"
    unet[key] = motion[key] + 1.0                             # the UNet file carries its own copy
    torch.save(unet, d / "denoising_unet.pth")
    torch.save(motion, d / "motion_module.pth")
    torch.save(_materialise(L["unet"](), g), d / "reference_unet.pth")
    torch.save(_materialise(L["pose"](), g), d / "pose_guider.pth")
    torch.save(_materialise(L["vae"](True), g), d / "sd-vae-ft-mse" / "diffusion_pytorch_model.bin")
    torch.save(_materialise(L["clip"](), g), d / "image_encoder" / "pytorch_model.bin")
    model, rep = load_pretrained(get_config("tiny"), str(d))
    torch.testing.assert_close(model.denoising_unet.state_dict()[key], unet[key], atol=0, rtol=0)
    assert rep.layout == "moore-aa"
    assert any("denoising_unet.pth's are used" in n for n in rep.notes)


# ----------------------------------------------------------------------------- timestep embedding
def diffusers_order_f32(t, dim):
    """diffusers get_timestep_embedding (flip_sin_to_cos, shift 0, scale 1, max_period 1e4) in its
    float32 order: exponent = -ln(max_period)·arange(half); exponent /= half; f = exp(exponent);
    arg = t·f; [sin, cos] flipped to [cos, sin]."""
    half = dim // 2
    e = -math.log(10000.0) * torch.arange(0, half, dtype=torch.float32)
    e = e / half
    a = t[:, None].float() * torch.exp(e)[None, :]
    return torch.cat([torch.cos(a), torch.sin(a)], -1)


def formula_f64(t, dim):
    half = dim // 2
    k = np.arange(half, dtype=np.float64)
    arg = t.numpy().astype(np.float64)[:, None] * np.exp(-math.log(10000.0) * k / half)[None, :]
    return torch.from_numpy(np.concatenate([np.cos(arg), np.sin(arg)], 1))


@pytest.mark.parametrize("dim", [320, 32, 64])
def test_timestep_embedding_in_diffusers_order(dim):
    t = torch.arange(0, 1000)
    ours = timestep_embedding(t, dim)
    f64 = formula_f64(t, dim)
    err64 = (ours.double() - f64).abs().max().item()
    print(f"width {dim}: vs float64 formula max-abs {err64:.2e}")
    assert err64 < 1e-4   # float32 t·f near 999 is only good to half an ulp, 3e-5
    assert torch.equal(ours, diffusers_order_f32(t, dim))          # same ops, same order: same bits
    assert torch.equal(torch.jit.script(timestep_embedding)(t, dim), ours)
