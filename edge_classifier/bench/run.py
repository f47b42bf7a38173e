"""`edge-classifier bench`: latency, decode rate, end-to-end throughput, loop overhead, RSS, start-up.

In the same run, the references the daemon is measured against (a plain sequential loop, and the seed's
Keras `model.predict` per frame where TensorFlow is installed) and `targets`: each target's value,
threshold and whether it was met.
"""

from __future__ import annotations

import contextlib
import os
import platform
import threading
import time
from dataclasses import asdict, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_classifier.bench.frames import FrameLimit
from edge_classifier.bench.http_bench import http_bench
from edge_classifier.bench.probe import imports_only, startup_and_memory
from edge_classifier.bench.references import KERAS_FRAMES, keras_predict, sequential_loop
from edge_classifier.bench.search import search_bench
from edge_classifier.capture.opening import open_capture
from edge_classifier.capture.source import OpenCVSource
from edge_classifier.config.settings import Config, SourceConfig
from edge_classifier.errors import InputError
from edge_classifier.model.loading import default_model_dirs, open_classifier
from edge_classifier.model.runner import OutputNames, interpreter_class, io_specs, load_interpreter, run_raw
from edge_classifier.mqtt.memory import MemoryPublisher
from edge_classifier.service.compose import Seams, build_service
from edge_classifier.service.notify import Notifier

SAMPLE_VIDEO = "sample/garments.mp4"
# Other processes slow whichever run they overlap: the daemon and its sequential reference run in turn,
# ROUNDS times each, and each keeps its fastest round (as timeit keeps its minimum); all rounds are listed.
ROUNDS = 2


def default_video() -> Path:
    for folder in default_model_dirs():
        if (folder / SAMPLE_VIDEO).is_file():
            return folder / SAMPLE_VIDEO
    raise InputError(f"no --video given and the sample video {SAMPLE_VIDEO} was not found")


def bare_latency(model_path: Path, threads: int, iterations: int, outputs: OutputNames | None = None) -> dict[str, Any]:
    """Invoke on a fixed random input; the first 10 runs are warm-up and not counted."""
    interpreter = load_interpreter(model_path, num_threads=threads)
    input_spec, output_spec = io_specs(interpreter, outputs)
    rng = np.random.default_rng(0)
    if input_spec.quant.dtype == np.float32:
        tensor = rng.uniform(-1, 1, input_spec.shape).astype(np.float32)
    else:
        info = np.iinfo(input_spec.quant.dtype)
        tensor = rng.integers(info.min, info.max, input_spec.shape, endpoint=True).astype(input_spec.quant.dtype)
    seconds = []
    for i in range(iterations + 10):
        start = time.perf_counter()
        run_raw(interpreter, input_spec, output_spec, tensor)
        if i >= 10:
            seconds.append(time.perf_counter() - start)
    ms = np.array(seconds) * 1000
    return {
        "model": str(model_path),
        "input_dtype": input_spec.quant.dtype.name,
        "threads": threads,
        "iterations": iterations,
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p95_ms": round(float(np.percentile(ms, 95)), 3),
        "rate_per_s": round(1000.0 / float(ms.mean()), 1),
    }


def decode_rate(source_config: SourceConfig, frames: int) -> dict[str, Any]:
    """Decode `frames` frames alone, opened as the daemon opens them, rewinding at the end of the file."""
    cap = open_capture(source_config)
    ok, frame = cap.read()
    if not ok:
        cap.release()
        raise InputError(f"--video {source_config.uri}: no frame could be decoded")
    shape, decoded, start = frame.shape, 0, time.perf_counter()
    while decoded < frames:
        ok, _ = cap.read()
        if ok:
            decoded += 1
        elif not cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
            break
    seconds = time.perf_counter() - start
    cap.release()
    return {
        "frames": decoded,
        "frame_shape": list(shape),
        "decode_threads": source_config.decode_threads,
        "rate_per_s": round(decoded / seconds, 1),
    }


def end_to_end(config: Config, source_config: SourceConfig, frames: int) -> dict[str, Any]:
    """The service as `run` wires it, on `frames` frames of the (looped) video; messages kept in memory."""
    bench_config = replace(config, device_id="bench", model=replace(config.model, selftest=False))
    publisher = MemoryPublisher()
    cpu_start = time.process_time()
    with contextlib.ExitStack() as stack:
        source = FrameLimit(stack.enter_context(OpenCVSource(source_config)), frames)
        seams = Seams(source=source, publisher=publisher, notifier=Notifier({}))
        service = build_service(bench_config, stack, threading.Event(), seams)
        reader = service.metrics.reader()
        service.loop.run(threading.Event())
        stats = source.stats()
    frames_total = service.metrics.frames_total
    cpu_ms_per_frame = 1000 * (time.process_time() - cpu_start) / max(1, frames_total)
    stages = {stage: None if s is None else asdict(s) for stage, s in reader.read().timing_ms.items()}
    outside = sum((stages[s] or {}).get("mean", 0.0) for s in ("preprocess", "postprocess", "publish"))
    return {
        "frames": frames_total,
        "frames_dropped": stats.frames_dropped,
        "rate_per_s": round(source.rate_per_s(), 1),
        "stage_ms": stages,
        "loop_outside_model_ms_mean": round(outside, 3),
        "messages": len(publisher.messages),
        # CPU time of all threads (decode, loop, interpreter) per frame, start-up included; the
        # cores can do no better than cores / cpu_ms_per_frame, however well the stages overlap.
        "cpu_ms_per_frame": round(cpu_ms_per_frame, 3),
        "cpu_bound_rate_per_s": round(1000 * len(os.sched_getaffinity(0)) / cpu_ms_per_frame, 1),
        "rss_growth_mb": round((source.rss_end - source.rss_warm) / 2**20, 2),
        "critical_path": critical_path(source, stages),
    }


def critical_path(source: FrameLimit, stages: dict[str, Any]) -> dict[str, Any]:
    """FrameLimit's bound (see bench/frames.py), with the loop's own overhead: its work beyond the timed stages."""
    path = source.critical_path()
    if path:
        timed = sum((stages[s] or {}).get("mean", 0.0) for s in ("preprocess", "inference", "postprocess", "publish"))
        # Voting, payloads, metrics, state, housekeeping and the hand-off in source.get(), per frame.
        path["loop_overhead_ms"] = round(path["loop_work_ms"] - timed, 3)
    return path


def fastest(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the highest rate, with every run's rate beside it."""
    return {**max(runs, key=lambda run: float(run["rate_per_s"])), "rounds_rate_per_s": [r["rate_per_s"] for r in runs]}


def target(value: float | None, rule: str, threshold: float) -> dict[str, Any]:
    """One target: its value, the rule it must satisfy and whether it does (None: not measured here)."""
    checks = {">=": value is not None and value >= threshold, "<=": value is not None and value <= threshold,
              ">": value is not None and value > threshold}  # fmt: skip
    return {"value": value, "rule": rule, "threshold": threshold, "met": None if value is None else checks[rule]}


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def targets(report: dict[str, Any]) -> dict[str, Any]:
    """Issue 14 item 8's targets, from this run's figures."""
    e2e, refs, daemon = report["end_to_end"], report["references"], report["startup"]
    keras = refs["keras_predict"]
    measured = "skipped" not in keras
    return {
        "daemon_rate_over_keras_rate": target(ratio(e2e["rate_per_s"], keras["rate_per_s"]) if measured else None,
                                              ">=", 50),
        "keras_rss_over_daemon_rss": target(ratio(keras["rss_mb"], daemon["rss_mb"]) if measured else None, ">=", 5),
        "daemon_rate_over_sequential_rate": target(ratio(e2e["rate_per_s"], refs["sequential"]["rate_per_s"]),
                                                   ">", 1),
        "rate_over_critical_path_bound": target(e2e["critical_path"].get("ratio"), ">=", 0.9),
        "daemon_rss_anon_mb": target(daemon["rss_anon_mb"], "<=", 40),
    }  # fmt: skip


def memory(daemon: dict[str, Any], floor: dict[str, Any], fixed_threshold: dict[str, Any]) -> dict[str, Any]:
    """The daemon's anonymous and file-backed RSS beside the import floor's, and what the daemon adds."""
    return {
        "malloc_env": daemon["malloc_env"],
        "anon_mb": {"imports_only": floor["rss_anon_mb"], "daemon": daemon["rss_anon_mb"],
                    "daemon_minus_imports": round(daemon["rss_anon_mb"] - floor["rss_anon_mb"], 1)},
        "file_mb": {"imports_only": floor["rss_file_mb"], "daemon": daemon["rss_file_mb"],
                    "daemon_minus_imports": round(daemon["rss_file_mb"] - floor["rss_file_mb"], 1)},
        # Where the daemon's anonymous memory appears: after imports, after build_service (model, self-test,
        # capture thread started), after the first result, after the settling frames.
        "daemon_anon_steps_mb": daemon["anon_steps_mb"],
        # The same daemon with a fixed malloc trim threshold (probe.MALLOC_ENV): less anonymous memory, slower.
        "daemon_fixed_malloc_threshold": {key: fixed_threshold[key] for key in ("malloc_env", "rss_anon_mb",
                                                                                "rss_file_mb")},
    }  # fmt: skip


def run_bench(
    config: Config,
    float_model: Path | None,
    video: Path | None,
    iterations: int,
    frames: int,
    keras_frames: int = KERAS_FRAMES,
) -> dict[str, Any]:
    video = video or default_video()
    if not video.is_file():
        raise InputError(f"--video {video} does not exist")
    if float_model and not float_model.is_file():
        raise InputError(f"--float-model {float_model} does not exist")
    # Every frame, as fast as the loop takes them, the video looped; decoder threads as configured.
    source_config = replace(config.source, uri=str(video), file_rate="max", loop=True)
    classifier, model = open_classifier(replace(config.model, selftest=False))
    model_path, spec, logits = classifier.model_path, classifier.preprocess.spec, classifier.logits
    manifest = classifier.manifest.path if classifier.manifest is not None else None
    outputs = classifier.manifest.outputs if classifier.manifest is not None else None  # which output is which
    classifier.close()
    assert model_path is not None  # open_classifier always loads a file
    threads = config.model.num_threads
    _, package = interpreter_class()
    try:
        package_version = version(package)
    except PackageNotFoundError:
        package_version = "unknown"
    report: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "interpreter": f"{package} {package_version}",
            "threads": threads,
            "cores": len(os.sched_getaffinity(0)),
            # Other processes compete for the same cores: timings on a shared machine move with this.
            "load_average_1min": round(os.getloadavg()[0], 2),
        },
        "model": model.as_dict(),
        "bare_inference": {"int8": bare_latency(model_path, threads, iterations, outputs)},
        "decode": decode_rate(source_config, frames),
    }
    daemon_runs, sequential_runs = [], []
    for _ in range(ROUNDS):
        daemon_runs.append(end_to_end(config, source_config, frames))
        sequential_runs.append(sequential_loop(model_path, outputs, spec, logits, threads, source_config, frames))
    report |= {
        "end_to_end": fastest(daemon_runs),
        "references": {
            "sequential": fastest(sequential_runs),
            "keras_predict": keras_predict(manifest, video, keras_frames),
        },
        "startup": startup_and_memory(config, video),
        "imports_only": imports_only(),
        "http": http_bench(config, video, min(iterations, 100)),
    }
    report["memory"] = memory(report["startup"], report["imports_only"],
                              startup_and_memory(config, video, tuned_malloc=True))  # fmt: skip
    report["search"] = search_bench()  # brute-force visual search at 1k, 10k and 100k catalogue items
    if float_model:
        report["bare_inference"]["float32"] = bare_latency(float_model, threads, iterations)
    bound = min(report["bare_inference"]["int8"]["rate_per_s"], report["decode"]["rate_per_s"])
    e2e = report["end_to_end"]
    e2e["ratio_to_bound"] = round(e2e["rate_per_s"] / bound, 3)
    e2e["ratio_to_cpu_bound"] = round(e2e["rate_per_s"] / e2e["cpu_bound_rate_per_s"], 3)
    report["targets"] = targets(report)
    return report
