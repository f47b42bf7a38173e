"""Shared fixtures: a real mosquitto broker, a subscriber on it, and daemons that never outlive their test.

Also the time limit of the TensorFlow build tests (the default for every other test is in pyproject.toml).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import Broker, Daemon, Subscriber

# A test marked `build` trains or converts models in subprocesses that each allow up to 900 s (the sweep test runs
# three in a row, 1140 s at most): it gets this limit unless it names its own with @pytest.mark.timeout(SECONDS).
BUILD_TIMEOUT_S = 1800


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("build") is not None and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(BUILD_TIMEOUT_S))


@pytest.fixture(autouse=True)
def own_state_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test (and every daemon it starts) gets its own state directory: no outbox, seq or Home Assistant
    record left by another test or by a developer's own runs."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))


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
