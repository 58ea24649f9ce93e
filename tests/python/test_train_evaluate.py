"""The self-reconstruction metrics' diagnostic mixes (standin_train.evaluate.oracle_mixes)."""
import numpy as np

from standin_train import evaluate as E


def _sample(rng, frames=3, h=12, w=8):
    background = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    character = np.zeros((frames, h, w), np.uint8)
    character[:, 3:9, 2:6] = 255
    colour = rng.integers(0, 256, (frames, h, w, 3), dtype=np.uint8)
    frames_ = np.where(character[..., None] > 0, colour, background[None])
    return {"frames": frames_, "character": character, "background": background}


def test_truth_through_both_mixes_is_the_truth():
    s = _sample(np.random.default_rng(0))
    mixes = E.oracle_mixes(s["frames"], s)
    np.testing.assert_array_equal(mixes["character"], s["frames"])
    np.testing.assert_array_equal(mixes["fill"], s["frames"])


def test_each_mix_keeps_its_part_of_the_generated_frames():
    rng = np.random.default_rng(1)
    s = _sample(rng)
    generated = rng.integers(0, 256, s["frames"].shape, dtype=np.uint8)
    on = s["character"][..., None] > 0
    mixes = E.oracle_mixes(generated, s)
    np.testing.assert_array_equal(mixes["character"], np.where(on, generated, s["background"][None]))
    np.testing.assert_array_equal(mixes["fill"], np.where(on, s["frames"], generated))


def test_vae_roundtrip_row_with_a_lossless_vae_returns_the_truth():
    import torch
    import evaluate

    class LosslessBundle:
        device, dtype = torch.device("cpu"), torch.float32
        modules = {"vae_encoder": lambda x: x * 2.0, "vae_decoder": lambda z: z / 2.0}

        def __getitem__(self, name):
            return self.modules[name]

    frames = np.random.default_rng(0).integers(0, 256, (3, 12, 8, 3), dtype=np.uint8)
    out = evaluate.vae_roundtrip_row(LosslessBundle())({"frames": frames}, 0)
    assert out.dtype == np.uint8 and np.array_equal(out, frames)


def test_remask_clips_redraws_replace_s_region_and_hides_it_from_the_model():
    import evaluate

    s = _sample(np.random.default_rng(2))
    s["mask"] = np.ones_like(s["character"])  # the renderer's region: everything
    [tight] = evaluate.remask_clips([dict(s)], "tight", dilate_px=0, blocks=0)
    np.testing.assert_array_equal(tight["mask"], (s["character"] > 0).astype(np.uint8))
    env = tight["environment"].astype(np.float32)  # [F,3,H,W] in [-1,1], 0 where redrawn
    assert not env.transpose(0, 2, 3, 1)[tight["mask"] > 0].any()
    outside = tight["mask"] == 0
    np.testing.assert_allclose(env.transpose(0, 2, 3, 1)[outside],
                               s["frames"][outside].astype(np.float32) / 127.5 - 1, atol=1e-2)
    [grown] = evaluate.remask_clips([dict(s)], "tight", dilate_px=2, blocks=0)
    assert grown["mask"].sum() > tight["mask"].sum()
    assert s["mask"].all()  # the caller's clip is left alone


def test_region_settings_resolve_like_replace():
    import evaluate

    demo = {"mask_mode": "tight", "mask_dilate": 1, "mask_blocks": 0}
    assert evaluate.region_settings("bundle", None, None, demo) == ("tight", 1, 0)
    assert evaluate.region_settings("bundle", 3, None, demo) == ("tight", 3, 0)  # an option beats the bundle
    assert evaluate.region_settings("agnostic", None, 12, demo) == ("agnostic", 1, 12)
    old = {"steps": 8}  # a bundle exported before the fields: the paper's blocks, 4 px
    assert evaluate.region_settings("bundle", None, None, old) == ("agnostic", 4, 0)
