"""Model hot-swap on the loop's thread: serve a verified model from the next frame, keep the previous one, and
roll back when the new model's first live inferences fail."""

from __future__ import annotations

import logging
import math
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edge_classifier.capture.source import Frame
from edge_classifier.errors import BusyError, ModelError, StoppedError, first_line
from edge_classifier.model.identity import ModelInfo
from edge_classifier.model.loading import LoadedModel
from edge_classifier.ratelimit import RateLimitedLog
from edge_classifier.service.frame_result import FrameResult
from edge_classifier.service.live_settings import LiveSettings
from edge_classifier.service.voting import Voter

if TYPE_CHECKING:
    from edge_classifier.service.loop import MainLoop

logger = logging.getLogger(__name__)
# Live frames a swapped-in model must classify cleanly (no exception, finite scores in [0, 1]) before it counts as
# verified; a failure among them rolls back to the previous model.
PROBATION_FRAMES = 5
_log = RateLimitedLog(logger)


@dataclass
class Probation:
    """A swapped-in model still being verified on live frames; `reply` resolves when it passes or is rolled back."""

    frames_left: int
    reply: Future[ModelInfo]


class ModelKeeper:
    """What the loop knows about its models besides the serving one: the previous, the probation, the fallback."""

    def __init__(self, fallback: str | None = None):
        self.fallback = fallback  # why the serving model is the start-up fallback; None when it is not
        self.previous: LoadedModel | None = None  # served before the last swap; model/rollback serves it again
        self.probation: Probation | None = None
        self.swaps = 0
        self.rollbacks = 0
        self.last_rollback: str | None = None

    def close(self) -> None:
        """Close the kept model and fail a verification still waiting (the loop closes the serving model)."""
        if self.probation is not None:
            self.probation.reply.set_exception(StoppedError("the service stopped before the new model was verified"))
            self.probation = None
        if self.previous is not None:
            self.previous.classifier.close()
            self.previous = None


def check_can_swap(loop: MainLoop) -> None:
    """BusyError while the last swap is still being verified: one new model at a time."""
    probation = loop.parts.models.probation
    if probation is not None:
        raise BusyError(
            f"model {loop.parts.model.name} is still being verified on live frames ({probation.frames_left} to go); "
            "try again once it is"
        )


def swap_in(loop: MainLoop, loaded: LoadedModel, reply: Future[ModelInfo], verify_frames: int) -> None:
    """Serve `loaded` from the next frame and keep the serving model for a rollback (closing the one kept before).

    `reply` resolves once the new model has classified `verify_frames` live frames cleanly, at once with 0.
    """
    parts, keeper = loop.parts, loop.parts.models
    check_can_swap(loop)
    if keeper.previous is not None:
        keeper.previous.classifier.close()
    keeper.previous = LoadedModel(parts.classifier, parts.model, keeper.fallback)
    _serve(loop, loaded)
    keeper.swaps += 1
    logger.info("now serving model %s %s (%s %s kept for a rollback)", loaded.info.name, loaded.info.version,
                keeper.previous.info.name, keeper.previous.info.version)  # fmt: skip
    if verify_frames > 0:
        keeper.probation = Probation(verify_frames, reply)
    else:
        reply.set_result(loaded.info)


def roll_back(loop: MainLoop, reason: str) -> ModelInfo:
    """Serve the previous model again and close the current one; ModelError when there is none to go back to."""
    parts, keeper = loop.parts, loop.parts.models
    previous = keeper.previous
    if previous is None:
        raise ModelError("no previous model to roll back to (none was swapped out since start, or it was rolled back)")
    failed = parts.classifier
    keeper.previous = None
    _serve(loop, previous)
    failed.close()
    keeper.rollbacks += 1
    keeper.last_rollback = reason
    if keeper.probation is not None:
        keeper.probation.reply.set_exception(ModelError(reason))
        keeper.probation = None
    return previous.info


def _serve(loop: MainLoop, loaded: LoadedModel) -> None:
    """`loaded` serves from the next frame: settings resolved for it (its calibrated min_score), a new vote."""
    parts = loop.parts
    parts.classifier, parts.model, parts.models.fallback = loaded.classifier, loaded.info, loaded.fallback
    parts.settings = LiveSettings.resolve(parts.settings.configured, loaded.classifier)
    loop.voter = Voter(parts.settings.vote_window, parts.settings.min_score)  # the labels may differ: a new vote
    parts.state.model_changed(loaded.info, loop.voter.stable, loaded.fallback)


def invalid_result(result: FrameResult) -> str | None:
    """Why a frame's result cannot be trusted (scores not finite or outside [0, 1]), or None."""
    for pair in result.top_k:
        if not math.isfinite(pair.score) or not 0.0 <= pair.score <= 1.0:
            return f"gave the score {pair.score!r} for {pair.label!r}"
    return None


def classify_live(loop: MainLoop, frame: Frame) -> FrameResult:
    """The serving model's result for a camera frame; while a new model is on probation, a failure rolls back and
    the previous model classifies the same frame, so none is lost."""
    from edge_classifier.service.loop import classify_frame  # the loop imports this module

    parts, keeper = loop.parts, loop.parts.models
    probation = keeper.probation
    if probation is None:
        return classify_frame(parts.classifier, frame, parts.settings.top_k, parts.clock)
    try:
        result = classify_frame(parts.classifier, frame, parts.settings.top_k, parts.clock)
        problem = invalid_result(result)
    except Exception as exc:  # a new model's failure, whatever it is, must not stop the loop: it is rolled back
        problem = f"raised {type(exc).__name__}: {first_line(exc)}"
    if problem is None:
        probation.frames_left -= 1
        if probation.frames_left <= 0:
            keeper.probation = None
            logger.info("model %s %s verified on live frames", parts.model.name, parts.model.version)
            probation.reply.set_result(parts.model)
        return result
    failed = parts.model
    assert keeper.previous is not None  # a probation always follows a swap, which keeps the previous model
    reason = (
        f"model {failed.name} {failed.version} was rolled back to {keeper.previous.info.name} "
        f"{keeper.previous.info.version}: its live inference on frame {frame.index} {problem}"
    )
    roll_back(loop, reason)
    _log.error_for("rollback", "%s", reason)
    return classify_frame(parts.classifier, frame, parts.settings.top_k, parts.clock)
