"""Which messages are due (result on change and heartbeat, inference rate-limited, metrics), with their seq."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge_classifier.capture.source import SourceStats
from edge_classifier.model.identity import ModelInfo
from edge_classifier.mqtt.client import PublisherStats
from edge_classifier.mqtt.topics import Topics
from edge_classifier.service.frame_result import FrameResult, StableLabel
from edge_classifier.service.messages import Message
from edge_classifier.service.metrics import MetricsSummary
from edge_classifier.service.payloads import (
    inference_message,
    metrics_message,
    result_document,
    result_messages,
    utc_now,
)


class Reporter:
    """Builds the messages that are due; it sends nothing (the loop hands them to its sink)."""

    def __init__(
        self,
        topics: Topics,
        qos: int,
        heartbeat_s: float,
        inference_min_interval_s: float | None,
        metrics_interval_s: float,
        now: float,
        timestamp: Callable[[], str] = utc_now,
    ):
        self._topics = topics
        self._qos = qos
        self.heartbeat_s = heartbeat_s
        self._inference_interval = inference_min_interval_s
        self._metrics_interval = metrics_interval_s
        self._timestamp = timestamp
        self._seq = self._inference_seq = 0
        self.last_result: dict[str, Any] | None = None
        self._last_result_at = now
        self._last_inference_at = float("-inf")
        self._next_metrics_at = now + metrics_interval_s

    @property
    def seq(self) -> int:
        return self._seq

    def heartbeat_due(self, now: float) -> bool:
        """True on the first frame (dashboards get a value at once) and every heartbeat_s after."""
        return self.last_result is None or now - self._last_result_at >= self.heartbeat_s

    def inference_due(self, now: float) -> bool:
        """True when the inference topic is on and its rate limit allows a message now."""
        return self._inference_interval is not None and now - self._last_inference_at >= self._inference_interval

    def metrics_due(self, now: float) -> bool:
        return now >= self._next_metrics_at

    def for_frame(
        self, result: FrameResult, stable: StableLabel, changed: bool, model: ModelInfo, device_id: str, now: float
    ) -> list[Message]:
        """The result (on a change of stable label or a due heartbeat) and the inference message, if due."""
        messages: list[Message] = []
        if changed or self.heartbeat_due(now):
            self._seq += 1
            self.last_result = result_document(self._seq, self._timestamp(), device_id, stable, result, model)
            self._last_result_at = now
            messages.extend(result_messages(self._topics, self._qos, self.last_result))
        if self.inference_due(now):
            self._inference_seq += 1
            self._last_inference_at = now
            ts = self._timestamp()
            messages.append(inference_message(self._topics, self._inference_seq, ts, device_id, result, model))
        return messages

    def republish(self) -> tuple[Message, ...]:
        """After a reconnect the broker may have lost retained messages: the current state again."""
        if self.last_result is None:
            return ()
        return result_messages(self._topics, self._qos, self.last_result)

    def for_metrics(
        self, summary: MetricsSummary, source: SourceStats, publisher: PublisherStats, device_id: str, now: float
    ) -> Message:
        self._next_metrics_at = now + self._metrics_interval
        return metrics_message(self._topics, self._timestamp(), device_id, summary, source, publisher)
