"""`bench --soak SECONDS`: the daemon as a child process for a while, sampled for leaks and log floods."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from edge_classifier.errors import InputError

STOP_TIMEOUT_S = 20.0
_FRAMES = re.compile(r"status: .*?, frames (\d+),")


def _proc_figures(pid: int) -> dict[str, float]:
    """RSS, anonymous RSS (MB), threads and open file descriptors of a running process."""
    status = Path(f"/proc/{pid}/status").read_text()
    kb = {
        line.split(":")[0]: int(line.split()[1])
        for line in status.splitlines()
        if line.startswith(("VmRSS", "RssAnon"))
    }
    return {
        "rss_mb": round(kb["VmRSS"] / 1024, 1),
        "rss_anon_mb": round(kb["RssAnon"] / 1024, 1),
        "threads": len(os.listdir(f"/proc/{pid}/task")),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


def _drain(stream: Any, lines: queue.Queue[tuple[float, str]]) -> None:
    for line in stream:
        lines.put((time.monotonic(), line))


def soak(run_args: list[str], video: Path, seconds: float) -> dict[str, Any]:
    """Run `edge-classifier run RUN_ARGS` on the video looped at full rate for `seconds`; sample it every interval.

    Frames are counted from the daemon's own status line (SIGUSR1) at the end, so nothing is added to it.
    """
    if not video.is_file():
        raise InputError(f"--video {video} does not exist")
    interval = max(1.0, seconds / 60)
    argv = [sys.executable, "-m", "edge_classifier.cli", "run", *run_args, "--source", str(video),
            "--set", "source.loop=true", "--set", "source.file_rate=max"]  # fmt: skip
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[tuple[float, str]] = queue.Queue()
    threading.Thread(target=_drain, args=(child.stderr, lines), daemon=True).start()
    started = time.monotonic()
    samples: list[dict[str, float]] = []
    try:
        while (elapsed := time.monotonic() - started) < seconds and child.poll() is None:
            samples.append({"t_s": round(elapsed, 1), **_proc_figures(child.pid)})
            time.sleep(min(interval, max(0.0, seconds - elapsed)))  # pacing the samples, not synchronizing
        frames = _frames_from_status(child, lines) if child.poll() is None else None
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
        code = child.wait(STOP_TIMEOUT_S)
    seen = _collect(lines)
    if not samples:
        raise InputError(f"bench --soak: the daemon exited at once ({code}): {(seen or [(0, '')])[-1][1].strip()}")
    return _report(seconds, samples, seen, started, frames, code)


def _frames_from_status(child: subprocess.Popen[str], lines: queue.Queue[tuple[float, str]]) -> int | None:
    child.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    kept: list[tuple[float, str]] = []
    frames = None
    while frames is None and (remaining := deadline - time.monotonic()) > 0:
        try:
            at, line = lines.get(timeout=remaining)
        except queue.Empty:
            break
        kept.append((at, line))
        match = _FRAMES.search(line)
        frames = int(match.group(1)) if match else None
    for item in kept:
        lines.put(item)
    return frames


def _collect(lines: queue.Queue[tuple[float, str]]) -> list[tuple[float, str]]:
    seen = []
    while not lines.empty():
        seen.append(lines.get_nowait())
    return sorted(seen)


def _report(
    seconds: float,
    samples: list[dict[str, float]],
    seen: list[tuple[float, str]],
    started: float,
    frames: int | None,
    code: int,
) -> dict[str, Any]:
    minutes = max(1, int(-(-seconds // 60)))
    per_minute = [0] * minutes
    for at, _ in seen:
        per_minute[min(minutes - 1, int((at - started) // 60))] += 1
    first, last = samples[0], samples[-1]
    # Growth is measured from the sample a tenth of the way in: start-up allocations are not a leak.
    warm = samples[len(samples) // 10]
    return {
        "seconds": seconds,
        "frames": frames,
        "rate_per_s": round(frames / seconds, 1) if frames else None,
        "exit_code": code,
        "samples": samples,
        "rss_growth_mb": round(last["rss_mb"] - warm["rss_mb"], 1),
        "rss_anon_growth_mb": round(last["rss_anon_mb"] - warm["rss_anon_mb"], 1),
        "threads": {"first": first["threads"], "last": last["threads"], "max": max(s["threads"] for s in samples)},
        "fds": {"first": first["fds"], "last": last["fds"], "max": max(s["fds"] for s in samples)},
        "log_lines_per_minute": per_minute,
        "last_log_lines": [line.rstrip() for _, line in seen[-5:]],
    }
