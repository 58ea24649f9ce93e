#!/usr/bin/env python3
"""Verify the converted modules against the real TFLite runtime and store expected values.

For every model and every fixed real-image case (cases.py) this runs
  * the real TFLite interpreter (WebAssembly build from @tensorflow/tfjs-tflite, under Node,
    scripts/mediapipe/runtime/run_tflite.js; fetch it with runtime/fetch_tflite_runtime.sh)
  * the converter's PyTorch module (tflite_to_torch.load)
on the same float input, reports max abs errors per output, and writes
  tests/data/vision/<case>.input.npz           the half-size uint8 input of the case
  tests/data/vision/<model>__<case>.npz        the runtime's outputs (small subsets, float32)
  tests/data/vision/errors.json                the measured errors
so tests/python/test_mediapipe_convert.py can re-check the converter without Node.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import cases as C  # noqa: E402
import tflite_to_torch as T  # noqa: E402
import tflite_edit as E  # noqa: E402
import vision_meta as V  # noqa: E402

MODELS = ["pose_detection", "pose_landmark_lite", "pose_landmark_full", "pose_landmark_heavy",
          "selfie_segmentation", "selfie_segmentation_landscape"]


def run_runtime(model_path, inputs, wasm_dir, runtime_model=None):
    """inputs: {case: float32 NHWC array} -> {case: {tflite_output_name: array}}"""
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for name, x in inputs.items():
            p = os.path.join(tmp, name + ".f32")
            x.astype("<f4").tofile(p)
            files.append(p)
        out = os.path.join(tmp, "out")
        subprocess.run(["node", os.path.join(HERE, "runtime", "run_tflite.js"), "--wasm-dir",
                        wasm_dir, "--model", runtime_model or model_path, "--out", out] + files,
                       check=True)
        res = {}
        for name in inputs:
            meta = json.load(open(os.path.join(out, name + ".json")))
            res[name] = {}
            for o in meta["outputs"]:
                arr = np.fromfile(os.path.join(out, f"{name}.{o['name']}.f32"), "<f4")
                res[name][o["name"]] = arr.reshape(o["shape"])
            res[name]["__nodes__"] = meta.get("executed_nodes")
        return res


def run_reference(model_name, path, inputs, wasm_dir, mod, tmp_models):
    """Runtime outputs for all cases. Models with MediaPipe's custom transpose conv run as
    [original graph cut before the op] -> [the op as builtin TRANSPOSE_CONV + LOGISTIC]
    (tflite_edit.py); extra keys record the intermediate and the isolated tail."""
    model = mod.m
    idx = [i for i, o in enumerate(model.operators) if o.name == "Convolution2DTransposeBias"]
    if not idx:
        return run_runtime(path, inputs, wasm_dir), None
    data = open(path, "rb").read()
    head, x_id = E.truncate_at_op(data, idx[0])
    tail = E.transpose_conv_tail(model, mod, idx[0], builtin=True)
    hp = os.path.join(tmp_models, model_name + ".head.tflite")
    tp = os.path.join(tmp_models, model_name + ".tail.tflite")
    open(hp, "wb").write(head)
    open(tp, "wb").write(tail)
    heads = run_runtime(hp, inputs, wasm_dir)
    mids = {cn: list(v.values())[0] for cn, v in heads.items()}
    tails = run_runtime(tp, mids, wasm_dir)
    refs = {}
    for cn in inputs:
        refs[cn] = {k: v for k, v in tails[cn].items()}
        refs[cn]["__mid__"] = mids[cn]
        refs[cn]["__nodes__"] = {"head": heads[cn]["__nodes__"], "tail": tails[cn]["__nodes__"]}
    return refs, x_id


def torch_outputs(mod, x_nhwc):
    x = torch.from_numpy(x_nhwc).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        ys = mod(x)
    out = {}
    for tid, y in zip(mod.output_ids, ys):
        y = y.numpy()
        if y.ndim == 4:
            y = np.transpose(y, (0, 2, 3, 1))  # back to TFLite NHWC for comparison
        out[mod.m.tensors[tid].name] = y
    return out


def errors_for(model_name, ref, got):
    """max abs error per named output (+ landmark pixel errors)."""
    spec = V.MODEL_SPECS[model_name]
    rows = {}
    for tfl_name, friendly in spec["outputs_by_tflite_name"].items():
        r, g = ref[tfl_name], got[tfl_name]
        assert r.shape == g.shape, (tfl_name, r.shape, g.shape)
        rows[friendly] = float(np.abs(r - g).max())
        if friendly == "landmarks":
            r5, g5 = r.reshape(-1, 5), g.reshape(-1, 5)
            rows["landmarks_xy_px"] = float(np.abs(r5[:, :2] - g5[:, :2]).max())
            rows["landmarks_z"] = float(np.abs(r5[:, 2] - g5[:, 2]).max())
            rows["landmarks_vis_presence_logits"] = float(np.abs(r5[:, 3:] - g5[:, 3:]).max())
        if friendly in ("segmentation", "heatmap", "scores", "boxes"):
            rows[friendly + "_ref_absmax"] = float(np.abs(r).max())
    return rows


def subset(model_name, ref):
    """Small expected-value subset of the runtime outputs (keeps each file well < 100 KB)."""
    spec = V.MODEL_SPECS[model_name]
    out = {}
    for tfl_name, friendly in spec["outputs_by_tflite_name"].items():
        r = ref[tfl_name].astype(np.float32)
        if friendly == "scores":
            out["scores"] = r
        elif friendly == "boxes":
            scores = ref[[k for k, v in spec["outputs_by_tflite_name"].items()
                          if v == "scores"][0]].reshape(-1)
            top = np.argsort(-scores)[:64].astype(np.int32)
            out["boxes_top_index"] = top
            out["boxes_top"] = r[0, top]
            out["boxes_stride_index"] = np.arange(0, r.shape[1], 23, dtype=np.int32)
            out["boxes_stride"] = r[0, ::23]
        elif friendly in ("segmentation",):
            out[friendly + "_sub4"] = r[0, ::4, ::4, 0]
        elif friendly == "heatmap":
            out["heatmap_sub8"] = r[0, ::8, ::8, :]
        else:
            out[friendly] = r
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models-dir", default=os.path.join(ROOT, "third_party_models", "mediapipe"))
    ap.add_argument("--wasm-dir", default=os.path.join(ROOT, "third_party_models", "tflite-web"))
    ap.add_argument("--data-dir", default=os.path.join(ROOT, "tests", "data", "vision"))
    ap.add_argument("--models", nargs="*", default=MODELS)
    a = ap.parse_args(argv)
    os.makedirs(a.data_dir, exist_ok=True)
    err_path = os.path.join(a.data_dir, "errors.json")
    report = json.load(open(err_path)) if os.path.exists(err_path) else {}
    for model_name in a.models:
        fam = C.family(model_name)
        case_names = [k for k, v in C.CASES.items() if v[0] == fam]
        inputs, u8s = {}, {}
        for cn in case_names:
            p = os.path.join(a.data_dir, cn + ".input.npz")
            if os.path.exists(p):
                u8 = np.load(p)["rgb_half"]
            else:
                u8 = C.make_case(*C.CASES[cn])
                np.savez_compressed(p, rgb_half=u8)
            u8s[cn] = u8
            inputs[cn] = C.model_input(u8, fam)
        path = os.path.join(a.models_dir, model_name + ".tflite")
        mod = T.load(path)
        with tempfile.TemporaryDirectory() as tmp_models:
            refs, mid_id = run_reference(model_name, path, inputs, a.wasm_dir, mod, tmp_models)
        report[model_name] = {"runtime": V.RUNTIME_DESC, "cases": {}}
        if mid_id is not None:
            report[model_name]["runtime_model_note"] = V.RUNTIME_SPLIT_NOTE
        for cn in case_names:
            got = torch_outputs(mod, inputs[cn])
            errs = errors_for(model_name, refs[cn], got)
            if mid_id is not None:
                x = torch.from_numpy(inputs[cn]).permute(0, 3, 1, 2).contiguous()
                rt_mid = torch.from_numpy(refs[cn]["__mid__"]).permute(0, 3, 1, 2)
                with torch.no_grad():
                    mine_mid = mod.run_tensors(x, [mid_id])[mid_id]
                    # converter's tail (custom op + sigmoid) fed with the runtime's intermediate
                    out_id = mod.output_ids[0]
                    tail_only = mod.run_tensors(None, [out_id], {mid_id: rt_mid})[out_id]
                errs["head_output_before_transpose_conv"] = float(
                    (mine_mid - rt_mid).abs().max())
                ref_out = list(v for k, v in refs[cn].items() if not k.startswith("__"))[0]
                errs["transpose_conv_tail_only"] = float(np.abs(
                    np.transpose(tail_only.numpy(), (0, 2, 3, 1)) - ref_out).max())
            errs["runtime_executed_nodes"] = refs[cn]["__nodes__"]
            report[model_name]["cases"][cn] = errs
            np.savez_compressed(os.path.join(a.data_dir, f"{model_name}__{cn}.npz"),
                                **subset(model_name, refs[cn]))
            print(model_name, cn, json.dumps({k: v for k, v in errs.items()
                                              if not k.startswith("runtime")}))
    with open(err_path, "w") as fh:
        json.dump(report, fh, indent=1, sort_keys=True)
    print("wrote", err_path)


if __name__ == "__main__":
    main()
