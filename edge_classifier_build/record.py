"""What a build writes about itself: the manifest's metrics and training sections, and the --record JSON."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_classifier.model.preprocess import Preprocessing
from edge_classifier.model.runner import io_specs, load_interpreter

from . import package
from .data import to_pixels
from .options import DISPLAY_NAMES, FULL_INT8_MODES, technique_names

logger = logging.getLogger(__name__)


def display_name(architecture: str) -> str:
    return DISPLAY_NAMES[architecture]


def evaluate_teacher(
    teacher: Any, test_frames: Any, truth: npt.NDArray[np.int64], labels: tuple[str, ...], spec: Preprocessing
) -> dict[str, Any]:
    """The teacher's float accuracy on the same test images, at its own resolution."""
    from . import evaluate, train

    size = tuple(int(d) for d in teacher.input_shape[1:3])
    pixels = to_pixels(test_frames, spec, (size[0], size[1]))
    dataset = train.make_dataset(pixels, truth, spec, 256, training=False, seed=0)
    return evaluate.evaluate_keras(teacher, dataset, truth, labels)


def optimization_section(args: argparse.Namespace, chosen: dict[str, Any]) -> dict[str, Any]:
    """The techniques and their parameters, as given."""
    section: dict[str, Any] = {"techniques": technique_names(args), "quantization": args.quantization}
    for key in ("prune", "qat", "distill"):
        if chosen[key] is not None:
            section[key] = asdict(chosen[key])
    if chosen["distill"] is not None:
        teacher = chosen.get("teacher")
        section["distill"]["teacher"] = asdict(teacher) if teacher else str(args.teacher)
    return section


def manifest_sections(
    args: argparse.Namespace,
    chosen: dict[str, Any],
    test_set: str,
    train_images: int,
    trained: Any,
    fits: dict[str, Any],
    evals: dict[str, Any],
    kind: str,
) -> dict[str, Any]:
    """The manifest's `metrics` and `training` sections (metrics keyed int8 for full-int8 models)."""
    options = chosen["train"]
    seconds = trained.seconds + sum(fit["seconds"] for fit in fits.values())
    return {
        "metrics": {
            "float_accuracy": evals["float"]["accuracy"],
            f"{kind}_accuracy": evals["tflite"]["accuracy"],
            "float": evals["float"],
            kind: evals["tflite"],
            "test_set": test_set,
            **({"photos": evals["photos"]} if "photos" in evals else {}),
        },
        "training": {
            **vars(options),
            "architecture": display_name(options.architecture),
            "keras": "tf_keras",
            "train_images": train_images,
            "seconds": round(seconds, 1),
            "final_train_accuracy": trained.final_train_accuracy,
            "optimization": optimization_section(args, chosen),
        },
    }


def write_manifest(
    args: argparse.Namespace,
    tflite_path: Path,
    labels: tuple[str, ...],
    spec: Preprocessing,
    sections: dict[str, Any],
    build_info: dict[str, Any],
    selftest: list[dict[str, Any]],
    command: str,
) -> Path:
    """The manifest beside the model, with the input/output tensors read back from the .tflite."""
    input_spec, output_spec = io_specs(load_interpreter(tflite_path))
    io = {
        key: {
            "shape": list(s.shape),
            "dtype": s.quant.dtype.name,
            "scale": s.quant.scale,
            "zero_point": s.quant.zero_point,
        }
        for key, s in (("input", input_spec), ("output", output_spec))
    }
    return package.write_manifest(
        args.output_dir, args.name, args.model_version, tflite_path, labels, io, spec, sections, build_info,
        selftest, command,
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
    args: argparse.Namespace,
    chosen: dict[str, Any],
    train_images: int,
    trained: Any,
    teacher: Any,
    fits: dict[str, Any],
    evals: dict[str, Any],
    measured: dict[str, Any],
    fold: dict[str, Any] | None,
    ops: dict[str, int],
    command: str,
) -> dict[str, Any]:
    """Every measurement of one build, flat enough for the sweep's results file and the report."""
    options = chosen["train"]
    finetune = sum(fit["seconds"] for fit in fits.values())
    tflite = evals["tflite"]
    record: dict[str, Any] = {
        **optimization_section(args, chosen),
        "architecture": options.architecture,
        "alpha": options.alpha,
        "resolution": options.resolution,
        "epochs": options.epochs,
        **({"random_erasing": options.random_erasing} if options.random_erasing else {}),
        "seed": options.seed,
        "train_images": train_images,
        "test_images": tflite["images"],
        "full_int8": args.quantization in FULL_INT8_MODES,
        "base_float_accuracy": evals["base"]["accuracy"],
        "float_accuracy": evals["float"]["accuracy"],
        "accuracy": tflite["accuracy"],
        "accuracy_delta": round(tflite["accuracy"] - evals["base"]["accuracy"], 2),
        **measured,
        "train_seconds": round(trained.seconds + finetune, 1),
        "base_train_seconds": round(trained.seconds, 1),
        "finetune_seconds": round(finetune, 1),
        "base_cached": trained.cached,
        "op_counts": ops,
        "batch_norm": fold,
        "per_class_accuracy": tflite["per_class_accuracy"],
        "confusion_matrix": tflite["confusion_matrix"],
        "command": command,
        "versions": package.library_versions(),
        "machine": machine(),
    }
    if "keras_qat" in evals:
        record["qat_keras_accuracy"] = evals["keras_qat"]["accuracy"]
    if "prune" in fits:
        record["keras_sparsity"] = round(fits["prune"]["keras_sparsity"], 4)
    if teacher is not None:
        record["teacher_accuracy"] = evals["teacher"]["accuracy"]
        record["teacher_seconds"] = round(teacher.seconds, 1)
    return record


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
