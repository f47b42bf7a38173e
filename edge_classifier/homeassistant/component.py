"""Keeps Home Assistant's discovery config current: at each connection, after Home Assistant starts, on new labels."""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING

from edge_classifier.config.settings import Config, state_directory
from edge_classifier.homeassistant.discovery import (
    Declared,
    DeviceInfo,
    Discovery,
    build_discovery,
    discovery_messages,
    merged,
)
from edge_classifier.homeassistant.record import RecordFile, record_path
from edge_classifier.homeassistant.settings import HomeAssistantConfig
from edge_classifier.mqtt.inbound import IncomingMessage
from edge_classifier.mqtt.topics import Topics

if TYPE_CHECKING:
    from edge_classifier.service.loop import MainLoop

logger = logging.getLogger(__name__)


class HomeAssistantDiscovery:
    """A loop component: publishes the retained discovery config and removes the entities a new model lost."""

    def __init__(self, settings: HomeAssistantConfig, topics: Topics, device: DeviceInfo, record: RecordFile | None):
        self.settings = settings
        self.topics = topics
        self.device = device
        self.record = record
        self._published: Declared = record.load() if record is not None else {}
        self._labels: tuple[str, ...] | None = None  # the labels of the last publication
        self.republish_at: float | None = None  # when Home Assistant's `online` is answered
        self.publications = 0

    @property
    def published(self) -> Declared:
        """The configs on the broker as far as the daemon knows: topic -> {entity key: platform}."""
        return self._published

    def on_connect(self, loop: MainLoop) -> None:
        # A broker may have lost its retained messages (restarted without persistence): publish them again.
        self.publish(loop, "connected")

    def tick(self, loop: MainLoop, now: float) -> None:
        if self._labels is not None and published_labels(loop) != self._labels:
            self.publish(loop, "the labels changed (another model, or a class taught or forgotten)")
        elif self.republish_at is not None and now >= self.republish_at:
            self.publish(loop, "Home Assistant started")

    def homeassistant_status(self, message: IncomingMessage, now: float) -> None:
        """Home Assistant's birth message: publish again once the grace period is over (it is setting up MQTT)."""
        if message.retain:
            return  # a retained `online` is not a new start, and every connection publishes anyway
        if message.payload.strip() == b"online" and self.republish_at is None:
            self.republish_at = now + self.settings.republish_grace_s

    def publish(self, loop: MainLoop, reason: str) -> None:
        """Send the config for the current labels, clearing what the previous publication had and this lacks."""
        labels = published_labels(loop)
        discovery = build_discovery(self.settings, self.topics, self.device, labels)
        messages = discovery_messages(discovery, self._published)
        lost = _lost(self._published, discovery)
        # Recorded before sending: were the daemon killed half-way, `ha-remove` would still find every topic.
        self._save(merged(self._published, discovery.declared))
        sent = [loop.parts.publisher.send(message) for message in messages]
        self._labels, self.republish_at = labels, None
        self.publications += 1
        if not all(sent):
            # The next connection publishes again, removals included: they are still in what counts as published.
            logger.debug("Home Assistant discovery not sent (%s): the broker is away", reason)
            return
        self._save(discovery.declared)
        count = sum(len(keys) for keys in discovery.declared.values())
        where = next(iter(discovery.documents)) if len(discovery.documents) == 1 else "one topic each"
        level = logging.INFO if lost or self.publications == 1 else logging.DEBUG
        logger.log(level, "Home Assistant discovery (%s): %d entities on %s%s", reason, count, where,
                   f"; removed {len(lost)} the labels no longer have: {', '.join(lost)}" if lost else "")  # fmt: skip

    def _save(self, declared: Declared) -> None:
        if declared != self._published and self.record is not None:
            self.record.save(declared)
        self._published = declared


def published_labels(loop: MainLoop) -> tuple[str, ...]:
    """The model's labels, then the classes taught for it: a label sensor is an enum, and Home Assistant refuses
    a state that is not among its options."""
    labels = tuple(loop.parts.classifier.labels)
    taught = loop.parts.taught.taught if loop.parts.taught is not None else None
    return labels if taught is None else labels + tuple(label for label in taught.labels if label not in labels)


def _lost(published: Declared, discovery: Discovery) -> list[str]:
    """Entities published before that this config no longer has (not those that only moved to another topic)."""
    now = {key for keys in discovery.declared.values() for key in keys}
    return sorted({key for keys in published.values() for key in keys} - now)


def on_homeassistant_status(loop: MainLoop, message: IncomingMessage) -> None:
    """The route for <discovery_prefix>/status: hands Home Assistant's announcement to the discovery component."""
    for component in loop.parts.components:
        if isinstance(component, HomeAssistantDiscovery):
            component.homeassistant_status(message, loop.parts.clock())


def device_info(config: Config) -> DeviceInfo:
    return DeviceInfo.for_device(config.device, config.device_id or socket.gethostname())


def discovery_component(config: Config, topics: Topics, keep_record: bool = True) -> HomeAssistantDiscovery | None:
    """The component for this configuration; None when discovery is off.

    `keep_record` is False with a publisher that sends nowhere (bench, tests): nothing reaches a broker,
    so nothing is recorded.
    """
    if not config.homeassistant.enabled:
        return None
    record = RecordFile(record_path(state_directory(config), config.device)) if keep_record else None
    return HomeAssistantDiscovery(config.homeassistant, topics, device_info(config), record)
