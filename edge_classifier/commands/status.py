"""The `status` and `ping` answers: what the daemon is doing now, built from the values the loop holds."""

from __future__ import annotations

from typing import Any

from edge_classifier import __version__
from edge_classifier.commands.context import CommandCounts
from edge_classifier.model.identity import ModelInfo
from edge_classifier.service.hot_swap import ModelKeeper
from edge_classifier.service.live_settings import LiveSettings
from edge_classifier.service.state import RuntimeSnapshot


def _model(info: ModelInfo | None) -> dict[str, str] | None:
    return None if info is None else info.as_dict()


def ping_data(uptime_s: float) -> dict[str, Any]:
    return {"version": __version__, "uptime_s": round(uptime_s, 3)}


def status_data(
    snapshot: RuntimeSnapshot, settings: LiveSettings, models: ModelKeeper, counts: CommandCounts, uptime_s: float
) -> dict[str, Any]:
    """Model (and fallback, previous, verification), settings in force, camera, MQTT, frames and commands."""
    source, publisher = snapshot.source, snapshot.publisher
    return {
        "version": __version__,
        "uptime_s": round(uptime_s, 3),
        "model": _model(snapshot.model),
        "model_fallback": models.fallback,
        "previous_model": _model(models.previous.info if models.previous is not None else None),
        "model_verifying": models.probation is not None,
        "model_swaps": models.swaps,
        "model_rollbacks": models.rollbacks,
        "last_rollback": models.last_rollback,
        "settings": {
            "top_k": settings.top_k,
            "vote_window": settings.vote_window,
            "min_score": round(settings.min_score, 4),
            "heartbeat_s": settings.heartbeat_s,
        },
        "camera": {
            "state": source.state,
            "frames_captured": source.frames_captured,
            "frames_dropped": source.frames_dropped,
            "stalls": source.stalls,
            "reopens": source.reopens,
        },
        "mqtt": {
            "connected": publisher.connected,
            "reconnects": max(0, publisher.connects - 1),
            "publish_skipped": publisher.publish_skipped,
            "publish_denied": publisher.publish_denied,
            "last_error": publisher.last_error,
        },
        "frames": {
            "processed": snapshot.frames_processed,
            "label": snapshot.stable.label,
            "score": round(snapshot.stable.score, 4),
        },
        "commands": dict(vars(counts)),
    }
