"""Training data and the train loop on tiny data (CPU): samples keep the inference invariants,
the three stages run, a stopped run resumes where it stopped, and its weights export a bundle."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from synth import AssetPack
from synth import testing as T
from standin_train import checkpoints as ckpt
from standin_train.data import Backgrounds, DataConfig, SampleMaker, to_tensors

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TRAIN = os.path.join(ROOT, "scripts", "train.py")
SCHEDULER = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
             "prediction_type": "v_prediction", "rescale_betas_zero_snr": True, "timestep_spacing": "trailing",
             "steps_offset": 1, "clip_sample": False}


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_assets")
    pack = str(root / "pack")
    assert T.build_tiny_pack(pack)["problems"] == 0
    bg = root / "backgrounds"
    bg.mkdir()
    rng = np.random.default_rng(0)
    files = []
    for i, (w, h) in enumerate([(320, 240), (200, 300)]):
        img = (rng.random((h, w, 3)) * 80 + np.linspace(60, 170, w)[None, :, None]).astype(np.uint8)
        cv2.imwrite(str(bg / f"plate{i}.jpg"), img)
        files.append({"file": f"plate{i}.jpg", "split": "train"})
    (bg / "backgrounds.json").write_text(json.dumps({"files": files}))
    return pack, str(bg)


def maker(assets, frames=1, **kw):
    pack, bg = assets
    cfg = DataConfig(width=64, height=96, clip_size=224, frames=frames, **kw)
    return SampleMaker(AssetPack.load(pack), Backgrounds(bg, "train"), cfg)


def draw(m, seed, tries=50):
    return m.make_renderable(np.random.default_rng(seed), attempts=tries)


class _FlakyMaker(SampleMaker):
    """make() fails (as a draw that cannot be shown does) until its budget of failures is spent."""

    def __init__(self, failures):
        self.failures, self.calls = failures, 0

    def make(self, rng):
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("character walks out of the frame")
        return {"draw": self.calls}


def test_make_renderable_draws_again_and_gives_up_with_the_error():
    m = _FlakyMaker(failures=3)
    assert m.make_renderable(np.random.default_rng(0), attempts=10) == {"draw": 4}
    m = _FlakyMaker(failures=10)
    with pytest.raises(RuntimeError, match="walks out"):
        m.make_renderable(np.random.default_rng(0), attempts=5)
    assert m.calls == 5


@pytest.mark.parametrize("frames", [1, 3])
def test_samples_keep_the_inference_invariants(assets, frames):
    m = maker(assets, frames)
    for seed in range(3):
        s = draw(m, seed)
        F = frames
        assert s["frames"].shape == (F, 96, 64, 3) and s["reference"].shape == (96, 64, 3)
        assert s["reference_clip"].shape == (3, 224, 224)
        mask = s["mask"].astype(bool)
        # the redraw region covers every pixel the character touches ...
        assert not np.any((s["character"] > 0) & ~mask)
        assert mask.any()
        # ... and the environment is the frame outside it, zero inside (to_tensor_m11 x (1 - mask))
        frame_m11 = s["frames"].astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1
        env = s["environment"].astype(np.float32)
        inside = np.broadcast_to(mask[:, None], env.shape)
        assert np.all(env[inside] == 0)
        assert np.allclose(env[~inside], frame_m11[~inside], atol=2e-3)
        # a skeleton is drawn where the character is
        assert s["pose"].reshape(F, -1).max(axis=1).min() > 0
        assert s["depth"].astype(np.float32).max() > 0
        t = to_tensors({k: torch.from_numpy(np.asarray(v))[None] for k, v in s.items()})
        assert t["frames"].shape == (1, F, 3, 96, 64) and float(t["frames"].abs().max()) <= 1.0


def test_samples_are_reproducible(assets):
    a, b = draw(maker(assets), 11), draw(maker(assets), 11)
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_tight_regions_follow_the_silhouette(assets):
    """tight_mask_probability 1: every clip's redraw region is replace's "tight" one, the character's
    coverage grown by 0..2 work pixels, where the default regions are blocks reaching well past it."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))  # 3 px: the 2 px growth + coverage
    tight_extra, default_extra = [], []
    for seed in range(4):
        s = draw(maker(assets, 3, object_probability=0.0, tight_mask_probability=1.0), seed)
        char, mask = s["character"] > 0, s["mask"].astype(bool)
        assert not np.any(char & ~mask)
        near = np.stack([cv2.dilate(c.astype(np.uint8), kernel) > 0 for c in char])
        assert not np.any(mask & ~near)
        tight_extra.append((mask & ~char).sum() / char.sum())
        d = draw(maker(assets, 3, object_probability=0.0), seed)
        default_extra.append((d["mask"].astype(bool) & ~(d["character"] > 0)).sum() / (d["character"] > 0).sum())
    assert np.mean(tight_extra) < 0.5 * np.mean(default_extra)
    with pytest.raises(ValueError, match="tight_dilate_px"):
        DataConfig(tight_dilate_px=(2, 1))
    with pytest.raises(ValueError, match="tight_mask_probability"):
        DataConfig(tight_mask_probability=1.5)


def tiny_config(path, vae=3, image=3, video=2):
    cfg = {"model": "tiny", "seed": 1, "scheduler": SCHEDULER,
           "data": {"width": 64, "height": 96, "clip_size": 224},
           "stages": [
               {"name": "vae", "steps": vae, "batch": 2, "frames": 2, "lr": 4e-4, "warmup": 1, "ema": 0.9},
               {"name": "image", "steps": image, "batch": 2, "lr": 2e-4, "warmup": 1, "ema": 0.9, "object_steps": 0.5},
               {"name": "video", "steps": video, "batch": 1, "frames": 3, "lr": 1e-4, "warmup": 1, "ema": 0.9}]}
    path.write_text(json.dumps(cfg))
    return str(path)


def train(config, run, assets, *extra, configs_dir=None, expect_rc=0):
    pack, bg = assets
    env = dict(os.environ, PYTHONHASHSEED="0", OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    if configs_dir:
        env["STANDIN_MODEL_CONFIGS"] = str(configs_dir)
    r = subprocess.run([sys.executable, TRAIN, "--config", config, "--run-dir", run, "--pack", pack,
                        "--backgrounds", bg, "--workers", "0", "--log-every", "1", *extra],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == expect_rc, r.stdout + r.stderr
    return r.stdout + r.stderr


def log_of(run):
    with open(os.path.join(run, "log.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_three_stages_stop_resume_and_export(assets, tmp_path):
    config = tiny_config(tmp_path / "train.json")
    run = str(tmp_path / "run")
    # stop inside the image stage ...
    train(config, run, assets, "--max-steps-this-call", "4")
    with open(os.path.join(run, "weights", "progress.json")) as f:
        progress = json.load(f)
    assert (progress["stage_index"], progress["step"], progress["done"]) == (1, 1, False)
    assert progress["scaling_factor"] > 0  # measured after the VAE stage
    saved = ckpt.load(os.path.join(run, "state.pt"))
    mid = str(tmp_path / "mid_weights")
    import shutil
    shutil.copytree(os.path.join(run, "weights"), mid)
    # ... and continue exactly there: same weights, the next step, the rest of the stages
    out = train(config, run, assets)
    assert "resumed" in out
    steps = [(r["stage"], r["step"]) for r in log_of(run)]
    assert steps == [("vae", 1), ("vae", 2), ("vae", 3), ("image", 1), ("image", 2), ("image", 3),
                     ("video", 1), ("video", 2)]
    assert all(np.isfinite(r["loss"]) for r in log_of(run))
    state, progress = ckpt.read_shards(os.path.join(run, "weights"))
    assert progress["done"] and progress["stage_index"] == 3
    # the VAE was frozen after its stage: its weights did not move while the image stage went on
    key = "vae.encoder.conv_in.weight"
    assert torch.allclose(state[key].float(), saved["model"][key].float(), atol=1e-3)
    # the motion modules trained only in the video stage
    mm = [k for k in state if ".motion_modules." in k and k.endswith("proj_out.weight")][0]
    assert float(saved["model"][mm].abs().max()) == 0.0 and float(state[mm].float().abs().max()) > 0.0

    # a fresh machine: the fp16 weights that travel start a new run folder at the same place
    run2 = str(tmp_path / "run2")
    out = train(config, run2, assets, "--init", mid)
    assert "started from weights" in out
    assert [(r["stage"], r["step"]) for r in log_of(run2)] == [("image", 2), ("image", 3), ("video", 1), ("video", 2)]

    # shipped weights -> a bundle with the trained latent scale and schedule
    shipped = str(tmp_path / "demo.pth")
    meta = ckpt.ship_from_shards(os.path.join(run, "weights"), json.load(open(config)), shipped)
    bundle = str(tmp_path / "bundle")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "export_bundle.py"), "--config", "tiny",
                        "--weights", shipped, "--out", bundle, "--no-check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(os.path.join(bundle, "model.json")) as f:
        man = json.load(f)
    assert man["weights"]["source"] == "trained"
    assert abs(man["latent"]["scaling_factor"] - meta["scaling_factor"]) < 1e-6
    assert man["scheduler"]["beta_schedule"] == SCHEDULER["beta_schedule"]
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "export_bundle.py"), "--config", "demo",
                        "--weights", shipped, "--out", str(tmp_path / "wrong")], capture_output=True, text=True)
    assert r.returncode == 2 and "--config tiny" in r.stderr


def test_warm_start_carries_what_fits_into_a_changed_architecture(assets, tmp_path):
    # an earlier model: the tiny architecture, trained through its VAE stage
    first = str(tmp_path / "first")
    train(tiny_config(tmp_path / "first.json", vae=2, image=1, video=1), first, assets, "--max-steps-this-call", "2")
    old, old_progress = ckpt.read_shards(os.path.join(first, "weights"))
    assert old_progress["stage_index"] == 1
    # the changed architecture: no attention at the first UNet level (docs/TRAINING.md, run 2)
    configs = tmp_path / "configs"
    configs.mkdir()
    tiny = json.load(open(os.path.join(ROOT, "configs", "models", "tiny.json")))
    tiny["name"] = "tiny_plain"
    tiny["unet"]["down_block_types"] = ["DownBlock", "DownBlock"]
    (configs / "tiny_plain.json").write_text(json.dumps(tiny))
    cfg = json.loads(open(tiny_config(tmp_path / "plain.json", vae=2, image=2, video=1)).read())
    cfg["model"] = "tiny_plain"
    config = tmp_path / "plain.json"
    config.write_text(json.dumps(cfg))

    run = str(tmp_path / "plain")
    out = train(str(config), run, assets, "--warm-start", os.path.join(first, "weights"), "--start-stage", "image",
                "--max-steps-this-call", "1", configs_dir=configs)
    assert "warm start from" in out and "starting at stage image" in out
    assert [(r["stage"], r["step"]) for r in log_of(run)] == [("image", 1)]  # the VAE stage was skipped
    saved = ckpt.load(os.path.join(run, "state.pt"))
    new, progress = saved["model"], ckpt.read_shards(os.path.join(run, "weights"))[1]
    assert progress["scaling_factor"] == old_progress["scaling_factor"]
    # the VAE (frozen in the image stage) is exactly the earlier one; the first level's attention is gone
    for key in [k for k in new if k.startswith("vae.")]:
        assert torch.equal(new[key].half(), old[key]), key
    assert not any(k.startswith("denoising_unet.down_blocks.0.attentions") for k in new)
    assert any(k.startswith("denoising_unet.down_blocks.0.attentions") for k in old)

    # skipping the VAE stage needs the whole VAE: another VAE width is refused with a reason
    tiny["name"], tiny["vae"]["block_out_channels"] = "tiny_widevae", [c * 2 for c in tiny["vae"]["block_out_channels"]]
    (configs / "tiny_widevae.json").write_text(json.dumps(tiny))
    cfg["model"] = "tiny_widevae"
    config.write_text(json.dumps(cfg))
    out = train(str(config), str(tmp_path / "wide"), assets, "--warm-start", os.path.join(first, "weights"),
                "--start-stage", "image", configs_dir=configs, expect_rc=1)
    assert "skips the VAE stage" in out


def test_sample_repeats_train_more_examples_per_rendered_sample(assets, tmp_path):
    cfg = json.loads(open(tiny_config(tmp_path / "train.json", vae=1, image=2, video=0)).read())
    cfg["stages"] = cfg["stages"][:2]
    cfg["stages"][1]["sample_repeats"] = 3
    config = tmp_path / "repeats.json"
    config.write_text(json.dumps(cfg))
    run = str(tmp_path / "run")
    train(str(config), run, assets)
    image = [r for r in log_of(run) if r["stage"] == "image"]
    assert [r["step"] for r in image] == [1, 2] and all(np.isfinite(r["loss"]) for r in image)
    # 2 rendered samples a step, each trained 3 times with its own noise
    assert [r["examples_per_step"] for r in image] == [6, 6]
    assert [r["examples_per_step"] for r in log_of(run) if r["stage"] == "vae"] == [2]

    cfg["stages"][0]["sample_repeats"] = 2  # the VAE's loss draws no noise: refused before any step
    config.write_text(json.dumps(cfg))
    out = train(str(config), str(tmp_path / "run_vae"), assets, expect_rc=2)
    assert "sample_repeats" in out and "vae" in out


def test_body_hue_jitter_reaches_the_identities(assets):
    def hues(**kw):
        m = maker(assets, identity_reuse=0.0, **kw)
        rng = np.random.default_rng(3)
        return [m._identity(rng).jitter_hsv[0] for _ in range(30)]
    assert max(abs(h) for h in hues()) <= 0.05
    assert max(abs(h) for h in hues(body_hue_jitter=0.5)) > 0.2
