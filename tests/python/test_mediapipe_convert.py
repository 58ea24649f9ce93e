"""The TFLite -> PyTorch converter reproduces the real TFLite runtime on real images.

Expected values in tests/data/vision/ were produced by the real TFLite interpreter
(scripts/mediapipe/verify_runtime.py; see docs/VISION.md). This test needs the .tflite files:
run scripts/fetch_mediapipe.sh (the README set-up does) - it fails, it does not skip, without.
"""
import glob
import json
import os
import sys

import numpy as np
import pytest
import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts", "mediapipe"))
import cases as C  # noqa: E402
import tflite_schema as S  # noqa: E402
import tflite_to_torch as T  # noqa: E402
import vision_meta as V  # noqa: E402

MODELS_DIR = os.path.join(ROOT, "third_party_models", "mediapipe")
DATA = os.path.join(ROOT, "tests", "data", "vision")

# (model, case) pairs that have expected values
PAIRS = sorted(tuple(os.path.basename(p)[:-4].split("__"))
               for p in glob.glob(os.path.join(DATA, "*__*.npz")))

# absolute tolerances vs the TFLite runtime (measured errors are 10-100x smaller; errors.json)
TOL = {"landmarks": 0.02, "world_landmarks": 1e-3, "pose_flag": 1e-4, "heatmap": 0.02,
       "scores": 0.02, "boxes": 0.05}
LANDMARK_XY_PX_TOL = 0.05  # the requirement is 0.5 px at 256x256


def model_path(name):
    p = os.path.join(MODELS_DIR, name + ".tflite")
    if not os.path.exists(p):
        pytest.fail(f"{p} is missing: run scripts/fetch_mediapipe.sh (README set-up) first",
                    pytrace=False)
    return p


_MODULES = {}


def module(name):
    if name not in _MODULES:
        _MODULES[name] = T.load(model_path(name))
    return _MODULES[name]


def run(name, case):
    fam = C.family(name)
    u8 = np.load(os.path.join(DATA, case + ".input.npz"))["rgb_half"]
    x = torch.from_numpy(C.model_input(u8, fam)).permute(0, 3, 1, 2).contiguous()
    mod = module(name)
    with torch.no_grad():
        ys = mod(x)
    spec = V.MODEL_SPECS[name]["outputs_by_tflite_name"]
    out = {}
    for tid, y in zip(mod.output_ids, ys):
        out[spec[mod.m.tensors[tid].name]] = y.numpy()
    return out


def test_expected_data_present():
    models = {m for m, _ in PAIRS}
    assert {"pose_detection", "pose_landmark_lite", "pose_landmark_full",
            "pose_landmark_heavy", "selfie_segmentation", "selfie_segmentation_landscape"} <= models, PAIRS
    for f in glob.glob(os.path.join(DATA, "*")):
        assert os.path.getsize(f) < 100 * 1024, f


@pytest.mark.parametrize("name,case", PAIRS)
def test_matches_tflite_runtime(name, case):
    exp = dict(np.load(os.path.join(DATA, f"{name}__{case}.npz")))
    got = run(name, case)
    errs = {}
    if "landmarks" in got:
        g, e = got["landmarks"].reshape(-1, 5), exp["landmarks"].reshape(-1, 5)
        errs["landmarks_xy_px"] = float(np.abs(g[:, :2] - e[:, :2]).max())
        assert errs["landmarks_xy_px"] < LANDMARK_XY_PX_TOL, errs
        for k in ("landmarks", "world_landmarks", "pose_flag"):
            errs[k] = float(np.abs(got[k] - exp[k]).max())
            assert errs[k] < TOL[k], (k, errs)
        hm = np.transpose(got["heatmap"][0], (1, 2, 0))[::8, ::8, :]
        errs["heatmap"] = float(np.abs(hm - exp["heatmap_sub8"]).max())
        assert errs["heatmap"] < TOL["heatmap"], errs
    if "segmentation" in got:
        seg = got["segmentation"][0, 0, ::4, ::4]
        ref = exp["segmentation_sub4"]
        if name.startswith("pose_landmark"):  # logits with magnitudes up to ~2000
            tol = 2e-3 * max(1.0, float(np.abs(ref).max()))
            prob = 1 / (1 + np.exp(-np.clip(seg, -80, 80)))
            prob_ref = 1 / (1 + np.exp(-np.clip(ref, -80, 80)))
            assert float(np.abs(prob - prob_ref).max()) < 1e-3
        else:  # probabilities
            tol = 1e-3
        errs["segmentation"] = float(np.abs(seg - ref).max())
        assert errs["segmentation"] < tol, errs
    if "scores" in got:
        errs["scores"] = float(np.abs(got["scores"] - exp["scores"]).max())
        assert errs["scores"] < TOL["scores"], errs
        b = got["boxes"][0]
        errs["boxes"] = max(float(np.abs(b[exp["boxes_top_index"]] - exp["boxes_top"]).max()),
                            float(np.abs(b[exp["boxes_stride_index"]] - exp["boxes_stride"]).max()))
        assert errs["boxes"] < TOL["boxes"], errs


def test_detector_finds_people():
    """Sanity of the real-image cases: the detector fires on the pedestrians / the player."""
    for case in ("det_vtest_f0_crop", "det_vtest_f0_crop2", "det_messi"):
        got = run("pose_detection", case)
        best = 1 / (1 + np.exp(-np.clip(got["scores"].max(), -100, 100)))
        assert best > 0.5, (case, best)


def test_landmark_pose_flag_on_people():
    for case in ("lm_vtest_f0_p1", "lm_messi"):
        got = run("pose_landmark_full", case)
        assert float(got["pose_flag"].reshape(-1)[0]) > 0.5, case


def test_densify_traversal():
    """TFLite sparsity format: a 4x4 matrix, dim 0 dense, dim 1 CSR, blocks of 1x2 (dim 1)."""
    dense = np.array([[1, 2, 0, 0], [0, 0, 0, 0], [0, 0, 3, 4], [5, 6, 7, 8]], np.float32)
    sp = S.Sparsity.__new__(S.Sparsity)
    sp.traversal_order = [0, 1, 2]
    sp.block_map = [1]
    # level 0: rows (dense, 4); level 1: block columns (CSR over 2 blocks); level 2: block (2)
    sp.dim_metadata = [
        {"format": "DENSE", "dense_size": 4},
        {"format": "SPARSE_CSR", "dense_size": 0,
         "segments": np.array([0, 1, 1, 2, 4]), "indices": np.array([0, 1, 0, 1])},
        {"format": "DENSE", "dense_size": 2},
    ]
    values = np.array([1, 2, 3, 4, 5, 6, 7, 8], np.float32)
    np.testing.assert_array_equal(T.densify(values, [4, 4], sp), dense)


def test_same_padding_is_asymmetric():
    assert T.same_pad(224, 3, 2) == (0, 1)   # the extra row goes to the bottom
    assert T.same_pad(225, 3, 2) == (1, 1)
    assert T.same_pad(8, 1, 1) == (0, 0)


def test_torchscript_roundtrip(tmp_path):
    """convert_all's export path: traced module saved with meta.json, reloads, same outputs."""
    import convert_all

    entry = convert_all.convert("selfie_segmentation", MODELS_DIR, str(tmp_path))
    extra = {"meta.json": ""}
    m = torch.jit.load(str(tmp_path / "selfie_segmentation.pt"), _extra_files=extra)
    assert json.loads(extra["meta.json"])["outputs"][0]["name"] == "segmentation"
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        a = m(x)[0]
        b = module("selfie_segmentation")(x)[0]
    assert a.shape == (1, 1, 256, 256) and entry["outputs"][0]["shape"] == [1, 1, 256, 256]
    assert float((a - b).abs().max()) < 1e-5


def test_exported_graph_has_no_tf32(tmp_path):
    """Traced convolutions carry allow_tf32 as a constant; it must be False (exact on CUDA)."""
    import convert_all

    convert_all.convert("selfie_segmentation_landscape", MODELS_DIR, str(tmp_path))
    m = torch.jit.load(str(tmp_path / "selfie_segmentation_landscape.pt"))
    convs = [n for n in m.graph.nodes() if n.kind() == "aten::_convolution"]
    assert convs
    for n in convs:
        allow_tf32 = list(n.inputs())[-1]
        assert allow_tf32.node().kind() == "prim::Constant" and allow_tf32.toIValue() is False


@pytest.mark.parametrize("name,size", [("pose_detection", 224), ("pose_landmark_lite", 256)])
def test_exported_modules_take_any_batch(tmp_path, name, size):
    """Traced at batch 1, the modules still run several images at once (batched analysis): the
    graph's batch of 1 in reshapes and depth-to-space follows the input's; each image's outputs
    are its own (up to the batched kernels' summation order)."""
    import convert_all

    convert_all.convert(name, MODELS_DIR, str(tmp_path))
    m = torch.jit.load(str(tmp_path / f"{name}.pt"))
    x = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        batched = m(x)
        single = [m(x[i:i + 1]) for i in range(3)]
    for k, out in enumerate(batched):
        assert out.shape[0] == 3
        for i in range(3):
            scale = float(single[i][k].abs().max()) + 1e-6
            assert float((out[i:i + 1] - single[i][k]).abs().max()) <= 1e-5 * scale + 1e-6, (name, k, i)
