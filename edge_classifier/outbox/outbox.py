"""The outbox: result messages kept until the broker acknowledges them, bounded, and the seq that outlives a restart."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_classifier.errors import first_line
from edge_classifier.outbox.deliveries import FAILURE, QUOTA_EXCEEDED, Deliveries
from edge_classifier.outbox.store import OutboxStore, Row
from edge_classifier.ratelimit import RateLimitedLog
from edge_classifier.service.messages import Message

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Held:
    """The answer to a replay request for a range of seqs."""

    acknowledged: list[Row]  # sent and acknowledged, still kept (outbox.keep_acknowledged): they can go again
    waiting: list[int]  # not acknowledged yet: they go out anyway, as soon as the broker takes them
    gone: list[int]  # held no more: dropped by the bounds, or never made (seq jumps after a corrupt outbox)


@dataclass(frozen=True)
class OutboxStats:
    """The `outbox` object of the metrics payload; counters since start."""

    pending: int  # results written and not yet acknowledged by the broker
    dropped: int  # results dropped unsent by outbox.max_messages or outbox.max_age_s, oldest first
    denied: int  # results the broker refused for good (an MQTT 5 PUBACK with a failure reason)
    replayed: int  # results sent later than they were made (after an outage or a restart), flagged `replayed`
    corrupt_recovered: int  # 1 when the file was corrupt at start and moved aside
    errors: int  # writes and deletes SQLite refused (a full disk): those results went out without a copy
    durable: bool  # False when the file could not be used and results wait in memory only


class Outbox:
    """Owned by the main loop's thread (the publisher's delivery hook queues across threads by itself)."""

    def __init__(
        self,
        store: OutboxStore,
        *,
        path: Path | None,
        max_messages: int,
        max_age_s: float,
        keep_acknowledged: int = 0,
        corrupt_recovered: int = 0,
        wall: Callable[[], float] = time.time,
    ):
        self.path = path  # None: in memory
        self.deliveries = Deliveries()
        self._store = store
        self._max_messages = max_messages
        self._max_age_s = max_age_s
        self._keep_acknowledged = keep_acknowledged
        self._wall = wall
        self._corrupt_recovered = corrupt_recovered
        self._dropped = self._denied = self._replayed = self._errors = 0
        self._warn = RateLimitedLog(logger)
        self._seq = store.last_seq
        self._closed = False
        self.purge()
        self._dropped_at_start = self._dropped

    # seq --------------------------------------------------------------------------------------------------
    def next_seq(self) -> int:
        """The seq of the next result: one above the last one written, in this process or an earlier one."""
        self._seq += 1
        return self._seq

    # rows -------------------------------------------------------------------------------------------------
    def keep(self, message: Message) -> int | None:
        """Write a result message before it is sent; its row id, or None when SQLite refused (counted, logged)."""
        payload = message.payload if isinstance(message.payload, str) else message.payload.decode()
        try:
            row_id = self._store.append(_seq_of(payload), self._wall(), message.topic, payload)
            dropped = self._store.drop_oldest(self._max_messages)
        except sqlite3.Error as exc:
            self._failed("write", exc)
            return None
        if dropped:
            self._dropped += dropped
            self._warn.warning_for(
                "full", "outbox full (outbox.max_messages %d): dropped the %d oldest unsent result(s)",
                self._max_messages, dropped,
            )  # fmt: skip
        return row_id

    def rows_after(self, row_id: int, limit: int) -> list[Row]:
        try:
            return self._store.after(row_id, limit)
        except sqlite3.Error as exc:
            self._failed("read", exc)
            return []

    def pending(self, row_id: int) -> bool:
        try:
            return self._store.contains(row_id)
        except sqlite3.Error as exc:
            self._failed("read", exc)
            return False

    def settle(self) -> None:
        """Apply the PUBACKs that came: acknowledged rows move to the kept ones, refused ones go unless the broker was
        only full."""
        for row_id, code in self.deliveries.settled():
            if FAILURE <= code and code != QUOTA_EXCEEDED:
                self._denied += 1  # the publisher logs the denial with its topic and reason
            elif code == QUOTA_EXCEEDED:
                continue  # sent again on the next connection
            try:
                if code < FAILURE:
                    self._store.acknowledge(row_id, self._keep_acknowledged)
                else:
                    self._store.delete(row_id)
            except sqlite3.Error as exc:
                self._failed("delete", exc)

    def held(self, first: int, last: int) -> Held:
        """What the outbox holds of the results with a seq from FIRST to LAST (a replay request)."""
        try:
            rows, waiting = self._store.by_seq(first, last)
        except sqlite3.Error as exc:
            self._failed("read", exc)
            rows, waiting = [], set()
        found = {row.seq for row in rows} | waiting
        return Held(rows, sorted(waiting), [seq for seq in range(first, last + 1) if seq not in found])

    def purge(self) -> None:
        """Drop the rows older than outbox.max_age_s (the oldest first, like any drop)."""
        try:
            dropped = self._store.drop_older_than(self._wall() - self._max_age_s)
        except sqlite3.Error as exc:
            self._failed("delete", exc)
            return
        if dropped:
            self._dropped += dropped
            self._warn.warning_for(
                "old", "outbox: dropped %d unsent result(s) older than outbox.max_age_s (%.0fs)", dropped,
                self._max_age_s,
            )  # fmt: skip

    def count_replayed(self) -> None:
        self._replayed += 1

    def _failed(self, what: str, exc: sqlite3.Error) -> None:
        self._errors += 1
        self._warn.error_for(
            f"{what}: {first_line(exc)}", "outbox %s: could not %s: %s (results still go out, without a copy)",
            self.path or "in memory", what, first_line(exc),
        )  # fmt: skip

    # reporting --------------------------------------------------------------------------------------------
    def stats(self) -> OutboxStats:
        return OutboxStats(
            self._store.count, self._dropped, self._denied, self._replayed, self._corrupt_recovered, self._errors,
            self.path is not None,
        )  # fmt: skip

    def describe(self) -> str:
        """One line for the start-up log."""
        where = str(self.path) if self.path is not None else "in memory only"
        held = f"{self._store.count} result(s) from earlier runs to send first"
        if self._dropped_at_start:
            held += f" ({self._dropped_at_start} older than outbox.max_age_s dropped)"
        return f"outbox {where}: {held}; seq continues after {self._store.last_seq}"

    def close(self) -> None:
        """Apply the last PUBACKs (the publisher closes first, flushing them) and close the file; idempotent."""
        if self._closed:
            return
        self._closed = True
        self.settle()
        if self._store.count:
            logger.info("outbox: %d result(s) not acknowledged yet, kept for the next start", self._store.count)
        self._store.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _seq_of(payload: str) -> int:
    try:
        seq = json.loads(payload).get("seq", 0)
    except (ValueError, AttributeError):
        return 0
    return seq if isinstance(seq, int) else 0
