"""scripts/gpu/profile_train.py on the CPU: the timed step is train.py's own update, and the
attention-kernel choice (a GPU-only knob) is refused here with a message instead of a traceback."""
import json
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts", "gpu"))

import profile_train  # noqa: E402


def test_smoke_run_times_each_batch_and_writes_the_table(tmp_path):
    out = tmp_path / "profile.json"
    assert profile_train.main(["--batches", "1,2", "--steps", "1", "--render", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [(r["attention"], r["batch"]) for r in result["runs"]] == [("default", 1), ("default", 2)]
    for r in result["runs"]:
        assert r["s_per_step"] > 0 and r["samples_per_s"] == pytest.approx(r["batch"] / r["s_per_step"])


def test_attention_kernel_choice_needs_a_gpu():
    with pytest.raises(SystemExit, match="needs a GPU"):
        profile_train.main(["--sdpa", "cudnn", "--batches", "1", "--steps", "1", "--render", "1"])


def test_another_model_configuration_can_be_timed(tmp_path):
    out = tmp_path / "profile.json"
    assert profile_train.main(["--model", "demo-run1", "--batches", "1", "--steps", "1", "--render", "1",
                               "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["model"] == "demo-run1" and len(result["runs"]) == 1
