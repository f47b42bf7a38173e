"""The main loop: freshest frame -> classify -> vote -> publish, until stopped or the source ends."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge_classifier.capture.source import FrameSource
from edge_classifier.model.classifier import Classifier
from edge_classifier.mqtt.client import Publisher
from edge_classifier.service.metrics import Metrics
from edge_classifier.service.notify import Notifier
from edge_classifier.service.payloads import ModelInfo, Reporter, metrics_payload
from edge_classifier.service.voting import Voter

logger = logging.getLogger(__name__)
FRAME_WAIT_S = 0.25  # how long one iteration waits for a frame before doing housekeeping


@dataclass(frozen=True)
class LoopSettings:
    device_id: str
    model: ModelInfo
    top_k: int


def run_loop(
    settings: LoopSettings,
    source: FrameSource,
    classifier: Classifier,
    publisher: Publisher,
    reporter: Reporter,
    voter: Voter,
    metrics: Metrics,
    notifier: Notifier,
    stop: threading.Event,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Run until `stop` is set ("stopped") or a finite source has no more frames ("ended")."""
    ready = False
    camera_state = ""
    while not stop.is_set():
        if publisher.service():
            reporter.republish_last()
        frame = source.get(FRAME_WAIT_S)
        if frame is None and source.ended:
            logger.info("source ended after %d frames", metrics.frames_total)
            return "ended"
        if frame is not None:
            result = classifier.classify(frame.image_bgr)
            t0 = clock()
            top = result.top_k(classifier.labels, settings.top_k)
            changed = voter.update(*top[0])
            postprocess_s = result.postprocess_s + clock() - t0
            timing = {
                "capture": 1000 * frame.decode_s,
                "preprocess": 1000 * result.preprocess_s,
                "inference": 1000 * result.inference_s,
                "postprocess": 1000 * postprocess_s,
            }
            timing["total"] = sum(timing.values())
            now = clock()
            frame_age_ms = 1000 * (now - frame.captured_at)
            fields = {
                "device_id": settings.device_id,
                "label": voter.label,
                "score": voter.score,
                "top_k": top,
                "model": settings.model,
                "frame_age_ms": frame_age_ms,
                "timing_ms": timing,
            }
            if changed or reporter.heartbeat_due(now):
                payload = reporter.result(fields, now)
                if changed:
                    logger.info("stable label: %s (%.2f) seq %d", voter.label, voter.score, payload["seq"])
            if reporter.inference_due(now):
                reporter.inference(
                    {**fields, "label": top[0][0], "score": top[0][1], "model": settings.model.as_dict()}, now
                )
            timing["publish"] = 1000 * (clock() - now)
            metrics.record(timing, frame_age_ms)
            if not ready:
                ready = True
                notifier.ready(f"classifying {settings.model.name}")
            notifier.watchdog(now)
        now = clock()
        stats = source.stats()
        if reporter.metrics_due(now) or stats.state != camera_state:
            if stats.state != camera_state and camera_state:
                logger.info("camera state: %s -> %s", camera_state, stats.state)
            camera_state = stats.state
            payload = metrics_payload(settings.device_id, metrics.snapshot(), stats, publisher.stats())
            reporter.metrics(payload, now)
            notifier.status(f"{payload['fps']} fps, camera {stats.state}, label {voter.label}")
    return "stopped"
