"""Opening the outbox: WAL, an exclusive lock, an integrity check, a corrupt file moved aside, memory at worst."""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from edge_classifier.config.settings import Config, state_directory
from edge_classifier.errors import first_line
from edge_classifier.outbox.outbox import Outbox
from edge_classifier.outbox.settings import OutboxConfig
from edge_classifier.outbox.store import OutboxStore

logger = logging.getLogger(__name__)

# Another process holding the file (a second daemon with the same device id and state_dir) is found at once.
LOCK_WAIT_S = 1.0
_SIDE_FILES = ("-wal", "-shm", "-journal")


class CorruptOutboxError(Exception):
    """The file is no SQLite database, fails its integrity check, or holds tables that are not ours."""


def outbox_path(config: Config) -> Path:
    return state_directory(config) / f"outbox-{config.device}.db"


def open_outbox(config: Config) -> Outbox | None:
    """The outbox the configuration asks for, or None (outbox.enabled false, or mqtt.qos 0: nothing is acknowledged)."""
    settings: OutboxConfig = config.outbox
    if not settings.enabled:
        return None
    if config.mqtt.qos == 0:
        logger.info("outbox: not used with mqtt.qos 0 (the broker acknowledges nothing); results may be lost")
        return None
    return open_outbox_at(outbox_path(config), settings)


def open_outbox_at(path: Path, settings: OutboxConfig) -> Outbox:
    """Never fails: a corrupt file is moved aside and a new one started; a file that cannot be used, memory."""
    corrupt = 0
    for attempt in (1, 2):
        try:
            store = _open_file(path, settings.synchronous)
        except (CorruptOutboxError, sqlite3.DatabaseError) as exc:
            if attempt == 2 or not _is_corrupt(exc):
                return _in_memory(path, settings, exc, corrupt)
            try:
                moved = _move_aside(path)
            except OSError as move_failed:
                return _in_memory(path, settings, move_failed, corrupt)
            corrupt = 1
            logger.error(
                "outbox %s is corrupt (%s): moved aside to %s and a new one started; results it held are not sent, "
                "and seq starts again at 1 (with a new boot_id)", path, first_line(exc), moved.name,
            )  # fmt: skip
        except OSError as exc:
            return _in_memory(path, settings, exc, corrupt)
        else:
            return Outbox(
                store, path=path, max_messages=settings.max_messages, max_age_s=settings.max_age_s,
                keep_acknowledged=settings.keep_acknowledged, corrupt_recovered=corrupt,
            )  # fmt: skip
    raise AssertionError("unreachable")  # pragma: no cover


def _open_file(path: Path, synchronous: str) -> OutboxStore:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    db = sqlite3.connect(str(path), timeout=LOCK_WAIT_S, isolation_level=None, check_same_thread=False)
    try:
        # Exclusive: no other process reads or writes the file while the daemon runs, and WAL needs no shared memory.
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"SQLite refused journal_mode WAL (it kept {mode})")
        db.execute("PRAGMA synchronous=FULL" if synchronous == "full" else "PRAGMA synchronous=NORMAL")
        rows = db.execute("PRAGMA integrity_check").fetchall()
        if [str(row[0]) for row in rows] != ["ok"]:
            lines = [line for row in rows for line in str(row[0]).splitlines() if not line.startswith("***")]
            raise CorruptOutboxError(f"integrity check failed: {'; '.join(lines[:2]) or rows[0][0]}")
        try:
            return OutboxStore(db)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise
            raise CorruptOutboxError(f"not an outbox: {first_line(exc)}") from exc
    except BaseException:
        db.close()
        raise


def _is_corrupt(exc: BaseException) -> bool:
    """A damaged or foreign file, as opposed to one that is locked, read-only or on a failing disk."""
    if isinstance(exc, CorruptOutboxError):
        return True
    name = getattr(exc, "sqlite_errorname", None)  # Python 3.11 and later
    if name is not None:
        return bool(name == "SQLITE_NOTADB" or str(name).startswith("SQLITE_CORRUPT"))
    return type(exc) is sqlite3.DatabaseError


def _move_aside(path: Path) -> Path:
    """outbox.db -> outbox.db.corrupt-<UTC time>, with its WAL and other side files (else SQLite would apply them)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    number = 1
    while target.exists():  # never over an earlier one
        number += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{number}")
    for suffix in _SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(path.with_name(target.name + suffix))
    path.rename(target)
    return target


def _in_memory(path: Path, settings: OutboxConfig, exc: BaseException, corrupt: int) -> Outbox:
    reason = first_line(exc)
    if "locked" in reason:
        reason += ": another process has it open (a second daemon with the same device_id and state_dir?)"
    logger.error("outbox %s cannot be used (%s): results wait in memory only, and are lost on a restart", path, reason)
    db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    return Outbox(
        OutboxStore(db), path=None, max_messages=settings.max_messages, max_age_s=settings.max_age_s,
        keep_acknowledged=settings.keep_acknowledged, corrupt_recovered=corrupt,
    )  # fmt: skip
