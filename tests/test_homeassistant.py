"""Home Assistant MQTT discovery: payloads, re-publication, removal of lost entities and `ha-remove`, on a real mosquitto."""

from __future__ import annotations

import contextlib
import json
import queue
import re
import signal
import threading
import time
import uuid

import jsonschema
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt import publish

from edge_classifier.config.settings import load_config
from edge_classifier.errors import ConfigError
from edge_classifier.homeassistant.component import HomeAssistantDiscovery
from edge_classifier.homeassistant.discovery import DeviceInfo, build_discovery, discovery_messages
from edge_classifier.homeassistant.entities import COMMAND_BUTTONS, COMMAND_TEMPLATE, entities, jinja_string, label_keys
from edge_classifier.homeassistant.settings import HomeAssistantConfig
from edge_classifier.learning.taught import TaughtClasses
from edge_classifier.mqtt.inbound import IncomingMessage
from edge_classifier.mqtt.memory import MemoryPublisher
from edge_classifier.mqtt.topics import Topics
from edge_classifier.service.compose import Seams, build_service
from fakes import FAKE_LABELS, FAKE_MODEL, EndlessSource, fake_classifier
from helpers import DEFAULT_MANIFEST, SAMPLE_VIDEO, SCHEMAS, Broker, Subscriber, run_cli

WAIT_S = 20.0
SCHEMA = json.loads((SCHEMAS / "ha-discovery.schema.json").read_text())
DEVICE_TOPIC = "homeassistant/device/edge-classifier-{}/config"


class ManualClock:
    """Time that moves only when the test says so."""

    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@contextlib.contextmanager
def in_process(port, state_dir, *overrides, labels=FAKE_LABELS, clock=time.monotonic, device="ha-unit"):
    """The service as build_service wires it for a real broker, with a fake camera and model; yields its discovery."""
    config = load_config(None, (
        f"device_id={device}", "mqtt.host=127.0.0.1", f"mqtt.port={port}", f"state_dir={state_dir}",
        "mqtt.reconnect_min_s=0.1", "mqtt.reconnect_max_s=0.2", *overrides,
    ))  # fmt: skip
    with contextlib.ExitStack() as stack:
        seams = Seams(EndlessSource(0), model=(fake_classifier(labels=labels), FAKE_MODEL), clock=clock)
        service = build_service(config, stack, threading.Event(), seams)
        (discovery,) = [c for c in service.loop.parts.components if isinstance(c, HomeAssistantDiscovery)]
        yield service, discovery


def step_until(service, predicate, timeout=WAIT_S):
    """Run the main loop one iteration at a time, on this thread, until predicate() holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met while the loop ran"
        service.loop.step()


def arrived(subscriber: Subscriber, topic: str) -> list:
    """The messages on `topic` the subscriber has received so far (never blocks)."""
    with contextlib.suppress(queue.Empty):
        while True:
            subscriber.seen.append(subscriber.messages.get_nowait())
    return [m for m in subscriber.seen if m.topic == topic]


def retained(port: int, topic_filter: str = "homeassistant/#") -> dict[str, str]:
    """What the broker retains under the filter: its retained messages all come before a marker published later."""
    marker = f"test/marker/{uuid.uuid4().hex}"
    found: dict[str, str] = {}
    subscribed, synced = threading.Event(), threading.Event()

    def on_message(client, userdata, message):
        if message.topic == marker:
            synced.set()
        elif message.retain:
            found[message.topic] = message.payload.decode()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = on_message
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.subscribe([(topic_filter, 1), (marker, 1)])
        assert subscribed.wait(WAIT_S)
        client.publish(marker, b"x", qos=1)
        assert synced.wait(WAIT_S)
    finally:
        client.disconnect()
        client.loop_stop()
    return found


def options(document: dict) -> list[str]:
    return document["cmps"]["label"]["options"]


def test_device_discovery_is_retained_valid_and_lists_the_labels(broker, subscriber, tmp_path):
    """At connection the daemon publishes one retained device config that validates and offers the labels."""
    topic = DEVICE_TOPIC.format("ha-unit")
    with in_process(broker.port, tmp_path) as (service, _):
        step_until(service, lambda: arrived(subscriber, topic))
    configs = retained(broker.port)
    document = json.loads(configs[topic])
    jsonschema.validate(document, SCHEMA)
    record = json.loads((tmp_path / "ha-discovery-ha-unit.json").read_text())
    assert [topic] == list(configs)
    assert [*FAKE_LABELS, "unknown"] == options(document)
    assert ("edge-classifier/ha-unit/status", "sensor.ha_unit_label") == (
        document["availability"][0]["topic"], document["cmps"]["label"]["default_entity_id"])  # fmt: skip
    assert {topic: {key: c["p"] for key, c in document["cmps"].items()}} == record["configs"]


def test_home_assistant_online_republishes_after_the_grace_period(broker, subscriber, tmp_path):
    """Home Assistant's `online` on homeassistant/status brings the config again republish_grace_s later, not sooner."""
    clock, topic = ManualClock(), DEVICE_TOPIC.format("ha-unit")
    with in_process(broker.port, tmp_path, clock=clock) as (service, discovery):
        step_until(service, lambda: arrived(subscriber, topic))
        publish.single("homeassistant/status", "online", qos=1, hostname="127.0.0.1", port=broker.port)
        step_until(service, lambda: discovery.republish_at is not None)
        due = discovery.republish_at
        clock.now = due - 0.01
        service.loop.step()
        before = discovery.publications
        clock.now = due
        step_until(service, lambda: len(arrived(subscriber, topic)) == 2)
    assert (105.0, 1, 2) == (due, before, discovery.publications)


def test_retained_online_is_not_a_new_home_assistant():
    """A retained `online` (a birth message set to retain) arrives at every subscription: it schedules nothing."""
    publisher = MemoryPublisher()
    with contextlib.ExitStack() as stack:
        seams = Seams(EndlessSource(0), publisher, model=(fake_classifier(), FAKE_MODEL))
        service = build_service(load_config(None, ("device_id=unit",)), stack, threading.Event(), seams)
        publisher.incoming.append(IncomingMessage("homeassistant/status", b"online", True))
        service.loop.step()
        (discovery,) = [c for c in service.loop.parts.components if isinstance(c, HomeAssistantDiscovery)]
    assert (1, None, 1) == (
        publisher.subscriptions.get("homeassistant/status"), discovery.republish_at, discovery.publications)  # fmt: skip


def test_reconnect_republishes_what_a_restarted_broker_lost(tmp_path):
    """After the broker restarts without its retained messages, the next connection publishes the config again."""
    broker = Broker(tmp_path).start()
    topic = DEVICE_TOPIC.format("ha-unit")
    try:
        with in_process(broker.port, tmp_path) as (service, discovery):
            first = Subscriber(broker.port)
            step_until(service, lambda: arrived(first, topic))
            first.close()
            broker.stop()
            broker.start()
            lost = retained(broker.port)
            second = Subscriber(broker.port)
            step_until(service, lambda: arrived(second, topic))
            second.close()
        again = retained(broker.port)
    finally:
        broker.stop()
    assert ({}, [topic], 2) == (lost, list(again), discovery.publications)


def test_new_labels_remove_lost_entities_from_the_device_config(broker, subscriber, tmp_path):
    """A model swapped for one with other labels: lost entities go out reduced to their platform, then go away."""
    topic = DEVICE_TOPIC.format("ha-unit")
    with in_process(broker.port, tmp_path) as (service, _):
        step_until(service, lambda: arrived(subscriber, topic))
        service.loop.parts.classifier = fake_classifier(labels=("zero", "fifty", "cat"))
        step_until(service, lambda: len(arrived(subscriber, topic)) == 3)
        old = service.loop.parts.classifier
    old.close()
    removal, final = (json.loads(m.payload) for m in arrived(subscriber, topic)[1:])
    jsonschema.validate(removal, SCHEMA)
    now = json.loads(retained(broker.port)[topic])
    record = json.loads((tmp_path / "ha-discovery-ha-unit.json").read_text())["configs"][topic]
    lost = ["label_hundred", "label_one_fifty", "label_two_hundred"]
    assert [{"p": "binary_sensor"}] * 3 == [removal["cmps"][key] for key in lost]
    assert ([], now) == ([key for key in lost if key in final["cmps"]], final)
    assert (["zero", "fifty", "cat", "unknown"], sorted(final["cmps"])) == (options(now), sorted(record))


def test_a_taught_class_joins_the_label_options_and_leaves_them_when_forgotten(broker, subscriber, tmp_path):
    """A class taught on the device is a state the label sensor can take: published among its options (and its
    binary sensor) once taught, removed once forgotten."""
    topic = DEVICE_TOPIC.format("ha-unit")
    with in_process(broker.port, tmp_path) as (service, _):
        step_until(service, lambda: arrived(subscriber, topic))
        taught = TaughtClasses(FAKE_MODEL.sha256, 4).teach("scarf", [np.array([1, 0, 0, 0], dtype=np.float32)])
        service.loop.parts.taught.taught = taught
        step_until(service, lambda: len(arrived(subscriber, topic)) == 2)
        with_scarf = json.loads(retained(broker.port)[topic])
        service.loop.parts.taught.taught = taught.forget("scarf")
        step_until(service, lambda: len(arrived(subscriber, topic)) == 4)  # the removal, then the final config
    now = json.loads(retained(broker.port)[topic])
    assert ([*FAKE_LABELS, "scarf", "unknown"], True, [*FAKE_LABELS, "unknown"], False) == (
        options(with_scarf), "label_scarf" in with_scarf["cmps"], options(now), "label_scarf" in now["cmps"],
    )  # fmt: skip


def test_component_mode_publishes_one_config_per_entity_and_clears_lost_ones(broker, subscriber, tmp_path):
    """In component mode every entity has its own retained config; a restart with other labels empties the lost ones."""
    node = "homeassistant/{}/edge-classifier-ha-unit/{}/config"
    with in_process(broker.port, tmp_path, "homeassistant.mode=component") as (service, _):
        step_until(service, lambda: arrived(subscriber, node.format("button", "model_rollback")))
    first = retained(broker.port)
    for payload in first.values():
        jsonschema.validate(json.loads(payload), SCHEMA)
    with in_process(broker.port, tmp_path, "homeassistant.mode=component", labels=("zero", "cat")) as (service, _):
        step_until(service, lambda: arrived(subscriber, node.format("binary_sensor", "label_cat")))
    second = retained(broker.port)
    cleared = sorted(m.topic for m in subscriber.seen if m.payload == "" and m.topic.startswith("homeassistant/"))
    every = {node.format(e.platform, e.key) for e in entities(Topics("edge-classifier", "ha-unit"), FAKE_LABELS, 50)}
    lost = sorted(node.format("binary_sensor", f"label_{k}") for k in ("fifty", "hundred", "one_fifty", "two_hundred"))
    assert (every, 17) == (set(first), len(first))
    assert [*FAKE_LABELS, "unknown"] == json.loads(first[node.format("sensor", "label")])["options"]
    assert (lost, set(first) - set(lost) | {node.format("binary_sensor", "label_cat")}) == (cleared, set(second))


def test_ha_remove_clears_what_the_broker_retains_even_without_a_record(broker, subscriber, tmp_path):
    """ha-remove finds a component-mode config on the broker though the record is gone and the mode now says device."""
    node = "homeassistant/{}/edge-classifier-ha-unit/{}/config"
    with in_process(broker.port, tmp_path, "homeassistant.mode=component") as (service, _):
        step_until(service, lambda: arrived(subscriber, node.format("button", "model_rollback")))
    (tmp_path / "ha-discovery-ha-unit.json").unlink()
    before = retained(broker.port)
    out = run_cli("ha-remove", "--set", "device_id=ha-unit", "--set", "mqtt.host=127.0.0.1",
                  "--set", f"mqtt.port={broker.port}", "--set", f"state_dir={tmp_path}")  # fmt: skip
    removed = {line.split()[1] for line in out.stdout.splitlines() if "(a retained config)" in line}
    assert (0, "", 17) == (out.returncode, out.stderr, len(before))
    assert (set(before), {}) == (removed, retained(broker.port))


def test_daemon_publishes_discovery_for_its_model_and_ha_remove_leaves_nothing(broker, subscriber, daemons, tmp_path):
    """The daemon (a subprocess, bundled model) publishes a valid config with the model's labels; ha-remove clears it."""
    topic = DEVICE_TOPIC.format("ha-e2e")
    args = ("--set", f"mqtt.port={broker.port}", "--set", "mqtt.host=127.0.0.1", "--set", f"state_dir={tmp_path}")
    daemon = daemons("--source", str(SAMPLE_VIDEO), "--device-id", "ha-e2e", "--set", "source.loop=true", *args)
    message = subscriber.wait_for(lambda m: m.topic == topic, timeout=120)
    subscriber.wait_for(lambda m: m.topic == "edge-classifier/ha-e2e/result")
    assert 0 == daemon.stop(signal.SIGTERM)
    document = message.json()
    jsonschema.validate(document, SCHEMA)
    out = run_cli("ha-remove", "--set", "device_id=ha-e2e", *args)
    labels = json.loads(DEFAULT_MANIFEST.read_text())["labels"]
    assert [*labels, "unknown"] == options(document)
    assert (0, f"removed {topic} (a retained config)") == (out.returncode, out.stdout.splitlines()[0])
    assert ({}, False) == (retained(broker.port), (tmp_path / "ha-discovery-ha-e2e.json").exists())


def test_removed_entities_come_first_and_device_configs_twice():
    """Pure: cleared configs come before new ones; a device config that lost entities goes out reduced, then whole."""
    device, topics = DeviceInfo.for_device("k", "k"), Topics("p", "k")
    device_mode, component_mode = HomeAssistantConfig(), HomeAssistantConfig(mode="component")
    old = build_discovery(component_mode, topics, device, ("a", "b")).declared
    before = build_discovery(device_mode, topics, device, ("a", "b")).declared
    now = build_discovery(device_mode, topics, device, ("a",))
    switched, shrunk = discovery_messages(now, old), discovery_messages(now, before)
    assert (sorted(old), ["homeassistant/device/edge-classifier-k/config"]) == (
        sorted(m.topic for m in switched if m.payload == ""), [m.topic for m in switched if m.payload])  # fmt: skip
    assert ({"p": "binary_sensor"}, False) == (
        json.loads(shrunk[0].payload)["cmps"]["label_b"], "label_b" in json.loads(shrunk[1].payload)["cmps"])  # fmt: skip
    assert {(1, True)} == {(m.qos, m.retain) for m in switched + shrunk}


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (("T-shirt", "Long sleeve", "Hat"), ["label_t_shirt", "label_long_sleeve", "label_hat"]),
        (("a b", "a-b", "c"), ["label_a_b_c8687a08", "label_a_b_d44362d6", "label_c"]),
        (("кот", "___"), ["label_77095ebd", "label_bda25155"]),
    ],
)
def test_label_keys_are_entity_id_safe_distinct_and_independent_of_order(labels, expected):
    """Each label gets its own [a-z0-9_] key; shared, empty or foreign slugs take a hash, whatever the order."""
    keys = label_keys(labels)
    assert (expected, keys) == ([keys[label] for label in labels], label_keys(tuple(reversed(labels))))


@pytest.mark.parametrize("label", ["it's", "back\\slash", "é ü", "{{ x }}", 'say "hi"'])
def test_label_literal_reads_back_as_the_label_in_jinja(label):
    """Jinja's lexer (its string pattern, then backslash escapes decoded) reads the literal back as the label."""
    literal = jinja_string(label)
    jinja_string_pattern = r"('([^'\\]*(?:\\.[^'\\]*)*)'" r'|"([^"\\]*(?:\\.[^"\\]*)*)")'
    assert re.fullmatch(jinja_string_pattern, literal, re.S) is not None
    assert label == literal[1:-1].encode("ascii", "backslashreplace").decode("unicode-escape")


@pytest.mark.parametrize(("command", "key", "name", "icon", "category"), COMMAND_BUTTONS)
def test_button_presses_are_valid_commands_with_a_fresh_id(command, key, name, icon, category):
    """What a button sends (its template with Home Assistant's clock) follows the command's schema, id included."""
    path = SCHEMAS / f"cmd-{command.replace('/', '-')}.schema.json"
    if not path.exists():
        pytest.skip(f"{path.name} is not there yet")
    payload = json.loads(COMMAND_TEMPLATE.replace("{{ now().timestamp() }}", "1765000000.123456"))
    jsonschema.validate(payload, json.loads(path.read_text()))
    assert "ha-1765000000.123456" == payload["id"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("homeassistant.mode=single", "homeassistant.mode: expected 'device' or 'component', got 'single'"),
        ("homeassistant.discovery_prefix=ha/#", "homeassistant.discovery_prefix: expected a topic prefix without "
         "'#', '+' or a leading '/', got 'ha/#'"),
        ("homeassistant.discovery_prefix=$ha", "homeassistant.discovery_prefix: '$ha' starts with '$', which brokers "
         "keep for themselves ($SYS)"),
        ("homeassistant.republish_grace_s=-1", "homeassistant.republish_grace_s: expected a number from 0 to 600, got -1"),
        ("homeassistant.support_url=ftp://x", "homeassistant.support_url: expected an http:// or https:// URL, got "
         "'ftp://x'"),
        ("homeassistant.colour=red", "homeassistant.colour: unknown key (known keys here: enabled, discovery_prefix, "
         "mode, republish_grace_s, label_entities_max, support_url)"),
    ],
)  # fmt: skip
def test_bad_homeassistant_settings_name_the_key(override, message):
    """Each bad homeassistant value is refused with one line naming the dotted key."""
    with pytest.raises(ConfigError) as error:
        load_config(None, (override,))
    assert message == str(error.value)


def test_discovery_off_publishes_and_subscribes_nothing():
    """With homeassistant.enabled false the daemon neither subscribes to Home Assistant nor publishes discovery."""
    publisher = MemoryPublisher()
    with contextlib.ExitStack() as stack:
        seams = Seams(EndlessSource(0), publisher, model=(fake_classifier(), FAKE_MODEL))
        config = load_config(None, ("device_id=unit", "homeassistant.enabled=false"))
        service = build_service(config, stack, threading.Event(), seams)
        service.loop.step()
    topics = [*publisher.subscriptions, *(message.topic for message in publisher.messages)]
    assert [] == [topic for topic in topics if "homeassistant" in topic]
