"""`edge-classifier bench`: latency, decode rate, end-to-end throughput, loop overhead, RSS, start-up."""

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

from edge_classifier.bench.probe import imports_only, startup_and_memory
from edge_classifier.capture.opening import open_capture
from edge_classifier.capture.source import Frame, OpenCVSource, SourceStats
from edge_classifier.config.settings import Config, SourceConfig
from edge_classifier.errors import InputError
from edge_classifier.model.loading import default_model_dirs, open_classifier
from edge_classifier.model.runner import interpreter_class, io_specs, load_interpreter, run_raw
from edge_classifier.mqtt.client import MemoryPublisher
from edge_classifier.service.compose import Seams, build_service
from edge_classifier.service.metrics import rss_bytes
from edge_classifier.service.notify import Notifier

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


class FrameLimit:
    """A FrameSource that ends after `limit` frames and notes when the first and last were taken."""

    def __init__(self, source: OpenCVSource, limit: int):
        self._source = source
        self._limit = limit
        self.taken = 0
        self.first_at = self.last_at = 0.0
        self.rss_warm = self.rss_end = 0

    def get(self, timeout: float) -> Frame | None:
        if self.taken >= self._limit:
            return None
        frame = self._source.get(timeout)
        if frame is not None:
            self.taken += 1
            self.last_at = time.perf_counter()
            self.first_at = self.first_at or self.last_at
            # Memory after a tenth of the run (buffers allocated, caches warm) and at the end: growth is a leak.
            if self.taken == max(1, self._limit // 10):
                self.rss_warm = rss_bytes()
            if self.taken == self._limit:
                self.rss_end = rss_bytes()
        return frame

    @property
    def ended(self) -> bool:
        return self.taken >= self._limit or self._source.ended

    def stats(self) -> SourceStats:
        return self._source.stats()

    def close(self) -> None:
        self._source.close()

    def rate_per_s(self) -> float:
        """Frames per second between the first and the last frame: start-up is not counted."""
        elapsed = self.last_at - self.first_at
        return (self.taken - 1) / elapsed if self.taken > 1 and elapsed > 0 else 0.0


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
    }


def run_bench(
    config: Config, float_model: Path | None, video: Path | None, iterations: int, frames: int
) -> dict[str, Any]:
    video = video or default_video()
    if not video.is_file():
        raise InputError(f"--video {video} does not exist")
    if float_model and not float_model.is_file():
        raise InputError(f"--float-model {float_model} does not exist")
    # Every frame, as fast as the loop takes them, the video looped; decoder threads as configured.
    source_config = replace(config.source, uri=str(video), file_rate="max", loop=True)
    classifier, model = open_classifier(replace(config.model, selftest=False))
    model_path = classifier.model_path
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
        },
        "model": model.as_dict(),
        "bare_inference": {"int8": bare_latency(model_path, threads, iterations)},
        "decode": decode_rate(source_config, frames),
        "end_to_end": end_to_end(config, source_config, frames),
        "startup": startup_and_memory(config, video),
        "imports_only": imports_only(),
    }
    if float_model:
        report["bare_inference"]["float32"] = bare_latency(float_model, threads, iterations)
    bound = min(report["bare_inference"]["int8"]["rate_per_s"], report["decode"]["rate_per_s"])
    e2e = report["end_to_end"]
    e2e["ratio_to_bound"] = round(e2e["rate_per_s"] / bound, 3)
    e2e["ratio_to_cpu_bound"] = round(e2e["rate_per_s"] / e2e["cpu_bound_rate_per_s"], 3)
    return report
