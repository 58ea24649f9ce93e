"""Checkpoint import on synthetic state dicts whose key names and shapes are generated here from
the public architectures' rules (diffusers UNet2DConditionModel / AutoencoderKL, AnimateDiff
motion modules as used by Moore-AnimateAnyone, Moore-AA PoseGuider, transformers
CLIPVisionModelWithProjection) - written independently of scripts/standin_model."""
import json
import struct

import pytest
import torch

from standin_model.checkpoint import (convert_vae, load_pretrained, merge_unet_sources, plan_import,
                                      read_safetensors)
from standin_model.config import get_config
from standin_model.export import meta_device
from standin_model.model import StandinModel


# ----------------------------------------------------------------------------- public layouts
def _lin(d, name, o, i, bias=True):
    d[f"{name}.weight"] = (o, i)
    if bias:
        d[f"{name}.bias"] = (o,)


def _conv(d, name, o, i, k):
    d[f"{name}.weight"] = (o, i, k, k)
    d[f"{name}.bias"] = (o,)


def _norm(d, name, c):
    d[f"{name}.weight"] = (c,)
    d[f"{name}.bias"] = (c,)


def _resnet(d, p, cin, cout, temb):
    _norm(d, f"{p}.norm1", cin)
    _conv(d, f"{p}.conv1", cout, cin, 3)
    if temb:
        _lin(d, f"{p}.time_emb_proj", cout, temb)
    _norm(d, f"{p}.norm2", cout)
    _conv(d, f"{p}.conv2", cout, cout, 3)
    if cin != cout:
        _conv(d, f"{p}.conv_shortcut", cout, cin, 1)


def _transformer2d(d, p, c, cross):
    _norm(d, f"{p}.norm", c)
    _conv(d, f"{p}.proj_in", c, c, 1)
    b = f"{p}.transformer_blocks.0"
    for n in ("norm1", "norm2", "norm3"):
        _norm(d, f"{b}.{n}", c)
    for a, kv in (("attn1", c), ("attn2", cross)):
        _lin(d, f"{b}.{a}.to_q", c, c, bias=False)
        _lin(d, f"{b}.{a}.to_k", c, kv, bias=False)
        _lin(d, f"{b}.{a}.to_v", c, kv, bias=False)
        _lin(d, f"{b}.{a}.to_out.0", c, c)
    _lin(d, f"{b}.ff.net.0.proj", 8 * c, c)
    _lin(d, f"{b}.ff.net.2", c, 4 * c)
    _conv(d, f"{p}.proj_out", c, c, 1)


def diffusers_unet2d(ch, layers, cross, attn, in_ch=4, out_ch=4):
    """UNet2DConditionModel keys; attn[i] says whether down block i is CrossAttnDownBlock2D."""
    d = {}
    temb = 4 * ch[0]
    _conv(d, "conv_in", ch[0], in_ch, 3)
    _lin(d, "time_embedding.linear_1", temb, ch[0])
    _lin(d, "time_embedding.linear_2", temb, temb)
    skip = [ch[0]]
    prev = ch[0]
    for i, c in enumerate(ch):
        for j in range(layers):
            _resnet(d, f"down_blocks.{i}.resnets.{j}", prev if j == 0 else c, c, temb)
            if attn[i]:
                _transformer2d(d, f"down_blocks.{i}.attentions.{j}", c, cross)
            skip.append(c)
        if i < len(ch) - 1:
            _conv(d, f"down_blocks.{i}.downsamplers.0.conv", c, c, 3)
            skip.append(c)
        prev = c
    _resnet(d, "mid_block.resnets.0", ch[-1], ch[-1], temb)
    _transformer2d(d, "mid_block.attentions.0", ch[-1], cross)
    _resnet(d, "mid_block.resnets.1", ch[-1], ch[-1], temb)
    rch = list(reversed(ch))
    rattn = list(reversed(attn))
    prev = ch[-1]
    for i, c in enumerate(rch):
        for j in range(layers + 1):
            s = skip.pop()
            _resnet(d, f"up_blocks.{i}.resnets.{j}", prev + s, c, temb)
            if rattn[i]:
                _transformer2d(d, f"up_blocks.{i}.attentions.{j}", c, cross)
            prev = c
        if i < len(ch) - 1:
            _conv(d, f"up_blocks.{i}.upsamplers.0.conv", c, c, 3)
    _norm(d, "conv_norm_out", ch[0])
    _conv(d, "conv_out", out_ch, ch[0], 3)
    return d


def animatediff_motion(ch, layers, max_len, mid=True):
    d = {}

    def mm(p, c):
        t = f"{p}.temporal_transformer"
        _norm(d, f"{t}.norm", c)
        _lin(d, f"{t}.proj_in", c, c)
        b = f"{t}.transformer_blocks.0"
        for a in range(2):
            for q in ("to_q", "to_k", "to_v"):
                _lin(d, f"{b}.attention_blocks.{a}.{q}", c, c, bias=False)
            _lin(d, f"{b}.attention_blocks.{a}.to_out.0", c, c)
            d[f"{b}.attention_blocks.{a}.pos_encoder.pe"] = (1, max_len, c)
            _norm(d, f"{b}.norms.{a}", c)
        _lin(d, f"{b}.ff.net.0.proj", 8 * c, c)
        _lin(d, f"{b}.ff.net.2", c, 4 * c)
        _norm(d, f"{b}.ff_norm", c)
        _lin(d, f"{t}.proj_out", c, c)

    for i, c in enumerate(ch):
        for j in range(layers):
            mm(f"down_blocks.{i}.motion_modules.{j}", c)
    if mid:
        mm("mid_block.motion_modules.0", ch[-1])
    for i, c in enumerate(reversed(ch)):
        for j in range(layers + 1):
            mm(f"up_blocks.{i}.motion_modules.{j}", c)
    return d


def moore_pose_guider(out_ch, blocks=(16, 32, 96, 256), cin=3):
    d = {}
    _conv(d, "conv_in", blocks[0], cin, 3)
    n = 0
    for i in range(len(blocks) - 1):
        _conv(d, f"blocks.{n}", blocks[i], blocks[i], 3)
        _conv(d, f"blocks.{n + 1}", blocks[i + 1], blocks[i], 3)
        n += 2
    _conv(d, "conv_out", out_ch, blocks[-1], 3)
    return d


def diffusers_vae(ch, layers, old_names=True, latent=4):
    d = {}

    def attn(p, c):
        _norm(d, f"{p}.group_norm", c)
        names = ("query", "key", "value", "proj_attn") if old_names else ("to_q", "to_k", "to_v", "to_out.0")
        for n in names:
            _lin(d, f"{p}.{n}", c, c)

    def mid(p, c):
        _resnet(d, f"{p}.resnets.0", c, c, 0)
        attn(f"{p}.attentions.0", c)
        _resnet(d, f"{p}.resnets.1", c, c, 0)

    _conv(d, "encoder.conv_in", ch[0], 3, 3)
    prev = ch[0]
    for i, c in enumerate(ch):
        for j in range(layers):
            _resnet(d, f"encoder.down_blocks.{i}.resnets.{j}", prev if j == 0 else c, c, 0)
        if i < len(ch) - 1:
            _conv(d, f"encoder.down_blocks.{i}.downsamplers.0.conv", c, c, 3)
        prev = c
    mid("encoder.mid_block", ch[-1])
    _norm(d, "encoder.conv_norm_out", ch[-1])
    _conv(d, "encoder.conv_out", 2 * latent, ch[-1], 3)
    _conv(d, "quant_conv", 2 * latent, 2 * latent, 1)
    _conv(d, "post_quant_conv", latent, latent, 1)
    _conv(d, "decoder.conv_in", ch[-1], latent, 3)
    mid("decoder.mid_block", ch[-1])
    prev = ch[-1]
    for i, c in enumerate(reversed(ch)):
        for j in range(layers + 1):
            _resnet(d, f"decoder.up_blocks.{i}.resnets.{j}", prev if j == 0 else c, c, 0)
        if i < len(ch) - 1:
            _conv(d, f"decoder.up_blocks.{i}.upsamplers.0.conv", c, c, 3)
        prev = c
    _norm(d, "decoder.conv_norm_out", ch[0])
    _conv(d, "decoder.conv_out", 3, ch[0], 3)
    return d


def transformers_clip_vision(D, layers, inter, patch, image, proj, position_ids=True):
    d = {}
    n = (image // patch) ** 2 + 1
    e = "vision_model.embeddings"
    d[f"{e}.class_embedding"] = (D,)
    d[f"{e}.patch_embedding.weight"] = (D, 3, patch, patch)
    d[f"{e}.position_embedding.weight"] = (n, D)
    if position_ids:
        d[f"{e}.position_ids"] = (1, n)
    _norm(d, "vision_model.pre_layrnorm", D)
    for i in range(layers):
        p = f"vision_model.encoder.layers.{i}"
        for q in ("k_proj", "v_proj", "q_proj", "out_proj"):
            _lin(d, f"{p}.self_attn.{q}", D, D)
        _norm(d, f"{p}.layer_norm1", D)
        _lin(d, f"{p}.mlp.fc1", inter, D)
        _lin(d, f"{p}.mlp.fc2", D, inter)
        _norm(d, f"{p}.layer_norm2", D)
    _norm(d, "vision_model.post_layernorm", D)
    d["visual_projection.weight"] = (proj, D)
    return d


LAYOUTS = {
    "sd15": dict(unet=lambda: diffusers_unet2d((320, 640, 1280, 1280), 2, 768, (True, True, True, False)),
                 motion=lambda: animatediff_motion((320, 640, 1280, 1280), 2, 32),
                 pose=lambda: moore_pose_guider(320),
                 vae=lambda old=True: diffusers_vae((128, 256, 512, 512), 2, old),
                 clip=lambda pid=True: transformers_clip_vision(1024, 24, 4096, 14, 224, 768, pid)),
    "tiny": dict(unet=lambda: diffusers_unet2d((32, 64), 1, 64, (True, False)),
                 motion=lambda: animatediff_motion((32, 64), 1, 32),
                 pose=lambda: moore_pose_guider(32, (8, 16, 16, 32)),
                 vae=lambda old=True: diffusers_vae((16, 32, 32, 32), 1, old),
                 clip=lambda pid=True: transformers_clip_vision(64, 2, 128, 32, 224, 64, pid)),
}


def _sources(layout, old_vae=True):
    L = LAYOUTS[layout]
    return {"denoising_unet": merge_unet_sources(L["unet"](), L["motion"]()), "reference_unet": L["unet"](),
            "pose_guider": L["pose"](), "vae": convert_vae(L["vae"](old_vae)), "image_encoder": L["clip"]()}


# ----------------------------------------------------------------------------- tests
def test_sd15_mapping_is_complete_on_shapes():
    """Every public key maps to exactly one model key with the same shape (meta model, no memory)."""
    with meta_device():
        model = StandinModel(get_config("sd15"))
    for old in (True, False):
        src = _sources("sd15", old_vae=old)
        rep = plan_import(model, src)
        print(rep.summary())
        assert rep.ok, rep.summary()
        p = rep.parts
        assert p["denoising_unet"].partial == ["conv_in.weight"]
        assert len(p["denoising_unet"].loaded) + 1 == len(src["denoising_unet"])
        assert sorted(p["denoising_unet"].additions) == sorted(
            k for k in model.denoising_unet.state_dict() if "object_blender" in k)
        assert len(p["reference_unet"].loaded) == len(src["reference_unet"]) == 686
        assert len(p["vae"].loaded) == len(src["vae"]) == 248
        assert p["image_encoder"].ignored == ["vision_model.embeddings.position_ids"]
        assert len(p["pose_guider"].loaded) == 16
    n_unet = sum(torch.Size(s).numel() for s in LAYOUTS["sd15"]["unet"]().values())
    n_motion = sum(torch.Size(s).numel() for k, s in LAYOUTS["sd15"]["motion"]().items() if not k.endswith(".pe"))
    n_pose = sum(torch.Size(s).numel() for s in LAYOUTS["sd15"]["pose"]().values())
    print(f"public layout parameter counts: unet {n_unet:,}  motion {n_motion:,}  pose guider {n_pose:,}")
    assert n_unet == 859_520_964 and n_pose == 1_086_480


def test_strict_reports_missing_and_unexpected():
    with meta_device():
        model = StandinModel(get_config("sd15"))
    src = _sources("sd15")
    del src["reference_unet"]["mid_block.attentions.0.transformer_blocks.0.attn1.to_q.weight"]
    src["pose_guider"]["blocks.6.weight"] = (1, 1, 3, 3)
    src["vae"]["quant_conv.weight"] = (8, 8, 3, 3)
    rep = plan_import(model, src)
    assert not rep.ok
    assert rep.parts["reference_unet"].missing == ["mid_block.attentions.0.transformer_blocks.0.attn1.to_q.weight"]
    assert rep.parts["pose_guider"].unexpected == ["blocks.6.weight"]
    assert rep.parts["vae"].mismatched[0][0] == "quant_conv.weight"
    assert "MISMATCH" in rep.summary()


def _materialise(shapes, g):
    return {k: (torch.arange(s[1]).unsqueeze(0) if k.endswith("position_ids") else torch.randn(s, generator=g))
            for k, s in shapes.items()}


def _write_safetensors(path, sd):
    header, blobs, off = {}, [], 0
    for k, v in sd.items():
        b = v.contiguous().numpy().tobytes()
        header[k] = {"dtype": {torch.float32: "F32", torch.int64: "I64"}[v.dtype], "shape": list(v.shape),
                     "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def test_tiny_files_import_end_to_end(tmp_path):
    """Write Moore-AA-style files (.pth, .bin and .safetensors), import strictly, check values."""
    g = torch.Generator().manual_seed(0)
    L = LAYOUTS["tiny"]
    d = tmp_path / "pretrained_weights"
    (d / "sd-vae-ft-mse").mkdir(parents=True)
    (d / "image_encoder").mkdir()
    unet, ref, motion, pose = (_materialise(L[k](), g) for k in ("unet", "unet", "motion", "pose"))
    vae = _materialise(L["vae"](True), g)
    clip = _materialise(L["clip"](), g)
    torch.save(unet, d / "denoising_unet.pth")
    torch.save(ref, d / "reference_unet.pth")
    torch.save({"state_dict": {"module." + k: v for k, v in motion.items()}}, d / "motion_module.pth")
    torch.save(pose, d / "pose_guider.pth")
    _write_safetensors(d / "sd-vae-ft-mse" / "diffusion_pytorch_model.safetensors", vae)
    torch.save(clip, d / "image_encoder" / "pytorch_model.bin")
    assert read_safetensors(str(d / "sd-vae-ft-mse" / "diffusion_pytorch_model.safetensors"), shapes_only=True)

    model, rep = load_pretrained(get_config("tiny"), str(d))
    print(rep.summary())
    assert rep.ok
    u = model.denoising_unet
    torch.testing.assert_close(u.conv_in.weight[:, :4], unet["conv_in.weight"])
    assert u.conv_in.weight[:, 4:].abs().max() == 0
    k = "down_blocks.0.motion_modules.0.temporal_transformer.proj_out.weight"
    torch.testing.assert_close(u.state_dict()[k], motion[k])
    torch.testing.assert_close(model.vae.encoder.mid_block.attentions[0].to_q.weight,
                               vae["encoder.mid_block.attentions.0.query.weight"])
    torch.testing.assert_close(model.reference_unet.conv_out.weight, ref["conv_out.weight"])
    torch.testing.assert_close(model.pose_guider.conv_out.weight, pose["conv_out.weight"])
    torch.testing.assert_close(model.image_encoder.visual_projection.weight, clip["visual_projection.weight"])
    assert all(m.gate.abs().max() == 0 for m in u.up_object_blenders)

    # the imported model runs, and the environment/mask channels and objects are still no-ops
    B, F, h, w = 1, 2, 8, 6
    x = torch.randn(B, 4, F, h, w, generator=g)
    ctx = torch.randn(B, 1, 64, generator=g)
    pose_f = torch.randn(B, 32, F, h, w, generator=g)
    with torch.no_grad():
        refs = model.reference_unet.reference_features(torch.randn(1, 4, h, w, generator=g), ctx)
        objs = model.object_guider(torch.randn(B * F, 4, h, w, generator=g))
        a = u(torch.cat([x, torch.randn(B, 5, F, h, w, generator=g)], 1), torch.tensor([10]), ctx, pose_f,
              refs, torch.ones(B), objs)
        b = u(torch.cat([x, torch.zeros(B, 5, F, h, w)], 1), torch.tensor([10]), ctx, pose_f, refs, torch.ones(B), [])
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)

    # strict import refuses a broken set of files
    del unet["mid_block.resnets.1.conv2.weight"]
    torch.save(unet, d / "denoising_unet.pth")
    with pytest.raises(ValueError, match="mid_block.resnets.1.conv2.weight"):
        load_pretrained(get_config("tiny"), str(d))


def test_sd15_parameter_counts(capsys):
    from standin_model.export import count_parameters
    c = count_parameters(get_config("sd15"))
    with capsys.disabled():
        print("\nsd15 parameter counts:", {k: f"{v / 1e6:.2f}M" for k, v in c.items()})
    assert c["denoising_unet_2d"] == 859_520_964          # SD1.5 UNet2DConditionModel
    assert c["reference_unet"] == 859_520_964
    assert c["pose_guider"] == 1_086_480                  # Moore-AA PoseGuider(320, (16, 32, 96, 256))
    assert c["vae"] == 83_653_863
    assert c["image_encoder"] == 303_966_208              # CLIP ViT-L/14 vision + projection 768
    assert 450e6 < c["denoising_unet_motion_modules"] < 456e6
