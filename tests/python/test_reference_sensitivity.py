"""scripts/reference_sensitivity.py: the three cases see the same clips and noise and differ only
in the reference (own / another clip's / none)."""
import numpy as np
import pytest
import torch

import reference_sensitivity as RS
from standin_model.config import get_config
from standin_model.export import build_random

SCHEDULER = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
             "prediction_type": "v_prediction", "rescale_betas_zero_snr": True, "timestep_spacing": "trailing",
             "steps_offset": 1, "clip_sample": False}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_random(get_config("tiny"), seed=0).eval()


def clips(n, frames=2, same_reference=False, seed=0):
    rng = np.random.default_rng(seed)
    h, w, s = 96, 64, 224
    out = []
    ref = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    ref_clip = rng.standard_normal((3, s, s)).astype(np.float32)
    for _ in range(n):
        mask = np.zeros((frames, h, w), np.float32)
        mask[:, 30:80, 20:44] = 1
        out.append({
            "frames": rng.integers(0, 256, (frames, h, w, 3), dtype=np.uint8),
            "environment": (rng.standard_normal((frames, 3, h, w)) * 0.5).astype(np.float16) * (1 - mask[:, None]),
            "mask": mask,
            "pose": rng.integers(0, 256, (frames, h, w, 3), dtype=np.uint8),
            "depth": rng.random((frames, h, w)).astype(np.float32),
            "character": (mask * 255).astype(np.uint8),
            "reference": ref if same_reference else rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
            "reference_clip": ref_clip if same_reference else rng.standard_normal((3, s, s)).astype(np.float32),
        })
    return out


def test_another_clips_reference_changes_only_the_reference(model):
    # every clip has the same reference: lending it the next clip's changes nothing at all
    r = RS.sensitivity(model, SCHEDULER, RS.clip_batch(clips(3, same_reference=True), 2), seeds=2)
    assert r["own"]["per_seed"] == r["other"]["per_seed"]
    assert r["none"]["per_seed"] != r["own"]["per_seed"]  # dropping it still does


def test_the_cases_differ_for_a_model_that_reads_its_reference(model):
    batch = RS.clip_batch(clips(3), 2)
    r = RS.sensitivity(model, SCHEDULER, batch, seeds=2)
    assert len({r[c]["mean"] for c in RS.CASES}) == 3
    assert all(np.isfinite(r[c]["mean"]) for c in RS.CASES)
    again = RS.sensitivity(model, SCHEDULER, batch, seeds=2)  # same draws: the same numbers
    assert again == r


def test_attention_share_on_the_reference_is_reported_and_zero_when_dropped(model):
    batch = RS.clip_batch(clips(2), 2)
    r = RS.sensitivity(model, SCHEDULER, batch, seeds=1)
    shares = r["reference_attention_share"]
    assert shares and all(0.0 < v < 1.0 for v in shares.values()), shares
    # the unconditional path masks the reference tokens out: no weight may land on them
    dropped = RS.defaultdict(list)
    drop = RS.DiffusionObjective(model, SCHEDULER, reference_drop=1.0)
    with torch.no_grad(), RS.reference_attention_shares(dropped):
        drop(batch, False, torch.Generator().manual_seed(0))
    assert dropped and all(max(v) < 1e-6 for v in dropped.values()), dict(dropped)
