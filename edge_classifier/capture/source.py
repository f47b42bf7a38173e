"""The frame source: an OpenCV capture read on its own thread, freshest frame wins, stalls detected and reopened."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import cv2
import numpy as np
import numpy.typing as npt

from edge_classifier.capture.files import FileIdentity, after_last_frame, file_identity, frame_period, take_unreadable
from edge_classifier.capture.frames import Frame, FrameSource, SourceStats
from edge_classifier.capture.opening import Capture, NoCameraError, frame_as_bgr, open_capture, source_kind
from edge_classifier.config.settings import SourceConfig
from edge_classifier.ratelimit import RateLimitedLog

__all__ = ["MAX_LIVE_READERS", "Frame", "FrameSource", "OpenCVSource", "SourceStats"]

logger = logging.getLogger(__name__)
# Readers abandoned inside a blocked open() or read() that may still be alive; past this many, no
# new open is tried until one exits, so a source that blocks every open cannot pile up threads.
MAX_LIVE_READERS = 4


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
        self._finite = self._kind in ("file", "glob", "folder")
        self._every_frame = self._finite and config.file_rate == "max"
        # A network stream of a still scene can decode to identical frames; only a local camera's are a stall.
        self._repeat_is_stall = self._kind in ("device", "gstreamer")
        # Kept across reopens, so a camera frozen on one image backs off instead of looking new each time.
        self._last_probe: npt.NDArray[np.uint8] | None = None
        self._cond = threading.Condition()
        self._closed = threading.Event()
        self._frame: Frame | None = None
        self._woken = False  # wake() was called: the next get() returns without waiting
        self._generation = 0
        self._state = "starting"
        self._ended = False
        self._captured = self._dropped = self._stalls = self._reopens = 0
        self._last_progress = time.monotonic()
        self._backoff = config.reopen_backoff_s
        self._readers: list[threading.Thread] = []
        self._reader_cap_logged = False
        # Per kind of event: a source failing the same way on every pass or reopen says so once a minute.
        self._log = RateLimitedLog(logger)
        self._skipped = 0
        self._start_reader(delay=0.0)

    # -- consumer side ------------------------------------------------------------------
    def get(self, timeout: float) -> Frame | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._frame is None and not self._ended and not self._closed.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._woken:
                    break
                self._cond.wait(min(remaining, self._config.stall_timeout_s))
                self._check_stall_locked()
            self._check_stall_locked()
            frame, self._frame = self._frame, None
            self._woken = False
            self._cond.notify_all()
            return frame

    def wake(self) -> None:
        """Make a waiting get() return now (a request for the main loop has arrived); safe from any thread."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    @property
    def ended(self) -> bool:
        with self._cond:
            return self._ended and self._frame is None

    @property
    def state(self) -> str:
        return self._state

    def stats(self) -> SourceStats:
        with self._cond:
            return SourceStats(self._state, self._captured, self._dropped, self._stalls, self._reopens, self._skipped)

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
        # "stalled" too: its backoff has passed, and the new reader is about to open.
        opening = self._state in ("stalled", "reopening", "starting", "absent")
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
            self._warn(
                "open-timeout", "opening source %s has not returned for %.1fs: trying again", self._config.uri, timeout
            )
            self._restart_locked("reopening")
        else:
            self._warn(
                "stall",
                "source %s produced no new frame for %.1fs: reopening in %.1fs",
                self._config.uri,
                timeout,
                self._backoff,
            )
            self._restart_locked("stalled")

    def _warn(self, key: str, message: str, *args: object) -> None:
        """A warning said once a minute per kind of event; the repeats in between go to DEBUG."""
        if not self._log.warning_for(key, message, *args):
            logger.debug(message, *args)

    def _restart_locked(self, state: str) -> None:
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
        with self._cond:
            if self._current(generation) and self._state == "stalled":
                self._state = "reopening"  # the backoff is over: now the source is being opened again
        # Taken before opening: a file replaced in between is then seen as changed at the first rewind.
        identity = file_identity(str(self._config.uri)) if self._kind == "file" else None
        try:
            cap = self._opener(self._config)
        except NoCameraError as exc:
            self._absent(generation, str(exc))
            return
        except (cv2.error, OSError) as exc:
            self._fail(generation, f"cannot open source {self._config.uri!r} ({exc})", "open")
            return
        try:
            if not cap.isOpened():
                self._fail(generation, f"cannot open source {self._config.uri!r}", "open")
                return
            with self._cond:
                if not self._current(generation):
                    return
                if self._state == "absent":
                    logger.info("source %s: a camera appeared; classifying its frames", self._config.uri)
                self._state = "running"
                self._last_progress = time.monotonic()
            self._pump(generation, cap, identity)
        except (cv2.error, OSError) as exc:
            self._fail(generation, f"source {self._config.uri!r} failed while reading ({exc})", "read")
        finally:
            cap.release()

    def _pump(self, generation: int, opened: Capture, identity: FileIdentity | None) -> None:
        cap = opened  # a looping glob replaces it each pass, a changed file when it rewinds (releasing the old one)
        try:
            period = frame_period(cap, self._config, self._kind)
            next_due = time.monotonic()
            previous_probe = self._last_probe
            index = pass_start = 0
            while self._current(generation):
                start = time.monotonic()
                ok, image = cap.read()
                decode_s = time.monotonic() - start
                for path in take_unreadable(cap):  # a looping glob skips them on every pass
                    with self._cond:
                        self._skipped += 1
                    self._warn("unreadable", "skipping unreadable image %s", path)
                if not ok or image is None:
                    if not self._finite:
                        self._fail(generation, f"source {self._config.uri!r} stopped delivering frames", "read")
                        return
                    if index == pass_start:  # nothing since it was opened, rewound or reopened: not again
                        if index:
                            self._fail(generation, f"source {self._config.uri!r} has no readable frame left", "read")
                        else:
                            self._end(generation)
                        return
                    after = after_last_frame(cap, self._config, self._kind, identity, self._opener, self._log)
                    cap, identity = after.cap, after.identity
                    if after.failure:
                        self._fail(generation, after.failure, after.log_key)
                    elif after.ended:
                        self._end(generation)
                    if after.failure or after.ended:
                        return
                    pass_start = index
                    period = frame_period(cap, self._config, self._kind)  # a replacement's own rate
                    continue
                image = frame_as_bgr(image)
                if image is None:
                    self._fail(
                        generation,
                        f"source {self._config.uri!r} gives frames that are not 8-bit BGR, grey or BGRA",
                        "read",
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

    def _end(self, generation: int) -> None:
        with self._cond:
            if self._current(generation):
                self._state, self._ended = "ended", True
                self._cond.notify_all()

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

    def _fail(self, generation: int, message: str, key: str) -> None:
        """A failed open, read or file: reopened after the backoff; a running source is `stalled` until then."""
        with self._cond:
            if not self._current(generation):
                return
            self._stalls += 1
            self._warn(key, "%s; retrying in %.1fs", message, self._backoff)
            self._restart_locked("stalled" if self._state == "running" else "reopening")
            self._cond.notify_all()
