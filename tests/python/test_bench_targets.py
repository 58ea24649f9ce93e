"""Issue 11's target table of the GPU benchmark (scripts/gpu/bench_reference.py targets_table):
each target read from the right measurement, met / not met at its threshold, and "not measured"
where this run did not measure it."""
import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_reference", os.path.join(ROOT, "scripts", "gpu", "bench_reference.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def one_gpu_run(pair_s=0.2):
    rows = {"C++ standin (Half, CFG split)": {"peak_fraction_pct": 55.0, "peak_mem_gib": 10.9}}
    cpp = {"settings": {"window": 24}, "unet_bench": [{"variant": "split", "median_s": pair_s},
                                                     {"variant": "batched", "error": "out of memory"}],
           "runs": {"split": {"frames": 48}}}
    compiled = {"modes": {"eager": {"seconds": {"cond": 0.23, "uncond": 0.20}},
                          "compile": {"seconds": {"cond": 0.15, "uncond": 0.13}},
                          "compile-max": {"seconds": {"cond": 0.14, "uncond": 0.12}},
                          "aoti": {"error": "cond: crashed"}}}
    rep = {"frames": 30, "source_size": [768, 576], "seconds": {"analysis": 0.25, "load_bundle": 5.0}}
    projection = {"windows": 15, "s_per_window_step": 0.1, "per_frame_other_s": 0.01, "analysis_per_frame_s": 0.002}
    return rows, cpp, rep, compiled, projection


def test_one_gpu_run_fills_its_targets(bench):
    rows, cpp, rep, compiled, projection = one_gpu_run()
    t, lines = bench.targets_table(rows, cpp, rep, compiled, None, projection)
    # the better compiled mode is compile-max (0.26 s); 0.26 / 0.2 = 1.3x >= 1.2
    assert t["cpp_vs_compile"]["value"] == pytest.approx(0.26 / 0.2)
    assert t["cpp_vs_compile"]["met"] is True
    assert "compile-max" in t["cpp_vs_compile"]["measured"]
    assert t["peak_fraction"]["met"] is True
    assert t["analysis_fps"]["value"] == pytest.approx(120.0) and t["analysis_fps"]["met"] is True
    # 15 windows x 25 steps x 0.1 s + 300 x 0.012 s + 5 s load = 37.5 + 3.6 + 5
    assert t["frames_300"]["value"] == pytest.approx(46.1) and t["frames_300"]["met"] is True
    assert t["window_memory"]["met"] is True
    for key in ("fp8_speedup", "two_gpus"):
        assert t[key]["met"] is None and "not measured" in t[key]["measured"]
    assert len(lines) == 2 + len(bench.TARGETS)


def test_thresholds_fail_when_missed(bench):
    rows, cpp, rep, compiled, projection = one_gpu_run(pair_s=0.25)  # 0.26 / 0.25 = 1.04x
    rows["C++ standin (Half, CFG split)"].update(peak_fraction_pct=26.0, peak_mem_gib=30.0)
    rep["seconds"]["analysis"] = 4.24  # 7 frames/s
    projection["s_per_window_step"] = 0.43
    fp8 = {"targets": {"speed": {"eager": {"speedup": 0.9, "variant": "fp8-channel"}, "compiled": None},
                       "quality_trained": ["fp8-channel"], "quality_random": []}}
    t, _ = bench.targets_table(rows, cpp, rep, compiled, fp8, projection)
    assert [t[k]["met"] for k in ("cpp_vs_compile", "peak_fraction", "fp8_speedup", "analysis_fps",
                                  "frames_300", "window_memory")] == [False] * 6


def test_two_gpu_run_reads_the_spread_run_and_ignores_it_elsewhere(bench):
    rows = {"C++ standin (Half, CFG split)": {"peak_fraction_pct": None, "peak_mem_gib": 10.9},
            "C++ standin (Half, CFG split@2dev)": {"peak_fraction_pct": None, "peak_mem_gib": 11.0}}
    cpp = {"settings": {"window": 24}, "runs": {
        "split": {"frames": 96},
        "split@2dev": {"frames": 96, "devices_used": 2, "speedup_vs_1_device": 1.85, "denoise_speedup_vs_1_device": 1.9}}}
    t, _ = bench.targets_table(rows, cpp, None, None, None, None)
    assert t["two_gpus"]["value"] == pytest.approx(1.85) and t["two_gpus"]["met"] is True
    assert t["window_memory"]["value"] == pytest.approx(10.9)  # one device's run, not the spread one
    for key in ("cpp_vs_compile", "peak_fraction", "frames_300", "analysis_fps"):
        assert t[key]["met"] is None


def test_fp8_is_met_only_by_a_variant_fast_and_close_enough(bench):
    rows, cpp, rep, compiled, projection = one_gpu_run()

    def fp8_of(speed, good):
        return {"targets": {"speed": {"eager": {"speedup": 0.9, "variant": "a"},
                                      "compiled": {"speedup": speed, "variant": "b"}},
                            "quality_trained": good, "quality_random": []}}
    met = bench.targets_table(rows, cpp, rep, compiled, fp8_of(1.5, ["a", "b"]), projection)[0]["fp8_speedup"]
    assert met["met"] is True and met["value"] == pytest.approx(1.5)
    too_far = bench.targets_table(rows, cpp, rep, compiled, fp8_of(1.5, ["a"]), projection)[0]["fp8_speedup"]
    assert too_far["met"] is False  # the fast variant misses 35 dB, the good one is slow


def test_300_frames_counts_the_warm_load_when_a_second_replace_ran(bench):
    rows, cpp, rep, compiled, projection = one_gpu_run()
    rep["seconds"]["load_bundle"] = 30.0  # the first start hashes the files and dry-runs the modules
    cold = bench.targets_table(rows, cpp, rep, compiled, None, projection)[0]["frames_300"]
    assert cold["value"] == pytest.approx(37.5 + 3.6 + 30.0) and "cold" in cold["measured"]
    warm_rep = {"frames": 30, "seconds": {"load_bundle": 4.0}}
    warm = bench.targets_table(rows, cpp, rep, compiled, None, projection, warm_rep)[0]["frames_300"]
    assert warm["value"] == pytest.approx(37.5 + 3.6 + 4.0) and "warm bundle load" in warm["measured"]


def test_analysis_is_read_from_the_warm_run_when_there_is_one(bench):
    rows, cpp, rep, compiled, projection = one_gpu_run()
    rep["seconds"]["analysis"] = 3.0  # the cold run shared the machine with the background compile
    cold = bench.targets_table(rows, cpp, rep, compiled, None, projection)[0]["analysis_fps"]
    assert cold["value"] == pytest.approx(10.0) and "warm" not in cold["measured"]
    warm_rep = {"frames": 30, "source_size": [768, 576], "seconds": {"load_bundle": 4.0, "analysis": 0.2}}
    warm = bench.targets_table(rows, cpp, rep, compiled, None, projection, warm_rep)[0]["analysis_fps"]
    assert warm["value"] == pytest.approx(150.0) and warm["met"] is True and "warm run" in warm["measured"]
