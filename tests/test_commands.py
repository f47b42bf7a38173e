"""MQTT commands: each answered with an acknowledgement that follows cmd-response.schema.json, through the loop with
fakes at its edges and end to end against a real mosquitto, and 500 malformed payloads answered without a crash."""

from __future__ import annotations

import contextlib
import json
import queue
import random
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import fastjsonschema
import jsonschema
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_classifier.commands.handlers import COMMANDS
from edge_classifier.commands.snapshot import encode_capped
from edge_classifier.commands.validation import MAX_PAYLOAD_BYTES, schema_path
from edge_classifier.config.settings import Config, ConfigSource, ResultConfig
from edge_classifier.mqtt.inbound import IncomingMessage
from edge_classifier.mqtt.memory import MemoryPublisher
from edge_classifier.service.compose import Seams, Service, build_service
from edge_classifier.service.messages import Message
from edge_classifier.service.notify import Notifier
from fakes import FAKE_MODEL, EndlessSource, FakeRunner, fake_classifier
from helpers import SAMPLE_VIDEO, SCHEMAS

RESPONSE_SCHEMA = json.loads((SCHEMAS / "cmd-response.schema.json").read_text())
BASE = "edge-classifier/unit"
MAX_STEPS = 200  # bound on loop iterations while waiting for an answer; a healthy loop needs a handful


def check_ack(document: dict[str, Any]) -> dict[str, Any]:
    jsonschema.validate(document, RESPONSE_SCHEMA)
    return document


class NoFrames:
    """A camera that delivers nothing yet (the I/O seam): the loop serves its inbox and messages only."""

    ended = False

    def get(self, timeout: float) -> None:
        return None

    def stats(self) -> Any:
        return EndlessSource().stats()

    def close(self) -> None:
        pass


@dataclass
class Rig:
    """The service wired by the composition root with fakes at the edges, stepped by the test's own thread."""

    service: Service
    publisher: MemoryPublisher
    runner: FakeRunner
    source: Any

    def deliver(self, topic: str, payload: bytes | str, retain: bool = False, **props: Any) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        self.publisher.incoming.append(IncomingMessage(topic, data, retain, **props))

    def answers(self, steps: int = 1) -> list[Message]:
        """Step the loop and return the answers published meanwhile."""
        before = len(self.publisher.messages)
        for _ in range(steps):
            self.service.loop.step()
        return [m for m in self.publisher.messages[before:] if m.topic.endswith("/response") or m.correlation_data]

    def ask(self, name: str, payload: dict[str, Any] | bytes | str = b"{}", **props: Any) -> dict[str, Any]:
        """One command, the loop stepped until its answer comes; the answer, checked against the schema."""
        body = json.dumps(payload) if isinstance(payload, dict) else payload
        self.deliver(f"{BASE}/cmd/{name}", body, **props)
        for _ in range(MAX_STEPS):
            answers = self.answers()
            if answers:
                assert 1 == len(answers), answers
                return check_ack(json.loads(answers[0].payload))
        raise AssertionError(f"no answer to {name} within {MAX_STEPS} loop iterations")

    @property
    def loop(self) -> Any:
        return self.service.loop


@contextlib.contextmanager
def rig(
    config: Config | None = None, source: Any = None, config_source: ConfigSource | None = None, clock: Any = None
) -> Iterator[Rig]:
    runner, publisher = FakeRunner(), MemoryPublisher()
    frames = source if source is not None else EndlessSource(100)
    with contextlib.ExitStack() as stack:
        seams = Seams(frames, publisher, Notifier({}), (fake_classifier(runner), FAKE_MODEL), clock or time.monotonic)
        service = build_service(config or Config(device_id="unit"), stack, threading.Event(), seams,
                                config_source=config_source)  # fmt: skip
        yield Rig(service, publisher, runner, frames)


@pytest.fixture
def unit() -> Iterator[Rig]:
    with rig() as r:
        r.answers(3)  # online, the first frames
        yield r


def test_ping_answers_with_the_id_version_and_uptime(unit):
    """ping is answered done on cmd/ping/response with the id echoed, never retained, QoS 1."""
    unit.deliver(f"{BASE}/cmd/ping", json.dumps({"id": "p-1"}))
    [message] = unit.answers()
    ack = check_ack(json.loads(message.payload))
    assert (f"{BASE}/cmd/ping/response", False, 1, "p-1", True, "done", None, "ping", "unit") == (
        message.topic, message.retain, message.qos, ack["id"], ack["ok"], ack["status"], ack["error"],
        ack["command"], ack["device_id"],
    )  # fmt: skip
    assert {"version", "uptime_s"} == set(ack["data"])


def test_mqtt5_response_topic_and_correlation_data_are_honoured(unit):
    """A request with a response topic is answered there, with its correlation data echoed."""
    unit.deliver(f"{BASE}/cmd/ping", "{}", response_topic="replies/me", correlation_data=b"\x01corr")
    [message] = unit.answers()
    assert ("replies/me", b"\x01corr", "done") == (
        message.topic, message.correlation_data, json.loads(message.payload)["status"])  # fmt: skip


def test_an_unusable_response_topic_falls_back_to_the_command_s_own(unit):
    """A response topic with a wildcard cannot be published to: the answer goes to cmd/<name>/response."""
    unit.deliver(f"{BASE}/cmd/ping", "{}", response_topic="replies/#")
    [message] = unit.answers()
    assert f"{BASE}/cmd/ping/response" == message.topic


def test_retained_command_is_refused(unit):
    """A retained command would run again at every reconnect: refused, the id still echoed."""
    unit.deliver(f"{BASE}/cmd/ping", json.dumps({"id": "r"}), retain=True)
    [message] = unit.answers()
    ack = check_ack(json.loads(message.payload))
    assert ("r", False, "refused") == (ack["id"], ack["ok"], ack["status"])
    assert ack["error"].startswith("a retained command is refused")


def test_a_repeated_id_is_refused_and_a_new_one_taken(unit):
    """The same id twice: the second is refused as a repeat (nothing runs twice); a new id is taken."""
    first = unit.ask("settings", {"id": "s-1", "vote_window": 7})
    again = unit.ask("settings", {"id": "s-1", "vote_window": 9})
    other = unit.ask("settings", {"id": "s-2", "vote_window": 9})
    assert (("done", 7), ("refused", None), ("done", 9)) == tuple(
        (a["status"], (a["data"] or {}).get("vote_window")) for a in (first, again, other)
    )
    assert "id 's-1' was used by one of the last 64 commands" == again["error"]


def test_only_the_last_64_ids_are_remembered(unit):
    """After 64 newer ids, an old id is taken again."""
    for i in range(65):
        assert "done" == unit.ask("ping", {"id": f"i-{i}"})["status"]
    assert ("done", "refused") == (
        unit.ask("ping", {"id": "i-0"})["status"],
        unit.ask("ping", {"id": "i-64"})["status"],
    )


def test_unknown_command_is_answered_as_invalid(unit):
    """cmd/reboot is no command: invalid, on cmd/reboot/response, listing the known ones."""
    ack = unit.ask("reboot", {"id": "x"})
    assert ("reboot", "x", "invalid") == (ack["command"], ack["id"], ack["status"])
    assert ack["error"].startswith(
        "unknown command 'reboot' (known: ping, status, settings, reload, snapshot, model/load"
    )


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"", "payload is not JSON: Expecting value at character 0"),
        (b"ping", "payload is not JSON: Expecting value at character 0"),
        (b"[1, 2]", "payload must be a JSON object, got an array"),
        (b'"text"', "payload must be a JSON object, got a string"),
        (b"null", "payload must be a JSON object, got null"),
        (b"42", "payload must be a JSON object, got a number"),
        (b"\xff\xfe{}", "payload is not UTF-8 text"),
        (b'{"id": "a", "id": "b"}', "payload is not strict JSON: key 'id' given twice"),
        (b'{"vote_window": NaN}', "payload is not strict JSON: NaN is not a JSON number"),
        (b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}", f"payload is 10007 bytes; a command takes at most {MAX_PAYLOAD_BYTES}"),
        (b'{"a": ' + b"[" * 2000 + b"]" * 2000 + b"}", "payload nests too deeply"),
        (b'{"id": 5}', "id: must be string"),
        (b'{"id": ""}', "id: must be longer than or equal to 1 characters"),
        (b'{"id": "a\\nb"}', "id: must not contain control characters"),
        (b'{"colour": "red"}', "payload: must not contain {'colour'} properties"),
    ],
)  # fmt: skip
def test_malformed_payloads_are_answered_as_invalid(unit, payload, error):
    """Not a JSON object, not UTF-8, not strict JSON, too big, too deep, or against the schema: one clear line."""
    ack = unit.ask("ping", payload)
    assert (False, "invalid", error) == (ack["ok"], ack["status"], ack["error"])


def test_settings_apply_between_frames_and_answer_what_is_in_force(unit):
    """vote_window and min_score change; the answer and the loop's voter show them."""
    ack = unit.ask("settings", {"vote_window": 9, "min_score": 0.95})
    assert ({"top_k": 3, "vote_window": 9, "min_score": 0.95, "heartbeat_s": 30.0}, 9, 0.95) == (
        ack["data"], unit.loop.voter.window, unit.loop.voter.min_score)  # fmt: skip


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"vote_window": 0}, "result.vote_window: expected an integer from 1 to 1000, got 0"),
        ({"vote_window": 2.5}, "result.vote_window: expected an integer from 1 to 1000, got 2.5"),
        ({"top_k": "3"}, "result.top_k: expected an integer from 1 to 100, got '3'"),
        ({"min_score": 1.5}, "result.min_score: expected a number from 0 to 1, got 1.5"),
        ({"heartbeat_s": True}, "result.heartbeat_s: expected a number from 0.1 to 86400, got True"),
        ({"topk": 3}, "result.topk: unknown key (known keys here: top_k, vote_window, min_score, heartbeat_s)"),
    ],
)
def test_bad_settings_name_the_config_key(unit, payload, error):
    """Settings are checked by the config's own code: the error is the one a config file would get."""
    ack = unit.ask("settings", payload)
    assert ("invalid", error, 5) == (ack["status"], ack["error"], unit.loop.voter.window)


def test_settings_schema_limits_are_the_config_s():
    """cmd-settings.schema.json allows exactly the keys and ranges of ResultConfig."""
    import dataclasses

    schema = json.loads(schema_path("settings").read_text())["properties"]
    limits = {f.name: (f.metadata["low"], f.metadata["high"]) for f in dataclasses.fields(ResultConfig)}
    assert limits == {key: (spec["minimum"], spec["maximum"]) for key, spec in schema.items() if key != "id"}


def test_status_shows_model_settings_camera_mqtt_frames(unit):
    """status: the model in use, no fallback, the settings, camera and MQTT state, frames and the stable label."""
    data = unit.ask("status", {"id": "st"})["data"]
    assert (FAKE_MODEL.as_dict(), None, None, 5, "running", True, "hundred") == (
        data["model"], data["model_fallback"], data["previous_model"], data["settings"]["vote_window"],
        data["camera"]["state"], data["mqtt"]["connected"], data["frames"]["label"],
    )  # fmt: skip
    assert data["frames"]["processed"] >= 3


def test_snapshot_publishes_a_jpeg_of_the_latest_frame_not_retained(unit):
    """The JPEG goes to <device>/snapshot, not retained, and decodes to the frame's size (scaled to max_width)."""
    ack = unit.ask("snapshot", {"max_width": 16, "quality": 50})
    [picture] = [m for m in unit.publisher.messages if m.topic == f"{BASE}/snapshot"]
    image = cv2.imdecode(np.frombuffer(picture.payload, np.uint8), cv2.IMREAD_COLOR)
    assert (False, (12, 16, 3), len(picture.payload), f"{BASE}/snapshot") == (
        picture.retain, image.shape, ack["data"]["bytes"], ack["data"]["topic"])  # fmt: skip


def test_snapshot_size_is_capped():
    """A noisy frame too big at the asked quality is encoded smaller (quality, then size) until it fits."""
    noise = np.random.default_rng(7).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    jpeg = encode_capped(noise, 640, 95, cap=20_000)
    assert (True, True) == (len(jpeg.data) <= 20_000, jpeg.quality < 95)


def test_snapshot_before_any_frame_fails():
    """Without a classified frame there is nothing to send: failed, said so."""
    with rig(source=NoFrames()) as r:
        ack = r.ask("snapshot")
    assert ("failed", "no frame has been classified yet") == (ack["status"], ack["error"])


def test_model_load_outside_the_models_directories_is_refused(unit):
    """A manifest path outside the models directories is refused before anything is read."""
    ack = unit.ask("model/load", {"manifest": "/etc/passwd"})
    assert ("refused", True, FAKE_MODEL) == (
        ack["status"], ack["error"].startswith("'/etc/passwd' is not inside a models directory"), unit.loop.parts.model)  # fmt: skip


def test_model_load_of_a_missing_manifest_fails_and_the_old_model_serves(unit):
    """A bundled name that does not exist: failed, the old model keeps classifying."""
    ack = unit.ask("model/load", {"manifest": "no-such-model"})
    assert ("failed", True, FAKE_MODEL) == (
        ack["status"], ack["error"].startswith("no manifest 'no-such-model' in "), unit.loop.parts.model)  # fmt: skip


def test_rollback_without_a_previous_model_fails(unit):
    """Nothing was swapped out: nothing to roll back to."""
    ack = unit.ask("model/rollback")
    assert ("failed", True) == (ack["status"], ack["error"].startswith("no previous model to roll back to"))


@pytest.mark.parametrize(
    ("payload", "status", "error"),
    [
        ({"from_seq": 5, "to_seq": 4}, "invalid", "to_seq 4 is below from_seq 5"),
        ({"from_seq": 1, "to_seq": 1001}, "invalid", "1001 seqs asked for; at most 1000 per request"),
        ({"from_seq": 0}, "invalid", "from_seq: must be bigger than or equal to 1"),
        ({"from_seq": 1}, "failed", "no outbox (outbox.enabled false or mqtt.qos 0): nothing is kept to replay"),
    ],
)
def test_replay_requests_that_cannot_be_served_are_answered_with_why(unit, payload, status, error):
    """A reversed or too long range is invalid; without an outbox (the rig's publisher seam) there is nothing kept."""
    ack = unit.ask("replay", payload)
    assert (status, error) == (ack["status"], ack["error"])


def test_our_own_answers_are_not_taken_as_commands(unit):
    """cmd/# also matches cmd/ping/response: such a message is skipped, so no answer loops back."""
    unit.deliver(f"{BASE}/cmd/ping/response", "{}")
    assert [] == unit.answers(2)


def test_reload_applies_result_settings_and_lists_restart_keys(tmp_path):
    """The edited file's vote_window applies at once; a changed broker address waits for a restart."""
    path = tmp_path / "config.yaml"
    path.write_text("device_id: unit\nresult:\n  vote_window: 5\n")
    source = ConfigSource(path)
    with rig(source.load(), config_source=source) as r:
        r.answers(2)
        path.write_text("device_id: unit\nresult:\n  vote_window: 8\nmqtt:\n  host: broker.local\n")
        ack = r.ask("reload", {"id": "rl"})
        window = r.loop.voter.window
    assert ("done", ["result.vote_window", "mqtt.host"], ["result.vote_window"], ["mqtt.host"], 8) == (
        ack["status"], ack["data"]["changed"], ack["data"]["applied"], ack["data"]["restart_needed"], window)  # fmt: skip


def test_reload_of_a_bad_file_fails_naming_the_key_and_changes_nothing(tmp_path):
    """A file that no longer validates: failed with the config's own message; the settings stay."""
    path = tmp_path / "config.yaml"
    path.write_text("device_id: unit\n")
    source = ConfigSource(path)
    with rig(source.load(), config_source=source) as r:
        path.write_text("device_id: unit\nresult:\n  vote_window: 0\n")
        ack = r.ask("reload")
        window = r.loop.voter.window
    expected = "the configuration was not reloaded, nothing changed: result.vote_window: expected an integer from 1 to 1000, got 0"
    assert ("failed", expected, 5) == (ack["status"], ack["error"], window)


def test_reload_without_a_configuration_source_fails(unit):
    """A service built from a Config value (tests, bench) has no file to read again."""
    ack = unit.ask("reload")
    assert ("failed", "this service was not started from a configuration it can read again") == (
        ack["status"], ack["error"])  # fmt: skip


def malformed_payloads(count: int, seed: int = 17) -> list[tuple[str, bytes]]:
    """(command, payload) pairs that each deserve an error answer: random bytes, wrong types, huge strings, deep
    nesting, unknown keys and commands, out-of-range values, NaN, duplicate keys, retained-free."""
    rng = random.Random(seed)
    names = [*COMMANDS, "reboot", "model/unload", "x" * 40]
    wrong = [
        {"id": 5}, {"id": ["a"]}, {"id": ""}, {"id": "a\tb"}, {"vote_window": "5"}, {"vote_window": 0},
        {"top_k": 101}, {"min_score": 2}, {"heartbeat_s": -1}, {"manifest": 7}, {"manifest": ""},
        {"max_width": 8}, {"quality": 100}, {"quality": "high"}, {"unknown": True}, {"id": "ok", "extra": 1},
        {"settings": {"vote_window": 3}}, {"manifest": "/etc/passwd"}, {"manifest": "../../etc/hosts"},
    ]  # fmt: skip
    makers = [
        lambda: (
            bytes([rng.choice(b"!$%&()*+,-.0123456789<=>?@ABZ\\^_`az|~\xff\x80")]) + rng.randbytes(rng.randint(0, 300))
        ),
        lambda: json.dumps(rng.choice([[], [1, "a"], "text", 3.5, None, True, -7])).encode(),
        lambda: json.dumps(rng.choice(wrong)).encode(),
        lambda: json.dumps({"id": "x" * rng.randint(129, 20000)}).encode(),
        lambda: json.dumps({"manifest": "m" * rng.randint(4097, 9000)}).encode(),
        lambda: b'{"a": ' + b"[" * (n := rng.randint(100, 6000)) + b"]" * n + b"}",
        lambda: json.dumps({f"k{rng.randint(0, 99)}": rng.random()}).encode(),
        lambda: rng.choice(
            [
                b'{"min_score": NaN}',
                b'{"vote_window": Infinity}',
                b'{"id": "a", "id": "a"}',
                b'{"id": "\xff"}',
                b"{",
                b'{"id": "a"',
                b"",
                b" ",
                b"{}" + b"x",
            ]
        ),
    ]
    payloads = []
    for _ in range(count):
        name = rng.choice(names)
        payload = rng.choice(makers)()
        if name in ("ping", "status", "reload", "model/rollback", "snapshot") and payload in (b"{}",):
            payload = b"[]"
        payloads.append((name, payload))
    return payloads


def test_the_runtime_validator_agrees_with_jsonschema():
    """For every command schema and fuzz payload that is a JSON object, fastjsonschema and jsonschema agree."""
    disagreements = []
    for name in COMMANDS:
        schema = json.loads(schema_path(name).read_text())
        reference = jsonschema.validators.validator_for(schema)(schema)
        runtime = fastjsonschema.compile(schema)
        for _, payload in malformed_payloads(300, seed=len(name)):
            try:
                document = json.loads(payload)
            except (ValueError, RecursionError):
                continue
            try:
                runtime(document)
                ours = True
            except fastjsonschema.JsonSchemaValueException:
                ours = False
            if ours != reference.is_valid(document):
                disagreements.append((name, payload[:80]))
    assert [] == disagreements


class Collector:
    """An MQTT 5 client keeping every message under a topic filter as paho gives it: raw bytes (a JPEG, the fuzz
    payloads) and properties (correlation data)."""

    def __init__(self, port: int, topic_filter: str):
        self.messages: queue.Queue[Any] = queue.Queue()
        self.seen: list[Any] = []
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic_filter, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "the test's client could not subscribe"

    def wait_for(self, predicate: Any, timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                message = self.messages.get(timeout=remaining)
            except queue.Empty:
                break
            self.seen.append(message)
            if predicate(message):
                return message
        raise AssertionError(f"no matching message within {timeout}s; last: {[m.topic for m in self.seen[-3:]]}")

    def metrics(self) -> dict[str, Any]:
        return json.loads(self.wait_for(lambda m: m.topic.endswith("/metrics")).payload)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_ack(collector: Collector, command: str, request_id: str, timeout: float = 60.0) -> dict[str, Any]:
    def matches(message: Any) -> bool:
        return message.topic.endswith(f"/cmd/{command}/response") and json.loads(message.payload)["id"] == request_id

    return check_ack(json.loads(collector.wait_for(matches, timeout).payload))


def publish(port: int, topic: str, payload: bytes | str, qos: int = 1, **properties: Any) -> None:
    """One message from a short-lived MQTT 5 client (properties: ResponseTopic, CorrelationData)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    props = None
    if properties:
        props = Properties(PacketTypes.PUBLISH)
        for key, value in properties.items():
            setattr(props, key, value)
    client.publish(topic, payload, qos=qos, properties=props).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def daemon_args(port: int, device: str, *extra: str) -> list[str]:
    return ["--source", str(SAMPLE_VIDEO), "--device-id", device, "--set", "source.loop=true",
            "--set", "mqtt.host=127.0.0.1", "--set", f"mqtt.port={port}", "--set", "mqtt.metrics_interval_s=1",
            *extra]  # fmt: skip


def test_every_command_answers_end_to_end(broker, daemons, tmp_path):
    """Against mosquitto and the daemon: every command's answer follows the schema; a snapshot JPEG arrives; an
    MQTT 5 response topic gets its answer with the correlation data."""
    config = tmp_path / "config.yaml"
    config.write_text("result:\n  heartbeat_s: 1\n")
    collector = Collector(broker.port, "edge-classifier/cmds/#")
    replies = Collector(broker.port, "replies/here")
    try:
        daemon = daemons("-c", str(config), *daemon_args(broker.port, "cmds"))
        collector.wait_for(lambda m: m.topic.endswith("/result"))
        base = "edge-classifier/cmds/cmd"
        asks = [("ping", {}), ("status", {}), ("settings", {"vote_window": 3}), ("snapshot", {"max_width": 320}),
                ("reload", {}), ("model/rollback", {}), ("model/load", {"manifest": "fashion-mobilenetv2"}),
                ("model/rollback", {})]  # fmt: skip
        acks = []
        for i, (name, body) in enumerate(asks):
            publish(broker.port, f"{base}/{name}", json.dumps({"id": f"e{i}", **body}))
            acks.append(wait_ack(collector, name, f"e{i}"))
        jpeg = next(m.payload for m in collector.seen if m.topic == "edge-classifier/cmds/snapshot")
        publish(broker.port, f"{base}/ping", "{}", ResponseTopic="replies/here", CorrelationData=b"c-42")
        reply = replies.wait_for(lambda m: True)
        code = daemon.stop(signal.SIGTERM)
    finally:
        collector.close()
        replies.close()
    statuses = [(a["command"], a["status"]) for a in acks]
    assert [("ping", "done"), ("status", "done"), ("settings", "done"), ("snapshot", "done"), ("reload", "done"),
            ("model/rollback", "failed"), ("model/load", "done"), ("model/rollback", "done")] == statuses  # fmt: skip
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert (0, "fashion-mobilenetv2", "clothing-mobilenetv2", b"c-42", "done", len(jpeg), 320) == (
        code, acks[6]["data"]["model"]["name"], acks[7]["data"]["model"]["name"],
        reply.properties.CorrelationData, check_ack(json.loads(reply.payload))["status"], acks[3]["data"]["bytes"],
        image.shape[1],
    )  # fmt: skip


def test_sighup_reload_applies_a_changed_vote_window(broker, daemons, tmp_path):
    """Edit result.vote_window in the daemon's config file, send SIGHUP: the log names the key, status shows it."""
    config = tmp_path / "config.yaml"
    config.write_text("result:\n  vote_window: 5\n")
    collector = Collector(broker.port, "edge-classifier/hup/#")
    try:
        daemon = daemons("-c", str(config), *daemon_args(broker.port, "hup"))
        collector.wait_for(lambda m: m.topic.endswith("/result"))
        config.write_text("result:\n  vote_window: 9\n")
        daemon.proc.send_signal(signal.SIGHUP)
        line = daemon.wait_for_line(lambda text: "reload (SIGHUP)" in text)
        publish(broker.port, "edge-classifier/hup/cmd/status", json.dumps({"id": "after"}))
        status = wait_ack(collector, "status", "after")
        code = daemon.stop(signal.SIGTERM)
    finally:
        collector.close()
    assert (0, True, 9) == (code, "applied result.vote_window;" in line, status["data"]["settings"]["vote_window"])


@pytest.mark.slow
def test_500_malformed_payloads_get_500_error_answers_and_frames_keep_flowing(broker, daemons):
    """500 malformed commands: exactly 500 error answers (each valid), the daemon alive, frames_processed rising."""
    collector = Collector(broker.port, "edge-classifier/fuzz/#")
    sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sender.connect("127.0.0.1", broker.port)
    sender.loop_start()
    try:
        daemon = daemons(*daemon_args(broker.port, "fuzz"))
        first = collector.metrics()["frames_processed"]
        infos = [sender.publish(f"edge-classifier/fuzz/cmd/{name}", payload, qos=1)
                 for name, payload in malformed_payloads(500)]  # fmt: skip
        for info in infos:
            info.wait_for_publish(30)
        sender.publish("edge-classifier/fuzz/cmd/ping", json.dumps({"id": "last"}), qos=1)
        wait_ack(collector, "ping", "last", timeout=120)  # answered after all 500: the loop serves them in order
        later = collector.metrics()["frames_processed"]
        alive = daemon.poll() is None
        code = daemon.stop(signal.SIGTERM)
    finally:
        sender.loop_stop()
        sender.disconnect()
        collector.close()
    answers = [check_ack(json.loads(m.payload)) for m in collector.seen if m.topic.endswith("/response")]
    errors = [a for a in answers if a["id"] != "last"]
    assert (500, 0, True, True, 0) == (len(errors), sum(a["ok"] for a in errors), alive, later > first, code)
