"""The JSON answers of the API (each with its schema under edge_classifier/schemas/http-*.schema.json)."""

from __future__ import annotations

from typing import Any

from edge_classifier import __version__
from edge_classifier.http.images import ImageHeader
from edge_classifier.service.inbox import Prediction
from edge_classifier.service.payloads import top_k_document
from edge_classifier.service.state import RuntimeSnapshot

HEALTH_SCHEMA = "edge-classifier/http-health/v1"
READY_SCHEMA = "edge-classifier/http-ready/v1"
LATEST_SCHEMA = "edge-classifier/http-latest/v1"
PREDICT_SCHEMA = "edge-classifier/http-predict/v1"
# A camera in one of these states delivers no frames: not ready.
CAMERA_DOWN = ("absent", "stalled", "reopening", "ended")


def health_document(uptime_s: float) -> dict[str, Any]:
    return {"schema": HEALTH_SCHEMA, "status": "ok", "version": __version__, "uptime_s": round(uptime_s, 1)}


def ready_document(
    snap: RuntimeSnapshot, now: float, max_frame_age_s: float, selftest: bool
) -> tuple[bool, dict[str, Any]]:
    """Ready once frames are classified and fresh; the broker being away is a warning only."""
    reasons, warnings = [], []
    camera = snap.source.state
    if camera in CAMERA_DOWN:
        reasons.append(f"camera {camera}")
    age_s = None if snap.latest is None else max(0.0, now - snap.latest.frame.captured_at)
    if age_s is None:
        reasons.append("no frame classified yet")
    elif age_s > max_frame_age_s:
        reasons.append(f"the latest frame is {age_s:.1f}s old (http.ready_max_frame_age_s {max_frame_age_s:g})")
    if not snap.publisher.connected:
        warnings.append("not connected to the MQTT broker: results are not being published")
    if snap.publisher.publishing_lost:
        warnings.append("nothing could be published for longer than mqtt.max_offline_s")
    ready = not reasons
    return ready, {
        "schema": READY_SCHEMA,
        "ready": ready,
        "reasons": reasons,
        "warnings": warnings,
        "camera": camera,
        "frame_age_ms": None if age_s is None else round(1000 * age_s, 1),
        "frames_processed": snap.frames_processed,
        "mqtt_connected": snap.publisher.connected,
        "model": {**snap.model.as_dict(), "selftest": "passed" if selftest else "off"},
    }


def latest_document(snap: RuntimeSnapshot, fps: float, now: float) -> dict[str, Any]:
    """The stable result as MQTT publishes it, with the latest frame's own figures for a live view."""
    frame = None
    if snap.latest is not None:
        latest = snap.latest
        frame = {
            "index": latest.frame.index,
            "width": latest.frame.width,
            "height": latest.frame.height,
            "age_ms": round(max(0.0, 1000 * (now - latest.frame.captured_at)), 1),
            "label": latest.best.label,
            "score": round(latest.best.score, 4),
            "top_k": top_k_document(latest.top_k),
            "timing_ms": {stage: round(ms, 3) for stage, ms in latest.timings.by_stage().items()},
        }
    return {
        "schema": LATEST_SCHEMA,
        "result": snap.last_result,
        "label": snap.stable.label,
        "score": round(snap.stable.score, 4),
        "frames_processed": snap.frames_processed,
        "fps": fps,
        "camera": snap.source.state,
        "model": snap.model.as_dict(),
        "frame": frame,
    }


def predict_document(
    prediction: Prediction, header: ImageHeader, size: int, via: str, decode_ms: float, wait_ms: float, total_ms: float
) -> dict[str, Any]:
    best = prediction.top_k[0]
    return {
        "schema": PREDICT_SCHEMA,
        "label": best.label,
        "score": round(best.score, 4),
        "top_k": top_k_document(prediction.top_k),
        "model": prediction.model.as_dict(),
        "image": {"format": header.format, "width": header.width, "height": header.height, "bytes": size, "via": via},
        "timing_ms": {
            "decode": round(decode_ms, 3),
            "wait": round(wait_ms, 3),
            "preprocess": round(prediction.preprocess_ms, 3),
            "inference": round(prediction.inference_ms, 3),
            "postprocess": round(prediction.postprocess_ms, 3),
            "total": round(total_ms, 3),
        },
    }
