"""Real services for tests: a mosquitto broker, a paho subscriber, the daemon as a subprocess."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
DEFAULT_MANIFEST = MODELS / "clothing-mobilenetv2.json"  # real garment photos
FASHION_MANIFEST = MODELS / "fashion-mobilenetv2.json"  # the optimization study's Fashion-MNIST model
BUNDLED_MANIFESTS = (DEFAULT_MANIFEST, FASHION_MANIFEST)
SAMPLE_VIDEO = MODELS / "sample" / "garments.mp4"
SCHEMAS = ROOT / "edge_classifier" / "schemas"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """mosquitto on 127.0.0.1:PORT with its own config; start() returns once it says it is running."""

    def __init__(self, workdir: Path, port: int | None = None, extra_config: str = ""):
        self.port = port or free_port()
        self.config = workdir / f"mosquitto-{self.port}.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type all\n"
            + extra_config
        )
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 10.0) -> Broker:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([binary, "-c", str(self.config)], stderr=subprocess.PIPE, text=True)
        line = wait_for_line(self.proc, lambda text: " running" in text, timeout)
        if not line:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"mosquitto did not report it was running within {timeout}s: {self.config}")
        threading.Thread(target=_drain, args=(self.proc.stderr,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


def _drain(stream: Any) -> None:
    for _ in stream:
        pass


def wait_for_line(proc: subprocess.Popen[str], predicate: Any, timeout: float) -> str | None:
    """Read the process's stderr until a line matches; None on timeout or exit."""
    found: queue.Queue[str | None] = queue.Queue()

    def reader() -> None:
        assert proc.stderr is not None
        for text in proc.stderr:
            if predicate(text):
                found.put(text)
                return
        found.put(None)

    threading.Thread(target=reader, daemon=True).start()
    try:
        return found.get(timeout=timeout)
    except queue.Empty:
        return None


@dataclass(frozen=True)
class Message:
    topic: str
    payload: str
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    """A paho client collecting every message under a topic filter into a queue."""

    def __init__(self, port: int, topic: str = "#"):
        self.messages: queue.Queue[Message] = queue.Queue()
        self.seen: list[Message] = []
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{port}-{id(self)}")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
        self.client.on_message = lambda c, u, m: self.messages.put(Message(m.topic, m.payload.decode(), bool(m.retain)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "test subscriber could not subscribe"

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> Message:
        """The first new message matching predicate(message); fails after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching message within {timeout}s; last: {self.seen[-3:]}")
            try:
                message = self.messages.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(message)
            if predicate(message):
                return message

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Daemon:
    """`edge-classifier run ARGS` as a child process; its log lines are always drained into a queue."""

    def __init__(self, *args: str, env: dict[str, str] | None = None):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge_classifier.cli", "run", *args],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def wait_for_line(self, predicate: Any, timeout: float = 60.0) -> str:
        """The first not yet seen log line matching predicate; fails on timeout or exit."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:  # stderr closed: the daemon is exiting, or closed it and hangs
                try:
                    code: int | str = self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    code = "still running 10s after closing stderr"
                raise AssertionError(f"daemon exited ({code}): {''.join(self.lines[-5:])}")
            if predicate(line):
                return line
        raise AssertionError(f"no matching log line within {timeout}s: {''.join(self.lines[-5:])}")

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def poll(self) -> int | None:
        return self.proc.poll()

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_classifier.cli", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=timeout,
    )  # fmt: skip
