"""Result, label, inference and metrics messages: payload shapes and when each is due."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from edge_classifier.capture.source import SourceStats
from edge_classifier.mqtt.client import Publisher, PublisherStats
from edge_classifier.mqtt.topics import Topics

RESULT_SCHEMA = "edge-classifier/result/v1"
METRICS_SCHEMA = "edge-classifier/metrics/v1"


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    sha256: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


def result_payload(
    seq: int,
    device_id: str,
    label: str,
    score: float,
    top_k: list[tuple[str, float]],
    model: ModelInfo,
    frame_age_ms: float,
    timing_ms: dict[str, float],
) -> dict[str, Any]:
    return {
        "schema": RESULT_SCHEMA,
        "seq": seq,
        "ts": utc_now(),
        "device_id": device_id,
        "label": label,
        "score": round(score, 4),
        "top_k": [{"label": name, "score": round(value, 4)} for name, value in top_k],
        "model": model.as_dict(),
        "frame_age_ms": round(frame_age_ms, 2),
        "timing_ms": {stage: round(value, 3) for stage, value in timing_ms.items()},
    }


def metrics_payload(
    device_id: str, timing: dict[str, Any], source: SourceStats, publisher: PublisherStats
) -> dict[str, Any]:
    return {
        "schema": METRICS_SCHEMA,
        "ts": utc_now(),
        "device_id": device_id,
        **timing,
        "frames_dropped": source.frames_dropped,
        "frames_captured": source.frames_captured,
        "camera": {"state": source.state, "stalls": source.stalls, "reopens": source.reopens},
        "mqtt": {
            "connected": publisher.connected,
            "reconnects": max(0, publisher.connects - 1),
            "publish_skipped": publisher.publish_skipped,
        },
    }


class Reporter:
    """Publishes results on change and heartbeat, per-frame inferences rate-limited, and metrics."""

    def __init__(self, publisher: Publisher, topics: Topics, qos: int, heartbeat_s: float,
                 inference_min_interval_s: float | None, metrics_interval_s: float, now: float):  # fmt: skip
        self._publisher = publisher
        self._topics = topics
        self._qos = qos
        self._heartbeat_s = heartbeat_s
        self._inference_interval = inference_min_interval_s
        self._metrics_interval = metrics_interval_s
        self._seq = 0
        self._last_result: dict[str, Any] | None = None
        self._last_result_at = now
        self._last_inference_at = float("-inf")
        self._next_metrics_at = now + metrics_interval_s

    @property
    def seq(self) -> int:
        return self._seq

    def result(self, payload_fields: dict[str, Any], now: float) -> dict[str, Any]:
        """Publish a stable result (retained) and the bare label; returns the payload."""
        self._seq += 1
        payload = result_payload(seq=self._seq, **payload_fields)
        self._last_result, self._last_result_at = payload, now
        self._send_result(payload)
        return payload

    def _send_result(self, payload: dict[str, Any]) -> None:
        self._publisher.publish(self._topics.result, json.dumps(payload), qos=self._qos, retain=True)
        self._publisher.publish(self._topics.label, payload["label"], qos=self._qos, retain=True)

    def heartbeat_due(self, now: float) -> bool:
        """True on the first frame (dashboards get a value at once) and every heartbeat_s after."""
        return self._last_result is None or now - self._last_result_at >= self._heartbeat_s

    def republish_last(self) -> None:
        """After a reconnect the broker may have lost retained messages: send the current state again."""
        if self._last_result is not None:
            self._send_result(self._last_result)

    def inference_due(self, now: float) -> bool:
        """True when the inference topic is on and its rate limit allows a message now."""
        return self._inference_interval is not None and now - self._last_inference_at >= self._inference_interval

    def inference(self, payload: dict[str, Any], now: float) -> None:
        if not self.inference_due(now):
            return
        self._last_inference_at = now
        self._publisher.publish(self._topics.inference, json.dumps(payload), qos=0)

    def metrics_due(self, now: float) -> bool:
        return now >= self._next_metrics_at

    def metrics(self, payload: dict[str, Any], now: float) -> None:
        self._next_metrics_at = now + self._metrics_interval
        self._publisher.publish(self._topics.metrics, json.dumps(payload), qos=0)
