"""Shared fixtures: a real mosquitto broker, a subscriber on it, and daemons that never outlive their test."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import Broker, Daemon, Subscriber


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path).start()
    yield b
    b.stop()


@pytest.fixture
def subscriber(broker: Broker) -> Iterator[Subscriber]:
    s = Subscriber(broker.port)
    yield s
    s.close()


@pytest.fixture
def daemons() -> Iterator[Any]:
    """Starts `edge-classifier run` processes; any still running when the test ends (a failed wait) is killed."""
    started: list[Daemon] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Daemon:
        started.append(Daemon(*args, env=env))
        return started[-1]

    yield start
    for daemon in started:
        if daemon.poll() is None:
            daemon.stop(signal.SIGKILL)
