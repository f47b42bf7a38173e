"""Pure payload builders: result, label, inference and metrics messages from typed values."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from datetime import datetime, timezone
from typing import Any

from edge_classifier.capture.source import SourceStats
from edge_classifier.model.classification import LabelScore
from edge_classifier.model.identity import ModelInfo
from edge_classifier.mqtt.client import PublisherStats
from edge_classifier.mqtt.topics import Topics
from edge_classifier.outbox.outbox import OutboxStats
from edge_classifier.service.frame_result import FrameResult, StableLabel
from edge_classifier.service.messages import Message
from edge_classifier.service.metrics import MetricsSummary

RESULT_SCHEMA = "edge-classifier/result/v1"
INFERENCE_SCHEMA = "edge-classifier/inference/v1"
METRICS_SCHEMA = "edge-classifier/metrics/v1"


def utc_now() -> str:
    return utc_timestamp(datetime.now(timezone.utc))


def utc_timestamp(moment: datetime) -> str:
    """ISO 8601 with milliseconds and a Z, as every schema's `ts` requires."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def top_k_document(top_k: tuple[LabelScore, ...]) -> list[dict[str, Any]]:
    return [{"label": pair.label, "score": round(pair.score, 4)} for pair in top_k]


def timing_document(result: FrameResult) -> dict[str, float]:
    return {stage: round(ms, 3) for stage, ms in result.timings.by_stage().items()}


def result_document(
    seq: int, ts: str, device_id: str, stable: StableLabel, result: FrameResult, model: ModelInfo, boot_id: str
) -> dict[str, Any]:
    """The `result` payload: the stable label with the latest frame's top-k and timings."""
    return {
        "schema": RESULT_SCHEMA,
        "seq": seq,
        "boot_id": boot_id,
        "ts": ts,
        "device_id": device_id,
        "label": stable.label,
        "score": round(stable.score, 4),
        "top_k": top_k_document(result.top_k),
        "model": model.as_dict(),
        "frame_age_ms": round(result.frame_age_ms, 2),
        "timing_ms": timing_document(result),
    } | similar_document(result)


def similar_document(result: FrameResult) -> dict[str, Any]:
    """`similar`: the catalogue items like the frame, best first; nothing without a catalogue for the model."""
    return {} if result.similar is None else {"similar": [match.as_dict() for match in result.similar]}


def result_messages(topics: Topics, qos: int, document: dict[str, Any]) -> tuple[Message, Message]:
    """The retained `result` and the bare `label` for one result document."""
    return (
        Message(topics.result, json.dumps(document), qos, retain=True),
        Message(topics.label, str(document["label"]), qos, retain=True),
    )


def mark_replayed(payload: str) -> str:
    """A result payload sent again from the outbox: `"replayed": true` (it may repeat one already delivered)."""
    document = json.loads(payload)
    document["replayed"] = True
    return json.dumps(document)


def outbox_document(outbox: OutboxStats | None) -> dict[str, Any] | None:
    return None if outbox is None else asdict(outbox)


def inference_message(
    topics: Topics, seq: int, ts: str, device_id: str, result: FrameResult, model: ModelInfo
) -> Message:
    """One frame's own top-1 (not voted), rate-limited by the caller; never retained."""
    document = {
        "schema": INFERENCE_SCHEMA,
        "seq": seq,
        "ts": ts,
        "device_id": device_id,
        "frame_index": result.frame.index,
        "label": result.best.label,
        "score": round(result.best.score, 4),
        "top_k": top_k_document(result.top_k),
        "model": model.as_dict(),
        "frame_age_ms": round(result.frame_age_ms, 2),
        "timing_ms": timing_document(result),
    }
    return Message(topics.inference, json.dumps(document), qos=0)


def metrics_message(
    topics: Topics,
    ts: str,
    device_id: str,
    summary: MetricsSummary,
    source: SourceStats,
    publisher: PublisherStats,
    outbox: OutboxStats | None = None,
) -> Message:
    timing = asdict(summary)
    document = {
        "schema": METRICS_SCHEMA,
        "ts": ts,
        "device_id": device_id,
        **timing,
        "frames_dropped": source.frames_dropped,
        "frames_captured": source.frames_captured,
        "camera": {
            "state": source.state,
            "stalls": source.stalls,
            "reopens": source.reopens,
            "images_skipped": source.images_skipped,
        },
        "mqtt": {
            "connected": publisher.connected,
            "reconnects": max(0, publisher.connects - 1),
            "publish_skipped": publisher.publish_skipped,
            "connect_failures": publisher.connect_failures,
            "publish_denied": publisher.publish_denied,
            "last_error": publisher.last_error,
        },
        "outbox": outbox_document(outbox),
    }
    return Message(topics.metrics, json.dumps(document), qos=0)


def metrics_with_model(message: Message, model: ModelInfo, fallback: str | None) -> Message:
    """A metrics message with the serving model and, when that is the start-up fallback, why (else null)."""
    document = json.loads(message.payload)
    document["model"] = model.as_dict()
    document["model_fallback"] = fallback
    return replace(message, payload=json.dumps(document))
