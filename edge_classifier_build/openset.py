"""Open-set rejection: the score below which a frame is published as `unknown`, calibrated on validation.

A kiosk camera also sees an empty counter, a wall, hands and noise, and no classifier with a
softmax over garments can say "none of these" by itself. The daemon's voter turns a frame whose
best score is below `min_score` into an `unknown` vote. The build measures, on the validation
photos, the selective accuracy curve (accuracy of the frames kept, against the share kept) and
the best scores of synthetic scenes with no garment in them, and picks the lowest threshold that
keeps at least MIN_COVERAGE of the photos, whose kept photos reach TARGET_ACCURACY, and that rejects
at least TARGET_REJECTION of the empty scenes.
The manifest carries the choice; `result.min_score` in the config overrides it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge_classifier.config.settings import DEFAULT_MIN_SCORE
from edge_classifier.model.classifier import Classifier
from edge_classifier.model.preprocess import Preprocessing

from .data import Frames
from .model_outputs import outputs_of

logger = logging.getLogger(__name__)

TARGET_ACCURACY = 97.0  # percent of kept validation photos labelled right
TARGET_REJECTION = 0.95  # share of the no-garment scenes that must become `unknown`
MIN_COVERAGE = 50.0  # percent of validation a threshold must keep: a model that is right on nothing is not calibrated
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 .. 0.95
FALLBACK = DEFAULT_MIN_SCORE  # the daemon's own default, used when no threshold meets the targets


def empty_scenes(seed: int = 7, size_hw: tuple[int, int] = (480, 640)) -> list[tuple[str, npt.NDArray[np.uint8]]]:
    """Named BGR frames with no garment: plain walls, an empty counter, noise, blurred blobs, dark and bright."""
    rng = np.random.default_rng(seed)
    h, w = size_hw
    scenes: list[tuple[str, npt.NDArray[np.uint8]]] = []
    walls = {"white": (235, 235, 235), "beige": (180, 205, 225), "grey": (128, 128, 128), "blue": (200, 170, 140)}
    ramp = np.linspace(0.85, 1.1, h, dtype=np.float32)[:, None, None]
    for name, bgr in walls.items():
        wall = np.full((h, w, 3), bgr, np.float32) * ramp + rng.normal(0, 4, (h, w, 3))
        scenes.append((f"wall-{name}", np.clip(wall, 0, 255).astype(np.uint8)))
    counter = np.empty((h, w, 3), np.float32)
    counter[: h * 3 // 5] = (200, 210, 215)
    counter[h * 3 // 5 :] = (60, 90, 120)  # a wooden counter top
    counter += rng.normal(0, 6, (h, w, 3))
    scenes.append(("empty-counter", np.clip(counter, 0, 255).astype(np.uint8)))
    scenes.append(("noise-uniform", rng.integers(0, 256, (h, w, 3), dtype=np.uint8)))
    scenes.append(("noise-grey", np.clip(rng.normal(128, 40, (h, w, 1)), 0, 255).astype(np.uint8).repeat(3, axis=2)))
    blobs = cv2.GaussianBlur(rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8), (3, 3), 0)
    scenes.append(("blurred-blobs", np.asarray(cv2.resize(blobs, (w, h), interpolation=cv2.INTER_CUBIC), np.uint8)))
    scenes.append(("dark", np.clip(rng.normal(12, 4, (h, w, 3)), 0, 255).astype(np.uint8)))
    scenes.append(("overexposed", np.clip(rng.normal(250, 3, (h, w, 3)), 0, 255).astype(np.uint8)))
    return scenes


@dataclass(frozen=True)
class CurvePoint:
    """At one threshold: the share of validation frames kept and the accuracy on those (both percent)."""

    threshold: float
    coverage: float
    accuracy: float


@dataclass(frozen=True)
class SceneScore:
    """An empty scene's best label and score: what the daemon would publish for it without a threshold."""

    scene: str
    label: str
    score: float


@dataclass(frozen=True)
class Rejection:
    """The manifest's `rejection` section: the chosen min_score, how, and the figures it was chosen on."""

    min_score: float
    rule: str
    met: bool  # False: no threshold met the targets, min_score is FALLBACK
    curve: list[CurvePoint]
    empty_scenes: list[SceneScore]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def best_scores(
    classifier: Classifier, frames_bgr: Iterable[npt.NDArray[np.uint8]]
) -> tuple[npt.NDArray[np.float32], list[int]]:
    """Each frame's top-1 score and class index through the daemon's classifier."""
    scores, classes = [], []
    for frame in frames_bgr:
        result = classifier.classify(np.ascontiguousarray(frame))
        classes.append(int(np.argmax(result.scores)))
        scores.append(float(np.max(result.scores)))
    return np.asarray(scores, dtype=np.float32), classes


def selective_curve(scores: npt.NDArray[np.float32], correct: npt.NDArray[np.bool_]) -> list[CurvePoint]:
    """Coverage and accuracy of the kept frames at every threshold of THRESHOLDS (and 0: keep all)."""
    curve = []
    for threshold in (0.0, *THRESHOLDS):
        kept = scores >= threshold
        accuracy = 100.0 * float(correct[kept].mean()) if kept.any() else 100.0
        curve.append(CurvePoint(threshold, round(100.0 * float(kept.mean()), 2), round(accuracy, 2)))
    return curve


def choose_threshold(curve: list[CurvePoint], empty_scores: npt.NDArray[np.float32]) -> CurvePoint | None:
    """The point of the lowest threshold meeting both targets, or None when none does."""
    for point in curve:
        rejected = float((empty_scores < point.threshold).mean())
        kept = point.threshold > 0 and point.coverage >= MIN_COVERAGE
        if kept and point.accuracy >= TARGET_ACCURACY and rejected >= TARGET_REJECTION:
            return point
    return None


def calibrate(classifier: Classifier, frames_bgr: Frames, truth: npt.NDArray[np.int64]) -> Rejection:
    """The chosen min_score, the curve and the empty scenes' scores, measured through CLASSIFIER."""
    scores, predicted = best_scores(classifier, frames_bgr)
    correct = np.asarray(predicted) == truth
    curve = selective_curve(scores, correct)
    scenes = empty_scenes()
    empty_scores, empty_classes = best_scores(classifier, (frame for _, frame in scenes))
    chosen = choose_threshold(curve, empty_scores)
    threshold = chosen.threshold if chosen else FALLBACK
    print(
        f"      rejection: min_score {threshold} "
        + (
            f"keeps {chosen.coverage}% of validation at {chosen.accuracy}% accuracy, "
            if chosen
            else f"(no threshold met {TARGET_ACCURACY}% and {TARGET_REJECTION:.0%} empty-scene rejection), "
        )
        + f"rejects {int((empty_scores < threshold).sum())} of {len(scenes)} empty scenes"
    )
    return Rejection(
        min_score=threshold,
        rule=(
            f"lowest threshold (step 0.05) that keeps at least {MIN_COVERAGE:g}% of the validation images, "
            f"at least {TARGET_ACCURACY}% of them right, "
            f"and that rejects at least {TARGET_REJECTION:.0%} of {len(scenes)} synthetic empty scenes; "
            f"{FALLBACK} when none does"
        ),
        met=chosen is not None,
        curve=curve,
        empty_scenes=[
            SceneScore(name, classifier.labels[index], round(float(score), 4))
            for (name, _), index, score in zip(scenes, empty_classes, empty_scores, strict=True)
        ],
    )


def calibrate_model(
    tflite_path: Path, labels: tuple[str, ...], spec: Preprocessing, frames_bgr: Frames, truth: npt.NDArray[np.int64]
) -> Rejection:
    """`calibrate` for a freshly built .tflite, loaded as the daemon loads it."""
    with Classifier.from_file(tflite_path, labels, spec, outputs=outputs_of(tflite_path)) as classifier:
        return calibrate(classifier, frames_bgr, truth)
