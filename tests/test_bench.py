"""`edge-classifier bench`: it runs on the real model and sample video and reports every figure; no timing asserted."""

import json

import pytest

from helpers import run_cli


def test_bench_reports_every_figure_as_json():
    """A short bench run prints one JSON document with latency, decode, end-to-end, memory, start-up and import floor."""
    out = run_cli("bench", "--iterations", "20", "--frames", "400")
    report = json.loads(out.stdout)
    e2e = report["end_to_end"]
    assert (0, 400, 400, 0) == (out.returncode, report["decode"]["frames"], e2e["frames"], e2e["frames_dropped"])
    assert ["int8"] == list(report["bare_inference"])
    assert (True, True, True) == (0 < e2e["ratio_to_bound"], 0 < e2e["ratio_to_cpu_bound"], "rss_growth_mb" in e2e)
    startup, floor = report["startup"], report["imports_only"]
    assert (True, True) == (0 < startup["process_start_to_first_result_s"], 0 < floor["rss_mb"] < startup["rss_mb"])


def test_bench_with_a_missing_video_is_one_line_and_exit_1(tmp_path):
    """A --video that does not exist is named in one error line, exit 1."""
    out = run_cli("bench", "--video", str(tmp_path / "none.mp4"))
    assert (1, f"error: --video {tmp_path / 'none.mp4'} does not exist\n") == (out.returncode, out.stderr)


def test_bench_float_twin_is_measured_beside_int8(tmp_path):
    """--float-model adds a float32 row, measured the same way as the int8 model."""
    tf = pytest.importorskip("tensorflow", reason="the build extra (TensorFlow) is not installed")
    keras = pytest.importorskip("tf_keras")
    inputs = keras.Input((96, 96, 3))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(inputs)))
    twin = tmp_path / "twin.tflite"
    twin.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    out = run_cli("bench", "--iterations", "5", "--frames", "20", "--float-model", str(twin))
    rows = json.loads(out.stdout)["bare_inference"]
    assert (0, ["int8", "float32"], "float32") == (out.returncode, list(rows), rows["float32"]["input_dtype"])


def test_bench_with_a_missing_float_twin_stops_before_measuring(tmp_path):
    """A --float-model that does not exist is named at once, exit 1, nothing printed on stdout."""
    out = run_cli("bench", "--float-model", str(tmp_path / "twin.tflite"))
    assert (1, f"error: --float-model {tmp_path / 'twin.tflite'} does not exist\n", "") == (
        out.returncode, out.stderr, out.stdout)  # fmt: skip
