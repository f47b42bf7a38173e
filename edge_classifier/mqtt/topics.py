"""MQTT topic names and identifiers derived from the device id."""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNSAFE = re.compile(r"[^a-z0-9_-]+")


def sanitize_device_id(raw: str) -> str:
    """Lower-case, only [a-z0-9_-], runs of anything else become one '-'; never empty."""
    cleaned = _UNSAFE.sub("-", raw.strip().lower()).strip("-")
    return cleaned or "device"


@dataclass(frozen=True)
class Topics:
    """Every topic the daemon publishes, under `<prefix>/<device_id>`."""

    prefix: str
    device_id: str

    @property
    def base(self) -> str:
        return f"{self.prefix.rstrip('/')}/{self.device_id}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def result(self) -> str:
        return f"{self.base}/result"

    @property
    def label(self) -> str:
        return f"{self.base}/label"

    @property
    def inference(self) -> str:
        return f"{self.base}/inference"

    @property
    def metrics(self) -> str:
        return f"{self.base}/metrics"

    @property
    def client_id(self) -> str:
        return f"edge-classifier-{self.device_id}"
