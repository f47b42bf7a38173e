"""The frame source: an OpenCV capture read on its own thread, freshest frame wins, stalls detected and reopened."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from edge_classifier.capture.opening import Capture, NoCameraError, frame_as_bgr, open_capture, source_kind
from edge_classifier.config.settings import SourceConfig

logger = logging.getLogger(__name__)
# Readers abandoned inside a blocked open() or read() that may still be alive; past this many, no
# new open is tried until one exits, so a source that blocks every open cannot pile up threads.
MAX_LIVE_READERS = 4


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


class FrameSource(Protocol):
    """What the main loop needs from a camera, file or stream."""

    def get(self, timeout: float) -> Frame | None:
        """The freshest frame not handed out yet, or None after `timeout` seconds."""

    @property
    def ended(self) -> bool:
        """True once a finite source (file, image glob) has delivered its last frame."""

    def stats(self) -> SourceStats: ...

    def close(self) -> None: ...


class OpenCVSource:
    """Reads on a background thread; the consumer always gets the newest frame.

    A reader that blocks in read(), fails, or (for local cameras) returns the same image for
    `stall_timeout_s` is abandoned: its thread is left to exit on its own, because releasing a
    capture another thread is blocked in is not safe in every OpenCV backend, and a new
    reader reopens the source after an exponential backoff. So is a reader whose open() has not
    returned after `open_timeout_s`.
    """

    def __init__(self, config: SourceConfig, opener: Callable[[SourceConfig], Capture] = open_capture):
        self._config = config
        self._opener = opener
        self._kind = source_kind(config.uri)
        self._images = self._kind in ("glob", "folder")
        self._finite = self._images or self._kind == "file"
        self._every_frame = self._finite and config.file_rate == "max"
        # A network stream of a still scene can decode to identical frames; only a local camera's are a stall.
        self._repeat_is_stall = self._kind in ("device", "gstreamer")
        # Kept across reopens, so a camera frozen on one image backs off instead of looking new each time.
        self._last_probe: npt.NDArray[np.uint8] | None = None
        self._cond = threading.Condition()
        self._closed = threading.Event()
        self._frame: Frame | None = None
        self._generation = 0
        self._state = "starting"
        self._ended = False
        self._captured = self._dropped = self._stalls = self._reopens = 0
        self._last_progress = time.monotonic()
        self._backoff = config.reopen_backoff_s
        self._readers: list[threading.Thread] = []
        self._reader_cap_logged = False
        self._start_reader(delay=0.0)

    # -- consumer side ------------------------------------------------------------------
    def get(self, timeout: float) -> Frame | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._frame is None and not self._ended and not self._closed.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(min(remaining, self._config.stall_timeout_s))
                self._check_stall_locked()
            self._check_stall_locked()
            frame, self._frame = self._frame, None
            self._cond.notify_all()
            return frame

    @property
    def ended(self) -> bool:
        with self._cond:
            return self._ended and self._frame is None

    @property
    def state(self) -> str:
        return self._state

    def stats(self) -> SourceStats:
        with self._cond:
            return SourceStats(self._state, self._captured, self._dropped, self._stalls, self._reopens)

    def close(self, join_timeout: float = 2.0) -> None:
        """Stop reading; waits for the live reader to release its capture (abandoned ones exit alone)."""
        self._closed.set()
        with self._cond:
            self._generation += 1
            self._cond.notify_all()
            reader = self._reader
        if reader is not threading.current_thread():
            reader.join(join_timeout)

    def __enter__(self) -> OpenCVSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- supervision -----------------------------------------------------------------------
    def _check_stall_locked(self) -> None:
        if self._ended or self._closed.is_set():
            return
        if self._every_frame and self._frame is not None:
            return  # waiting for the consumer is not a stall
        opening = self._state in ("reopening", "starting", "absent")
        timeout = self._config.open_timeout_s if opening else self._config.stall_timeout_s
        if time.monotonic() - self._last_progress <= timeout:
            return
        self._readers = [reader for reader in self._readers if reader.is_alive()]
        if opening and len(self._readers) >= MAX_LIVE_READERS:
            if not self._reader_cap_logged:
                self._reader_cap_logged = True
                logger.error(
                    "source %s: %d opens are blocked and none returns; waiting for one before trying again",
                    self._config.uri, len(self._readers),
                )  # fmt: skip
            return
        self._reader_cap_logged = False
        self._stalls += 1
        if opening:
            logger.warning("opening source %s has not returned for %.1fs: trying again", self._config.uri, timeout)
        else:
            logger.warning(
                "source %s produced no new frame for %.1fs: reopening in %.1fs",
                self._config.uri,
                timeout,
                self._backoff,
            )
        self._restart_locked()

    def _restart_locked(self, state: str = "reopening") -> None:
        self._state = state
        self._reopens += 1
        delay = self._backoff
        self._backoff = min(self._backoff * 2, self._config.reopen_backoff_max_s)
        self._start_reader(delay)

    def _start_reader(self, delay: float) -> None:
        self._generation += 1
        generation = self._generation
        self._last_progress = time.monotonic() + delay
        self._reader = threading.Thread(
            target=self._read_loop, args=(generation, delay), name=f"capture-{generation}", daemon=True
        )
        self._reader.start()
        self._readers = [reader for reader in self._readers if reader.is_alive()] + [self._reader]

    # -- reader thread ---------------------------------------------------------------------
    def _current(self, generation: int) -> bool:
        return generation == self._generation and not self._closed.is_set()

    def _read_loop(self, generation: int, delay: float) -> None:
        if delay and self._closed.wait(delay):
            return
        try:
            cap = self._opener(self._config)
        except NoCameraError as exc:
            self._absent(generation, str(exc))
            return
        except (cv2.error, OSError) as exc:
            self._fail(generation, f"cannot open source {self._config.uri!r} ({exc})")
            return
        try:
            if not cap.isOpened():
                self._fail(generation, f"cannot open source {self._config.uri!r}")
                return
            with self._cond:
                if not self._current(generation):
                    return
                if self._state == "absent":
                    logger.info("source %s: a camera appeared; classifying its frames", self._config.uri)
                self._state = "running"
                self._last_progress = time.monotonic()
            self._pump(generation, cap)
        except (cv2.error, OSError) as exc:
            self._fail(generation, f"source {self._config.uri!r} failed while reading ({exc})")
        finally:
            cap.release()

    def _pump(self, generation: int, opened: Capture) -> None:
        cap = opened  # a looping glob replaces it each pass (releasing the one it replaces)
        try:
            fps = cap.get(cv2.CAP_PROP_FPS) or self._config.fps or (1.0 if self._images else 30.0)
            period = 1.0 / fps if self._finite and not self._every_frame else 0.0
            next_due = time.monotonic()
            previous_probe = self._last_probe
            index = pass_start = 0
            while self._current(generation):
                start = time.monotonic()
                ok, image = cap.read()
                decode_s = time.monotonic() - start
                if not ok or image is None:
                    if self._finite and self._config.loop and index > 0:
                        if index == pass_start:  # a whole pass without a frame: the files are gone
                            self._fail(generation, f"source {self._config.uri!r} has no readable frame left")
                            return
                        pass_start = index
                        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                        if self._images:
                            cap = self._replace(cap)
                        continue
                    if self._finite:
                        with self._cond:
                            if self._current(generation):
                                self._state, self._ended = "ended", True
                                self._cond.notify_all()
                        return
                    self._fail(generation, f"source {self._config.uri!r} stopped delivering frames")
                    return
                image = frame_as_bgr(image)
                if image is None:
                    self._fail(
                        generation, f"source {self._config.uri!r} gives frames that are not 8-bit BGR, grey or BGRA"
                    )
                    return
                # A local camera that was unplugged can hand back the same buffer forever.
                probe = image[::16, ::16]
                repeated = (
                    self._repeat_is_stall and previous_probe is not None and np.array_equal(probe, previous_probe)
                )
                previous_probe = probe.copy()
                if period:
                    next_due += period
                    with self._cond:
                        if self._current(generation):
                            # Waiting for a slow file's next frame time is not a stall (a 0.1 fps timelapse).
                            self._last_progress = max(self._last_progress, next_due)
                    wait = next_due - time.monotonic()
                    if wait > 0 and self._closed.wait(wait):
                        return
                    next_due = max(next_due, time.monotonic() - period)
                with self._cond:
                    if not self._current(generation):
                        return
                    while self._every_frame and self._frame is not None and self._current(generation):
                        self._cond.wait(0.5)
                        self._last_progress = time.monotonic()
                    if self._frame is not None:
                        self._dropped += 1
                    self._frame = Frame(image, index, time.monotonic(), decode_s)
                    self._last_probe = previous_probe
                    self._captured += 1
                    if not repeated:
                        self._last_progress = time.monotonic()
                        self._backoff = self._config.reopen_backoff_s
                        self._state = "running"
                    self._cond.notify_all()
                index += 1
        finally:
            if cap is not opened:
                cap.release()

    def _replace(self, cap: Capture) -> Capture:
        cap.release()
        return self._opener(self._config)

    def _absent(self, generation: int, why: str) -> None:
        """No camera is plugged in: said once, then looked for again quietly at the longest backoff."""
        with self._cond:
            if not self._current(generation):
                return
            self._backoff = self._config.reopen_backoff_max_s
            log = logger.debug if self._state == "absent" else logger.warning
            log("source %s: %s; looking for one every %gs", self._config.uri, why, self._backoff)
            self._restart_locked("absent")
            self._cond.notify_all()

    def _fail(self, generation: int, message: str) -> None:
        with self._cond:
            if not self._current(generation):
                return
            self._stalls += 1
            logger.warning("%s; retrying in %.1fs", message, self._backoff)
            self._restart_locked()
            self._cond.notify_all()
