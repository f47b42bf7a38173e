"""Results through the outbox: written first, sent in write order, replayed after a reconnect or a restart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from edge_classifier.mqtt.client import Publisher, PublisherStats
from edge_classifier.mqtt.inbound import IncomingMessage
from edge_classifier.outbox.outbox import Outbox
from edge_classifier.outbox.store import Row
from edge_classifier.service.messages import Message
from edge_classifier.service.payloads import mark_replayed

if TYPE_CHECKING:
    from edge_classifier.service.loop import MainLoop

# Rows handed to paho and not yet acknowledged, at most: a backlog of thousands goes out as PUBACKs come back,
# instead of sitting in paho's queue in memory all at once.
WINDOW = 100
# How often rows older than outbox.max_age_s are looked for.
PURGE_INTERVAL_S = 60.0


@dataclass(frozen=True)
class Replayed:
    """What a replay request did."""

    sent: int  # acknowledged results sent again
    unsent: int  # acknowledged results not sent: the connection went
    waiting: list[int]  # seqs not acknowledged yet, which go out by themselves
    gone: list[int]  # seqs the outbox holds no more


class OutboxPublisher:
    """The main loop's publisher: `result` messages go through the outbox, everything else straight through.

    A result is written, then sent only once every older row is out; a row that waited (broker away, the window
    full, an earlier process) goes out flagged `"replayed": true` and not retained, except the newest result, which
    is the retained state. A row is deleted when its PUBACK comes. After a reconnect, the rows still in paho's own
    queue are sent again by paho (same message id); the others are replayed here.
    """

    def __init__(self, inner: Publisher, outbox: Outbox, result_topic: str):
        self._inner = inner
        self._outbox = outbox
        self._topic = result_topic
        self._connection = 0  # the connection (PublisherStats.connects) whose replay started: rows flow only on it
        self._cursor = 0  # every row up to this id went to paho on this connection, or is in flight
        self._latest: tuple[int, Message] | None = None  # this process's newest result: its row and its message
        self._restore = False  # send the newest result again, retained, once the backlog is out
        self._purged_at: float | None = None

    # the Publisher protocol -------------------------------------------------------------------------------
    def send(self, message: Message) -> bool:
        if message.topic != self._topic:
            return self._inner.send(message)
        row_id = self._outbox.keep(message)
        if row_id is None:  # SQLite refused it (counted and logged): sent as it would be without an outbox
            return self._inner.send(message)
        self._latest = (row_id, message)
        self._restore = False
        self._pump(fresh=row_id)
        return True  # sent, or waiting in the outbox

    def subscribe(self, topic_filter: str, qos: int) -> None:
        self._inner.subscribe(topic_filter, qos)

    def take_incoming(self) -> list[IncomingMessage]:
        return self._inner.take_incoming()

    def service(self) -> bool:
        return self._inner.service()

    def stats(self) -> PublisherStats:
        return self._inner.stats()

    def close(self) -> None:
        self._inner.close()

    def replay(self, first: int, last: int) -> Replayed:
        """Send again the acknowledged results with a seq from FIRST to LAST (cmd/replay), flagged `replayed`."""
        held = self._outbox.held(first, last)
        sent = 0
        for row in held.acknowledged:
            if not self._inner.send(_replay(row.topic, row.payload, retain=False)):
                break  # the connection went: the requester asks again
            self._outbox.count_replayed()
            sent += 1
        return Replayed(sent, len(held.acknowledged) - sent, held.waiting, held.gone)

    # the component's work ---------------------------------------------------------------------------------
    def on_connect(self) -> None:
        """`online` went out on a new connection: from the oldest row on, send every row paho does not hold."""
        self._connection = self._inner.stats().connects
        self._cursor = 0
        # The broker may have lost its retained messages: the newest result again, if it is not waiting anyway.
        self._restore = self._latest is not None and not self._outbox.pending(self._latest[0])
        self._pump()

    def tick(self, now: float) -> None:
        """Apply the PUBACKs that came, drop what is too old once a minute, and send what the window allows."""
        self._outbox.settle()
        if self._purged_at is None or now - self._purged_at >= PURGE_INTERVAL_S:
            self._purged_at = now
            self._outbox.purge()
        self._pump()

    def _pump(self, fresh: int | None = None) -> None:
        stats = self._inner.stats()
        if not stats.connected or stats.connects != self._connection:
            return  # offline, or a new connection whose replay has not started: everything waits
        deliveries = self._outbox.deliveries
        while (room := WINDOW - deliveries.flying) > 0:
            rows = self._outbox.rows_after(self._cursor, room)
            if not rows:
                break
            for row in rows:
                if not deliveries.in_flight(row.id) and not self._send_row(row, fresh):
                    return  # the connection went: the rest waits for the next one
                self._cursor = row.id
        else:
            return  # the window is full: the rest goes as PUBACKs come back
        if self._restore and self._latest is not None:
            self._restore = False
            self._outbox.count_replayed()
            self._inner.send(_replay(self._latest[1].topic, self._latest[1].payload, retain=True))

    def _send_row(self, row: Row, fresh: int | None) -> bool:
        latest = self._latest
        live = latest is not None and row.id == fresh
        if latest is not None and live:
            message = latest[1]  # made just now and sent at once: as the reporter built it
        else:
            message = _replay(row.topic, row.payload, retain=latest is not None and row.id == latest[0])
        self._outbox.deliveries.expect(row.id)
        try:
            sent = self._inner.send(message)
        finally:
            self._outbox.deliveries.expect(None)
        if sent and not live:
            self._outbox.count_replayed()
        return sent


class OutboxComponent:
    """The loop's hooks for the outbox: replay on every new connection, acknowledgements and bounds between frames."""

    def __init__(self, publisher: OutboxPublisher):
        self._publisher = publisher

    def on_connect(self, loop: MainLoop) -> None:
        self._publisher.on_connect()

    def tick(self, loop: MainLoop, now: float) -> None:
        self._publisher.tick(now)


def _replay(topic: str, payload: str | bytes, retain: bool) -> Message:
    text = payload if isinstance(payload, str) else payload.decode()
    return Message(topic, mark_replayed(text), qos=1, retain=retain)
