"""The outbox's SQLite tables: result rows waiting, acknowledged ones kept for replay requests, and the seq."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

# AUTOINCREMENT: a row id is never used twice, so id order is write order across restarts too.
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS results (id INTEGER PRIMARY KEY AUTOINCREMENT, seq INTEGER NOT NULL, "
    "created REAL NOT NULL, topic TEXT NOT NULL, payload TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    # Acknowledged rows, under their first id, for cmd/replay: a subscriber beyond a bridge may still miss them.
    "CREATE TABLE IF NOT EXISTS acknowledged (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, "
    "created REAL NOT NULL, topic TEXT NOT NULL, payload TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS acknowledged_seq ON acknowledged (seq)",
    "INSERT OR IGNORE INTO counters (name, value) VALUES ('seq', 0)",
)


@dataclass(frozen=True)
class Row:
    """One result message waiting for the broker's acknowledgement."""

    id: int
    seq: int
    created: float  # wall-clock time (time.time()) when it was written
    topic: str
    payload: str


class OutboxStore:
    """One SQLite connection in autocommit mode: each method is one transaction, on one thread at a time.

    Errors are sqlite3.Error; the caller decides what they cost (the outbox logs and counts them).
    """

    def __init__(self, connection: sqlite3.Connection):
        self._db = connection
        with self._transaction():  # a write at once: with locking_mode EXCLUSIVE it takes the file's lock
            for statement in SCHEMA:
                self._db.execute(statement)
        # A file whose tables are not ours fails here, as a corrupt one would.
        self._db.execute("SELECT id, seq, created, topic, payload FROM results LIMIT 0").fetchall()
        self.last_seq = int(self._db.execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()[0])
        self.count = int(self._db.execute("SELECT count(*) FROM results").fetchone()[0])
        self.acknowledged = int(self._db.execute("SELECT count(*) FROM acknowledged").fetchone()[0])
        self._closed = False

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def append(self, seq: int, created: float, topic: str, payload: str) -> int:
        """Write one row and raise the persisted seq to SEQ, in one transaction; the row's id."""
        with self._transaction():
            cursor = self._db.execute(
                "INSERT INTO results (seq, created, topic, payload) VALUES (?, ?, ?, ?)", (seq, created, topic, payload)
            )
            self._db.execute("UPDATE counters SET value = max(value, ?) WHERE name = 'seq'", (seq,))
        self.count += 1
        self.last_seq = max(self.last_seq, seq)
        return int(cursor.lastrowid or 0)

    def delete(self, row_id: int) -> bool:
        """Remove a row (acknowledged, or refused for good); False if it was gone already."""
        deleted = self._db.execute("DELETE FROM results WHERE id = ?", (row_id,)).rowcount
        self.count -= deleted
        return deleted > 0

    def acknowledge(self, row_id: int, keep: int) -> bool:
        """Move a row to the acknowledged ones, of which the newest KEEP stay; False if it was gone already."""
        with self._transaction():
            moved = 0
            if keep > 0:
                moved = self._db.execute("INSERT OR IGNORE INTO acknowledged SELECT * FROM results WHERE id = ?",
                                         (row_id,)).rowcount  # fmt: skip
            deleted = self._db.execute("DELETE FROM results WHERE id = ?", (row_id,)).rowcount
            self.acknowledged += moved
            if self.acknowledged > keep:
                self.acknowledged -= self._db.execute(
                    "DELETE FROM acknowledged WHERE id IN (SELECT id FROM acknowledged ORDER BY id LIMIT ?)",
                    (self.acknowledged - keep,),
                ).rowcount
        self.count -= deleted
        return deleted > 0

    def by_seq(self, first: int, last: int) -> tuple[list[Row], set[int]]:
        """The acknowledged rows with a seq from FIRST to LAST, oldest first, and the seqs of those still waiting."""
        rows = self._db.execute(
            "SELECT id, seq, created, topic, payload FROM acknowledged WHERE seq BETWEEN ? AND ? ORDER BY id",
            (first, last),
        ).fetchall()
        waiting = self._db.execute("SELECT seq FROM results WHERE seq BETWEEN ? AND ?", (first, last)).fetchall()
        return _rows(rows), {int(seq) for (seq,) in waiting}

    def contains(self, row_id: int) -> bool:
        return self._db.execute("SELECT 1 FROM results WHERE id = ?", (row_id,)).fetchone() is not None

    def after(self, row_id: int, limit: int) -> list[Row]:
        """Up to LIMIT rows with an id above ROW_ID, oldest first."""
        rows = self._db.execute(
            "SELECT id, seq, created, topic, payload FROM results WHERE id > ? ORDER BY id LIMIT ?", (row_id, limit)
        ).fetchall()
        return _rows(rows)

    def drop_oldest(self, keep: int) -> int:
        """Delete the oldest rows beyond KEEP; how many went."""
        excess = self.count - keep
        if excess <= 0:
            return 0
        dropped = self._db.execute(
            "DELETE FROM results WHERE id IN (SELECT id FROM results ORDER BY id LIMIT ?)", (excess,)
        ).rowcount
        self.count -= dropped
        return int(dropped)

    def drop_older_than(self, cutoff: float) -> int:
        """Delete the rows written before CUTOFF (wall clock); how many went."""
        self.acknowledged -= self._db.execute("DELETE FROM acknowledged WHERE created < ?", (cutoff,)).rowcount
        dropped = self._db.execute("DELETE FROM results WHERE created < ?", (cutoff,)).rowcount
        self.count -= dropped
        return int(dropped)

    def close(self) -> None:
        """Close the connection (SQLite checkpoints the WAL into the file); idempotent."""
        if not self._closed:
            self._closed = True
            self._db.close()

    def __enter__(self) -> OutboxStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _rows(found: list[Any]) -> list[Row]:
    return [Row(int(i), int(seq), float(when), str(topic), str(payload)) for i, seq, when, topic, payload in found]
