"""The bench's frame source: the real capture thread, limited to N frames, timing both sides of the hand-off.

The end-to-end rate can be no higher than its slowest thread allows. Two threads carry every frame:

- the capture thread decodes it (`Frame.decode_s`, the wall time of `cap.read()`);
- the main loop does the rest: preprocess, inference, postprocess, voting, publish, metrics, state and
  housekeeping. Its work per frame is its wall time between the first and the last frame minus the time
  it spent inside `source.get()` (waiting for the capture thread, or handing the frame over), divided by
  the frames. That is measured here, around `get()`, so the loop is timed without being changed.

So bound = 1 / max(decode per frame, loop work per frame), and rate / bound says how much of the
slowest thread's time goes to frames (1.0: it never waits for the other). Both are wall times of the
same run, under the same contention for the cores, so the ratio hardly moves with how busy the machine
is (0.97-0.98 for the default model at load averages from 1.2 to 3.6, while the rate halved). The loop
thread's CPU time (`time.thread_time()`) and every thread's CPU time per frame (from /proc/self/task)
are reported beside them to explain the figures: with num_threads=2 LiteRT runs part of each inference
on a worker thread, and loop wall time above loop CPU time is time spent waiting for that worker or for
a core.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from edge_classifier.capture.source import Frame, FrameSource, SourceStats
from edge_classifier.service.metrics import rss_bytes

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def thread_cpu_s() -> dict[int, float]:
    """CPU seconds (user + system) of every thread of this process, by thread id (10 ms resolution)."""
    seconds = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the thread ended meanwhile
        seconds[int(task.name)] = (int(fields[11]) + int(fields[12])) * _TICK_S  # utime, stime
    return seconds


class FrameLimit:
    """A FrameSource that ends after `limit` frames and times the loop's waits and the capture thread's decodes."""

    def __init__(self, source: FrameSource, limit: int):
        self._source = source
        self._limit = limit
        self.taken = 0
        self.first_at = self.last_at = 0.0
        self.rss_warm = self.rss_end = 0
        # Between the first and the last frame: the loop's time inside get(), the decode time of the
        # frames after the first, the loop thread's CPU time and every thread's CPU time.
        self.waited_s = self.decode_s = 0.0
        self.loop_cpu_first = self.loop_cpu_last = 0.0
        self.loop_tid = 0
        self.capture_tids: set[int] = set()
        self.threads_first: dict[int, float] = {}
        self.threads_last: dict[int, float] = {}

    def get(self, timeout: float) -> Frame | None:
        if self.taken >= self._limit:
            return None
        entered = time.perf_counter()
        frame = self._source.get(timeout)
        returned = time.perf_counter()
        if self.taken:
            self.waited_s += returned - entered
        if frame is None:
            return None
        self.taken += 1
        self.last_at = returned
        if self.taken == 1:
            self.first_at = returned
            self.loop_tid = threading.get_native_id()
            self.capture_tids = {t.native_id or 0 for t in threading.enumerate() if t.name.startswith("capture-")}
            self.loop_cpu_first, self.threads_first = time.thread_time(), thread_cpu_s()
        else:
            self.decode_s += frame.decode_s
        if self.taken == self._limit:
            self.loop_cpu_last, self.threads_last = time.thread_time(), thread_cpu_s()
        # Memory after a tenth of the run (buffers allocated, caches warm) and at the end: growth is a leak.
        if self.taken == max(1, self._limit // 10):
            self.rss_warm = rss_bytes()
        if self.taken == self._limit:
            self.rss_end = rss_bytes()
        return frame

    @property
    def ended(self) -> bool:
        return self.taken >= self._limit or self._source.ended

    def stats(self) -> SourceStats:
        return self._source.stats()

    def close(self) -> None:
        self._source.close()

    def rate_per_s(self) -> float:
        """Frames per second between the first and the last frame: start-up is not counted."""
        elapsed = self.last_at - self.first_at
        return (self.taken - 1) / elapsed if self.taken > 1 and elapsed > 0 else 0.0

    def critical_path(self) -> dict[str, Any]:
        """Each thread's work per frame, the bound the slowest sets, and how close the run came to it."""
        frames = self.taken - 1
        if frames < 1:
            return {}
        elapsed = self.last_at - self.first_at
        decode_ms = 1000 * self.decode_s / frames
        busy_ms = 1000 * (elapsed - self.waited_s) / frames
        cpu = {tid: self.threads_last.get(tid, 0.0) - start for tid, start in self.threads_first.items()}
        loop = cpu.pop(self.loop_tid, 0.0)
        capture = sum(cpu.pop(tid, 0.0) for tid in self.capture_tids)
        slowest_ms = max(decode_ms, busy_ms)
        bound = 1000 / slowest_ms if slowest_ms > 0 else 0.0
        rate = self.rate_per_s()
        return {
            "capture_decode_ms": round(decode_ms, 3),
            "loop_work_ms": round(busy_ms, 3),
            "loop_wait_ms": round(1000 * self.waited_s / frames, 3),
            "loop_thread_cpu_ms": round(1000 * (self.loop_cpu_last - self.loop_cpu_first) / frames, 3),
            # From /proc/self/task (10 ms ticks): `other` is LiteRT's worker threads, FFmpeg's, OpenBLAS's.
            "threads_cpu_ms": {
                "loop": round(1000 * loop / frames, 3),
                "capture": round(1000 * capture / frames, 3),
                "other": round(1000 * sum(cpu.values()) / frames, 3),
            },
            "slowest": "capture" if decode_ms > busy_ms else "loop",
            "bound_rate_per_s": round(bound, 1),
            "ratio": round(rate / bound, 3) if bound else 0.0,
        }
