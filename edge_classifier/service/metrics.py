"""Per-stage timing windows and process statistics for the `metrics` topic."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

STAGES = ("capture", "preprocess", "inference", "postprocess", "publish", "total")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class Window:
    """A fixed-size ring of samples (milliseconds); no allocation per sample."""

    def __init__(self, capacity: int = 4096):
        self._values = np.zeros(capacity, dtype=np.float64)
        self._count = 0

    def add(self, value: float) -> None:
        self._values[self._count % len(self._values)] = value
        self._count += 1

    def summary(self) -> dict[str, float] | None:
        if not self._count:
            return None
        values = self._values[: min(self._count, len(self._values))]
        p50, p95 = np.percentile(values, (50, 95))
        return {
            "p50": round(float(p50), 3),
            "p95": round(float(p95), 3),
            "max": round(float(values.max()), 3),
            "mean": round(float(values.mean()), 3),
        }

    def reset(self) -> None:
        self._count = 0


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
    """Counts and timing windows since the last snapshot; totals since start."""

    def __init__(self, clock: Any = time.monotonic):
        self._clock = clock
        self.started = clock()
        self.stages = {stage: Window() for stage in STAGES}
        self.frame_age = Window()
        self.frames_total = 0
        self._window_frames = 0
        self._window_start = self.started
        self._cpu_start = time.process_time()

    def record(self, timings_ms: dict[str, float], frame_age_ms: float) -> None:
        for stage, value in timings_ms.items():
            self.stages[stage].add(value)
        self.frame_age.add(frame_age_ms)
        self.frames_total += 1
        self._window_frames += 1

    def snapshot(self) -> dict[str, Any]:
        """The timing/process part of a metrics payload; starts a new window."""
        now, cpu = self._clock(), time.process_time()
        elapsed = max(now - self._window_start, 1e-9)
        payload = {
            "window_s": round(elapsed, 3),
            "fps": round(self._window_frames / elapsed, 2),
            "frames_processed": self.frames_total,
            "timing_ms": {stage: window.summary() for stage, window in self.stages.items()},
            "frame_age_ms": self.frame_age.summary(),
            "cpu_percent": round(100.0 * (cpu - self._cpu_start) / elapsed, 1),
            "rss_bytes": rss_bytes(),
            "uptime_s": round(now - self.started, 1),
            "soc_temperature_c": soc_temperature_c(),
        }
        for window in (*self.stages.values(), self.frame_age):
            window.reset()
        self._window_frames, self._window_start, self._cpu_start = 0, now, cpu
        return payload
