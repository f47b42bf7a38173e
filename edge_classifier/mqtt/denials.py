"""Publishes the broker refused: MQTT 5 PUBACK reason codes matched to topics, and the MQTT 3.1.1 status echo check."""

from __future__ import annotations

import queue
import threading
from typing import Any, Literal

# QoS 1 messages whose PUBACK has not come (yet) are forgotten beyond this many, oldest first.
MAX_PENDING = 1024

EchoOutcome = Literal["echoed", "unverifiable", "missing"]


class PubackLedger:
    """Topics of QoS 1 messages awaiting their PUBACK (MQTT 5 puts a reason code in it, 0x87 when the ACL denies).

    The network thread only queues what each PUBACK said; the caller's thread, which published, matches them.
    """

    def __init__(self) -> None:
        self._topics: dict[int, str] = {}
        self._acks: queue.SimpleQueue[tuple[int, str | None]] = queue.SimpleQueue()

    def sent(self, mid: int, topic: str) -> None:
        """The caller's thread published TOPIC at QoS 1 as message id MID."""
        self._topics.pop(mid, None)  # ids wrap around at 65535: the newest one counts
        self._topics[mid] = topic
        if len(self._topics) > MAX_PENDING:
            del self._topics[next(iter(self._topics))]

    def on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        """paho's callback, on the network thread."""
        self._acks.put((mid, str(reason_code) if reason_code.is_failure else None))

    def denied(self) -> list[tuple[str, str]]:
        """(topic, reason) of each publish refused since the last call; on the caller's thread."""
        refused: list[tuple[str, str]] = []
        while True:
            try:
                mid, reason = self._acks.get_nowait()
            except queue.Empty:
                return refused
            topic = self._topics.pop(mid, None)
            if reason is not None:
                refused.append((topic or f"message id {mid}", reason))


class EchoCheck:
    """MQTT 3.1.1 acknowledges a denied publish like any other: see whether our own `online` comes back instead.

    Subscribed before `online` goes out, the broker must forward it to us live (retain flag clear). mosquitto
    grants every subscription and filters what it delivers, so a missing echo means that the ACL denies
    publishing, or reading, the status topic. Done once per process: until a connection gives a verdict.
    """

    def __init__(self, topic: str, payload: str, timeout_s: float):
        self.topic = topic
        self._payload = payload.encode()
        self.timeout_s = timeout_s
        self.done = False
        self._connection = 0
        self._deadline = 0.0
        self._echoed = threading.Event()
        self._refused = threading.Event()

    def start(self, client: Any, connection: int, now: float) -> None:
        """On the caller's thread, on each new connection until done: subscribe before `online` is published."""
        self._echoed.clear()
        self._refused.clear()
        self._connection = connection
        self._deadline = now + self.timeout_s
        client.subscribe(self.topic, qos=0)

    def outcome(self, connection: int, now: float) -> EchoOutcome | None:
        """The verdict once there is one, on the connection the check started on; None while waiting."""
        if self.done or connection != self._connection:
            return None
        if self._echoed.is_set():
            result: EchoOutcome = "echoed"
        elif self._refused.is_set():
            result = "unverifiable"
        elif now > self._deadline:
            result = "missing"
        else:
            return None
        self.done = True
        return result

    # paho callbacks, on the network thread ------------------------------------------------------------
    def on_message(self, client: Any, userdata: Any, message: Any) -> None:
        if message.topic == self.topic and not message.retain and message.payload == self._payload:
            self._echoed.set()

    def on_subscribe(self, client: Any, userdata: Any, mid: int, reason_codes: Any, properties: Any) -> None:
        if any(code.is_failure for code in reason_codes):
            self._refused.set()
