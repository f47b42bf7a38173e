"""Playing files and image globs: their pace, their skipped images, and what follows their last frame."""

from __future__ import annotations

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
class NextPass:
    """What follows a file's or glob's last frame: another pass, the end, or (`failure`) a reopen after the backoff."""

    cap: Capture  # what to read from next and release at the end: the same capture, or the one replacing it
    identity: FileIdentity | None
    ended: bool = False
    failure: str | None = None
    log_key: str = ""


def after_last_frame(
    cap: Capture,
    config: SourceConfig,
    kind: str,
    identity: FileIdentity | None,
    opener: Callable[[SourceConfig], Capture],
    log: RateLimitedLog,
) -> NextPass:
    """The next pass of a looping source, or the end of one that does not loop; a capture it replaces is released.

    A video file is compared with what it was when opened, looping or not: the open capture would
    keep playing a deleted file's data, or what is left of a truncated one's old index, for ever.
    """
    if kind == "file":
        now = file_identity(str(config.uri))
        if now is None and not config.loop:
            # Every frame was read through the open handle: there is nothing left to play, nor to retry.
            log.warning_for("gone", "source.uri %r was deleted while it played: it ends here", config.uri)
            return NextPass(cap, identity, ended=True)
        if now is None:
            return NextPass(cap, identity, failure=f"source.uri {config.uri!r} was deleted", log_key="gone")
        if now != identity:
            log.warning_for("changed", "source.uri %r changed on disk: reopening it", config.uri)
            cap.release()
            cap = opener(config)
            if not cap.isOpened():
                return NextPass(cap, now, failure=f"cannot open source {config.uri!r}", log_key="open")
            return NextPass(cap, now)
    if not config.loop:
        return NextPass(cap, identity, ended=True)
    if kind in ("glob", "folder"):
        cap.release()
        return NextPass(opener(config), None)  # listed again: images added or removed since take part
    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
    return NextPass(cap, identity)
