"""Every training config in configs/train passes train.py's start-up check (stage names, sample
repeats, data options the renderer knows), and the check catches what it is there for."""
import copy
import glob
import json
import os

import pytest

import train

CONFIGS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "configs", "train", "*.json")))


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_shipped_training_configs_pass_the_check(path):
    with open(path) as f:
        cfg = json.load(f)
    assert train.config_problem(cfg) is None


def test_the_check_names_the_stage_and_the_problem():
    with open(CONFIGS[0]) as f:
        good = json.load(f)
    typo = copy.deepcopy(good)
    typo["stages"][-1]["data"] = {"body_hue_jiter": 0.5}
    assert "unknown data option 'body_hue_jiter'" in train.config_problem(typo)
    assert train.config_problem(typo).startswith(f"stage {typo['stages'][-1]['name']}")
    repeats = copy.deepcopy(good)
    repeats["stages"][0]["sample_repeats"] = 2
    assert "sample_repeats" in train.config_problem(repeats) and repeats["stages"][0]["name"] == "vae"
    unknown = copy.deepcopy(good)
    unknown["stages"][1]["name"] = "images"
    assert "'images'" in train.config_problem(unknown)
    # the temporal term compares frames: video stage only, never negative
    for stage_name, value in (("image", 0.5), ("video", -1.0), ("video", "1")):
        bad = copy.deepcopy(good)
        stage = next(s for s in bad["stages"] if s["name"] == stage_name)
        stage["temporal_weight"] = value
        assert "temporal_weight" in train.config_problem(bad), (stage_name, value)
    # data options with values out of range are caught as well as unknown ones
    tight = copy.deepcopy(good)
    tight["stages"][-1]["data"] = {"tight_mask_probability": 2.0}
    assert "tight_mask_probability" in train.config_problem(tight)
    fine = copy.deepcopy(good)
    next(s for s in fine["stages"] if s["name"] == "video")["temporal_weight"] = 0.5
    assert train.config_problem(fine) is None
