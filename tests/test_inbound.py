"""Received messages: subscriptions that survive reconnects, a bounded queue, routes run on the loop's thread."""

from __future__ import annotations

import contextlib
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt import publish
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_classifier.config.settings import Config
from edge_classifier.mqtt.client import MqttPublisher
from edge_classifier.mqtt.inbound import Inbound, IncomingMessage
from edge_classifier.mqtt.memory import MemoryPublisher
from edge_classifier.service.compose import Seams, build_service
from edge_classifier.service.messages import Message
from edge_classifier.service.router import Router
from fakes import FAKE_MODEL, EndlessSource, FakeRunner, fake_classifier
from helpers import Broker

WAIT_S = 15.0


def receive(publisher: MqttPublisher, count: int, timeout: float = WAIT_S) -> list:
    """Call service() as the main loop does until `count` messages arrived (or `timeout` passed)."""
    deadline, got = time.monotonic() + timeout, []
    while len(got) < count and time.monotonic() < deadline:
        publisher.service()
        got += publisher.take_incoming()
        publisher.wait_connected(0.05)
    return got


def test_subscriptions_are_renewed_after_the_broker_restarts(tmp_path):
    """A filter subscribed once still delivers after the broker was stopped and started again on the same port."""
    broker = Broker(tmp_path).start()
    try:
        with MqttPublisher("127.0.0.1", broker.port, "sub-test", "t/sub/status", reconnect_min_s=0.1,
                           reconnect_max_s=0.2) as publisher:  # fmt: skip
            publisher.subscribe("t/sub/cmd/#", 1)
            assert publisher.wait_connected(WAIT_S)
            first = receive_after_publish(publisher, broker.port, "t/sub/cmd/ping", b"1")
            broker.stop()
            broker.start()
            second = receive_after_publish(publisher, broker.port, "t/sub/cmd/ping", b"2")
    finally:
        broker.stop()
    assert ([b"1"], [b"2"]) == ([m.payload for m in first], [m.payload for m in second])


def receive_after_publish(publisher: MqttPublisher, port: int, topic: str, payload: bytes) -> list:
    """Publish from another client until the daemon's client got it once (it may be subscribing right now)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        publish.single(topic, payload, qos=1, hostname="127.0.0.1", port=port)
        got = receive(publisher, 1, timeout=1.0)
        if got:
            return got
    return []


def test_mqtt5_response_topic_and_correlation_data_are_kept(tmp_path):
    """A request's MQTT 5 response topic and correlation data reach the handler, and a reply can echo them."""
    broker = Broker(tmp_path).start()
    try:
        with MqttPublisher("127.0.0.1", broker.port, "corr-test", "t/corr/status") as publisher:
            publisher.subscribe("t/corr/cmd/#", 1)
            assert publisher.wait_connected(WAIT_S)
            receive(publisher, 0, timeout=0.2)  # announce online and subscribe
            properties = Properties(PacketTypes.PUBLISH)
            properties.ResponseTopic = "t/corr/reply"
            properties.CorrelationData = b"abc"
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
            client.connect("127.0.0.1", broker.port)
            client.loop_start()
            got: list = []
            deadline = time.monotonic() + WAIT_S
            while not got and time.monotonic() < deadline:
                client.publish("t/corr/cmd/ping", b"{}", qos=1, properties=properties).wait_for_publish(5)
                got = receive(publisher, 1, timeout=1.0)
            client.loop_stop()
            client.disconnect()
    finally:
        broker.stop()
    assert [("t/corr/reply", b"abc")] == [(m.response_topic, m.correlation_data) for m in got]


def test_full_queue_drops_and_counts():
    """Past its capacity the inbound queue drops new messages and counts them; the oldest are kept."""
    inbound = Inbound(capacity=2)
    for i in range(4):
        inbound.put(IncomingMessage(f"t/{i}", b"", False))
    assert (["t/0", "t/1"], 2) == ([m.topic for m in inbound.take_all()], inbound.dropped)


def test_routed_messages_are_handled_on_the_loop_thread():
    """A message delivered to the publisher reaches the route whose filter matches, on the loop's thread."""
    handled: list[tuple[str, int]] = []
    publisher = MemoryPublisher()
    router = Router()
    router.route("x/+/cmd/#", lambda loop, message: handled.append((message.topic, threading.get_ident())))
    with contextlib.ExitStack() as stack:
        seams = Seams(EndlessSource(0), publisher, model=(fake_classifier(FakeRunner()), FAKE_MODEL))
        service = build_service(Config(device_id="unit"), stack, threading.Event(), seams)
        service.loop.parts.router = router
        publisher.incoming += [IncomingMessage("x/unit/cmd/ping", b"{}", False), IncomingMessage("y/z", b"", False)]
        service.loop.step()
    assert [("x/unit/cmd/ping", threading.get_ident())] == handled


def test_a_reply_carries_correlation_data_as_a_value():
    """Message values keep the correlation data a sink must echo."""
    assert b"abc" == Message("t", "{}", 1, False, b"abc").correlation_data


class Recorder:
    """A component that records when the loop calls it."""

    def __init__(self):
        self.connects = 0
        self.ticks = 0

    def on_connect(self, loop):
        self.connects += 1

    def tick(self, loop, now):
        self.ticks += 1


def test_components_hear_each_connection_and_every_iteration():
    """on_connect runs once per (re)connection after `online`; tick runs every iteration."""
    publisher, recorder = MemoryPublisher(), Recorder()
    with contextlib.ExitStack() as stack:
        seams = Seams(EndlessSource(0), publisher, model=(fake_classifier(FakeRunner()), FAKE_MODEL))
        service = build_service(Config(device_id="unit"), stack, threading.Event(), seams)
        service.loop.parts.components.append(recorder)
        service.loop.step()
        service.loop.step()
        publisher.is_connected = False
        service.loop.step()
        publisher.is_connected = True
        service.loop.step()
    assert (2, 4) == (recorder.connects, recorder.ticks)
