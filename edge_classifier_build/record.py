"""What a build writes about itself: the manifest's metrics, training and build sections, and the --record JSON."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from edge_classifier.model.preprocess import Preprocessing

from . import package
from .build_options import BuildOptions
from .data import Frames, to_pixels
from .model_outputs import manifest_io
from .options import DISPLAY_NAMES
from .outcome import Outcome
from .techniques import Techniques

if TYPE_CHECKING:
    from .evaluate import Accuracy
    from .measure import DeviceCost

logger = logging.getLogger(__name__)


def display_name(architecture: str) -> str:
    return DISPLAY_NAMES[architecture]


def evaluate_teacher(
    teacher: Any, test_frames: Frames, truth: npt.NDArray[np.int64], labels: tuple[str, ...], spec: Preprocessing
) -> Accuracy:
    """The teacher's float accuracy on the same test images, at its own resolution."""
    from . import evaluate, train

    size = tuple(int(d) for d in teacher.input_shape[1:3])
    pixels = to_pixels(test_frames, spec, (size[0], size[1]))
    dataset = train.make_dataset(pixels, truth, spec, 256, training=False, seed=0)
    return evaluate.evaluate_keras(teacher, dataset, truth, labels)


def optimization_section(options: BuildOptions, techniques: Techniques) -> dict[str, Any]:
    """The techniques and their parameters, as given."""
    section: dict[str, Any] = {"techniques": options.technique_names(), "quantization": options.quantization}
    for key, chosen in (("prune", techniques.prune), ("qat", techniques.qat), ("distill", techniques.distill)):
        if chosen is not None:
            section[key] = asdict(chosen)
    if techniques.distill is not None:
        teacher = techniques.teacher
        section["distill"]["teacher"] = asdict(teacher) if teacher else str(options.teacher)
    return section


def manifest_sections(options: BuildOptions, techniques: Techniques, outcome: Outcome) -> dict[str, Any]:
    """The manifest's `metrics`, `training` and `rejection` sections (metrics keyed int8 for full-int8 models)."""
    network = techniques.train
    evals = outcome.evals
    training: dict[str, Any] = {
        **asdict(network),
        "architecture": display_name(network.architecture),
        "keras": "tf_keras",
        "train_images": outcome.train_images,
        "seconds": round(outcome.trained.seconds + outcome.fits.seconds, 1),
        "final_train_accuracy": outcome.trained.final_train_accuracy,
        "optimization": optimization_section(options, techniques),
    }
    if outcome.transplant is not None:
        training["transplant_check"] = outcome.transplant.as_dict()
    return {
        "metrics": {
            "float_accuracy": evals.keras_float.accuracy,
            f"{options.kind}_accuracy": evals.tflite.accuracy,
            "float": evals.keras_float.as_dict(),
            options.kind: evals.tflite.as_dict(),
            "test_set": outcome.test_set,
            **({"photos": evals.photos.as_dict()} if evals.photos is not None else {}),
        },
        "training": training,
        "rejection": outcome.rejection.as_dict(),
    }


def build_section(options: BuildOptions, outcome: Outcome) -> dict[str, Any]:
    """The manifest's `build` facts beyond command, date and versions: the graph and how it was checked."""
    # Full int8 is checked for folding by check_full_int8 itself; other kinds only by the fold check.
    folded = outcome.fold.folded if outcome.fold else (True if options.full_int8 else None)
    info: dict[str, Any] = {
        "op_counts": outcome.ops,
        "batch_norm_folded": folded,
        "deterministic": not options.nondeterministic,
    }
    if options.full_int8:
        info["calibration_images"] = outcome.calibration_images
    return info


def write_manifest(
    options: BuildOptions,
    techniques: Techniques,
    outcome: Outcome,
    spec: Preprocessing,
    selftest: list[dict[str, Any]],
) -> Path:
    """The manifest beside the model, with the input/output tensors read back from the .tflite (model_outputs)."""
    io = manifest_io(outcome.tflite_path)
    return package.write_manifest(
        options.output_dir, options.name, options.model_version, outcome.tflite_path, outcome.labels, io, spec,
        manifest_sections(options, techniques, outcome), build_section(options, outcome), selftest, options.command,
    )  # fmt: skip


def machine() -> dict[str, Any]:
    """Where latency and training time were measured."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cpus": os.cpu_count(), "arch": platform.machine()}


def build_record(
    options: BuildOptions, techniques: Techniques, outcome: Outcome, device: DeviceCost, manifest: Path
) -> dict[str, Any]:
    """Every measurement of one build, flat enough for the sweep's results file and the report."""
    network = techniques.train
    evals = outcome.evals
    finetune = outcome.fits.seconds
    tflite = evals.tflite
    record: dict[str, Any] = {
        **optimization_section(options, techniques),
        "architecture": network.architecture,
        "alpha": network.alpha,
        "resolution": network.resolution,
        "epochs": network.epochs,
        **({"random_erasing": network.random_erasing} if network.random_erasing else {}),
        "seed": network.seed,
        "train_images": outcome.train_images,
        "test_images": tflite.images,
        "full_int8": options.full_int8,
        "base_float_accuracy": evals.base.accuracy,
        "float_accuracy": evals.keras_float.accuracy,
        "accuracy": tflite.accuracy,
        "accuracy_delta": round(tflite.accuracy - evals.base.accuracy, 2),
        **device.as_dict(),
        "train_seconds": round(outcome.trained.seconds + finetune, 1),
        "base_train_seconds": round(outcome.trained.seconds, 1),
        "finetune_seconds": round(finetune, 1),
        "base_cached": outcome.trained.cached,
        "op_counts": outcome.ops,
        "batch_norm": outcome.fold.as_dict() if outcome.fold else None,
        "per_class_accuracy": tflite.per_class_accuracy,
        "confusion_matrix": tflite.confusion_matrix,
        "command": options.command,
        "versions": package.library_versions(),
        "machine": machine(),
    }
    if evals.keras_qat is not None:
        record["qat_keras_accuracy"] = evals.keras_qat.accuracy
    if outcome.fits.prune is not None and outcome.fits.prune.keras_sparsity is not None:
        record["keras_sparsity"] = round(outcome.fits.prune.keras_sparsity, 4)
    if outcome.teacher is not None and evals.teacher is not None:
        record["teacher_accuracy"] = evals.teacher.accuracy
        record["teacher_seconds"] = round(outcome.teacher.seconds, 1)
    if outcome.transplant is not None:
        record["transplant_check"] = outcome.transplant.as_dict()
    if evals.photos is not None:
        record["photos"] = evals.photos.as_dict()
    record.update(rejection=outcome.rejection.as_dict(), tflite=str(outcome.tflite_path), manifest=str(manifest))
    return record


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
