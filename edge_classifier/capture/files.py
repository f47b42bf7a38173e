"""Playing files and image globs: their pace, their skipped images, and their rewind (a changed file is reopened)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import cv2

from edge_classifier.capture.opening import Capture
from edge_classifier.config.settings import SourceConfig
from edge_classifier.ratelimit import RateLimitedLog

# (st_dev, st_ino, st_size, st_mtime_ns): a replaced file changes the first two, a rewritten one the last two.
FileIdentity = tuple[int, int, int, int]


def file_identity(path: str) -> FileIdentity | None:
    """What `path` is now, or None when nothing is there any more."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def frame_period(cap: Capture, config: SourceConfig, kind: str) -> float:
    """Seconds between a file's or glob's frames at their own rate; 0 for a live source or at file_rate max."""
    if kind not in ("file", "glob", "folder") or config.file_rate == "max":
        return 0.0
    return 1.0 / (cap.get(cv2.CAP_PROP_FPS) or config.fps or (30.0 if kind == "file" else 1.0))


def take_unreadable(cap: Capture) -> list[str]:
    """The images an image glob skipped since last asked (none for other captures)."""
    unreadable: list[str] = getattr(cap, "unreadable", [])
    taken = list(unreadable)
    unreadable.clear()
    return taken


@dataclass(frozen=True)
class Rewound:
    """What the next pass reads from; with `failure`, why there is none (the reader fails over to reopening)."""

    cap: Capture
    identity: FileIdentity | None
    failure: str | None = None
    log_key: str = ""


def rewind(
    cap: Capture,
    config: SourceConfig,
    kind: str,
    identity: FileIdentity | None,
    opener: Callable[[SourceConfig], Capture],
    log: RateLimitedLog,
) -> Rewound:
    """Starts the next pass of a looping source; a capture it replaces is released."""
    if kind in ("glob", "folder"):
        cap.release()
        return Rewound(opener(config), None)  # listed again: images added or removed since take part
    now = file_identity(str(config.uri))
    if now is None:
        # The open capture would keep playing the deleted file's data for ever.
        return Rewound(cap, identity, f"source.uri {config.uri!r} was deleted", "gone")
    if now == identity:
        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        return Rewound(cap, identity)
    # Replaced, or rewritten in place: a truncated file would otherwise loop over what is left of its old index.
    log.log(logging.INFO, "changed", "source.uri %r changed on disk: reopening it", config.uri)
    cap.release()
    cap = opener(config)
    if not cap.isOpened():
        return Rewound(cap, now, f"cannot open source {config.uri!r}", "open")
    return Rewound(cap, now)
