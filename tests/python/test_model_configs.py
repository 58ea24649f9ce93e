"""Model configurations are data (configs/models/*.json, issue 13): every named configuration
loads from its file, unknown keys and mismatched names are refused, overrides still work."""
import dataclasses
import json
import os

import pytest

from standin_model import config as C

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_every_file_is_a_named_configuration():
    files = sorted(f[:-5] for f in os.listdir(os.path.join(ROOT, "configs", "models")) if f.endswith(".json"))
    assert {"tiny", "sd15", "demo"} <= set(files)
    assert sorted(C.CONFIGS) == files
    for name in files:
        cfg = C.get_config(name)
        assert cfg.name == name
        # A file is ModelConfig.to_dict() (+ description): loading and dumping gives it back.
        with open(os.path.join(ROOT, "configs", "models", name + ".json")) as f:
            data = json.load(f)
        data.pop("description", None)
        assert json.loads(json.dumps(cfg.to_dict())) == data
        # Tuples, as the dataclasses declare them (the exporter writes them as lists).
        assert isinstance(cfg.unet.block_out_channels, tuple)
        assert isinstance(cfg.vae.block_out_channels, tuple)


def test_known_sizes():
    tiny, sd15, demo = C.get_config("tiny"), C.get_config("sd15"), C.get_config("demo")
    assert (tiny.width, tiny.height, tiny.unet.block_out_channels) == (64, 96, (32, 64))
    assert sd15.unet.block_out_channels == (320, 640, 1280, 1280) and sd15.clip.hidden_size == 1024
    assert (demo.vae_scale_factor, demo.pose_modulation) == (4, True)
    # The shipped model takes one step without guidance (docs/TRAINING.md "One step, no guidance":
    # ahead of 2-8 steps and of CFG 2.5 on every held-out column); the sampler (DPM-Solver++ 2M
    # since "Run 2") still travels into model.json's defaults for --steps above 1.
    assert (demo.steps, demo.cfg, demo.sampler, tiny.sampler) == (1, 1.0, "dpmpp_2m", "ddim")
    # ... and composites through a 1 px edge; the others keep replace's own (docs/BUNDLE.md)
    assert (demo.feather, tiny.feather, sd15.feather) == (1, -1, -1)
    # replace redraws only around the person with the shipped model (docs/TRAINING.md "Run 5");
    # the others keep the paper's shape-agnostic blocks
    assert (demo.mask_mode, tiny.mask_mode, sd15.mask_mode) == ("tight", "agnostic", "agnostic")


def test_overrides_and_unknown_names():
    assert C.get_config("tiny", reference_blocks="mid_up").reference_blocks == "mid_up"
    with pytest.raises(KeyError):
        C.get_config("tiny", colour="blue")
    with pytest.raises(KeyError, match="configs/models"):
        C.get_config("sd21")


def test_bad_files_are_refused(tmp_path):
    good = json.loads(json.dumps(C.get_config("tiny").to_dict()))
    (tmp_path / "tiny.json").write_text(json.dumps(dict(good, widht=64)))
    with pytest.raises(ValueError, match="widht"):
        C.load_config_file(tmp_path / "tiny.json")
    bad_sub = json.loads(json.dumps(good))
    bad_sub["unet"]["heads"] = 3
    (tmp_path / "tiny.json").write_text(json.dumps(bad_sub))
    with pytest.raises(ValueError, match="heads"):
        C.load_config_file(tmp_path / "tiny.json")
    (tmp_path / "tiny.json").write_text(json.dumps(dict(good, sampler="euler")))
    with pytest.raises(ValueError, match="sampler"):
        C.load_config_file(tmp_path / "tiny.json")
    (tmp_path / "tiny.json").write_text(json.dumps(dict(good, mask_mode="loose")))
    with pytest.raises(ValueError, match="mask_mode"):
        C.load_config_file(tmp_path / "tiny.json")
    (tmp_path / "other.json").write_text(json.dumps(good))
    with pytest.raises(ValueError, match="other.json"):
        C.load_config_file(tmp_path / "other.json")
    (tmp_path / "tiny.json").write_text(json.dumps(dict(good, description="x", width=80)))
    assert C.load_config_file(tmp_path / "tiny.json").width == 80
    assert {f.name for f in dataclasses.fields(C.ModelConfig)} >= set(good)
