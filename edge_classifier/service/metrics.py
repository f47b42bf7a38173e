"""Per-stage timings and process figures that several readers (MQTT, Prometheus, a web page) read independently."""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_classifier.service.frame_result import STAGES, StageTimings

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
WINDOW_CAPACITY = 4096  # samples kept per stage; a reader that waits longer sees the latest this many
# Upper bounds (ms) of the cumulative per-stage histograms that Prometheus reads; a last bucket holds the rest.
HISTOGRAM_BOUNDS_MS = (1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0)


@dataclass(frozen=True)
class WindowSummary:
    p50: float
    p95: float
    max: float
    mean: float


@dataclass(frozen=True)
class MetricsSummary:
    """What one reader saw since its previous read (timings) or since start (totals)."""

    window_s: float
    fps: float
    frames_processed: int
    timing_ms: dict[str, WindowSummary | None]
    frame_age_ms: WindowSummary | None
    cpu_percent: float
    rss_bytes: int
    uptime_s: float
    soc_temperature_c: float | None


@dataclass(frozen=True)
class StageHistogram:
    """Samples since start per bucket: counts[i] <= bounds_ms[i] (above the previous bound); counts[-1] the rest."""

    bounds_ms: tuple[float, ...]
    counts: tuple[int, ...]
    sum_ms: float


class Window:
    """A fixed-size ring of samples (milliseconds) numbered from 0; no allocation per sample."""

    def __init__(self, capacity: int = WINDOW_CAPACITY):
        self._values = np.zeros(capacity, dtype=np.float64)
        self.count = 0

    def add(self, value: float) -> None:
        self._values[self.count % len(self._values)] = value
        self.count += 1

    def summary(self, since: int = 0) -> WindowSummary | None:
        """Percentiles of the samples numbered `since` and later (at most the last `capacity`)."""
        n = min(self.count - since, len(self._values))
        if n <= 0:
            return None
        end = self.count % len(self._values)
        positions = (np.arange(end - n, end)) % len(self._values)
        values = self._values[positions]
        p50, p95 = np.percentile(values, (50, 95))
        return WindowSummary(
            round(float(p50), 3), round(float(p95), 3), round(float(values.max()), 3), round(float(values.mean()), 3)
        )


def rss_bytes() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def soc_temperature_c(root: Path = Path("/sys/class/thermal")) -> float | None:
    """The first thermal zone's temperature, where the kernel exposes one (Raspberry Pi does)."""
    for zone in sorted(root.glob("thermal_zone*/temp")):
        try:
            return round(int(zone.read_text().strip()) / 1000.0, 1)
        except (OSError, ValueError):
            continue
    return None


class Metrics:
    """Written by the main loop, read by any thread through its own MetricsReader."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self.started = clock()
        self._stages = {stage: Window() for stage in STAGES}
        self._frame_age = Window()
        self._buckets = {stage: [0] * (len(HISTOGRAM_BOUNDS_MS) + 1) for stage in STAGES}
        self._sums = dict.fromkeys(STAGES, 0.0)

    @property
    def frames_total(self) -> int:
        return self._frame_age.count

    def record(self, timings: StageTimings, publish_ms: float, frame_age_ms: float) -> None:
        with self._lock:
            for stage, value in (*timings.by_stage().items(), ("publish", publish_ms)):
                self._stages[stage].add(value)
                self._buckets[stage][bisect.bisect_left(HISTOGRAM_BOUNDS_MS, value)] += 1
                self._sums[stage] += value
            self._frame_age.add(frame_age_ms)

    def histograms(self) -> dict[str, StageHistogram]:
        """Every stage's samples since start, bucketed (Prometheus histograms)."""
        with self._lock:
            return {
                stage: StageHistogram(HISTOGRAM_BOUNDS_MS, tuple(self._buckets[stage]), self._sums[stage])
                for stage in STAGES
            }

    def reader(self) -> MetricsReader:
        """A new reader whose first window starts now."""
        return MetricsReader(self, self._clock)

    def summary(self, since_frame: int, window_s: float, cpu_percent: float, now: float) -> MetricsSummary:
        with self._lock:
            frames = self._frame_age.count
            timing = {stage: window.summary(since_frame) for stage, window in self._stages.items()}
            age = self._frame_age.summary(since_frame)
        return MetricsSummary(
            window_s=round(window_s, 3),
            fps=round((frames - since_frame) / max(window_s, 1e-9), 2),
            frames_processed=frames,
            timing_ms=timing,
            frame_age_ms=age,
            cpu_percent=round(cpu_percent, 1),
            rss_bytes=rss_bytes(),
            uptime_s=round(now - self.started, 1),
            soc_temperature_c=soc_temperature_c(),
        )


class MetricsReader:
    """One consumer's view: each read() covers the frames since this reader's previous read()."""

    def __init__(self, metrics: Metrics, clock: Callable[[], float]):
        self._metrics = metrics
        self._clock = clock
        self._since_frame = metrics.frames_total
        self._since = clock()
        self._cpu_since = time.process_time()

    def read(self) -> MetricsSummary:
        now, cpu = self._clock(), time.process_time()
        elapsed = max(now - self._since, 1e-9)
        summary = self._metrics.summary(self._since_frame, elapsed, 100.0 * (cpu - self._cpu_since) / elapsed, now)
        self._since_frame, self._since, self._cpu_since = summary.frames_processed, now, cpu
        return summary
