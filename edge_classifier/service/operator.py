"""What an operator asks of the running daemon by signal: a status line (SIGUSR1), a reload (SIGHUP)."""

from __future__ import annotations

from dataclasses import dataclass

from edge_classifier.service.metrics import MetricsSummary
from edge_classifier.service.state import RuntimeSnapshot


@dataclass
class OperatorRequests:
    """Flags that signal handlers set and the main loop clears.

    Plain attribute writes: a handler runs on the main loop's own thread, between two bytecodes, so it
    must not take a lock that the interrupted code may hold.
    """

    status: bool = False
    reload: bool = False


def status_line(snapshot: RuntimeSnapshot, summary: MetricsSummary) -> str:
    """One line for the log: what the daemon is doing now."""
    mqtt = "connected" if snapshot.publisher.connected else "not connected"
    return (
        f"status: model {snapshot.model.name} {snapshot.model.version}, label {snapshot.stable.label} "
        f"({snapshot.stable.score:.2f}), frames {snapshot.frames_processed}, {summary.fps} fps since the last "
        f"status, camera {snapshot.source.state}, mqtt {mqtt}"
    )
