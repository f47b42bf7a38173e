"""`edge-classifier bench`: it runs on the real model and sample video and reports every figure; no timing asserted."""

import importlib.util
import json
import subprocess
import sys

import pytest

from edge_classifier.bench.references import keras_predict
from edge_classifier.bench.run import target
from helpers import DEFAULT_MANIFEST, SAMPLE_VIDEO, run_cli

TARGETS = [
    "daemon_rate_over_keras_rate",
    "keras_rss_over_daemon_rss",
    "daemon_rate_over_sequential_rate",
    "rate_over_critical_path_bound",
    "daemon_rss_anon_mb",
]
HAS_TENSORFLOW = all(importlib.util.find_spec(name) is not None for name in ("tensorflow", "tf_keras"))
# The whole bench, Keras child included (TensorFlow's import, then 100 frames at 10-20 frames/s).
BENCH_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def report():
    """One short bench run shared by the structure tests (the Keras child runs its default 100 frames)."""
    out = run_cli("bench", "--iterations", "20", "--frames", "400", "--keras-frames", "20", timeout=BENCH_TIMEOUT_S)
    assert 0 == out.returncode, out.stderr
    return json.loads(out.stdout)


@pytest.mark.slow  # a whole bench run (30-60 s)
def test_bench_reports_every_figure_as_json(report):
    """A short bench run prints one JSON document with latency, decode, end-to-end, memory, start-up and import floor."""
    e2e = report["end_to_end"]
    assert (400, 400, 0) == (report["decode"]["frames"], e2e["frames"], e2e["frames_dropped"])
    assert ["int8"] == list(report["bare_inference"])
    assert (True, True, True) == (
        0 < e2e["ratio_to_bound"], 0 < e2e["ratio_to_cpu_bound"], "rss_growth_mb" in e2e), e2e  # fmt: skip
    startup, floor = report["startup"], report["imports_only"]
    assert (True, True) == (
        0 < startup["process_start_to_first_result_s"], 0 < floor["rss_mb"] < startup["rss_mb"]
    ), (startup, floor)  # fmt: skip


@pytest.mark.slow  # a whole bench run (30-60 s)
def test_bench_bounds_the_rate_by_the_slowest_thread(report):
    """The critical path: decode per frame against the loop's work per frame, the bound and the run's share of it."""
    path = report["end_to_end"]["critical_path"]
    assert {"loop", "capture", "other"} == set(path["threads_cpu_ms"]), path
    slowest = max(path["capture_decode_ms"], path["loop_work_ms"])
    assert path["slowest"] == ("capture" if path["capture_decode_ms"] > path["loop_work_ms"] else "loop"), path
    assert path["bound_rate_per_s"] == pytest.approx(1000 / slowest, rel=0.01), path
    assert path["ratio"] == pytest.approx(report["end_to_end"]["rate_per_s"] / path["bound_rate_per_s"], abs=0.01)
    assert (True, True) == (0 < path["capture_decode_ms"], 0 <= path["loop_wait_ms"] < path["loop_work_ms"]), path
    stages = report["end_to_end"]["stage_ms"]
    timed = sum(stages[stage]["mean"] for stage in ("preprocess", "inference", "postprocess", "publish"))
    assert path["loop_overhead_ms"] == pytest.approx(path["loop_work_ms"] - timed, abs=0.002), path


@pytest.mark.slow  # a whole bench run (30-60 s)
def test_bench_measures_the_sequential_reference_on_as_many_frames(report):
    """The plain one-thread loop classifies the same number of frames, with its per-stage means."""
    sequential = report["references"]["sequential"]
    assert (400, ["decode", "preprocess", "inference", "postprocess"]) == (
        sequential["frames"], list(sequential["stage_ms_mean"]))  # fmt: skip
    assert (True, True) == (
        0 < sequential["rate_per_s"], all(0 <= ms for ms in sequential["stage_ms_mean"].values())), sequential  # fmt: skip


@pytest.mark.slow  # a whole bench run (30-60 s)
def test_bench_keeps_the_fastest_of_alternating_rounds(report):
    """The daemon and the sequential loop run in turn, twice each; each keeps its fastest round and lists all."""
    for run in (report["end_to_end"], report["references"]["sequential"]):
        assert (2, max(run["rounds_rate_per_s"])) == (len(run["rounds_rate_per_s"]), run["rate_per_s"]), run


@pytest.mark.skipif(not HAS_TENSORFLOW, reason="the build extra (TensorFlow) is not installed")
@pytest.mark.slow  # a whole bench run (30-60 s)
def test_bench_measures_the_keras_reference_where_tensorflow_is(report):
    """With TensorFlow, the seed's Keras predict() per frame runs in a child: same architecture, its rate and RSS."""
    keras = report["references"]["keras_predict"]
    assert (20, "MobileNetV2", 1.0, [160, 160, 3], 10) == (
        keras["frames"], keras["architecture"], keras["alpha"], keras["input"], keras["classes"]), keras  # fmt: skip
    assert (True, True, True) == (
        0 < keras["rate_per_s"], 0 < keras["rss_mb"] <= keras["peak_rss_mb"], "weights=None" in keras["weights"]
    ), keras  # fmt: skip


@pytest.mark.slow  # a whole bench run (30-60 s)
def test_bench_reports_each_target_with_value_threshold_and_verdict(report):
    """Every target has a value, a rule and a threshold; `met` follows from them, None only when not measured."""
    targets = report["targets"]
    assert TARGETS == list(targets)
    for name, row in targets.items():
        assert ["value", "rule", "threshold", "met"] == list(row), name
        assert row == target(row["value"], row["rule"], row["threshold"]), name
    measured = [name for name, row in targets.items() if row["met"] is not None]
    assert measured == (TARGETS if HAS_TENSORFLOW else TARGETS[2:]), targets


@pytest.mark.slow  # a whole bench run (30-60 s)
def test_bench_puts_the_daemon_memory_beside_the_import_floor(report):
    """Anonymous and file-backed RSS of the daemon beside the imports-only floor's, with the steps in between."""
    memory = report["memory"]
    for kind in ("anon_mb", "file_mb"):
        row = memory[kind]
        assert 0 < row["imports_only"] < row["daemon"], (kind, row)
        assert row["daemon_minus_imports"] == pytest.approx(row["daemon"] - row["imports_only"], abs=0.11), kind
    assert (memory["anon_mb"]["daemon"], memory["malloc_env"]) == (
        report["startup"]["rss_anon_mb"], report["startup"]["malloc_env"])  # fmt: skip
    fixed = memory["daemon_fixed_malloc_threshold"]
    assert (True, True) == ("MALLOC_TRIM_THRESHOLD_=" in fixed["malloc_env"], 0 < fixed["rss_anon_mb"]), fixed
    steps = memory["daemon_anon_steps_mb"]
    assert ["imports", "model_loaded_self_tested_source_open", "first_result"] == list(steps)[:3], steps
    assert list(steps.values())[-1] == memory["anon_mb"]["daemon"], steps


def test_keras_reference_is_skipped_with_its_reason(monkeypatch):
    """No Keras frames, no manifest or no TensorFlow: `skipped` says why, and no child is started."""
    assert {"skipped": "not run (0 Keras frames asked for)"} == keras_predict(DEFAULT_MANIFEST, SAMPLE_VIDEO, 0)
    assert "no manifest" in keras_predict(None, SAMPLE_VIDEO, 5)["skipped"]
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tensorflow" else real_find_spec(name, *a)
    )
    assert "TensorFlow is not installed" in keras_predict(DEFAULT_MANIFEST, SAMPLE_VIDEO, 5)["skipped"]


def test_the_bench_never_imports_tensorflow():
    """The runtime package's bench reaches Keras only through a child process: importing it loads no TensorFlow."""
    code = (
        "import sys, edge_classifier.bench.run, edge_classifier.bench.probe, edge_classifier.bench.references; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (0, "[]\n") == (out.returncode, out.stdout), out.stderr


def test_bench_with_a_missing_video_is_one_line_and_exit_1(tmp_path):
    """A --video that does not exist is named in one error line, exit 1."""
    out = run_cli("bench", "--video", str(tmp_path / "none.mp4"))
    assert (1, f"error: --video {tmp_path / 'none.mp4'} does not exist\n") == (out.returncode, out.stderr)


@pytest.mark.slow  # a whole bench run (30-60 s)
def test_bench_float_twin_is_measured_beside_int8(tmp_path):
    """--float-model adds a float32 row, measured the same way as the int8 model."""
    tf = pytest.importorskip("tensorflow", reason="the build extra (TensorFlow) is not installed")
    keras = pytest.importorskip("tf_keras")
    inputs = keras.Input((96, 96, 3))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(inputs)))
    twin = tmp_path / "twin.tflite"
    twin.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    out = run_cli(
        "bench", "--iterations", "5", "--frames", "20", "--keras-frames", "0", "--float-model", str(twin),
        timeout=BENCH_TIMEOUT_S,
    )  # fmt: skip
    rows = json.loads(out.stdout)["bare_inference"]
    assert (0, ["int8", "float32"], "float32") == (out.returncode, list(rows), rows["float32"]["input_dtype"])


def test_bench_with_a_missing_float_twin_stops_before_measuring(tmp_path):
    """A --float-model that does not exist is named at once, exit 1, nothing printed on stdout."""
    out = run_cli("bench", "--float-model", str(tmp_path / "twin.tflite"))
    assert (1, f"error: --float-model {tmp_path / 'twin.tflite'} does not exist\n", "") == (
        out.returncode, out.stderr, out.stdout)  # fmt: skip


def test_bench_refuses_a_negative_keras_frame_count():
    """--keras-frames -1 is refused by the argument parser with one line, exit 1."""
    out = run_cli("bench", "--keras-frames", "-1")
    assert (1, "edge-classifier bench: error: argument --keras-frames: -1 is below 0 (see --help)\n") == (
        out.returncode, out.stderr)  # fmt: skip


@pytest.mark.slow
def test_soak_samples_the_running_daemon(broker):
    """bench --soak runs the daemon as a child and reports its memory, threads, fds and log lines over time."""
    out = run_cli("bench", "--soak", "4", "--set", "mqtt.host=127.0.0.1", "--set", f"mqtt.port={broker.port}",
                  timeout=BENCH_TIMEOUT_S)  # fmt: skip
    report = json.loads(out.stdout)
    assert (0, 0, 4, ["fds", "rss_anon_mb", "rss_mb", "t_s", "threads"]) == (
        out.returncode, report["exit_code"], report["seconds"], sorted(report["samples"][-1]),
    ), out.stderr  # fmt: skip
    assert (True, True, 1) == (
        report["frames"] > 0, report["samples"][-1]["threads"] >= 2, len(report["log_lines_per_minute"]),
    ), report  # fmt: skip
