"""A loaded model ready to classify BGR frames: interpreter, preprocessing, labels, self-test."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge_classifier.errors import InputError, ModelError
from edge_classifier.model.classification import Classification
from edge_classifier.model.manifest import Manifest, SelfTestCase, load_manifest, verify_sha256
from edge_classifier.model.preprocess import Preprocessing, Preprocessor
from edge_classifier.model.runner import EmbeddingRunner, LiteRTRunner, OutputNames, Runner, TensorSpec, scores_from_raw

logger = logging.getLogger(__name__)


class Classifier:
    """An interpreter with its preprocessing and labels; close() is idempotent."""

    def __init__(
        self,
        runner: Runner,
        labels: tuple[str, ...],
        preprocessing: Preprocessing,
        output_kind: str = "probabilities",
        manifest: Manifest | None = None,
        model_path: Path | None = None,
    ):
        self.labels = labels
        self.model_path = model_path  # the file behind the runner, where there is one
        self.manifest = manifest
        self.logits = output_kind == "logits"
        self._runner = runner
        self.input_spec, self.output_spec = runner.input_spec, runner.output_spec
        classes = self.output_spec.shape[-1]
        if classes != len(labels):
            raise ModelError(f"the model outputs {classes} classes but there are {len(labels)} labels")
        self.preprocess = Preprocessor(preprocessing, self.input_spec.shape, self.input_spec.quant)
        # Only a runner that reads a second output named by the manifest gives embeddings (decided once, here).
        self._embedder: EmbeddingRunner | None = None
        self.embedding_spec: TensorSpec | None = None
        if isinstance(runner, EmbeddingRunner) and runner.embedding_spec is not None:
            self._embedder, self.embedding_spec = runner, runner.embedding_spec

    @classmethod
    def from_file(
        cls,
        model_path: Path,
        labels: tuple[str, ...],
        preprocessing: Preprocessing,
        output_kind: str = "probabilities",
        num_threads: int = 1,
        outputs: OutputNames | None = None,
    ) -> Classifier:
        """A .tflite file without a manifest, run by LiteRT; OUTPUTS says which output is which when it has several."""
        runner = LiteRTRunner(model_path, num_threads, outputs)
        return cls(runner, labels, preprocessing, output_kind, None, model_path)

    @classmethod
    def from_manifest(cls, manifest_path: Path, num_threads: int = 1, crop: str | None = None) -> Classifier:
        """Load a model through its manifest, refusing a file whose sha256 does not match."""
        manifest = load_manifest(manifest_path)
        verify_sha256(manifest)
        spec = manifest.preprocessing if crop is None else replace(manifest.preprocessing, crop=crop)
        runner = LiteRTRunner(manifest.model_path, num_threads, manifest.outputs)
        return cls(runner, manifest.labels, spec, manifest.output_kind, manifest, manifest.model_path)

    def classify(self, frame_bgr: npt.NDArray[np.uint8]) -> Classification:
        t0 = time.perf_counter()
        tensor = self.preprocess(frame_bgr)
        t1 = time.perf_counter()
        raw = self._runner.invoke(tensor)
        # A copy of the raw vector (1280 bytes for MobileNetV2): dequantized only if someone reads it.
        embedding_raw = None if self._embedder is None else self._embedder.embedding_raw()
        t2 = time.perf_counter()
        scores = scores_from_raw(raw, self.output_spec, self.logits)
        t3 = time.perf_counter()
        return Classification(scores, raw, t1 - t0, t2 - t1, t3 - t2, embedding_raw, self.embedding_spec)

    def close(self) -> None:
        self._runner.close()

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
