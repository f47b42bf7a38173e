"""Fakes at the I/O seams: a runner that needs no model file, and frame sources that need no camera."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_classifier.capture.source import Frame, SourceStats
from edge_classifier.model.classifier import Classifier
from edge_classifier.model.identity import ModelInfo
from edge_classifier.model.preprocess import Preprocessing
from edge_classifier.model.quant import QuantParams
from edge_classifier.model.runner import TensorSpec

FAKE_LABELS = ("zero", "fifty", "hundred", "one-fifty", "two-hundred")
FAKE_MODEL = ModelInfo("fake", "1", "0" * 64)
TOP_SCORE = 0.9


def solid_frame(value: int, height: int = 24, width: int = 32) -> npt.NDArray[np.uint8]:
    """A BGR frame of one grey level: the fake runner answers label value // 50."""
    return np.full((height, width, 3), value, dtype=np.uint8)


class FakeRunner:
    """A float32 'model' whose answer is the input's mean grey level // 50, scored TOP_SCORE.

    It records the thread of every invocation, so tests can check that only the loop's thread
    touches it.
    """

    def __init__(self, classes: int = len(FAKE_LABELS)):
        self.classes = classes
        self.threads: set[int] = set()
        self.invocations = 0
        self.closed = False
        self._input = TensorSpec(0, (1, 4, 4, 3), QuantParams(np.dtype(np.float32)))
        self._output = TensorSpec(1, (1, classes), QuantParams(np.dtype(np.float32)))

    @property
    def input_spec(self) -> TensorSpec:
        return self._input

    @property
    def output_spec(self) -> TensorSpec:
        return self._output

    def invoke(self, input_tensor: npt.NDArray[Any]) -> npt.NDArray[Any]:
        assert not self.closed, "invoked after close()"
        self.threads.add(threading.get_ident())
        self.invocations += 1
        grey = (float(input_tensor.mean()) + 1.0) * 127.5  # undo the default mean/std of 127.5
        index = min(self.classes - 1, round(grey) // 50)
        scores = np.full(self.classes, (1.0 - TOP_SCORE) / (self.classes - 1), dtype=np.float32)
        scores[index] = TOP_SCORE
        return scores

    def close(self) -> None:
        self.closed = True


def fake_classifier(runner: FakeRunner | None = None, labels: tuple[str, ...] = FAKE_LABELS) -> Classifier:
    return Classifier(runner or FakeRunner(len(labels)), labels, Preprocessing())


class ListSource:
    """Hands out a fixed list of frames, then ends; `on_get` runs before each hand-out."""

    def __init__(self, frames: list[npt.NDArray[np.uint8]], on_get: Any = None):
        self.frames = list(frames)
        self.on_get = on_get or (lambda i: None)
        self.served = 0

    def get(self, timeout: float) -> Frame | None:
        if not self.frames:
            return None
        self.on_get(self.served)
        self.served += 1
        return Frame(self.frames.pop(0), self.served - 1, 0.0, 0.001)

    @property
    def ended(self) -> bool:
        return not self.frames

    def stats(self) -> SourceStats:
        return SourceStats("ended" if self.ended else "running", self.served, 0, 0, 0)

    def close(self) -> None:
        pass


class EndlessSource:
    """Cycles through frames until closed, as a camera would; `value` picks the grey level served next."""

    def __init__(self, value: int = 0):
        self.value = value
        self.served = 0
        self.closed = False

    def get(self, timeout: float) -> Frame | None:
        self.served += 1
        return Frame(solid_frame(self.value), self.served - 1, time.monotonic(), 0.001)

    @property
    def ended(self) -> bool:
        return False

    def stats(self) -> SourceStats:
        return SourceStats("running", self.served, 0, 0, 0)

    def close(self) -> None:
        self.closed = True
