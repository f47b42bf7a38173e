"""`edge-classifier bench`: latency, decode rate, end-to-end throughput, loop overhead, RSS, start-up."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import threading
import time
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .capture import OpenCVSource
from .config import Config
from .daemon import default_model_dirs, open_classifier
from .errors import InputError
from .interpreter import interpreter_class, io_specs, load_interpreter, run_raw
from .loop import LoopSettings, run_loop
from .metrics import Metrics
from .notify import Notifier
from .publisher import MemoryPublisher
from .reporting import Reporter
from .topics import Topics
from .voting import Voter

SAMPLE_VIDEO = "sample/garments.mp4"


def default_video() -> Path:
    for folder in default_model_dirs():
        if (folder / SAMPLE_VIDEO).is_file():
            return folder / SAMPLE_VIDEO
    raise InputError(f"no --video given and the sample video {SAMPLE_VIDEO} was not found")


def bare_latency(model_path: Path, threads: int, iterations: int) -> dict[str, Any]:
    """Invoke on a fixed random input; the first 10 runs are warm-up and not counted."""
    interpreter = load_interpreter(model_path, num_threads=threads)
    input_spec, output_spec = io_specs(interpreter)
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


def decode_rate(video: Path) -> dict[str, Any]:
    cap = cv2.VideoCapture(str(video))
    frames, start = 0, time.perf_counter()
    ok, frame = cap.read()
    shape = frame.shape if ok else None
    while ok:
        frames += 1
        ok, _ = cap.read()
    seconds = time.perf_counter() - start
    cap.release()
    if not frames:
        raise InputError(f"--video {video}: no frame could be decoded")
    return {"frames": frames, "frame_shape": list(shape or ()), "rate_per_s": round(frames / seconds, 1)}


def end_to_end(config: Config, video: Path) -> dict[str, Any]:
    """The real capture thread and main loop on every frame of the video; messages kept in memory."""
    source_config = replace(config.source, uri=str(video), file_rate="max", loop=False)
    classifier, model = open_classifier(replace(config.model, selftest=False))
    publisher = MemoryPublisher()
    metrics = Metrics()
    topics = Topics(config.mqtt.prefix, "bench")
    start = time.perf_counter()
    with classifier, OpenCVSource(source_config) as source:
        reporter = Reporter(publisher, topics, 1, config.result.heartbeat_s, None, 1e9, time.monotonic())
        run_loop(
            LoopSettings("bench", model, config.result.top_k),
            source, classifier, publisher, reporter,
            Voter(config.result.vote_window, config.result.min_score), metrics, Notifier({}), threading.Event(),
        )  # fmt: skip
        seconds = time.perf_counter() - start
        stats = source.stats()
    # The loop publishes a metrics window when the source ends; it covers every frame but the first.
    last_metrics = json.loads([m for m in publisher.messages if m[0] == topics.metrics][-1][1])
    stages = last_metrics["timing_ms"]
    outside = sum((stages[s] or {}).get("mean", 0.0) for s in ("preprocess", "postprocess", "publish"))
    return {
        "frames": metrics.frames_total,
        "frames_dropped": stats.frames_dropped,
        "rate_per_s": round(metrics.frames_total / seconds, 1),
        "stage_ms": stages,
        "loop_outside_model_ms_mean": round(outside, 3),
        "messages": len(publisher.messages),
    }


def child_startup(config_json: str) -> None:
    """Run in a fresh process: load, self-test, first frame, first result; print RSS and times."""
    started_wall = time.time()
    args = json.loads(config_json)
    config = Config()
    model = replace(config.model, manifest=Path(args["manifest"]) if args["manifest"] else None)
    classifier, info = open_classifier(model)
    publisher = MemoryPublisher()
    publisher.service()
    source_config = replace(config.source, uri=args["video"], file_rate="max")
    with classifier, OpenCVSource(source_config) as source:
        frame = None
        while frame is None:
            frame = source.get(1.0)
        reporter = Reporter(publisher, Topics("bench", "bench"), 1, 30.0, None, 1e9, time.monotonic())
        result = classifier.classify(frame.image_bgr)
        top = result.top_k(classifier.labels, 3)
        fields = {"device_id": "bench", "label": top[0][0], "score": top[0][1], "top_k": top, "model": info,
                  "frame_age_ms": 0.0, "timing_ms": {}}  # fmt: skip
        reporter.result(fields, time.monotonic())
        first_result_wall = time.time()
        # Let it settle into the steady state for a few hundred frames before reading memory.
        for _ in range(200):
            frame = source.get(1.0)
            if frame is None:
                break
            classifier.classify(frame.image_bgr)
    status = Path("/proc/self/status").read_text()
    kb = {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines() if line.startswith(("Vm", "Rss"))}
    report = {"first_result_wall": first_result_wall, "child_started_wall": started_wall, "rss_kb": kb["VmRSS"],
              "peak_rss_kb": kb["VmHWM"], "anon_kb": kb["RssAnon"], "file_kb": kb["RssFile"]}  # fmt: skip
    print(json.dumps(report))


def startup_and_memory(manifest: Path | None, video: Path) -> dict[str, Any]:
    spawned = time.time()
    code = "import sys; from edge_classifier.bench import child_startup; child_startup(sys.argv[1])"
    arg = json.dumps({"manifest": str(manifest) if manifest else None, "video": str(video)})
    out = subprocess.run([sys.executable, "-c", code, arg], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise InputError(f"bench start-up child failed: {out.stderr.strip().splitlines()[-1:]}")
    child = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "process_start_to_first_result_s": round(child["first_result_wall"] - spawned, 3),
        "rss_mb": round(child["rss_kb"] / 1024, 1),
        "peak_rss_mb": round(child["peak_rss_kb"] / 1024, 1),
        # File-backed pages are shared-library code (OpenCV, numpy, LiteRT): clean, shared, reclaimable.
        "rss_anon_mb": round(child["anon_kb"] / 1024, 1),
        "rss_file_mb": round(child["file_kb"] / 1024, 1),
    }


def run_bench(config: Config, float_model: Path | None, video: Path | None, iterations: int) -> dict[str, Any]:
    video = video or default_video()
    if not video.is_file():
        raise InputError(f"--video {video} does not exist")
    classifier, model = open_classifier(replace(config.model, selftest=False))
    model_path = classifier.model_path
    classifier.close()
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
        },
        "model": model.as_dict(),
        "bare_inference": {"int8": bare_latency(model_path, threads, iterations)},
        "decode": decode_rate(video),
        "end_to_end": end_to_end(config, video),
        "startup": startup_and_memory(config.model.manifest, video),
    }
    if float_model:
        report["bare_inference"]["float32"] = bare_latency(float_model, threads, iterations)
    bound = min(report["bare_inference"]["int8"]["rate_per_s"], report["decode"]["rate_per_s"])
    report["end_to_end"]["ratio_to_bound"] = round(report["end_to_end"]["rate_per_s"] / bound, 3)
    return report
