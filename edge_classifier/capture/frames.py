"""What a frame source hands the main loop: frames, its counters, and the protocol every source follows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Frame:
    """One decoded frame and when it was captured (time.monotonic())."""

    image_bgr: npt.NDArray[np.uint8]
    index: int
    captured_at: float
    decode_s: float


@dataclass(frozen=True)
class SourceStats:
    state: str  # starting, running, stalled, reopening, absent (no camera plugged in: no device node), ended
    frames_captured: int
    frames_dropped: int
    stalls: int
    reopens: int
    images_skipped: int = 0  # unreadable files an image glob or folder passed over (each time, on every pass)


@runtime_checkable
class Wakeable(Protocol):
    """A source whose get() can be cut short, so that the main loop serves a request at once."""

    def wake(self) -> None: ...


class FrameSource(Protocol):
    """What the main loop needs from a camera, file or stream."""

    def get(self, timeout: float) -> Frame | None:
        """The freshest frame not handed out yet, or None after `timeout` seconds."""

    @property
    def ended(self) -> bool:
        """True once a finite source (file, image glob) has delivered its last frame."""

    def stats(self) -> SourceStats: ...

    def close(self) -> None: ...
