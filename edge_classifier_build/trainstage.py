"""The trained float Keras model of a build: read from a Keras cache file, or trained (with a teacher when distilling).

A cache file (`--keras-cache`, and the teacher file `--teacher`) is a saved Keras model with a JSON
sidecar that records the options it was trained with, so that a cache is never reused for
different training options.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import tf_keras as keras

from edge_classifier.errors import InputError
from edge_classifier.model.preprocess import Preprocessing

from . import distill, train
from .data import Frames, to_pixels

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TeacherPlan:
    """Where the teacher is (or goes), and how to train it when the file is not there yet."""

    path: Path | None
    options: train.TrainOptions | None  # None: the file must exist
    distill: distill.DistillOptions


@dataclass
class Trained:
    """A trained model with what it cost."""

    model: keras.Model
    seconds: float
    final_train_accuracy: float | None
    cached: bool


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def describe(options: train.TrainOptions, extra: dict[str, Any]) -> dict[str, Any]:
    """The facts a cached model must match to be reused."""
    described = asdict(options)
    # Caches written before these options existed must still match when they are off.
    for option, off in (("random_erasing", 0.0), ("augmentation", "shift"), ("head_epochs", 0), ("negatives", 0)):
        if described[option] == off:
            del described[option]
    return {"options": described, **extra}


def load_cached(path: Path, expected: dict[str, Any]) -> Trained | None:
    """The model in PATH if it exists and was trained with EXPECTED, else None (InputError if it differs)."""
    if not path.is_file() or not sidecar(path).is_file():
        return None
    stored = json.loads(sidecar(path).read_text(encoding="utf-8"))
    if stored["trained_with"] != expected:
        raise InputError(f"{path} was trained with other options ({sidecar(path)}); delete it or pick another file")
    model = keras.models.load_model(path, compile=False)
    logger.info("reusing %s (trained in %.0f s)", path, stored["seconds"])
    return Trained(model, float(stored["seconds"]), stored.get("final_train_accuracy"), cached=True)


def save_cached(path: Path, trained: Trained, expected: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    trained.model.save(path)
    document = {
        "trained_with": expected,
        "seconds": round(trained.seconds, 1),
        "final_train_accuracy": trained.final_train_accuracy,
    }
    sidecar(path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def cached_or_trained(path: Path | None, expected: dict[str, Any], train_fn: Callable[[], Trained]) -> Trained:
    """Reuse PATH when it holds a model trained with EXPECTED; otherwise train and, with a PATH, save there."""
    if path is not None:
        found = load_cached(path, expected)
        if found is not None:
            return found
    trained = train_fn()
    if path is not None:
        save_cached(path, trained, expected)
    return trained


def plain(
    options: train.TrainOptions,
    num_classes: int,
    pixels: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64],
    spec: Preprocessing,
    verbose: int,
) -> Trained:
    model = train.build_model(options, num_classes, spec.channels)
    result = train.train(model, pixels, labels, spec, options, verbose=verbose)
    return Trained(model, result.seconds, result.final_accuracy, cached=False)


def teacher_model(
    plan: TeacherPlan,
    data_key: dict[str, Any],
    num_classes: int,
    frames_bgr: Frames,
    labels: npt.NDArray[np.int64],
    spec: Preprocessing,
    verbose: int,
) -> Trained:
    """The teacher from its file, or trained now (on the same images, at its own resolution) and saved there."""
    if plan.options is None:
        assert plan.path is not None
        model = distill.load_teacher(plan.path)
        return Trained(model, 0.0, None, cached=True)
    teacher_options = plan.options

    def train_teacher() -> Trained:
        size = (teacher_options.resolution, teacher_options.resolution)
        logger.info("training the teacher: %s", teacher_options)
        return plain(teacher_options, num_classes, to_pixels(frames_bgr, spec, size), labels, spec, verbose)

    trained = cached_or_trained(plan.path, describe(teacher_options, data_key), train_teacher)
    trained.model.trainable = False
    return trained


def student_or_plain(
    options: train.TrainOptions,
    teacher: Trained | None,
    plan: TeacherPlan | None,
    num_classes: int,
    pixels: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64],
    spec: Preprocessing,
    verbose: int,
) -> Trained:
    """Train the build's model: distilled from TEACHER when there is one, else on labels alone."""
    if teacher is None or plan is None:
        return plain(options, num_classes, pixels, labels, spec, verbose)
    model = train.build_model(options, num_classes, spec.channels)
    result = distill.distill(model, teacher.model, pixels, labels, spec, options, plan.distill, verbose=verbose)
    return Trained(model, result.seconds, result.final_accuracy, cached=False)


def teacher_options_from(
    options: train.TrainOptions, architecture: str | None, alpha: float, resolution: int | None, epochs: int | None
) -> train.TrainOptions:
    """The student's training options with the teacher's architecture, width, resolution and epochs."""
    return replace(
        options,
        architecture=architecture or options.architecture,
        alpha=alpha,
        resolution=resolution or options.resolution,
        epochs=epochs or options.epochs,
        weights="none",
    )
