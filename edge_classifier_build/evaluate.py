"""Accuracy, per-class accuracy, confusion matrix and latency of a model on a labelled test set."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_classifier.model.preprocess import Preprocessing, apply_lut, build_lut
from edge_classifier.model.runner import io_specs, load_interpreter, run_raw, scores_from_raw

from .model_outputs import signature_outputs


@dataclass(frozen=True)
class TfliteLatency:
    """Single-image invoke time (milliseconds) over a whole test set, as the daemon runs it."""

    p50: float
    p95: float
    threads: int


@dataclass(frozen=True)
class Accuracy:
    """Accuracy (percent), per-class accuracy and the confusion matrix (rows: truth, columns: predicted)."""

    accuracy: float
    per_class_accuracy: dict[str, float]
    confusion_matrix: list[list[int]]
    images: int
    latency_ms: TfliteLatency | None = None  # only for a .tflite run through the interpreter

    def as_dict(self) -> dict[str, Any]:
        """The manifest's and the record's form (no latency key for a Keras model)."""
        document = asdict(self)
        if self.latency_ms is None:
            del document["latency_ms"]
        return document


def summarize(predicted: npt.NDArray[np.int64], truth: npt.NDArray[np.int64], labels: tuple[str, ...]) -> Accuracy:
    """Accuracy of PREDICTED against TRUTH, per class and as a confusion matrix."""
    n = len(labels)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    return Accuracy(
        accuracy=round(100.0 * float(np.mean(predicted == truth)), 2),
        per_class_accuracy={label: round(100.0 * float(a), 2) for label, a in zip(labels, per_class, strict=True)},
        confusion_matrix=confusion.tolist(),
        images=len(truth),
    )


def percentile_ms(seconds: list[float], q: float) -> float:
    return round(1000.0 * float(np.percentile(seconds, q)), 3)


def evaluate_tflite(
    tflite_path: Path,
    pixels: npt.NDArray[np.uint8],
    truth: npt.NDArray[np.int64],
    labels: tuple[str, ...],
    spec: Preprocessing,
    num_threads: int = 1,
    xnnpack: bool = True,
) -> Accuracy:
    """Run every image through the runtime interpreter one at a time, as the daemon does, timing each invoke."""
    interpreter = load_interpreter(tflite_path, num_threads=num_threads, xnnpack=xnnpack)
    input_spec, output_spec = io_specs(interpreter, signature_outputs(interpreter))
    lut = build_lut(spec, input_spec.quant)
    raw_outputs = np.empty((len(truth), output_spec.shape[-1]), dtype=output_spec.quant.dtype)
    latencies = []
    for i, image in enumerate(pixels):
        # The daemon's own table lookup: pixel -> normalized -> quantized.
        plane = image.reshape(image.shape[:2]) if spec.channels == 1 else image
        tensor = apply_lut(plane, lut).reshape(input_spec.shape)
        start = time.perf_counter()
        raw_outputs[i] = run_raw(interpreter, input_spec, output_spec, tensor)
        latencies.append(time.perf_counter() - start)
    predicted = np.array([int(np.argmax(scores_from_raw(r, output_spec, logits=False))) for r in raw_outputs])
    latency = TfliteLatency(percentile_ms(latencies, 50), percentile_ms(latencies, 95), num_threads)
    return replace(summarize(predicted, truth, labels), latency_ms=latency)


def evaluate_keras(model: Any, dataset: Any, truth: npt.NDArray[np.int64], labels: tuple[str, ...]) -> Accuracy:
    """Accuracy of the float Keras model on an already batched, normalized dataset."""
    probabilities = model.predict(dataset, verbose=0)
    return summarize(np.argmax(probabilities, axis=1), truth, labels)
