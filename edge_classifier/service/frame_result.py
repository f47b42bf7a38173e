"""The typed values of the hot path: per-stage timings, one frame's result, the stable label."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_classifier.catalogue.search import Match
from edge_classifier.model.classification import Classification, LabelScore

# The stages of one frame, in order; `publish` is measured after the payloads are sent.
STAGES = ("capture", "preprocess", "inference", "postprocess", "publish", "total")


@dataclass(frozen=True)
class StageTimings:
    """Milliseconds spent on one frame by each stage before publishing."""

    capture_ms: float
    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float

    @property
    def total_ms(self) -> float:
        return self.capture_ms + self.preprocess_ms + self.inference_ms + self.postprocess_ms

    def by_stage(self) -> dict[str, float]:
        """Stage name to milliseconds, `total` included (the payloads' `timing_ms`)."""
        return {
            "capture": self.capture_ms,
            "preprocess": self.preprocess_ms,
            "inference": self.inference_ms,
            "postprocess": self.postprocess_ms,
            "total": self.total_ms,
        }


@dataclass(frozen=True)
class FrameInfo:
    """Which frame of the source, when it was captured (time.monotonic()) and its size."""

    index: int
    captured_at: float
    height: int
    width: int


@dataclass(frozen=True)
class FrameResult:
    """One classified frame: the frame, its best labels (highest first) and what each stage cost."""

    frame: FrameInfo
    top_k: tuple[LabelScore, ...]
    timings: StageTimings
    frame_age_ms: float
    # The model's own output for this frame (its embedding is read only by the catalogue search), and the similar
    # catalogue items found with it: None without a catalogue for the serving model (no `similar` in the payload).
    classification: Classification | None = field(default=None, compare=False, repr=False)
    similar: tuple[Match, ...] | None = None

    @property
    def best(self) -> LabelScore:
        return self.top_k[0]


@dataclass(frozen=True)
class StableLabel:
    """The voted label (or `unknown`) with the mean score of its votes."""

    label: str
    score: float
