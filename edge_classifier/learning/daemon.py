"""The daemon's side of taught classes: the ones of the serving model, applied to each frame's top-k before voting.

A component of the main loop (so only the loop's thread touches it): it reads `<state_dir>/taught/<sha256>.json`
at start-up, again within CHECK_EVERY_S of an `edge-classifier teach` or `forget` (the file's time or size changed),
and when a model swap changes the sha256. A file it cannot use is logged once as an ERROR and the daemon goes on
with the trained classes alone.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edge_classifier.errors import InputError
from edge_classifier.learning.combine import DEFAULT_RULE, TaughtRule, combine
from edge_classifier.learning.store import load_taught, taught_path
from edge_classifier.learning.taught import TaughtClasses
from edge_classifier.model.classification import Classification, LabelScore
from edge_classifier.model.runner import TensorSpec
from edge_classifier.service.frame_result import FrameResult

if TYPE_CHECKING:
    from edge_classifier.service.loop import MainLoop

logger = logging.getLogger(__name__)

CHECK_EVERY_S = 2.0


class TaughtComponent:
    """Holds the taught classes of the model in use and puts their match into each frame's top-k."""

    def __init__(self, state_dir: Path, rule: TaughtRule = DEFAULT_RULE):
        self.state_dir = state_dir
        self.rule = rule
        self.taught: TaughtClasses | None = None
        self._seen: tuple[str, int, int] | None = None
        self._next_check = 0.0

    def refresh(self, model_sha256: str, embedding_spec: TensorSpec | None, force: bool = False) -> None:
        """Read the model's file again if it (or the model) changed since the last look, or when FORCE is given (a
        file rewritten within the file system's time resolution may look unchanged)."""
        if force:
            self._seen = (model_sha256, -1, -2)
        path = taught_path(self.state_dir, model_sha256)
        try:
            stat = path.stat()
            seen = (model_sha256, stat.st_mtime_ns, stat.st_size)
        except OSError:
            seen = (model_sha256, 0, -1)
        if seen == self._seen:
            return
        first, self._seen, self.taught = self._seen is None, seen, None
        if seen[2] < 0:
            if not first:
                logger.info("no taught classes for model %s...", model_sha256[:12])
            return
        if embedding_spec is None:
            logger.warning("%s: the model gives no embedding output, so its taught classes are not used", path)
            return
        try:
            taught = load_taught(path, model_sha256, embedding_spec.shape[-1])
        except InputError as exc:
            logger.error("%s; classifying with the trained classes only", exc)
            return
        self.taught = taught if len(taught) else None
        names = ", ".join(f"{label} ({entry.photos} photos)" for label, entry in sorted(taught.classes.items()))
        logger.info("taught classes for model %s...: %s", model_sha256[:12], names or "none")

    def on_connect(self, loop: MainLoop) -> None:
        """Nothing to publish at a new connection."""

    def tick(self, loop: MainLoop, now: float) -> None:
        """Every CHECK_EVERY_S: look for a new or changed file, or another model."""
        if now < self._next_check:
            return
        self._next_check = now + CHECK_EVERY_S
        self.refresh(loop.parts.model.sha256, loop.parts.classifier.embedding_spec)

    def apply(self, result: FrameResult, k: int) -> FrameResult:
        """RESULT with the taught match combined into its top-k (the time it took added to postprocess)."""
        if self.taught is None or result.classification is None:
            return result
        started = time.perf_counter()
        top = self.top_k(result.top_k, result.classification, k)
        spent_ms = 1000 * (time.perf_counter() - started)
        timings = dataclasses.replace(result.timings, postprocess_ms=result.timings.postprocess_ms + spent_ms)
        return dataclasses.replace(result, top_k=top, timings=timings)

    def top_k(self, trained: Sequence[LabelScore], classification: Classification, k: int) -> tuple[LabelScore, ...]:
        """The final top-k of one image (a frame, or a photo sent to /api/predict) from the trained head's top-k."""
        if self.taught is None:
            return tuple(trained[:k])
        return combine(trained, self.taught.match(classification.embedding), k, self.rule)
