"""The main loop, sole owner of the model: freshest frame -> classify -> vote -> messages; the inbox between frames."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from edge_classifier.capture.source import Frame, FrameSource
from edge_classifier.catalogue.runtime import CatalogueRuntime
from edge_classifier.learning.daemon import TaughtComponent
from edge_classifier.model.classifier import Classifier
from edge_classifier.model.identity import ModelInfo
from edge_classifier.mqtt.client import Publisher
from edge_classifier.outbox.sink import OutboxPublisher
from edge_classifier.service.frame_result import FrameInfo, FrameResult, StageTimings
from edge_classifier.service.hot_swap import ModelKeeper, classify_live
from edge_classifier.service.inbox import Inbox
from edge_classifier.service.live_settings import LiveSettings
from edge_classifier.service.metrics import Metrics
from edge_classifier.service.notify import Notifier
from edge_classifier.service.operator import OperatorRequests, status_line
from edge_classifier.service.payloads import metrics_with_model
from edge_classifier.service.reporter import Reporter
from edge_classifier.service.requests import serve_request
from edge_classifier.service.router import Router
from edge_classifier.service.state import RuntimeState
from edge_classifier.service.voting import Voter

logger = logging.getLogger(__name__)
# How long one iteration waits for a frame before serving the inbox and housekeeping: short, so that a
# request waits little while no camera delivers frames.
FRAME_WAIT_S = 0.05


@dataclass
class LoopParts:
    """What the composition root wires into the loop; the loop owns `classifier` and closes it."""

    device_id: str
    source: FrameSource
    publisher: Publisher
    classifier: Classifier
    model: ModelInfo
    settings: LiveSettings
    reporter: Reporter
    metrics: Metrics
    notifier: Notifier
    inbox: Inbox
    state: RuntimeState
    clock: Callable[[], float] = time.monotonic
    operator: OperatorRequests = field(default_factory=OperatorRequests)
    router: Router = field(default_factory=Router)
    components: list[Component] = field(default_factory=list)
    models: ModelKeeper = field(default_factory=ModelKeeper)  # the previous model, a swap's probation, the fallback
    reload: Callable[[MainLoop], None] | None = None  # re-reads the configuration (SIGHUP)
    catalogue: CatalogueRuntime | None = None  # visual search: `similar` in results, when an index exists
    taught: TaughtComponent | None = None  # classes taught on the device (edge-classifier teach), also in components
    results: OutboxPublisher | None = None  # the outbox's publisher (also `publisher`): replays seqs (cmd/replay)


class Component(Protocol):
    """A part of the service that acts on the loop's thread at a new connection and between frames."""

    def on_connect(self, loop: MainLoop) -> None:
        """The broker (re)connected and `online` went out: publish what a new session needs."""

    def tick(self, loop: MainLoop, now: float) -> None:
        """Called every iteration: do what is due (cheaply when nothing is)."""


def classify_frame(
    classifier: Classifier, frame: Frame, top_k: int, clock: Callable[[], float] = time.monotonic
) -> FrameResult:
    """One camera frame through the model: its best labels and what each stage cost."""
    classification = classifier.classify(frame.image_bgr)
    t0 = clock()
    top = classification.top_k(classifier.labels, top_k)
    postprocess_s = classification.postprocess_s + clock() - t0
    timings = StageTimings(
        1000 * frame.decode_s,
        1000 * classification.preprocess_s,
        1000 * classification.inference_s,
        1000 * postprocess_s,
    )
    height, width = frame.image_bgr.shape[:2]
    info = FrameInfo(frame.index, frame.captured_at, height, width)
    return FrameResult(info, top, timings, 1000 * (clock() - frame.captured_at), classification)


class MainLoop:
    """Runs on one thread; everything else reaches the model through `parts.inbox`."""

    def __init__(self, parts: LoopParts):
        self.parts = parts
        self.voter = Voter(parts.settings.vote_window, parts.settings.min_score)
        self._metrics_reader = parts.metrics.reader()
        self._status_reader = parts.metrics.reader()
        self._ready = False
        self._camera_state = ""
        self._publishing_lost = False

    def run(self, stop: threading.Event) -> str:
        """Run until `stop` is set ("stopped") or a finite source has no more frames ("ended")."""
        # The camera's state as it is now (a missing camera is found while the service is built), not as it was
        # when the state was made: readers (/api/ready) see it before the first iteration's housekeeping.
        self.parts.state.connections(self.parts.source.stats(), self.parts.publisher.stats())
        while not stop.is_set():
            if self.step() == "ended":
                return "ended"
        return "stopped"

    def step(self) -> str | None:
        """One iteration: a frame if one comes within FRAME_WAIT_S, the waiting requests, housekeeping."""
        parts = self.parts
        if parts.publisher.service():
            for message in parts.reporter.republish():
                parts.publisher.send(message)
            for component in parts.components:
                component.on_connect(self)
        frame = parts.source.get(FRAME_WAIT_S)
        if frame is None and parts.source.ended:
            self._serve_inbox()
            logger.info("source ended after %d frames", parts.metrics.frames_total)
            self._housekeeping(force_metrics=True)
            return "ended"
        if frame is not None:
            self._on_frame(frame)
        self._serve_inbox()
        self._housekeeping(force_metrics=False)
        self._serve_operator()
        now = parts.clock()
        for component in parts.components:
            component.tick(self, now)
        return None

    def _serve_operator(self) -> None:
        operator = self.parts.operator
        if operator.status:
            operator.status = False
            logger.info("%s", status_line(self.parts.state.snapshot(), self._status_reader.read()))
        if operator.reload:
            operator.reload = False
            if self.parts.reload is None:
                logger.warning("SIGHUP: this service has no configuration to read again; ignored")
            else:
                self.parts.reload(self)

    def _on_frame(self, frame: Frame) -> None:
        parts, clock = self.parts, self.parts.clock
        result = classify_live(self, frame)  # a model on probation after a swap is rolled back if it fails
        if parts.taught is not None:
            result = parts.taught.apply(result, parts.settings.top_k)
        if parts.catalogue is not None:
            result = parts.catalogue.annotate(result, parts.model)
        changed = self.voter.update(*result.best)
        now = clock()
        messages = parts.reporter.for_frame(result, self.voter.stable, changed, parts.model, parts.device_id, now)
        for message in messages:
            parts.publisher.send(message)
        if changed:
            # DEBUG: at a file's full rate the label can change many times a second.
            logger.debug("stable label: %s (%.2f) seq %d", self.voter.label, self.voter.score, parts.reporter.seq)
        parts.metrics.record(result.timings, 1000 * (clock() - now), result.frame_age_ms)
        parts.state.frame_done(result, frame.image_bgr, self.voter.stable, parts.reporter.last_result)
        if not self._ready:
            self._ready = True
            parts.notifier.ready(f"classifying {parts.model.name}")
        if self._may_feed_watchdog():
            parts.notifier.watchdog(now)

    def _may_feed_watchdog(self) -> bool:
        """False while nothing could be published for longer than mqtt.max_offline_s: systemd then restarts us."""
        lost = self.parts.publisher.stats().publishing_lost
        if lost != self._publishing_lost:
            self._publishing_lost = lost
            if lost:
                logger.error("nothing could be published for longer than mqtt.max_offline_s: no longer feeding the "
                             "systemd watchdog, so that it restarts the service")  # fmt: skip
            else:
                logger.info("publishing again: feeding the systemd watchdog again")
        return not lost

    def _serve_inbox(self) -> None:
        while (request := self.parts.inbox.take()) is not None:
            serve_request(self, request)
        for message in self.parts.publisher.take_incoming():
            self.parts.router.dispatch(self, message)

    def _housekeeping(self, force_metrics: bool) -> None:
        parts = self.parts
        now = parts.clock()
        source, publisher = parts.source.stats(), parts.publisher.stats()
        parts.state.connections(source, publisher)
        if force_metrics or parts.reporter.metrics_due(now) or source.state != self._camera_state:
            if source.state != self._camera_state and self._camera_state:
                logger.info("camera state: %s -> %s", self._camera_state, source.state)
            self._camera_state = source.state
            summary = self._metrics_reader.read()
            metrics = parts.reporter.for_metrics(summary, source, publisher, parts.device_id, now)
            parts.publisher.send(metrics_with_model(metrics, parts.model, parts.models.fallback))
            parts.notifier.status(f"{summary.fps} fps, camera {source.state}, label {self.voter.label}")

    def close(self) -> None:
        """Close the models the loop owns (the one serving, the one kept for a rollback); idempotent."""
        self.parts.models.close()
        self.parts.classifier.close()
