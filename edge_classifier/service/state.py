"""The runtime state the main loop publishes after each frame, for other threads to read under a lock."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_classifier.capture.source import SourceStats
from edge_classifier.model.identity import ModelInfo
from edge_classifier.mqtt.client import PublisherStats
from edge_classifier.service.frame_result import FrameResult, StableLabel
from edge_classifier.service.voting import UNKNOWN


@dataclass(frozen=True)
class RuntimeSnapshot:
    """Everything a reader may see at one moment; the frame is shared, so readers must not write to it."""

    model: ModelInfo
    frames_processed: int
    latest: FrameResult | None
    frame_bgr: npt.NDArray[np.uint8] | None
    stable: StableLabel
    last_result: dict[str, Any] | None  # the latest `result` payload, as published
    source: SourceStats
    publisher: PublisherStats
    model_fallback: str | None = None  # why `model` is the start-up fallback rather than the configured model


class RuntimeState:
    """Written only by the main loop; snapshot() and wait_for_frame() are safe from any thread."""

    def __init__(
        self, model: ModelInfo, source: SourceStats, publisher: PublisherStats, model_fallback: str | None = None
    ):
        self._cond = threading.Condition()
        self._snapshot = RuntimeSnapshot(
            model, 0, None, None, StableLabel(UNKNOWN, 0.0), None, source, publisher, model_fallback
        )  # fmt: skip

    def snapshot(self) -> RuntimeSnapshot:
        with self._cond:
            return self._snapshot

    def wait_for_frame(self, after: int, timeout: float) -> RuntimeSnapshot:
        """The state once more than `after` frames were processed, or as it is after `timeout` seconds."""
        with self._cond:
            self._cond.wait_for(lambda: self._snapshot.frames_processed > after, timeout)
            return self._snapshot

    def frame_done(
        self,
        result: FrameResult,
        frame_bgr: npt.NDArray[np.uint8],
        stable: StableLabel,
        last_result: dict[str, Any] | None,
    ) -> None:
        with self._cond:
            previous = self._snapshot
            self._snapshot = replace(
                previous,
                frames_processed=previous.frames_processed + 1,
                latest=result,
                frame_bgr=frame_bgr,
                stable=stable,
                last_result=last_result,
            )
            self._cond.notify_all()

    def connections(self, source: SourceStats, publisher: PublisherStats) -> None:
        with self._cond:
            self._snapshot = replace(self._snapshot, source=source, publisher=publisher)

    def model_changed(self, model: ModelInfo, stable: StableLabel, fallback: str | None = None) -> None:
        with self._cond:
            self._snapshot = replace(self._snapshot, model=model, stable=stable, latest=None, model_fallback=fallback)
