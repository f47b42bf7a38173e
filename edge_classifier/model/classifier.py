"""A loaded model ready to classify BGR frames: interpreter, preprocessing, labels, self-test."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge_classifier.errors import InputError, ModelError
from edge_classifier.model.manifest import Manifest, SelfTestCase, load_manifest, verify_sha256
from edge_classifier.model.preprocess import Preprocessing, Preprocessor
from edge_classifier.model.runner import io_specs, load_interpreter, run_raw, scores_from_raw

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Classification:
    """Scores for one frame plus how long each stage took."""

    scores: npt.NDArray[np.float32]
    raw: npt.NDArray[Any]
    preprocess_s: float
    inference_s: float
    postprocess_s: float

    def top_k(self, labels: tuple[str, ...], k: int) -> list[tuple[str, float]]:
        order = np.argsort(-self.scores, kind="stable")[:k]
        return [(labels[i], float(self.scores[i])) for i in order]


class Classifier:
    """An interpreter with its preprocessing and labels; close() is idempotent."""

    def __init__(
        self,
        model_path: Path,
        labels: tuple[str, ...],
        preprocessing: Preprocessing,
        output_kind: str = "probabilities",
        num_threads: int = 1,
        manifest: Manifest | None = None,
    ):
        self.model_path = model_path
        self.labels = labels
        self.manifest = manifest
        self.logits = output_kind == "logits"
        self._interpreter: Any = load_interpreter(model_path, num_threads=num_threads)
        self.input_spec, self.output_spec = io_specs(self._interpreter)
        classes = self.output_spec.shape[-1]
        if classes != len(labels):
            raise ModelError(f"model {model_path} outputs {classes} classes but there are {len(labels)} labels")
        self.preprocess = Preprocessor(preprocessing, self.input_spec.shape, self.input_spec.quant)

    @classmethod
    def from_manifest(cls, manifest_path: Path, num_threads: int = 1, crop: str | None = None) -> Classifier:
        """Load a model through its manifest, refusing a file whose sha256 does not match."""
        manifest = load_manifest(manifest_path)
        verify_sha256(manifest)
        spec = manifest.preprocessing if crop is None else replace(manifest.preprocessing, crop=crop)
        return cls(manifest.model_path, manifest.labels, spec, manifest.output_kind, num_threads, manifest)

    def classify(self, frame_bgr: npt.NDArray[np.uint8]) -> Classification:
        t0 = time.perf_counter()
        tensor = self.preprocess(frame_bgr)
        t1 = time.perf_counter()
        raw = run_raw(self._interpreter, self.input_spec, self.output_spec, tensor)
        t2 = time.perf_counter()
        scores = scores_from_raw(raw, self.output_spec, self.logits)
        t3 = time.perf_counter()
        return Classification(scores, raw, t1 - t0, t2 - t1, t3 - t2)

    def close(self) -> None:
        self._interpreter = None

    def __enter__(self) -> Classifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_image_bgr(path: Path) -> npt.NDArray[Any]:
    """An image file as a BGR frame, or InputError naming the file."""
    if not path.is_file():
        raise InputError(f"image {path} does not exist")
    frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if frame is None:
        raise InputError(f"image {path} is not a readable image")
    return frame


def run_selftest(classifier: Classifier, cases: tuple[SelfTestCase, ...]) -> int:
    """Classify every self-test image; ModelError if any misses its label. Returns how many passed."""
    misses = []
    for case in cases:
        try:
            frame = read_image_bgr(case.image)
        except InputError as exc:
            raise ModelError(f"self-test: {exc}") from None
        result = classifier.classify(frame)
        got = classifier.labels[int(np.argmax(result.scores))]
        if got != case.label:
            misses.append(f"{case.image.name}: expected {case.label!r}, got {got!r}")
    if misses:
        raise ModelError(f"model self-test failed on {len(misses)}/{len(cases)} images: {'; '.join(misses)}")
    return len(cases)
