"""The reference pipeline (docs/SAMPLING.md) on the tiny bundle."""
import os

import pytest
import torch

from reference_pipeline import Bundle, generate, load_conds, main, synthetic_conds, window_starts


def test_window_starts():
    assert window_starts(5, 8, 2) == [0]
    assert window_starts(8, 8, 2) == [0]
    assert window_starts(20, 8, 2) == [0, 6, 12]
    assert window_starts(21, 8, 2) == [0, 6, 12, 13]
    assert window_starts(10, 4, 4) == [0, 1, 2, 3, 4, 5, 6]  # stride at least 1
    assert window_starts(24, 24, 4) == [0]
    assert window_starts(30, 24, 4) == [0, 6]


@pytest.fixture(scope="module")
def bundles(tiny_bundle):
    path = tiny_bundle[0]
    return Bundle(path), Bundle(path, eager=True)


def test_generate_torchscript_equals_eager(bundles):
    ts, eager = bundles
    conds = synthetic_conds(ts.manifest, 11, seed=3, objects=True)
    a = generate(ts, conds, steps=2, cfg=3.5, window=4, overlap=1, sampler="ddim")
    b = generate(eager, conds, steps=2, cfg=3.5, window=4, overlap=1, sampler="ddim")
    assert a["latents"].shape == (1, 4, 11, 12, 8) and a["frames"].shape == (11, 3, 96, 64)
    assert torch.isfinite(a["latents"]).all() and a["frames"].abs().max() <= 1
    assert 0.1 < a["latents"].std() < 10
    err = max((a[k] - b[k]).abs().max().item() for k in a)
    print("TorchScript vs eager pipeline max-abs:", err)
    assert err <= 1e-4


def test_conditions_matter(bundles):
    ts, _ = bundles
    conds = synthetic_conds(ts.manifest, 5, seed=4, objects=True)
    base = generate(ts, conds, steps=1, cfg=2.0, window=8, overlap=2, decode=False)["latents"]
    for key in ("reference", "environment", "mask", "pose", "object"):
        c = dict(conds)
        c[key] = torch.flip(conds[key], dims=[-1])
        other = generate(ts, c, steps=1, cfg=2.0, window=8, overlap=2, decode=False)["latents"]
        assert (other - base).abs().max() > 1e-4, key


def test_samplers_and_cfg1(bundles):
    ts, _ = bundles
    conds = synthetic_conds(ts.manifest, 6, seed=5)
    d = generate(ts, conds, steps=3, cfg=1.0, window=4, overlap=2, sampler="dpmpp_2m", decode=False)
    assert torch.isfinite(d["latents"]).all()
    e = generate(ts, conds, steps=3, cfg=1.0, window=4, overlap=2, sampler="ddim", decode=False)
    assert (d["latents"] - e["latents"]).abs().max() > 1e-4


def test_cli_roundtrip(tiny_bundle, tmp_path):
    path = tiny_bundle[0]
    b = Bundle(path)
    conds = synthetic_conds(b.manifest, 9, seed=6, steps=2, cfg=3.0, window=4, overlap=1, sampler=1)
    cp = tmp_path / "conds.pt"
    torch.save(conds, cp)
    out = tmp_path / "result.pt"
    assert main(["--bundle", path, "--inputs", str(cp), "--out", str(out), "--quiet",
                 "--metrics", str(tmp_path / "m.json")]) == 0
    r = torch.load(out)
    exp = generate(b, load_conds(str(cp)))
    assert set(r) == {"latents", "frames"}
    torch.testing.assert_close(r["latents"], exp["latents"], atol=0, rtol=0)
    assert os.path.exists(tmp_path / "m.json")
