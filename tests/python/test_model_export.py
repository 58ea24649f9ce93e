"""Exported TorchScript modules reproduce the eager modules (fp32, 1e-5); model.json is complete."""
import hashlib
import json
import os
import shutil

import pytest
import torch

from standin_model import contract as C
from standin_model.config import config_from_dict, get_config
from standin_model.export import build_random

MODULES = {"vae_encoder", "vae_decoder", "image_encoder", "reference_net", "denoising_unet", "pose_guider",
           "object_guider"}


def test_manifest(tiny_bundle):
    path, model, man = tiny_bundle
    with open(os.path.join(path, "model.json")) as f:
        m = json.load(f)
    assert m["format"] == "standin-bundle" and m["format_version"] == 1
    assert set(m["modules"]) == MODULES
    for name, spec in m["modules"].items():
        with open(os.path.join(path, spec["file"]), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == spec["sha256"]
        assert spec["inputs"] and spec["outputs"]
    g = m["geometry"]
    assert g["unet_in_channels"] == 9 and g["height"] % g["size_multiple"] == 0 and g["width"] % g["size_multiple"] == 0
    assert m["defaults"]["window"] <= g["max_window"]
    assert m["conditioning"]["num_reference"] == len(m["modules"]["reference_net"]["outputs"][0]["items"])
    assert config_from_dict(m["architecture"]) == get_config("tiny")
    print("export check (eager vs reloaded, dry run):", man["check"])
    assert max(man["check"].values()) <= 1e-5


def test_manifest_defaults_come_from_the_config():
    from standin_model.export import manifest
    for sampler in ("ddim", "dpmpp_2m"):
        cfg = get_config("tiny", sampler=sampler, steps=7)
        m = manifest(cfg, build_random(cfg, exercise=False), "t", "float32", {"source": "random"})
        assert (m["defaults"]["sampler"], m["defaults"]["steps"]) == (sampler, 7)
    cfg = get_config("tiny", mask_mode="tight", mask_dilate=1)
    d = manifest(cfg, build_random(cfg, exercise=False), "t", "float32", {"source": "random"})["defaults"]
    assert (d["mask_mode"], d["mask_dilate"], d["mask_blocks"]) == ("tight", 1, 0)  # replace's region
    assert "feather" not in d  # replace's own edge unless the config sets one
    cfg = get_config("tiny", feather=1)
    assert manifest(cfg, build_random(cfg, exercise=False), "t", "float32", {"source": "random"})["defaults"]["feather"] == 1


@pytest.mark.parametrize("env", [{"N": 3, "B": 2, "F": 3, "H": 64, "W": 48, "h": 8, "w": 6},
                                 {"N": 1, "B": 1, "F": 5, "H": 32, "W": 80, "h": 4, "w": 10}])
def test_exported_reproduce_eager(tiny_bundle, env):
    path, model, man = tiny_bundle
    mods = model.bundle_modules()
    g = torch.Generator().manual_seed(7)
    worst = {}
    for name, spec in man["modules"].items():
        ts = torch.jit.load(os.path.join(path, spec["file"]))
        args = C.example_inputs(name, spec, env, g)
        with torch.no_grad():
            a, b = mods[name](*args), ts(*args)
        for o in spec["outputs"]:
            C.check_value(o, b, env, name)
        a = a if isinstance(a, list) else [a]
        b = b if isinstance(b, list) else [b]
        worst[name] = max((x - y).abs().max().item() for x, y in zip(a, b))
    print("max-abs eager vs TorchScript:", worst)
    assert max(worst.values()) <= 1e-5


def test_denoising_unet_optional_lists(tiny_bundle):
    """Empty reference / objects lists are accepted; a wrong reference count is a clear error."""
    path, model, man = tiny_bundle
    ts = torch.jit.load(os.path.join(path, "denoising_unet.pt"))
    x = torch.randn(1, 9, 2, 8, 6)
    ctx = torch.randn(1, 1, 64)
    pose = torch.randn(1, 32, 2, 8, 6)
    t = torch.tensor([500])
    with torch.no_grad():
        out = ts(x, t, ctx, pose, [], torch.ones(1), [])
        assert out.shape == (1, 4, 2, 8, 6)
        with pytest.raises(Exception, match="reference"):
            ts(x, t, ctx, pose, [torch.randn(1, 48, 32)], torch.ones(1), [])


def test_export_is_deterministic(tiny_bundle, tmp_path):
    """Same seed => same weights (the CLI additionally fixes PYTHONHASHSEED for byte-identical files)."""
    path, model, man = tiny_bundle
    again = build_random(get_config("tiny"), seed=0)
    for (k, a), (k2, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    other = build_random(get_config("tiny"), seed=1)
    assert not torch.equal(other.denoising_unet.conv_in.weight, model.denoising_unet.conv_in.weight)


def test_bundle_loader_rejects_bad_bundles(tiny_bundle, tmp_path):
    from reference_pipeline import Bundle, BundleError
    path, _, _ = tiny_bundle
    bad = tmp_path / "bad"
    shutil.copytree(path, bad)
    with open(bad / "pose_guider.pt", "ab") as f:
        f.write(b"x")
    with pytest.raises(BundleError, match="pose_guider"):
        Bundle(str(bad))
    os.remove(bad / "pose_guider.pt")
    with pytest.raises(BundleError, match="pose_guider"):
        Bundle(str(bad))
    m = json.loads((bad / "model.json").read_text())
    m["format_version"] = 2
    (bad / "model.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="format_version"):
        Bundle(str(bad))


def test_pose_modulation_scripts_and_matches():
    cfg = get_config("tiny", pose_modulation=True)
    model = build_random(cfg, seed=2)
    env = {"N": 2, "B": 1, "F": 3, "H": 32, "W": 32, "h": 4, "w": 4}
    contracts = C.module_contracts(cfg, model.denoising_unet, "float32")
    g = torch.Generator().manual_seed(0)
    for name in ("pose_guider", "denoising_unet"):
        mod = model.bundle_modules()[name]
        ts = torch.jit.script(mod)
        args = C.example_inputs(name, contracts[name], env, g)
        with torch.no_grad():
            torch.testing.assert_close(ts(*args), mod(*args), atol=1e-5, rtol=1e-5)
    # depth changes the features (modulation is live in an exercised random bundle)
    pg = model.pose_guider
    p = torch.rand(1, 3, 32, 32, generator=g)
    with torch.no_grad():
        assert (pg(p, torch.zeros(1, 1, 32, 32)) - pg(p, torch.ones(1, 1, 32, 32))).abs().max() > 0
