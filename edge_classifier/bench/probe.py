"""Start-up time and memory, each measured in a fresh process so that nothing the bench loaded counts."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from edge_classifier.config.settings import Config, load_config
from edge_classifier.errors import InputError
from edge_classifier.mqtt.memory import MemoryPublisher
from edge_classifier.service.compose import Seams, build_service
from edge_classifier.service.notify import Notifier

FIRST_FRAME_TIMEOUT_S = 60.0
SETTLE_FRAMES = 200
# The libraries the daemon cannot run without; their import alone sets a floor under its RSS.
RUNTIME_IMPORTS = (
    "import numpy, cv2, yaml, paho.mqtt.client; from edge_classifier.model.runner import interpreter_class"
)
# A glibc malloc setting the bench compares the daemon with (its own figures are measured with the
# environment as it is: glibc's defaults unless that sets MALLOC_* variables). A fixed trim threshold gives
# free memory at the top of the heap back beyond 128 KiB; fixing it also fixes the mmap threshold at 128 KiB,
# so each decoded 640x480 frame (900 KiB) is mmap()ed and unmapped again instead of reusing heap memory.
# That saves about 1.7 MB but costs about 15% of the end-to-end rate (README, Benchmark): not for the unit.
MALLOC_ENV = {"MALLOC_TRIM_THRESHOLD_": "131072"}


def child_env(tuned_malloc: bool) -> dict[str, str]:
    """This process's environment, with MALLOC_ENV added where unset if `tuned_malloc`."""
    env = dict(os.environ)
    if tuned_malloc:
        env.update({k: v for k, v in MALLOC_ENV.items() if k not in env})
    return env


def _malloc_env(env: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(env.items()) if k.startswith("MALLOC_")) or "glibc defaults"


def _parse_status(status: str) -> dict[str, int]:
    """The kB figures of /proc/PID/status (VmRSS, VmHWM, RssAnon, RssFile, ...)."""
    return {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines() if line.startswith(("Vm", "Rss"))}


def _anon_kb() -> int:
    return _parse_status(Path("/proc/self/status").read_text())["RssAnon"]


def child_startup(config_file: str) -> None:
    """Run in a fresh process: load, self-test, first frame, first result; print RSS and times."""
    started_wall = time.time()
    # Anonymous memory after each step: where the daemon's own memory goes above the import floor.
    steps = {"imports": _anon_kb()}
    config = load_config(Path(config_file))
    seams = Seams(publisher=MemoryPublisher(), notifier=Notifier({}))
    with contextlib.ExitStack() as stack:
        service = build_service(config, stack, threading.Event(), seams)
        steps["model_loaded_self_tested_source_open"] = _anon_kb()
        deadline = time.monotonic() + FIRST_FRAME_TIMEOUT_S
        while service.state.snapshot().frames_processed == 0:
            if service.loop.step() == "ended" or time.monotonic() > deadline:
                raise InputError(f"bench start-up child: no frame classified within {FIRST_FRAME_TIMEOUT_S:.0f}s")
        first_result_wall = time.time()
        steps["first_result"] = _anon_kb()
        # Let it settle into the steady state for a few hundred frames before reading memory.
        while service.state.snapshot().frames_processed < SETTLE_FRAMES and time.monotonic() < deadline:
            if service.loop.step() == "ended":
                break
        kb = _parse_status(Path("/proc/self/status").read_text())
        steps[f"after_{service.state.snapshot().frames_processed}_frames"] = kb["RssAnon"]
    report = {"first_result_wall": first_result_wall, "child_started_wall": started_wall, "rss_kb": kb["VmRSS"],
              "peak_rss_kb": kb["VmHWM"], "anon_kb": kb["RssAnon"], "file_kb": kb["RssFile"],
              "anon_steps_kb": steps}  # fmt: skip
    print(json.dumps(report))


def _plain(value: Any) -> Any:
    """Config values as YAML can write them: paths as text, tuples as lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def startup_and_memory(config: Config, video: Path, tuned_malloc: bool = False) -> dict[str, Any]:
    """A fresh process with the bench's model settings: time to the first result, then its memory."""
    tree = {
        "model": _plain(asdict(config.model)),
        "source": {"uri": str(video), "file_rate": "max", "decode_threads": config.source.decode_threads},
    }
    with tempfile.TemporaryDirectory() as folder:
        config_file = Path(folder) / "bench.yaml"
        config_file.write_text(yaml.safe_dump(tree), encoding="utf-8")
        env = child_env(tuned_malloc)
        spawned = time.time()
        code = "import sys; from edge_classifier.bench.probe import child_startup; child_startup(sys.argv[1])"
        out = subprocess.run(
            [sys.executable, "-c", code, str(config_file)], capture_output=True, text=True, timeout=120, env=env
        )
    if out.returncode != 0:
        raise InputError(f"bench start-up child failed: {_last_line(out)}")
    child = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "process_start_to_first_result_s": round(child["first_result_wall"] - spawned, 3),
        "rss_mb": round(child["rss_kb"] / 1024, 1),
        "peak_rss_mb": round(child["peak_rss_kb"] / 1024, 1),
        # File-backed pages are shared-library code (OpenCV, numpy, LiteRT): clean, shared, reclaimable.
        "rss_anon_mb": round(child["anon_kb"] / 1024, 1),
        "rss_file_mb": round(child["file_kb"] / 1024, 1),
        "anon_steps_mb": {step: round(kb / 1024, 1) for step, kb in child["anon_steps_kb"].items()},
        "malloc_env": _malloc_env(env),
    }


def imports_only(tuned_malloc: bool = False) -> dict[str, Any]:
    """RSS of a fresh Python that only imports the runtime libraries and loads the interpreter package."""
    code = (
        f"{RUNTIME_IMPORTS}; interpreter_class(); import pathlib; print(pathlib.Path('/proc/self/status').read_text())"
    )
    env = child_env(tuned_malloc)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    if out.returncode != 0:
        raise InputError(f"bench import child failed: {_last_line(out)}")
    kb = _parse_status(out.stdout)
    return {
        "rss_mb": round(kb["VmRSS"] / 1024, 1),
        "rss_anon_mb": round(kb["RssAnon"] / 1024, 1),
        "rss_file_mb": round(kb["RssFile"] / 1024, 1),
        "malloc_env": _malloc_env(env),
    }


def _last_line(out: subprocess.CompletedProcess[str]) -> str:
    return (out.stderr.strip().splitlines() or [f"exit code {out.returncode}"])[-1]
