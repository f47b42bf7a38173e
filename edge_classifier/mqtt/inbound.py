"""Messages the daemon receives: its subscriptions, renewed on every connection, and a bounded queue for the loop."""

from __future__ import annotations

import logging
import queue
from dataclasses import dataclass
from typing import Any

from edge_classifier.ratelimit import RateLimitedLog

logger = logging.getLogger(__name__)
QUEUE_CAPACITY = 1000  # messages waiting for the main loop; past it new ones are dropped and counted


@dataclass(frozen=True)
class IncomingMessage:
    """One received message; MQTT 5's response topic and correlation data when the sender gave them."""

    topic: str
    payload: bytes
    retain: bool
    response_topic: str | None = None
    correlation_data: bytes | None = None


def from_paho(message: Any) -> IncomingMessage:
    properties = getattr(message, "properties", None)
    response_topic = getattr(properties, "ResponseTopic", None) if properties is not None else None
    correlation = getattr(properties, "CorrelationData", None) if properties is not None else None
    return IncomingMessage(message.topic, bytes(message.payload), bool(message.retain), response_topic, correlation)


class Inbound:
    """The topic filters to subscribe to, and what arrived on them; on_message runs on the network thread."""

    def __init__(self, capacity: int = QUEUE_CAPACITY):
        self.filters: dict[str, int] = {}
        self._queue: queue.Queue[IncomingMessage] = queue.Queue(maxsize=capacity)
        self._warn = RateLimitedLog(logger)
        self.dropped = 0

    def add(self, topic_filter: str, qos: int) -> None:
        self.filters[topic_filter] = qos

    def subscribe_all(self, client: Any) -> None:
        """On each new connection (the session starts clean, so the broker forgot them)."""
        if self.filters:
            client.subscribe([(topic_filter, qos) for topic_filter, qos in self.filters.items()])

    def put(self, message: IncomingMessage) -> None:
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            self.dropped += 1
            self._warn.warning_for(
                "full", "%d received messages wait for the main loop: dropping %s", QUEUE_CAPACITY, message.topic
            )

    def take_all(self) -> list[IncomingMessage]:
        """Everything received so far, oldest first (the main loop's side; never blocks)."""
        taken: list[IncomingMessage] = []
        while True:
            try:
                taken.append(self._queue.get_nowait())
            except queue.Empty:
                return taken
