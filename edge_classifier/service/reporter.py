"""Which messages are due (result on change and heartbeat, inference rate-limited, metrics), with their seq."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Protocol

from edge_classifier.capture.source import SourceStats
from edge_classifier.model.identity import ModelInfo
from edge_classifier.mqtt.client import PublisherStats
from edge_classifier.mqtt.topics import Topics
from edge_classifier.outbox.outbox import OutboxStats
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


def new_boot_id() -> str:
    """A random id for one process start: a subscriber tells a restart (a new boot_id) from a gap (a missing seq)."""
    return str(uuid.uuid4())


class ResultLog(Protocol):
    """Where results are kept until acknowledged (the outbox): it numbers them, across restarts."""

    def next_seq(self) -> int:
        """One above the last seq written, in this process or an earlier one."""

    def stats(self) -> OutboxStats: ...


class Reporter:
    """Builds the messages that are due; it sends nothing (the loop hands them to its sink).

    With a ResultLog the seq continues where the last process stopped, and the result is not re-sent on a
    reconnect (the outbox sends what waits, then the current result, in order); without one seq starts at 1.
    """

    def __init__(
        self,
        topics: Topics,
        qos: int,
        heartbeat_s: float,
        inference_min_interval_s: float | None,
        metrics_interval_s: float,
        now: float,
        timestamp: Callable[[], str] = utc_now,
        *,
        log: ResultLog | None = None,
        boot_id: str | None = None,
    ):
        self._topics = topics
        self._qos = qos
        self.heartbeat_s = heartbeat_s
        self._inference_interval = inference_min_interval_s
        self._metrics_interval = metrics_interval_s
        self._timestamp = timestamp
        self._log = log
        self.boot_id = boot_id or new_boot_id()
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
            self._seq = self._log.next_seq() if self._log is not None else self._seq + 1
            self.last_result = result_document(
                self._seq, self._timestamp(), device_id, stable, result, model, self.boot_id
            )
            self._last_result_at = now
            messages.extend(result_messages(self._topics, self._qos, self.last_result))
        if self.inference_due(now):
            self._inference_seq += 1
            self._last_inference_at = now
            ts = self._timestamp()
            messages.append(inference_message(self._topics, self._inference_seq, ts, device_id, result, model))
        return messages

    def republish(self) -> tuple[Message, ...]:
        """After a reconnect the broker may have lost retained messages: the current state again.

        With a ResultLog only the label: the outbox sends the result after the older ones still waiting.
        """
        if self.last_result is None:
            return ()
        messages = result_messages(self._topics, self._qos, self.last_result)
        return messages[1:] if self._log is not None else messages

    def for_metrics(
        self, summary: MetricsSummary, source: SourceStats, publisher: PublisherStats, device_id: str, now: float
    ) -> Message:
        self._next_metrics_at = now + self._metrics_interval
        outbox = self._log.stats() if self._log is not None else None
        return metrics_message(self._topics, self._timestamp(), device_id, summary, source, publisher, outbox)
