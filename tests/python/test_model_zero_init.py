"""The AA2 additions are no-ops at init; the 3-D UNet equals the SD1.5 2-D UNet per frame;
reference_keep = 0 equals Moore-AA's unconditional (self-only) attention."""
import pytest
import torch

from standin_model.config import get_config
from standin_model.guiders import ObjectGuider, PoseGuider
from standin_model.unet import UNetModel, build_denoising_unet



@pytest.fixture(autouse=True)
def _no_grad():
    # only these tests: a module-level switch would leak into every test collected after this file
    with torch.no_grad():
        yield


def _perturb_norms(m, g):
    # default inits make GroupNorm/LayerNorm identity-affine; perturb so the test is not trivial
    for mod in m.modules():
        if isinstance(mod, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
            mod.weight.copy_(1 + 0.1 * torch.randn(mod.weight.shape, generator=g))
            mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=g))


def _setup(seed=0, **over):
    torch.manual_seed(seed)
    cfg = get_config("tiny", **over)
    unet9 = build_denoising_unet(cfg).eval()  # constructor zero-inits the additions
    g = torch.Generator().manual_seed(seed)
    _perturb_norms(unet9, g)
    # the same UNet with SD1.5's 4-channel conv_in, no object blending
    unet4 = UNetModel(cfg.unet, in_channels=4, motion=True, role="read", reference_blocks=cfg.reference_blocks,
                      object_blend=False).eval()
    sd = {k: v for k, v in unet9.state_dict().items() if "object_blender" not in k}
    sd["conv_in.weight"] = sd["conv_in.weight"][:, :4].clone()
    unet4.load_state_dict(sd, strict=True)
    return cfg, unet9, unet4, g


def _refs(cfg, unet, g, h, w):
    return [torch.randn(1, L, c, generator=g) for L, c in unet.reference_shapes(h, w)]


def test_additions_are_noops_at_init():
    cfg, unet9, unet4, g = _setup()
    B, F, h, w = 2, 3, 8, 6
    x = torch.randn(B, 4, F, h, w, generator=g)
    env = torch.randn(B, 4, F, h, w, generator=g)
    mask = torch.rand(B, 1, F, h, w, generator=g)
    ctx = torch.randn(B, 1, cfg.unet.cross_attention_dim, generator=g)
    t = torch.tensor([999, 500])
    refs = _refs(cfg, unet9, g, h, w)
    keep = torch.tensor([0.0, 1.0])
    pg = PoseGuider(cfg.pose_guider).eval()
    pose = pg(torch.rand(B * F, 3, h * 8, w * 8, generator=g))
    assert pose.abs().max() == 0  # zero conv_out
    pose = pose.view(B, F, -1, h, w).permute(0, 2, 1, 3, 4)
    og = ObjectGuider(cfg).eval()
    objs = og(torch.randn(B * F, 4, h, w, generator=g))
    assert all(o.abs().max() > 0 for o in objs)  # object features are real, the blend gate is zero
    out9 = unet9(torch.cat([x, env, mask], 1), t, ctx, pose, refs, keep, objs)
    out4 = unet4(x, t, ctx, torch.zeros_like(pose), refs, keep, [])
    torch.testing.assert_close(out9, out4, atol=1e-5, rtol=1e-5)
    assert out4.abs().max() > 0.01


def test_3d_unet_equals_2d_unet_per_frame():
    """Zero-init motion modules: the denoising UNet (no reference) = SD1.5 UNet2DConditionModel per frame."""
    cfg, unet9, unet4, g = _setup(seed=3)
    B, F, h, w = 2, 4, 8, 6
    x = torch.randn(B, 4, F, h, w, generator=g)
    ctx = torch.randn(B, 1, cfg.unet.cross_attention_dim, generator=g)
    t = torch.tensor([10, 700])
    out3d = unet4(x, t, ctx, torch.zeros(B, cfg.unet.block_out_channels[0], F, h, w), [], torch.ones(B), [])
    x2 = x.permute(0, 2, 1, 3, 4).reshape(B * F, 4, h, w)
    out2d = unet4.forward_2d(x2, t.repeat_interleave(F), ctx.repeat_interleave(F, 0))
    torch.testing.assert_close(out3d, out2d.view(B, F, 4, h, w).permute(0, 2, 1, 3, 4), atol=1e-5, rtol=1e-5)


def test_reference_keep_equals_self_only_attention():
    """keep=0 (additive -inf mask) == running that batch element with no reference at all."""
    cfg, unet9, _, g = _setup(seed=5)
    B, F, h, w = 2, 2, 8, 6
    sample = torch.randn(B, cfg.unet_in_channels, F, h, w, generator=g)
    ctx = torch.randn(B, 1, cfg.unet.cross_attention_dim, generator=g)
    pose = torch.randn(B, cfg.unet.block_out_channels[0], F, h, w, generator=g)
    t = torch.tensor([300, 300])
    refs = _refs(cfg, unet9, g, h, w)
    both = unet9(sample, t, ctx, pose, refs, torch.tensor([0.0, 1.0]), [])
    uncond = unet9(sample[:1], t[:1], ctx[:1], pose[:1], [], torch.ones(1), [])
    cond = unet9(sample[1:], t[1:], ctx[1:], pose[1:], refs, torch.ones(1), [])
    torch.testing.assert_close(both[:1], uncond, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(both[1:], cond, atol=1e-5, rtol=1e-5)
    assert (cond - uncond).abs().max() > 1e-3  # the reference matters


def test_moore_aa_reference_attention_semantics():
    """The reading block attends over [own ; reference] = Moore-AA's cat([norm_hidden_states] + bank)."""
    from standin_model.unet import BasicTransformerBlock
    torch.manual_seed(0)
    blk = BasicTransformerBlock(32, 2, 16).eval()
    blk.ref_mode, blk.ref_index = 2, 0
    x = torch.randn(3, 10, 32)
    ctx = torch.randn(3, 1, 16)
    ref = torch.randn(1, 7, 32)
    out = blk(x, ctx, [ref], None)
    n = blk.norm1(x)
    kv = torch.cat([n, ref.expand(3, 7, 32)], 1)
    h = x + blk.attn1(n, kv)
    h = h + blk.attn2(blk.norm2(h), ctx)
    h = h + blk.ff(blk.norm3(h))
    torch.testing.assert_close(out, h, atol=1e-6, rtol=1e-6)


def test_reference_net_bank_is_norm1_output():
    from standin_model.unet import build_reference_net, BasicTransformerBlock
    torch.manual_seed(1)
    cfg = get_config("tiny")
    ref = build_reference_net(cfg).eval()
    captured = []
    hooks = [m.norm1.register_forward_hook(lambda mod, i, o: captured.append(o))
             for m in ref.modules() if isinstance(m, BasicTransformerBlock)]
    lat = torch.randn(1, 4, 8, 6)
    ctx = torch.randn(1, 1, cfg.clip.projection_dim)
    bank = ref.reference_features(lat, ctx)
    for hk in hooks:
        hk.remove()
    assert len(bank) == len(captured) == 4
    for a, b in zip(bank, captured):
        torch.testing.assert_close(a, b)


def test_reference_always_kept_skips_only_the_keep_test():
    """The compiled exports' switch: with the reference kept the output is unchanged, and it is
    plain data that TorchScript keeps (the bundle path scripts the same module)."""
    cfg, unet9, _, g = _setup(seed=6)
    B, F, h, w = 1, 2, 8, 6
    sample = torch.randn(B, cfg.unet_in_channels, F, h, w, generator=g)
    ctx = torch.randn(B, 1, cfg.unet.cross_attention_dim, generator=g)
    pose = torch.randn(B, cfg.unet.block_out_channels[0], F, h, w, generator=g)
    t = torch.tensor([300])
    refs = _refs(cfg, unet9, g, h, w)
    keep = torch.ones(1)
    default = unet9(sample, t, ctx, pose, refs, keep, [])
    dropped = unet9(sample, t, ctx, pose, refs, torch.zeros(1), [])
    unet9.reference_always_kept = True
    try:
        switched = unet9(sample, t, ctx, pose, refs, keep, [])
        ignores_keep = unet9(sample, t, ctx, pose, refs, torch.zeros(1), [])
        scripted = torch.jit.script(unet9)
        assert scripted.reference_always_kept
    finally:
        unet9.reference_always_kept = False
    torch.testing.assert_close(switched, default, atol=0, rtol=0)
    torch.testing.assert_close(ignores_keep, default, atol=0, rtol=0)  # keep is not read any more
    assert (dropped - default).abs().max() > 1e-3  # ...where by default it matters
