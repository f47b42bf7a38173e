"""Pure builders of discovery messages: one device config (or one config per entity), removals, what they declare."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edge_classifier import __version__
from edge_classifier.homeassistant.entities import Entity, entities, slug
from edge_classifier.homeassistant.settings import HomeAssistantConfig
from edge_classifier.mqtt.topics import Topics
from edge_classifier.service.messages import Message

ORIGIN_NAME = "edge-classifier"
QOS = 1
# Config topic -> {entity key: platform}: what one config declares, and the record of what was published.
Declared = dict[str, dict[str, str]]


@dataclass(frozen=True)
class DeviceInfo:
    """The device as Home Assistant knows it."""

    node_id: str  # the discovery topics' node id and the device's identifier: edge-classifier-<device>
    name: str  # shown in Home Assistant: device_id as configured, else the host name
    entity_prefix: str  # suggested entity ids start with it: the device id as entity ids allow it

    @classmethod
    def for_device(cls, device: str, name: str) -> DeviceInfo:
        """From the sanitized device id ([a-z0-9_-]) and the name as configured."""
        return cls(f"edge-classifier-{device}", name or device, slug(device))


@dataclass(frozen=True)
class Discovery:
    """What to publish: a config document per topic, and the entities each one declares."""

    documents: Mapping[str, Mapping[str, Any]]
    declared: Declared


def device_topic(settings: HomeAssistantConfig, device: DeviceInfo) -> str:
    return f"{settings.discovery_prefix.rstrip('/')}/device/{device.node_id}/config"


def component_topic(settings: HomeAssistantConfig, device: DeviceInfo, platform: str, key: str) -> str:
    return f"{settings.discovery_prefix.rstrip('/')}/{platform}/{device.node_id}/{key}/config"


def status_topic(settings: HomeAssistantConfig) -> str:
    """Where Home Assistant announces `online` (its birth message) and `offline`."""
    return f"{settings.discovery_prefix.rstrip('/')}/status"


def device_block(device: DeviceInfo) -> dict[str, Any]:
    return {
        "identifiers": [device.node_id],
        "name": device.name,
        "manufacturer": ORIGIN_NAME,
        "model": "Camera image classifier",
        "sw_version": __version__,
    }


def origin_block(settings: HomeAssistantConfig) -> dict[str, Any]:
    origin = {"name": ORIGIN_NAME, "sw_version": __version__}
    if settings.support_url:
        origin["support_url"] = settings.support_url
    return origin


def entity_config(entity: Entity, device: DeviceInfo) -> dict[str, Any]:
    """The entity's options with its unique id and suggested entity id (`default_entity_id`, HA 2025.10+)."""
    return {
        **entity.options,
        "unique_id": f"{device.node_id}_{entity.key}",
        "default_entity_id": f"{entity.platform}.{device.entity_prefix}_{entity.key}",
    }


def build_discovery(
    settings: HomeAssistantConfig, topics: Topics, device: DeviceInfo, labels: Sequence[str]
) -> Discovery:
    """The discovery config for a model with these labels, in the configured mode."""
    found = entities(topics, labels, settings.label_entities_max)
    shared = {"availability": [{"topic": topics.status}], "qos": QOS}
    dev, origin = device_block(device), origin_block(settings)
    if settings.mode == "device":
        topic = device_topic(settings, device)
        components = {entity.key: {"p": entity.platform, **entity_config(entity, device)} for entity in found}
        document = {"dev": dev, "o": origin, **shared, "cmps": components}
        return Discovery({topic: document}, {topic: {entity.key: entity.platform for entity in found}})
    documents: dict[str, Mapping[str, Any]] = {}
    declared: Declared = {}
    for entity in found:
        topic = component_topic(settings, device, entity.platform, entity.key)
        documents[topic] = {"dev": dev, "o": origin, **shared, **entity_config(entity, device)}
        declared[topic] = {entity.key: entity.platform}
    return Discovery(documents, declared)


def config_message(topic: str, document: Mapping[str, Any]) -> Message:
    return Message(topic, json.dumps(document, ensure_ascii=False, separators=(",", ":")), QOS, retain=True)


def removal_message(topic: str) -> Message:
    """An empty retained payload: Home Assistant removes what the topic configured, the broker forgets it."""
    return Message(topic, "", QOS, retain=True)


def discovery_messages(discovery: Discovery, published: Declared) -> list[Message]:
    """The messages that take Home Assistant from what was published to `discovery`.

    Configs that are gone are cleared first, so that a unique id is free before another config uses it.
    A device config that lost entities goes out twice, as Home Assistant asks: once with each lost
    entity reduced to its platform (which removes it), then without them.
    """
    messages = [removal_message(topic) for topic in published if topic not in discovery.documents]
    for topic, document in discovery.documents.items():
        lost = {key: p for key, p in published.get(topic, {}).items() if key not in discovery.declared[topic]}
        if lost and "cmps" in document:
            removed = {key: {"p": platform} for key, platform in lost.items()}
            messages.append(config_message(topic, {**document, "cmps": {**document["cmps"], **removed}}))
        messages.append(config_message(topic, document))
    return messages


def merged(first: Declared, second: Declared) -> Declared:
    """Both records in one: every topic and entity either names."""
    union = {topic: dict(keys) for topic, keys in first.items()}
    for topic, keys in second.items():
        union.setdefault(topic, {}).update(keys)
    return union
