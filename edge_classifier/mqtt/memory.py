"""The publisher fake: keeps messages in memory (unit tests, and `bench`, which measures without a broker)."""

from __future__ import annotations

from edge_classifier.mqtt.client import OFFLINE, ONLINE, PublisherStats
from edge_classifier.mqtt.inbound import IncomingMessage
from edge_classifier.service.messages import Message


class MemoryPublisher:
    """The fake: keeps messages in memory (unit tests, and `bench`, which measures without a broker)."""

    def __init__(self, connected: bool = True):
        self.messages: list[Message] = []
        self.subscriptions: dict[str, int] = {}
        self.incoming: list[IncomingMessage] = []  # what a test delivers; take_incoming() hands it to the loop
        self.is_connected = connected
        self._announced = False
        self._connects = self._skipped = 0
        self.closed = False

    def service(self) -> bool:
        if not self.is_connected:
            self._announced = False
            return False
        if self._announced:
            return False
        self._announced = True
        self._connects += 1
        self.messages.append(Message("status", ONLINE, 1, True))
        return True

    def send(self, message: Message) -> bool:
        if not (self.is_connected and self._announced):
            self._skipped += 1
            return False
        self.messages.append(message)
        return True

    def subscribe(self, topic_filter: str, qos: int) -> None:
        self.subscriptions[topic_filter] = qos

    def take_incoming(self) -> list[IncomingMessage]:
        taken, self.incoming = self.incoming, []
        return taken

    def stats(self) -> PublisherStats:
        return PublisherStats(self.is_connected, self._connects, self._skipped, 0, 0, None, False)

    def close(self) -> None:
        if not self.closed and self.is_connected:
            self.messages.append(Message("status", OFFLINE, 1, True))
        self.closed = True
