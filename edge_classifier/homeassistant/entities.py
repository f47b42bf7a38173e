"""What appears in Home Assistant: the daemon's entities, each with the topic and template its state comes from."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edge_classifier.mqtt.topics import Topics
from edge_classifier.service.voting import UNKNOWN

# The camera states metrics.schema.json lists.
CAMERA_STATES = ("starting", "running", "stalled", "reopening", "absent", "ended")
# Commands on <prefix>/<device>/cmd/<name> that a press sends: entity key, name, icon and category (None: a control).
COMMAND_BUTTONS = (
    ("ping", "ping", "Ping", "mdi:lan-pending", "diagnostic"),
    ("reload", "reload", "Reload configuration", "mdi:reload", "config"),
    ("snapshot", "snapshot", "Snapshot", "mdi:camera", None),
    ("model/rollback", "model_rollback", "Roll back model", "mdi:undo", "config"),
)
# Commands refuse an id they have seen: every press renders a new one from Home Assistant's clock.
COMMAND_TEMPLATE = '{"id": "ha-{{ now().timestamp() }}"}'
MAX_SLUG_CHARS = 48
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Entity:
    """One Home Assistant entity: its key (unique within the device), platform and platform options."""

    key: str
    platform: str
    options: Mapping[str, Any]


def slug(text: str) -> str:
    """Lower-case [a-z0-9_] without leading, trailing or doubled '_' (what an entity id allows); may be empty."""
    return _NOT_SLUG.sub("_", text.lower()).strip("_")


def label_keys(labels: Sequence[str]) -> dict[str, str]:
    """An entity key per label, the same whatever the label's position and the other labels.

    A label whose slug is empty, too long or shared with another label gets part of its sha256 instead.
    """
    slugs = {label: slug(label) for label in labels}
    shared = Counter(slugs.values())
    keys = {}
    for label, text in slugs.items():
        key = text
        if not text or len(text) > MAX_SLUG_CHARS or shared[text] > 1:
            digest = hashlib.sha256(label.encode("utf-8", "surrogatepass")).hexdigest()[:8]
            key = f"{text[:MAX_SLUG_CHARS].rstrip('_')}_{digest}".lstrip("_")
        keys[label] = f"label_{key}"
    return keys


def jinja_string(text: str) -> str:
    """`text` as a Jinja string literal (Jinja reads backslash escapes in it, as Python does)."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{escaped}'"


def label_options(labels: Sequence[str]) -> list[str]:
    """Every value the label sensor can take: the model's labels, then `unknown`."""
    return list(dict.fromkeys([*labels, UNKNOWN]))


def entities(topics: Topics, labels: Sequence[str], label_entities_max: int) -> tuple[Entity, ...]:
    """Every entity for a model with these labels, in the order Home Assistant lists them."""
    result = topics.result
    found = [
        Entity("label", "sensor", {
            "name": "Label", "icon": "mdi:tag", "state_topic": result, "value_template": "{{ value_json.label }}",
            "device_class": "enum", "options": label_options(labels),
        }),
        Entity("score", "sensor", {
            "name": "Score", "icon": "mdi:gauge", "state_topic": result,
            "value_template": "{{ (value_json.score * 100) | round(1) }}", "unit_of_measurement": "%",
            "state_class": "measurement", "suggested_display_precision": 1,
        }),
        Entity("model", "update", {
            "name": "Model", "icon": "mdi:brain", "state_topic": result,
            # The model in use, as every result names it; no newer one is known, so latest is the same.
            "value_template": "{% set v = value_json.model.name ~ ' ' ~ value_json.model.version %}"
                              "{{ {'installed_version': v, 'latest_version': v, 'title': value_json.model.name}"
                              " | to_json }}",
        }),
    ]  # fmt: skip
    if len(labels) <= label_entities_max:
        for label, key in label_keys(labels).items():
            found.append(Entity(key, "binary_sensor", {
                "name": label, "icon": "mdi:tag-check", "state_topic": result,
                "value_template": f"{{{{ 'ON' if value_json.label == {jinja_string(label)} else 'OFF' }}}}",
            }))  # fmt: skip
    found += diagnostics(topics)
    for command, key, name, icon, category in COMMAND_BUTTONS:
        found.append(Entity(key, "button", {
            "name": name, "icon": icon, **({"entity_category": category} if category else {}),
            "command_topic": f"{topics.base}/cmd/{command}", "command_template": COMMAND_TEMPLATE, "retain": False,
        }))  # fmt: skip
    return tuple(found)


def _p50(path: str) -> str:
    """A template for a window's median in the metrics payload, None (unknown) while the window is empty."""
    return f"{{{{ value_json.{path}.p50 if value_json.{path} is not none else none }}}}"


def diagnostics(topics: Topics) -> list[Entity]:
    """Sensors read from the `metrics` payload, kept apart in Home Assistant as diagnostics."""
    common = {"state_topic": topics.metrics, "entity_category": "diagnostic"}
    duration = {**common, "device_class": "duration", "unit_of_measurement": "ms", "state_class": "measurement",
                "suggested_display_precision": 1}  # fmt: skip
    return [
        Entity("fps", "sensor", {
            **common, "name": "Frame rate", "icon": "mdi:speedometer", "value_template": "{{ value_json.fps }}",
            "unit_of_measurement": "fps", "state_class": "measurement", "suggested_display_precision": 1,
        }),
        Entity("inference_ms", "sensor", {
            **duration, "name": "Inference time", "value_template": _p50("timing_ms.inference"),
        }),
        Entity("frame_age_ms", "sensor", {**duration, "name": "Frame age", "value_template": _p50("frame_age_ms")}),
        Entity("camera", "sensor", {
            **common, "name": "Camera", "icon": "mdi:cctv", "value_template": "{{ value_json.camera.state }}",
            "device_class": "enum", "options": list(CAMERA_STATES),
        }),
        Entity("soc_temperature", "sensor", {
            **common, "name": "SoC temperature", "value_template": "{{ value_json.soc_temperature_c }}",
            "device_class": "temperature", "unit_of_measurement": "°C", "state_class": "measurement",
            "suggested_display_precision": 1,
        }),
    ]  # fmt: skip
