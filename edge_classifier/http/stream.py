"""One shared MJPEG encoder: a thread renders the latest frame at a capped rate while anyone watches.

Streams block on a condition for the next JPEG; the encoder thread sleeps on another while nobody watches.
A bounded number of streams may be open; a stream whose client left is closed within STREAM_POLL_S.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from edge_classifier.http.overlay import CropGeometry, RateMeter, encode_jpeg, render
from edge_classifier.http.settings import HttpConfig
from edge_classifier.service.state import RuntimeSnapshot, RuntimeState

logger = logging.getLogger(__name__)
BOUNDARY = "frame"
STREAM_POLL_S = 0.25  # how often a waiting stream checks whether its client left or the server stops
FRAME_WAIT_S = 0.5


def mjpeg_part(jpeg: bytes) -> bytes:
    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode("ascii")
    return head + jpeg + b"\r\n"


class FrameEncoder:
    """Renders frames with their overlay for /stream.mjpg (its own thread) and /api/latest.jpg (cached)."""

    def __init__(
        self,
        state: RuntimeState,
        geometry: CropGeometry,
        config: HttpConfig,
        rate: RateMeter,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._state = state
        self.geometry = geometry
        self._config = config
        self._rate = rate
        self._clock = clock
        self._cond = threading.Condition()
        self._streams = 0
        self._stopped = False
        self._jpeg: bytes | None = None
        self._seq = 0
        self._render_lock = threading.Lock()
        self._cached: tuple[int, bytes] | None = None
        self.frames_encoded = 0
        self.encode_s_total = 0.0
        self._thread = threading.Thread(target=self._run, name="http-mjpeg", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(FRAME_WAIT_S + 2)

    @property
    def streams(self) -> int:
        with self._cond:
            return self._streams

    def jpeg(self, snapshot: RuntimeSnapshot) -> bytes | None:
        """The snapshot's frame with its overlay as a JPEG, encoded once per processed frame."""
        with self._render_lock:
            if self._cached is not None and self._cached[0] == snapshot.frames_processed:
                return self._cached[1]
            started = time.perf_counter()
            image = render(snapshot, self.geometry, self._rate.rate(snapshot.frames_processed),
                           self._config.stream_width)  # fmt: skip
            if image is None:
                return None
            jpeg = encode_jpeg(image, self._config.jpeg_quality)
            self.encode_s_total += time.perf_counter() - started
            self.frames_encoded += 1
            self._cached = (snapshot.frames_processed, jpeg)
            return jpeg

    def open_stream(self) -> int | None:
        """A stream slot and the sequence number to wait beyond; None when http.max_streams are open."""
        with self._cond:
            if self._stopped or self._streams >= self._config.max_streams:
                return None
            self._streams += 1
            self._cond.notify_all()
            return self._seq

    def close_stream(self) -> None:
        with self._cond:
            self._streams -= 1
            if self._streams == 0:
                self._jpeg = None  # the next watcher waits for a fresh frame, not the one from when it was idle

    def next_jpeg(self, after: int, timeout: float) -> tuple[int, bytes] | None:
        """The first JPEG numbered above `after`, or None after `timeout` seconds or when stopping."""
        with self._cond:
            self._cond.wait_for(lambda: self._stopped or (self._jpeg is not None and self._seq > after), timeout)
            if self._stopped or self._jpeg is None or self._seq <= after:
                return None
            return self._seq, self._jpeg

    @property
    def stopped(self) -> bool:
        with self._cond:
            return self._stopped

    def _run(self) -> None:
        seen, next_at = -1, 0.0
        interval = 1.0 / self._config.stream_fps
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopped or self._streams > 0)
                if self._stopped:
                    return
                delay = next_at - self._clock()
                if delay > 0:  # the frame-rate cap; close() wakes it
                    self._cond.wait_for(lambda: self._stopped, delay)
                    continue
            snapshot = self._state.wait_for_frame(seen, FRAME_WAIT_S)
            if snapshot.frames_processed <= seen:
                continue
            seen = snapshot.frames_processed
            try:
                jpeg = self.jpeg(snapshot)
            except Exception:  # a bug in drawing must not end the preview for good, nor flood the log
                logger.exception("could not render the preview frame")
                next_at = self._clock() + 5.0
                continue
            if jpeg is None:
                continue
            next_at = self._clock() + interval
            with self._cond:
                self._jpeg, self._seq = jpeg, self._seq + 1
                self._cond.notify_all()


class MjpegStream:
    """The WSGI body of one /stream.mjpg response; the server calls close() however the response ends."""

    def __init__(self, encoder: FrameEncoder, start_seq: int, client_gone: Callable[[], bool]):
        self._encoder = encoder
        self._seq = start_seq
        self._client_gone = client_gone
        self._closed = False

    def __iter__(self) -> MjpegStream:
        return self

    def __next__(self) -> bytes:
        while not self._closed:
            if self._client_gone() or self._encoder.stopped:
                break
            got = self._encoder.next_jpeg(self._seq, STREAM_POLL_S)
            if got is not None:
                self._seq, jpeg = got
                return mjpeg_part(jpeg)
        self.close()
        raise StopIteration

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._encoder.close_stream()
