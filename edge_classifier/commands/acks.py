"""Acknowledgement payloads and where they go: pure functions returning Message values."""

from __future__ import annotations

import json
from typing import Any

from edge_classifier.commands.outcome import Outcome
from edge_classifier.commands.validation import short
from edge_classifier.service.messages import Message

RESPONSE_SCHEMA = "edge-classifier/cmd-response/v1"
RESPONSE_LEVEL = "response"  # the last topic level of every answer; a message there is never taken as a command
MAX_NAME_CHARS = 128  # an unknown command's name, as echoed
MAX_TOPIC_BYTES = 65535


def command_name(commands_base: str, topic: str) -> str:
    """`model/load` for `<base>/cmd/model/load`."""
    return topic[len(commands_base) + 1 :]


def is_response(topic: str) -> bool:
    return topic.rsplit("/", 1)[-1] == RESPONSE_LEVEL


def usable_topic(topic: str | None) -> bool:
    """A topic one may publish to: not empty, no wildcard or NUL, short enough."""
    return (
        bool(topic)
        and topic is not None
        and not any(c in topic for c in "+#\x00")
        and len(topic.encode("utf-8", "surrogatepass")) <= MAX_TOPIC_BYTES
    )


def response_topic(commands_base: str, name: str, requested: str | None) -> str:
    """The MQTT 5 response topic when the request gave a usable one, else `<base>/cmd/<name>/response`."""
    if requested is not None and usable_topic(requested):
        return requested
    default = f"{commands_base}/{name}/{RESPONSE_LEVEL}"
    return default if usable_topic(default) and len(name) <= MAX_NAME_CHARS else f"{commands_base}/{RESPONSE_LEVEL}"


def ack_document(request_id: str | None, name: str, device_id: str, outcome: Outcome, ts: str) -> dict[str, Any]:
    """`{id, ok, status, error, data, ts}` with the schema, the command and the device."""
    return {
        "schema": RESPONSE_SCHEMA,
        "id": request_id,
        "command": short(name, MAX_NAME_CHARS),
        "device_id": device_id,
        "ok": outcome.ok,
        "status": outcome.status,
        "error": None if outcome.error is None else short(outcome.error, 1000),
        "data": outcome.data,
        "ts": ts,
    }


def ack_message(topic: str, document: dict[str, Any], correlation_data: bytes | None) -> Message:
    """Never retained (an old answer must not greet the next subscriber); QoS 1; correlation data echoed."""
    return Message(topic, json.dumps(document), qos=1, retain=False, correlation_data=correlation_data)
