"""What one build trained, measured and checked: the figures its manifest, its --record and its last line report."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .evaluate import Accuracy
    from .fitting import FitResult
    from .foldcheck import FoldReport
    from .openset import Rejection
    from .photo_eval import PhotoEvaluation
    from .trainstage import Trained
    from .transplant import Agreement

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fits:
    """The fine-tuning runs after the base training: pruning, then quantization-aware training."""

    prune: FitResult | None = None
    qat: FitResult | None = None

    @property
    def seconds(self) -> float:
        return sum(fit.seconds for fit in (self.prune, self.qat) if fit is not None)


@dataclass(frozen=True)
class Evaluations:
    """Accuracy on the test set of every model the build made, and of the .tflite on --eval-dir's photos."""

    base: Accuracy  # the trained float Keras model, before pruning or QAT
    keras_float: Accuracy  # the float Keras model that was converted (pruned, when pruning)
    keras_qat: Accuracy | None  # the fake-quantized Keras model, with QAT
    tflite: Accuracy  # the .tflite through the daemon's interpreter, with its latency
    photos: PhotoEvaluation | None  # the .tflite on --eval-dir, through the daemon's classifier
    teacher: Accuracy | None  # the teacher's float accuracy, when distilling


@dataclass(frozen=True)
class Outcome:
    """Everything one build produced, up to its manifest."""

    labels: tuple[str, ...]
    test_set: str  # the data's description
    train_images: int
    trained: Trained
    teacher: Trained | None
    fits: Fits
    evals: Evaluations
    tflite_path: Path
    ops: dict[str, int]  # the .tflite's operator counts
    fold: FoldReport | None  # None with --fold-check-images 0
    calibration_images: int
    transplant: Agreement | None  # the check of --weights FILE.tflite, when one was made
    rejection: Rejection  # the calibrated open-set threshold


@dataclass(frozen=True)
class BuildSummary:
    """What the command line prints when a build is done."""

    manifest: Path
    kind: str
    float_accuracy: float
    tflite_accuracy: float
    size_bytes: int
    latency_p50: float | None
    selftest_images: int

    def text(self) -> str:
        return (
            f"float {self.float_accuracy:.2f}%, {self.kind} {self.tflite_accuracy:.2f}% "
            f"({self.tflite_accuracy - self.float_accuracy:+.2f} points), {self.size_bytes / 1024:.0f} KiB, "
            f"{self.kind} latency p50 {self.latency_p50} ms, {self.selftest_images} self-test images -> {self.manifest}"
        )
