"""Every bundle module's output shapes at tiny size (and the contract evaluator)."""
import pytest
import torch

from standin_model import contract as C
from standin_model.config import get_config
from standin_model.export import build_random, dry_run_env
from standin_model.layers import attention, math_attention


def _env(cfg, H=64, W=48, F=3):
    return {"N": 2, "B": 2, "F": F, "H": H, "W": W, "h": H // 8, "w": W // 8}


@pytest.mark.parametrize("overrides", [{}, {"reference_blocks": "mid_up"}, {"pose_modulation": True},
                                       {"use_object_guider": False, "environment": False, "mask_channel": False}])
def test_module_shapes_tiny(overrides):
    cfg = get_config("tiny", **overrides)
    model = build_random(cfg, seed=1)
    contracts = C.module_contracts(cfg, model.denoising_unet, "float32")
    mods = model.bundle_modules()
    assert set(mods) == set(contracts)
    env = _env(cfg)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, mod in mods.items():
            spec = contracts[name]
            args = C.example_inputs(name, spec, env, g)
            out = mod(*args)
            C.check_value(spec["outputs"][0], out, env, name)
            for t in (out if isinstance(out, list) else [out]):
                assert torch.isfinite(t).all(), name
                assert t.abs().max() < 1e3, name


def test_reference_counts():
    full = build_random(get_config("tiny"), seed=0)
    midup = build_random(get_config("tiny", reference_blocks="mid_up"), seed=0)
    assert full.denoising_unet.num_reference == 4      # down0 (1) + mid (1) + up1 (2)
    assert midup.denoising_unet.num_reference == 3
    assert full.reference_unet.num_reference == 4
    shapes = full.denoising_unet.reference_shapes(12, 8)
    assert shapes == [[96, 32], [24, 64], [96, 32], [96, 32]]


def test_sd15_reference_layout_meta():
    """sd15: 16 reference tensors for 'all' (6 down, 1 mid, 9 up), 10 for 'mid_up'."""
    from standin_model.export import meta_device
    from standin_model.unet import build_denoising_unet
    with meta_device():
        u = build_denoising_unet(get_config("sd15"))
        u2 = build_denoising_unet(get_config("sd15", reference_blocks="mid_up"))
    assert u.num_reference == 16 and u2.num_reference == 10
    shapes = u.reference_shapes(96, 64)
    assert shapes[0] == [96 * 64, 320] and shapes[6] == [12 * 8, 1280] and shapes[-1] == [96 * 64, 320]
    assert u.object_shapes(96, 64) == [[1280, 12, 8], [1280, 12, 8], [1280, 24, 16], [640, 48, 32], [320, 96, 64]]


def test_shape_expressions():
    env = {"h": 12, "w": 8, "B": 2, "F": 3}
    assert C.eval_dim("h/2*w/2", env) == 24
    assert C.eval_dim("B*F", env) == 6
    assert C.eval_dim(7, env) == 7
    with pytest.raises(ValueError):
        C.eval_dim("h+1", env)


def test_attention_helper_matches_math():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=g) for _ in range(3))
    bias = torch.zeros(2, 1, 1, 5)
    bias[0, ..., 3:] = float("-inf")
    torch.testing.assert_close(attention(q, k, v, bias), math_attention(q, k, v, bias), atol=1e-5, rtol=1e-5)
    # -inf on keys 3,4 == attending to keys 0..2 only
    torch.testing.assert_close(attention(q, k, v, bias)[0], math_attention(q[:1], k[:1, :, :3], v[:1, :, :3])[0],
                               atol=1e-6, rtol=1e-6)


def test_dry_run_env_is_valid():
    for name in ("tiny", "sd15"):
        cfg = get_config(name)
        env = dry_run_env(cfg)
        assert env["H"] % (8 * 2 ** (len(cfg.unet.block_out_channels) - 1)) == 0
