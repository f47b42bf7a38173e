"""Accuracy on a folder of labelled photos through the daemon's own classifier, as `edge-classifier classify` runs it.

The folder holds one sub-folder per class; sorted, they map to the model's labels in order (as
`--image-dir` with `--label-names` does). Its fingerprint (sha256 over every file's name and bytes)
ties a recorded figure to the exact photos it was measured on.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_classifier.errors import InputError
from edge_classifier.model.classifier import Classifier, read_image_bgr
from edge_classifier.model.preprocess import Preprocessing

from .data import IMAGE_SUFFIXES
from .evaluate import Accuracy, summarize
from .model_outputs import outputs_of

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhotoEvaluation:
    """A model's accuracy on a folder of photos, with the folder as shown and its fingerprint."""

    dir: str
    correct: int
    fingerprint: str
    result: Accuracy

    def as_dict(self) -> dict[str, Any]:
        """The manifest's `metrics.photos` form: the folder's facts, then the accuracy's."""
        return {"dir": self.dir, "correct": self.correct, "fingerprint": self.fingerprint, **self.result.as_dict()}


def labelled_photos(root: Path, classes: int) -> list[tuple[Path, int]]:
    """(photo, class index) for every image under ROOT/<class folder>/, class folders sorted."""
    if not root.is_dir():
        raise InputError(f"--eval-dir {root} does not exist")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if len(folders) != classes:
        raise InputError(f"--eval-dir {root} has {len(folders)} class folders, the model {classes} classes")
    return [
        (photo, index)
        for index, folder in enumerate(folders)
        for photo in sorted(folder.iterdir())
        if photo.suffix.lower() in IMAGE_SUFFIXES
    ]


def fingerprint(photos: list[tuple[Path, int]], root: Path) -> str:
    digest = hashlib.sha256()
    for photo, index in photos:
        digest.update(f"{photo.relative_to(root).as_posix()}\0{index}\0".encode())
        digest.update(photo.read_bytes())
    return digest.hexdigest()


def evaluate_folder(classifier: Classifier, root: Path, shown_as: str | None = None) -> PhotoEvaluation:
    """Accuracy, per-class accuracy and confusion of CLASSIFIER on ROOT's photos, with the set's fingerprint."""
    photos = labelled_photos(root, len(classifier.labels))
    truth = np.array([index for _, index in photos], dtype=np.int64)
    predicted = np.array(
        [int(np.argmax(classifier.classify(read_image_bgr(photo)).scores)) for photo, _ in photos], dtype=np.int64
    )
    return PhotoEvaluation(
        dir=shown_as or str(root),
        correct=int((truth == predicted).sum()),
        fingerprint=fingerprint(photos, root),
        result=summarize(predicted, truth, classifier.labels),
    )


def evaluate_model(tflite_path: Path, labels: tuple[str, ...], spec: Preprocessing, root: Path) -> PhotoEvaluation:
    """--eval-dir through the daemon's classifier, one photo at a time."""
    with Classifier.from_file(tflite_path, labels, spec, outputs=outputs_of(tflite_path)) as classifier:
        evaluation = evaluate_folder(classifier, root)
    figures = evaluation.result
    print(f"      {root}: {figures.accuracy:.2f}% of {figures.images} photos, as the daemon classifies them")
    return evaluation
