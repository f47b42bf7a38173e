"""Which outbox row each QoS 1 message id carries, and the PUBACKs that came back for them (the publisher's hook)."""

from __future__ import annotations

import queue

# MQTT 5 PUBACK reason codes from 0x80 up are failures. Quota exceeded is the broker being full for now: the row is
# kept and sent again on the next connection. Any other failure (not authorized, topic name or payload format
# invalid, an unspecified or implementation-specific error) is the broker's verdict on this message, which would
# not change on a retry: the row is dropped and counted as denied.
FAILURE = 0x80
QUOTA_EXCEEDED = 0x97


class Deliveries:
    """Passed to MqttPublisher as its delivery hook.

    The main loop's thread says which row it is about to send (`expect`); the publisher, on that same thread, says
    which message id paho gave it (`published`); paho's network thread queues each PUBACK (`acknowledged`); the main
    loop's thread collects them (`settled`). Rows in flight are those handed to paho and not yet acknowledged:
    within one process paho itself sends them again after a reconnect, with the same message id.
    """

    def __init__(self) -> None:
        self._expecting: int | None = None
        self._rows: dict[int, int] = {}  # message id -> row id
        self._mids: dict[int, int] = {}  # row id -> message id
        self._acks: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()

    def expect(self, row_id: int | None) -> None:
        """The next QoS 1 publish carries this row (None: no row)."""
        self._expecting = row_id

    # the hook ---------------------------------------------------------------------------------------------
    def published(self, mid: int, topic: str) -> None:
        """The caller's thread handed TOPIC to paho as message id MID."""
        row_id, self._expecting = self._expecting, None
        if row_id is None:
            return
        stale = self._rows.pop(mid, None)  # ids wrap around at 65535: the newest one counts
        if stale is not None:
            self._mids.pop(stale, None)
        self._rows[mid] = row_id
        self._mids[row_id] = mid

    def acknowledged(self, mid: int, code: int) -> None:
        """paho's network thread: the PUBACK for MID came, with its reason code (0: success; always 0 with 3.1.1)."""
        self._acks.put((mid, code))

    # the main loop's thread ---------------------------------------------------------------------------------
    def settled(self) -> list[tuple[int, int]]:
        """(row id, reason code) of every tracked row acknowledged since the last call, in arrival order."""
        settled: list[tuple[int, int]] = []
        while True:
            try:
                mid, code = self._acks.get_nowait()
            except queue.Empty:
                return settled
            row_id = self._rows.pop(mid, None)
            if row_id is not None:
                self._mids.pop(row_id, None)
                settled.append((row_id, code))

    def in_flight(self, row_id: int) -> bool:
        return row_id in self._mids

    @property
    def flying(self) -> int:
        """Rows handed to paho and not acknowledged yet."""
        return len(self._rows)
