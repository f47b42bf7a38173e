"""`edge-classifier ha-remove`: clear every discovery config of this device from the broker; Home Assistant drops it."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_classifier.config.settings import Config, mqtt_password, state_directory
from edge_classifier.errors import EdgeClassifierError, first_line
from edge_classifier.homeassistant.component import device_info
from edge_classifier.homeassistant.discovery import DeviceInfo, build_discovery
from edge_classifier.homeassistant.record import RecordFile, record_path
from edge_classifier.homeassistant.settings import HomeAssistantConfig
from edge_classifier.mqtt.client import ONLINE, PROTOCOLS, tls_context
from edge_classifier.mqtt.topics import Topics

CONNECT_TIMEOUT_S = 10.0
ACK_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Removal:
    """What ha-remove did."""

    broker: str
    cleared: tuple[str, ...]  # config topics that got an empty retained payload, acknowledged by the broker
    retained: frozenset[str]  # those on which the broker held a config
    refused: tuple[tuple[str, str], ...]  # (topic, reason) the broker refused or did not acknowledge
    daemon_online: bool  # the device's status topic says online: it will publish its config again
    record: Path
    record_problem: str | None  # why the record could not be deleted
    complete_scan: bool  # the broker's retained configs were all seen (its echo of a marker came back)

    def lines(self) -> list[str]:
        """The report ha-remove prints, one line per topic and a summary."""
        out = [f"removed {topic}{' (a retained config)' if topic in self.retained else ''}" for topic in self.cleared]
        out += [f"not removed {topic}: {reason}" for topic, reason in self.refused]
        plural = "" if len(self.cleared) == 1 else "s"
        out.append(f"{len(self.cleared)} discovery config topic{plural} cleared on {self.broker} "
                   f"({len(self.retained)} held a retained config)")  # fmt: skip
        return out

    def warnings(self) -> list[str]:
        out = []
        if self.daemon_online:
            out.append("the daemon of this device is online: it publishes its discovery config again at its "
                       "next connection or when Home Assistant starts; stop it, or set homeassistant.enabled: "
                       "false")  # fmt: skip
        if not self.complete_scan:
            out.append("the broker did not echo a marker message: configs it retains that the record does not "
                       "name may have been missed")  # fmt: skip
        if self.record_problem:
            out.append(f"cannot delete the discovery record {self.record}: {self.record_problem}")
        return out


def scan_filters(settings: HomeAssistantConfig, device: DeviceInfo) -> tuple[str, str]:
    """Every discovery config topic of this device's node id, in either mode."""
    prefix = settings.discovery_prefix.rstrip("/")
    return f"{prefix}/device/{device.node_id}/config", f"{prefix}/+/{device.node_id}/+/config"


def remove_discovery(config: Config) -> Removal:
    """Clear what the record names, what the configuration would publish and what the broker retains."""
    topics = Topics(config.mqtt.prefix, config.device)
    device = device_info(config)
    record = RecordFile(record_path(state_directory(config), config.device))
    recorded = record.load()
    broker = f"{config.mqtt.host}:{config.mqtt.port}"
    client = _connect(config, topics)
    try:
        retained, online, complete = _scan(client, config.homeassistant, device, topics)
        current = build_discovery(config.homeassistant, topics, device, ()).documents
        targets = sorted(set(recorded) | set(current) | retained)
        refused = _clear(client, targets)
    finally:
        client.disconnect()
        client.loop_stop()
    problem = None
    if not refused:
        try:
            record.delete()
        except OSError as exc:
            problem = exc.strerror or str(exc)
    cleared = tuple(t for t in targets if t not in dict(refused))
    return Removal(broker, cleared, frozenset(retained), tuple(refused), online, record.path, problem, complete)


def _connect(config: Config, topics: Topics) -> mqtt.Client:
    settings = config.mqtt
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"{topics.client_id}-ha-remove", protocol=PROTOCOLS[settings.protocol]
    )
    if settings.username is not None:
        client.username_pw_set(settings.username, mqtt_password(settings))
    if settings.tls:
        client.tls_set_context(tls_context(settings.ca_file))
    settled = threading.Event()
    failures: list[str] = []

    def on_connect(client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            failures.append(str(reason_code))
        settled.set()

    def on_connect_fail(client: Any, userdata: Any) -> None:
        failures.append("no connection (refused, unreachable or closed before CONNACK)")
        settled.set()

    client.on_connect = on_connect
    client.on_connect_fail = on_connect_fail
    broker = f"{settings.host}:{settings.port}"
    try:
        client.connect_async(settings.host, settings.port, keepalive=settings.keepalive_s)
    except (OSError, ValueError) as exc:
        raise EdgeClassifierError(f"cannot connect to the broker {broker}: {first_line(exc)}") from None
    client.loop_start()
    if not settled.wait(CONNECT_TIMEOUT_S) or failures:
        client.loop_stop()
        why = failures[0] if failures else f"no answer within {CONNECT_TIMEOUT_S:.0f}s"
        raise EdgeClassifierError(f"cannot connect to the broker {broker}: {why}")
    return client


def _scan(
    client: mqtt.Client, settings: HomeAssistantConfig, device: DeviceInfo, topics: Topics
) -> tuple[set[str], bool, bool]:
    """The config topics the broker retains for this node id, whether the daemon is online, and if the scan is whole.

    The broker sends retained messages right after its SUBACK, before anything published later: once
    our own marker comes back, every retained config has arrived.
    """
    marker = f"{topics.base}/ha-remove/{uuid.uuid4().hex}"
    received: dict[str, bytes] = {}
    subscribed, synced = threading.Event(), threading.Event()

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        if message.topic == marker:
            synced.set()
        elif message.retain:
            received[message.topic] = bytes(message.payload)

    client.on_message = on_message
    client.on_subscribe = lambda client, userdata, mid, reason_codes, properties: subscribed.set()
    filters = (*scan_filters(settings, device), topics.status, marker)
    client.subscribe([(topic_filter, 1) for topic_filter in filters])
    complete = subscribed.wait(ACK_TIMEOUT_S)
    complete = complete and client.publish(marker, b"sync", qos=1).rc == mqtt.MQTT_ERR_SUCCESS
    complete = complete and synced.wait(ACK_TIMEOUT_S)
    found = dict(received)
    online = found.pop(topics.status, b"") == ONLINE.encode()
    return {topic for topic, payload in found.items() if payload}, online, complete


def _clear(client: mqtt.Client, targets: list[str]) -> list[tuple[str, str]]:
    """An empty retained payload (QoS 1) on each topic; the topics the broker refused or did not acknowledge."""
    denied: dict[int, str] = {}

    def on_publish(client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:  # MQTT 5 only: 3.1.1 acknowledges a denied publish like any other
            denied[mid] = str(reason_code)

    client.on_publish = on_publish
    sent = [(topic, client.publish(topic, b"", qos=1, retain=True)) for topic in targets]
    refused = []
    for topic, info in sent:
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            refused.append((topic, mqtt.error_string(info.rc)))
            continue
        info.wait_for_publish(ACK_TIMEOUT_S)
        if not info.is_published():
            refused.append((topic, f"not acknowledged within {ACK_TIMEOUT_S:.0f}s"))
        elif info.mid in denied:
            refused.append((topic, f"refused by the broker: {denied[info.mid]}"))
    return refused
