"""Write the model, labels, self-test images and manifest side by side."""

from __future__ import annotations

import contextlib
import json
import platform
import shutil
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge_classifier.model.classifier import Classifier, read_image_bgr
from edge_classifier.model.manifest import SCHEMA_ID, sha256_file
from edge_classifier.model.preprocess import Preprocessing

from .model_outputs import outputs_of

SELFTEST_MAX_SIDE = 128


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("tensorflow-cpu", "tensorflow", "tf-keras", "ai-edge-litert", "numpy", "opencv-python-headless"):
        with contextlib.suppress(PackageNotFoundError):
            versions[package] = version(package)
    return versions


def raw_list(raw: npt.NDArray[Any]) -> list[float] | list[int]:
    """The raw output vector for JSON: integers for quantized outputs, floats for float32 ones."""
    if raw.dtype.kind == "f":
        return [round(float(v), 7) for v in raw]
    integers: list[int] = raw.astype(int).tolist()
    return integers


def write_selftest(
    out_dir: Path,
    name: str,
    frames_bgr: list[npt.NDArray[np.uint8]] | npt.NDArray[np.uint8],
    truth: npt.NDArray[np.int64],
    labels: tuple[str, ...],
    tflite_path: Path,
    spec: Preprocessing,
    per_class: int,
) -> list[dict[str, Any]]:
    """Store a few test frames per class that the int8 model gets right through the daemon's own path.

    Each stored file is read back and classified exactly as `edge-classifier` will at start-up,
    so an image is kept only if the expected label is what the runtime really produces.
    """
    folder = out_dir / f"{name}.selftest"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    classifier = Classifier.from_file(tflite_path, labels, spec, outputs=outputs_of(tflite_path))
    cases: list[dict[str, Any]] = []
    kept = dict.fromkeys(range(len(labels)), 0)
    for i, original in enumerate(frames_bgr):
        label_index = int(truth[i])
        if kept[label_index] >= per_class:
            continue
        scale = SELFTEST_MAX_SIDE / max(original.shape[:2])
        frame = cv2.resize(original, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else original
        slug = "".join(c if c.isalnum() else "-" for c in labels[label_index].lower()).strip("-")
        path = folder / f"{label_index:02d}-{slug}-{i}.png"
        cv2.imwrite(str(path), frame)
        result = classifier.classify(read_image_bgr(path))
        if int(np.argmax(result.scores)) != label_index or float(result.scores.max()) < 0.5:
            path.unlink()
            continue
        kept[label_index] += 1
        cases.append({
            "image": f"{folder.name}/{path.name}",
            "label": labels[label_index],
            "output_raw": raw_list(result.raw),
        })  # fmt: skip
        if all(count >= per_class for count in kept.values()):
            break
    classifier.close()
    return cases


def write_model(
    out_dir: Path,
    name: str,
    tflite_bytes: bytes,
    labels: tuple[str, ...],
) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    tflite_path = out_dir / f"{name}.tflite"
    tflite_path.write_bytes(tflite_bytes)
    labels_path = out_dir / f"{name}.labels.txt"
    labels_path.write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")
    return tflite_path, labels_path


def write_manifest(
    out_dir: Path,
    name: str,
    model_version: str,
    tflite_path: Path,
    labels: tuple[str, ...],
    io: dict[str, Any],
    spec: Preprocessing,
    sections: dict[str, Any],
    build_info: dict[str, Any],
    selftest: list[dict[str, Any]],
    command: str,
) -> Path:
    described: dict[str, Any] = {key: io[key] for key in ("outputs", "embedding") if key in io}
    document = {
        "$schema": "../edge_classifier/schemas/manifest.schema.json",
        "schema": SCHEMA_ID,
        "name": name,
        "version": model_version,
        "model_file": tflite_path.name,
        "sha256": sha256_file(tflite_path),
        "size_bytes": tflite_path.stat().st_size,
        "labels_file": f"{name}.labels.txt",
        "labels": list(labels),
        "input": io["input"],
        "output": {**io["output"], "kind": "probabilities"},
        **described,
        "preprocessing": spec.as_dict(),
        **sections,
        "build": {
            "command": command,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "versions": library_versions(),
            **build_info,
        },
        "selftest": selftest,
    }
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path
