"""Training objectives, stage parameter sets, checkpoints and loss plots (CPU, tiny config)."""
import json
import os

import pytest
import torch

from standin_model.config import get_config
from standin_model.model import StandinModel
from standin_model.scheduler import DEFAULT
from standin_train import checkpoints as ckpt
from standin_train.objectives import DiffusionObjective, VAEObjective, sobel, trainable_parameters


def tiny_model(**kw):
    torch.manual_seed(0)
    return StandinModel(get_config("tiny", pose_modulation=True, **kw))


def batch(B=2, F=2, H=96, W=64, S=224):
    g = torch.Generator().manual_seed(1)
    mask = torch.zeros(B, F, 1, H, W)
    mask[..., 20:70, 16:48] = 1
    return {"frames": torch.rand(B, F, 3, H, W, generator=g) * 2 - 1,
            "environment": torch.rand(B, F, 3, H, W, generator=g) * 2 - 1,
            "object": torch.rand(B, F, 3, H, W, generator=g) * 2 - 1,
            "mask": mask, "pose": torch.rand(B, F, 3, H, W, generator=g),
            "depth": torch.rand(B, F, 1, H, W, generator=g),
            "reference": torch.rand(B, 3, H, W, generator=g) * 2 - 1,
            "reference_clip": torch.randn(B, 3, S, S, generator=g)}


def test_stage_parameter_sets_are_disjoint_where_the_recipe_says():
    m = tiny_model()
    names = lambda stage: {n for n, p in m.named_parameters() if any(p is q for q in trainable_parameters(m, stage))}  # noqa: E731
    vae, image, video = names("vae"), names("image"), names("video")
    assert vae and all(n.startswith("vae.") for n in vae)
    assert image and not any(n.startswith("vae.") or ".motion_modules." in n for n in image)
    assert {n.split(".")[0] for n in image} >= {"image_encoder", "reference_unet", "denoising_unet", "pose_guider",
                                                 "object_guider"}
    assert video and all(".motion_modules." in n or n.startswith("denoising_unet.pose_temporal") for n in video)
    assert not (image & video) and not (vae & image)
    # requires_grad follows the last call
    assert {n for n, p in m.named_parameters() if p.requires_grad} == video


@pytest.mark.parametrize("stage,frames,objects", [("image", 1, False), ("image", 1, True), ("video", 3, False)])
def test_diffusion_loss_trains_the_stage(stage, frames, objects):
    m = tiny_model()
    params = trainable_parameters(m, stage)
    obj = DiffusionObjective(m, DEFAULT)
    out = obj(batch(F=frames), use_objects=objects, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out["loss"]) and out["loss"].item() > 0
    out["loss"].backward()
    got = {n for n, p in m.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert all(p.requires_grad for n, p in m.named_parameters() if n in got)
    if stage == "image":
        # the conditions reach the loss: each conditioning network gets a gradient (the pose
        # guider's zero-initialised outputs first: its inner layers follow once they are non-zero)
        for prefix in ("image_encoder.", "reference_unet.", "pose_guider.conv_out",
                       "denoising_unet.conv_in"):
            assert any(n.startswith(prefix) for n in got), prefix
        # objects: the zero-initialised blend gates learn first
        assert any("object_blender" in n and n.endswith("gate") for n in got) == objects
    else:
        # motion modules start as exact no-ops (zero proj_out): the first gradient reaches proj_out
        assert any("motion_modules" in n and "proj_out" in n for n in got)
        assert not any(n.startswith(("vae.", "reference_unet.", "image_encoder.")) for n in got)


def test_temporal_term_adds_the_frame_to_frame_error_of_the_clean_latents():
    m = tiny_model()
    trainable_parameters(m, "video")
    b = batch(F=3)
    plain = DiffusionObjective(m, DEFAULT)(b, use_objects=False, generator=torch.Generator().manual_seed(0))
    assert "temporal" not in plain
    obj = DiffusionObjective(m, DEFAULT, temporal_weight=0.5)
    out = obj(b, use_objects=False, generator=torch.Generator().manual_seed(0))
    # the same draws (same generator): the plain loss plus the weighted term
    assert out["temporal"].item() > 0
    assert torch.allclose(out["loss"], plain["loss"] + 0.5 * out["temporal"], rtol=1e-5)
    assert torch.allclose(out["mse"], plain["mse"])
    out["loss"].backward()
    assert any("motion_modules" in n and "proj_out" in n and p.grad is not None and p.grad.abs().sum() > 0
               for n, p in m.named_parameters())
    # single frames have nothing to compare
    single = obj(batch(F=1), use_objects=False, generator=torch.Generator().manual_seed(0))
    assert "temporal" not in single


def test_dropped_reference_is_the_unconditional_path():
    """With reference_drop 1 the loss must not depend on the reference at all."""
    m = tiny_model()
    trainable_parameters(m, "image")
    obj = DiffusionObjective(m, DEFAULT, reference_drop=1.0)
    b = batch(F=1)
    a = obj(b, False, torch.Generator().manual_seed(3))["loss"]
    b2 = dict(b, reference=-b["reference"], reference_clip=b["reference_clip"] * 2)
    c = obj(b2, False, torch.Generator().manual_seed(3))["loss"]
    assert torch.allclose(a, c, atol=1e-6)
    obj.reference_drop = 0.0
    d = obj(b2, False, torch.Generator().manual_seed(3))["loss"]
    assert not torch.allclose(a, d)


def test_vae_objective_prefers_a_perfect_reconstruction():
    m = tiny_model()
    trainable_parameters(m, "vae")
    v = VAEObjective(m)
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    w = torch.zeros(3, 1, 64, 64)
    out = v(x, w)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    assert all(p.grad is not None for p in m.vae.encoder.parameters())
    # the gradient term sees edges: a constant image has none
    assert sobel(torch.ones(1, 3, 8, 8))[:, :, 1:-1, 1:-1].abs().max() == 0


def test_weights_shards_round_trip_and_detect_damage(tmp_path):
    m = tiny_model()
    sd = m.state_dict()
    names = ckpt.write_shards(str(tmp_path), sd, {"stage_index": 1, "step": 7, "sessions": 2, "scaling_factor": 0.5})
    assert "progress.json" in names and any(n.startswith("weights.") for n in names)
    assert all(os.path.getsize(tmp_path / n) <= ckpt.SHARD_BYTES + (1 << 20) for n in names)
    state, progress = ckpt.read_shards(str(tmp_path))
    assert progress["step"] == 7 and set(state) == set(sd)
    for k, v in sd.items():
        if v.is_floating_point():
            assert state[k].dtype == torch.float16
            assert torch.allclose(state[k].float(), v, atol=1e-3, rtol=1e-3)
    shard = tmp_path / names[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        ckpt.read_shards(str(tmp_path))


def test_ema_follows_the_model_and_warms_up():
    m = torch.nn.Linear(2, 2)
    e = ckpt.EMA(m, decay=0.5)
    with torch.no_grad():
        m.weight.add_(2.0)
    before = e.shadow["weight"].clone()
    e.update(m)  # first update: decay min(0.5, 1/10) = 0.1
    assert torch.allclose(e.shadow["weight"], before + 1.8)
    e.copy_to(m)
    assert torch.allclose(m.weight, before + 1.8)
    restored = ckpt.EMA(torch.nn.Linear(2, 2), decay=0.5)
    restored.load_state_dict(e.state_dict())
    assert restored.updates == 1 and torch.equal(restored.shadow["weight"], e.shadow["weight"])
    # a long plain average forgets its start: after 1300 updates at 0.999 little of it is left
    e2 = ckpt.EMA(torch.nn.Linear(2, 2), decay=0.999)
    start = e2.shadow["weight"].clone()
    target = torch.nn.Linear(2, 2)
    for _ in range(1300):
        e2.update(target)
    left = ((e2.shadow["weight"] - target.weight) / (start - target.weight)).abs().max()
    assert left < 0.01  # without the warm-up it would be 0.999 ** 1300 = 0.27


def test_loss_plot_has_a_panel_per_stage(tmp_path):
    from standin_train.plots import plot, read_log
    log = tmp_path / "log.jsonl"
    with open(log, "w") as f:
        for stage in ("vae", "image"):
            for step in (10, 20, 30):
                f.write(json.dumps({"stage": stage, "step": step, "loss": 1.0 / step, "mse": 0.5 / step}) + "\n")
    assert list(read_log(str(log))) == ["vae", "image"]
    plot(str(log), str(tmp_path / "loss.png"))
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
