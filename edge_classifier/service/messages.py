"""Messages as values, and the sink seam that sends them (MQTT is the first sink)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Message:
    """One message to publish: built by a pure function, sent by a sink."""

    topic: str
    payload: str | bytes
    qos: int = 0
    retain: bool = False
    correlation_data: bytes | None = None  # MQTT 5: echoed in a response to a request that carried it


class Sink(Protocol):
    """Where messages go."""

    def send(self, message: Message) -> bool:
        """Queue a message; False (and counted) when it cannot be sent now."""
