"""What a .tflite costs on the device: file size raw and gzipped, zero weights, single-image latency.

Latency is measured through the daemon's interpreter (ai-edge-litert via load_interpreter), one
image per invoke, after a warm-up, with 1 and 2 threads and with XNNPACK on and off.
"""

from __future__ import annotations

import gzip
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_classifier.model.preprocess import Preprocessing, apply_lut, build_lut
from edge_classifier.model.runner import io_specs, load_interpreter

from .model_outputs import signature_outputs

logger = logging.getLogger(__name__)

WEIGHT_OPS = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "depthwise", "FULLY_CONNECTED": "dense"}
LATENCY_CONFIGS = (("1t", 1, True), ("2t", 2, True), ("1t_no_xnnpack", 1, False), ("2t_no_xnnpack", 2, False))
WARMUP_RUNS = 10


@dataclass(frozen=True)
class Latency:
    """p50/p95 milliseconds of one invoke on a fixed image, and the configuration measured."""

    p50: float
    p95: float
    runs: int
    threads: int
    xnnpack: bool


@dataclass(frozen=True)
class DeviceCost:
    """Size, zero weights and latency of one .tflite, as the --record JSON holds them."""

    size_bytes: int
    size_gzip_bytes: int
    weight_sparsity: dict[str, float]
    xnnpack_partitions: int
    latency_ms: dict[str, Latency]  # keyed by LATENCY_CONFIGS' names
    # Other processes on the machine slow single-image latency, 2 threads most: keep the load with the figure.
    load_average_1m: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sizes(tflite_path: Path) -> tuple[int, int]:
    """File size in bytes, and after gzip -9 (what zero weights buy when the file is shipped compressed)."""
    raw = tflite_path.read_bytes()
    return len(raw), len(gzip.compress(raw, compresslevel=9, mtime=0))


def weight_sparsity(tflite_path: Path) -> dict[str, float]:
    """Share of exact zeros in the filter tensors of convolutions, depthwise convolutions and dense layers."""
    interpreter = load_interpreter(tflite_path, xnnpack=False)
    zeros: dict[str, int] = {}
    totals: dict[str, int] = {}
    for op in interpreter._get_ops_details():
        kind = WEIGHT_OPS.get(op["op_name"])
        if kind is None or len(op["inputs"]) < 2:
            continue
        weights = interpreter.get_tensor(int(op["inputs"][1]))
        zeros[kind] = zeros.get(kind, 0) + int(np.count_nonzero(weights == 0))
        totals[kind] = totals.get(kind, 0) + int(weights.size)
    result = {kind: round(zeros[kind] / totals[kind], 4) for kind in totals}
    result["all"] = round(sum(zeros.values()) / max(1, sum(totals.values())), 4)
    return result


def xnnpack_partitions(tflite_path: Path) -> int:
    """How many DELEGATE nodes XNNPACK splits the graph into: each gap between two runs on TFLite's own kernels."""
    interpreter = load_interpreter(tflite_path, xnnpack=True)
    return sum(1 for op in interpreter._get_ops_details() if op["op_name"] == "DELEGATE")


def input_tensor(tflite_path: Path, pixels: npt.NDArray[np.uint8], spec: Preprocessing) -> npt.NDArray[Any]:
    """One image as the model's input tensor, through the daemon's lookup table."""
    interpreter = load_interpreter(tflite_path, xnnpack=False)
    input_spec, _ = io_specs(interpreter, signature_outputs(interpreter))
    image = pixels.reshape(pixels.shape[:2]) if spec.channels == 1 else pixels
    return apply_lut(image, build_lut(spec, input_spec.quant)).reshape(input_spec.shape)


def latency(tflite_path: Path, tensor: npt.NDArray[Any], runs: int, threads: int, xnnpack: bool) -> Latency:
    """p50/p95 milliseconds of one invoke on a fixed image."""
    interpreter = load_interpreter(tflite_path, num_threads=threads, xnnpack=xnnpack)
    input_spec, _ = io_specs(interpreter, signature_outputs(interpreter))
    interpreter.set_tensor(input_spec.index, tensor)
    for _ in range(WARMUP_RUNS):
        interpreter.invoke()
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        seconds.append(time.perf_counter() - start)
    return Latency(
        p50=round(1000.0 * float(np.percentile(seconds, 50)), 4),
        p95=round(1000.0 * float(np.percentile(seconds, 95)), 4),
        runs=runs,
        threads=threads,
        xnnpack=xnnpack,
    )


def latency_profile(
    tflite_path: Path, pixels: npt.NDArray[np.uint8], spec: Preprocessing, runs: int
) -> dict[str, Latency]:
    """Latency for every (threads, XNNPACK) configuration in LATENCY_CONFIGS."""
    tensor = input_tensor(tflite_path, pixels, spec)
    return {key: latency(tflite_path, tensor, runs, threads, xnn) for key, threads, xnn in LATENCY_CONFIGS}


def measure(tflite_path: Path, pixels: npt.NDArray[np.uint8], spec: Preprocessing, runs: int) -> DeviceCost:
    """Size, sparsity and latency of one .tflite."""
    load_before = os.getloadavg()[0]
    profile = latency_profile(tflite_path, pixels, spec, runs)
    size, size_gzip = sizes(tflite_path)
    return DeviceCost(
        size_bytes=size,
        size_gzip_bytes=size_gzip,
        weight_sparsity=weight_sparsity(tflite_path),
        xnnpack_partitions=xnnpack_partitions(tflite_path),
        latency_ms=profile,
        load_average_1m=round(max(load_before, os.getloadavg()[0]), 2),
    )
