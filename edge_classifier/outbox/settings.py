"""The `outbox` config section: whether results wait on disk for the broker's acknowledgement, and the bounds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


def _limits(low: float | None = None, high: float | None = None) -> dict[str, Any]:
    return {"low": low, "high": high}


@dataclass(frozen=True)
class OutboxConfig:
    """Result messages kept in <state_dir>/outbox-<device>.db until the broker acknowledges them (mqtt.qos 1)."""

    # On by default: with mqtt.qos 1, no result is lost while the broker or the network is away, nor across a
    # restart. Off, or with mqtt.qos 0, results that cannot be sent are counted and skipped.
    enabled: bool = True
    # The oldest results are dropped first (counted in metrics) beyond this many: with top_k 3 a result is
    # about 0.5 kB, so the default holds about 5 MB.
    max_messages: int = field(default=10000, metadata=_limits(1, 10_000_000))
    # Acknowledged results kept, the newest, so that a subscriber beyond a bridge that finds a gap in seq can ask
    # for them again (cmd/replay); 0 keeps none. About 5 MB at the default.
    keep_acknowledged: int = field(default=10000, metadata=_limits(0, 10_000_000))
    # Results older than this (wall clock) are dropped, sent or not, acknowledged or not.
    max_age_s: float = field(default=7 * 86400.0, metadata=_limits(60, 366 * 86400))
    # SQLite's synchronous setting in WAL mode. normal: a result survives a crash or SIGKILL of the daemon, and
    # the database a power cut, but results of the last half minute or so (not yet written back by the kernel)
    # may be lost with the power, and seq then repeats under a new boot_id. No fsync per result, which on an SD
    # card costs milliseconds and wear.
    # full: an fsync on every result, so that it survives a power cut too.
    synchronous: Literal["normal", "full"] = "normal"
