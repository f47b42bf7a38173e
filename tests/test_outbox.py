"""No result lost: the SQLite outbox on its own, behind a real mosquitto, and the daemon killed during an outage."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_classifier.config.settings import Config, MqttConfig, ResultConfig
from edge_classifier.mqtt.client import MqttPublisher
from edge_classifier.mqtt.memory import MemoryPublisher
from edge_classifier.mqtt.topics import Topics
from edge_classifier.outbox.opening import open_outbox_at
from edge_classifier.outbox.outbox import Outbox
from edge_classifier.outbox.settings import OutboxConfig
from edge_classifier.outbox.sink import OutboxPublisher
from edge_classifier.outbox.store import OutboxStore
from edge_classifier.service.compose import Seams, build_service
from edge_classifier.service.loop import FRAME_WAIT_S
from edge_classifier.service.messages import Message
from edge_classifier.service.notify import Notifier
from fakes import FAKE_MODEL, ListSource, fake_classifier, solid_frame
from helpers import SAMPLE_VIDEO, SCHEMAS, Broker

WAIT_S = 20.0  # bound on every wait in the in-process tests; each step takes milliseconds
RESULT_SCHEMA = json.loads((SCHEMAS / "result.schema.json").read_text())
METRICS_SCHEMA = json.loads((SCHEMAS / "metrics.schema.json").read_text())
STAY_ROOT = "user root\n" if os.geteuid() == 0 else ""  # started as root, mosquitto would write as `mosquitto`


# ---------------------------------------------------------------------------------------------- helpers
def result(seq: int, topic: str = "edge-classifier/unit/result", boot_id: str = "boot-a") -> Message:
    """A result message as the reporter builds it (only the fields the outbox reads or the tests check)."""
    return Message(topic, json.dumps({"seq": seq, "boot_id": boot_id, "label": f"label-{seq}"}), 1, True)


def keep_results(outbox: Outbox, count: int, topic: str = "edge-classifier/unit/result") -> list[int]:
    """COUNT results numbered by the outbox and written to it, as the reporter and the sink do; their seqs."""
    seqs = [outbox.next_seq() for _ in range(count)]
    for seq in seqs:
        assert outbox.keep(result(seq, topic)) is not None
    return seqs


def pending_seqs(outbox: Outbox) -> list[int]:
    return [row.seq for row in outbox.rows_after(0, 1_000_000)]


def persistent_broker(folder: Path, port: int | None = None, extra: str = "") -> Broker:
    """mosquitto that keeps sessions across its restarts (persistence in FOLDER), not started yet."""
    folder.mkdir(parents=True, exist_ok=True)
    return Broker(folder, port, f"{STAY_ROOT}persistence true\npersistence_location {folder}/\n{extra}")


class SessionSubscriber:
    """A subscriber with a persistent session (MQTT 5, clean_start false, QoS 1): it misses nothing while it
    reconnects, and collects every message under TOPIC in arrival order."""

    def __init__(self, port: int, topic: str, client_id: str):
        self.messages: list[tuple[str, bytes, bool, bool]] = []  # topic, payload, retain, dup
        self._changed = threading.Condition()
        subscribed = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        client.reconnect_delay_set(1, 1)

        def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
            if not flags.session_present:  # a new subscription would also bring the retained messages again
                c.subscribe(topic, qos=1)

        client.on_connect = on_connect
        client.on_subscribe = lambda c, u, mid, codes, p: subscribed.set()
        client.on_message = self._on_message
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
        client.connect("127.0.0.1", port, clean_start=False, properties=properties)
        client.loop_start()
        self._client = client
        assert subscribed.wait(10), "the session subscriber could not subscribe"

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self._changed:
            self.messages.append((message.topic, message.payload, bool(message.retain), bool(message.dup)))
            self._changed.notify_all()

    def results(self) -> list[dict[str, Any]]:
        """Every result payload so far, in arrival order, with the MQTT DUP flag of its delivery as `_dup`."""
        with self._changed:
            taken = list(self.messages)
        return [{**json.loads(payload), "_dup": dup} for topic, payload, _, dup in taken if topic.endswith("/result")]

    def wait_for(self, predicate: Callable[[list[tuple[str, bytes, bool, bool]]], bool], timeout: float = 60) -> None:
        """Until predicate(all messages so far) holds; fails after TIMEOUT."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.messages):
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"not within {timeout}s; last: {self.messages[-3:]}"
                self._changed.wait(remaining)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def result_count(at_least: int) -> Callable[[list[tuple[str, bytes, bool, bool]]], bool]:
    return lambda messages: sum(topic.endswith("/result") for topic, *_ in messages) >= at_least


def delivery_report(results: list[dict[str, Any]]) -> dict[str, Any]:
    """What a subscriber can tell from what it received, keyed by (boot_id, seq): the seqs in order of first
    arrival, the boot ids in order, how many first arrivals were replays, and the repeats, flagged or not
    (an unflagged repeat that the broker redelivered with MQTT's DUP flag is the broker's, not the daemon's)."""
    first: dict[tuple[str, int], dict[str, Any]] = {}
    flagged = unflagged = redelivered = 0
    for payload in results:
        key = (payload["boot_id"], payload["seq"])
        if key not in first:
            first[key] = payload
        elif payload.get("replayed"):
            flagged += 1
        elif payload["_dup"]:
            redelivered += 1
        else:
            unflagged += 1
    return {
        "seqs": [seq for _, seq in first],
        "boots": list(dict.fromkeys(boot for boot, _ in first)),
        "replayed_first": sum(bool(p.get("replayed")) for p in first.values()),
        "flagged_repeats": flagged,
        "unflagged_repeats": unflagged,
        "broker_redeliveries": redelivered,
    }


# ------------------------------------------------------------------------------------------ the store
def test_seq_and_unsent_results_survive_reopening(tmp_path):
    """seq goes on from the last one written, and unacknowledged rows come back in order, after a reopen."""
    path = tmp_path / "outbox-unit.db"
    with open_outbox_at(path, OutboxConfig()) as outbox:
        assert [1, 2, 3] == keep_results(outbox, 3)
    with open_outbox_at(path, OutboxConfig()) as outbox:
        assert ([1, 2, 3], 4, True) == (pending_seqs(outbox), outbox.next_seq(), outbox.stats().durable)


def test_the_oldest_results_are_dropped_beyond_max_messages_and_counted(tmp_path):
    """With outbox.max_messages 3, five results leave the newest three, and two counted as dropped."""
    with open_outbox_at(tmp_path / "outbox.db", OutboxConfig(max_messages=3)) as outbox:
        keep_results(outbox, 5)
        assert ([3, 4, 5], 2, 3) == (pending_seqs(outbox), outbox.stats().dropped, outbox.stats().pending)


def test_results_older_than_max_age_are_dropped_and_counted():
    """Rows written before now - outbox.max_age_s go at the next purge; younger ones stay."""
    clock = [1000.0]
    store = OutboxStore(sqlite3.connect(":memory:", isolation_level=None))
    with Outbox(store, path=None, max_messages=100, max_age_s=60.0, wall=lambda: clock[0]) as outbox:
        keep_results(outbox, 2)
        clock[0] += 45
        keep_results(outbox, 1)
        clock[0] += 30  # the first two are 75 s old, the third 30 s
        outbox.purge()
        assert ([3], 2) == (pending_seqs(outbox), outbox.stats().dropped)


def test_an_acknowledged_row_is_deleted_a_denied_one_too_and_a_quota_refusal_kept(tmp_path):
    """PUBACK success deletes; 0x87 (not authorized) deletes and counts a denial; 0x97 (quota exceeded) keeps."""
    with open_outbox_at(tmp_path / "outbox.db", OutboxConfig()) as outbox:
        seqs = keep_results(outbox, 3)
        for mid, (row, code) in enumerate(
            zip([r.id for r in outbox.rows_after(0, 10)], (0, 0x87, 0x97), strict=True), 1
        ):
            outbox.deliveries.expect(row)
            outbox.deliveries.published(mid, "edge-classifier/unit/result")
            outbox.deliveries.acknowledged(mid, code)
        outbox.settle()
        assert ([seqs[2]], 1, 0) == (pending_seqs(outbox), outbox.stats().denied, outbox.deliveries.flying)


def acknowledge_all(outbox: Outbox, code: int = 0) -> None:
    """Every waiting row handed over and acknowledged with CODE, as the publisher and paho would."""
    for mid, row in enumerate(outbox.rows_after(0, 1_000_000), 1):
        outbox.deliveries.expect(row.id)
        outbox.deliveries.published(mid, row.topic)
        outbox.deliveries.acknowledged(mid, code)
    outbox.settle()


def test_acknowledged_results_are_kept_for_replay_the_newest_keep_acknowledged(tmp_path):
    """With outbox.keep_acknowledged 3, five acknowledged results and one waiting: a replay request for 1-7 finds
    seqs 3-5 kept, 6 waiting, and 1, 2 (beyond the bound) and 7 (never made) gone; kept across a reopen."""
    path = tmp_path / "outbox.db"
    with open_outbox_at(path, OutboxConfig(keep_acknowledged=3)) as outbox:
        keep_results(outbox, 5)
        acknowledge_all(outbox)
        keep_results(outbox, 1)
    with open_outbox_at(path, OutboxConfig(keep_acknowledged=3)) as outbox:
        held = outbox.held(1, 7)
        assert ([3, 4, 5], [6], [1, 2, 7], ["label-3", "label-4", "label-5"], 1) == (
            [row.seq for row in held.acknowledged], held.waiting, held.gone,
            [json.loads(row.payload)["label"] for row in held.acknowledged], outbox.stats().pending,
        )  # fmt: skip


def test_denied_results_and_keep_acknowledged_zero_keep_nothing_to_replay(tmp_path):
    """A result the broker refused for good is not kept for replay; with keep_acknowledged 0 nothing is."""
    with (
        open_outbox_at(tmp_path / "a.db", OutboxConfig()) as denied,
        open_outbox_at(tmp_path / "b.db", OutboxConfig(keep_acknowledged=0)) as none_kept,
    ):
        keep_results(denied, 2)
        acknowledge_all(denied, 0x87)
        keep_results(none_kept, 2)
        acknowledge_all(none_kept)
        assert ([1, 2], [1, 2]) == (denied.held(1, 2).gone, none_kept.held(1, 2).gone)


def test_acknowledged_results_older_than_max_age_are_not_kept():
    """The age bound covers the kept acknowledged results too."""
    clock = [1000.0]
    store = OutboxStore(sqlite3.connect(":memory:", isolation_level=None))
    with Outbox(store, path=None, max_messages=100, max_age_s=60.0, keep_acknowledged=10, wall=lambda: clock[0]) as box:
        keep_results(box, 2)
        acknowledge_all(box)
        clock[0] += 75
        box.purge()
        assert [1, 2] == box.held(1, 2).gone


def test_a_file_that_is_not_a_database_is_moved_aside_and_a_new_one_started(tmp_path, caplog):
    """Garbage at the outbox's path: moved to <name>.corrupt-<time>, a fresh outbox, the metric, an ERROR line."""
    path = tmp_path / "outbox-unit.db"
    path.write_bytes(b"not a database, " * 512)
    with caplog.at_level(logging.ERROR, "edge_classifier.outbox"), open_outbox_at(path, OutboxConfig()) as outbox:
        stats, seq = outbox.stats(), outbox.next_seq()
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("outbox-unit.db.corrupt-")]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert (1, True, 1, 1, b"not a database, " * 512) == (
        stats.corrupt_recovered, stats.durable, seq, len(aside), aside[0].read_bytes(),
    )  # fmt: skip
    assert [f"outbox {path} is corrupt (file is not a database): moved aside to {aside[0].name} and a new one "
            "started; results it held are not sent, and seq starts again at 1 (with a new boot_id)"] == errors  # fmt: skip


def test_a_database_failing_its_integrity_check_is_moved_aside(tmp_path):
    """A b-tree page overwritten in a real outbox fails the integrity check at open: moved aside, a new one."""
    path = tmp_path / "outbox.db"
    with open_outbox_at(path, OutboxConfig()) as outbox:
        for _ in range(200):  # about 30 pages of rows
            outbox.keep(Message("t", json.dumps({"seq": outbox.next_seq(), "pad": "x" * 500}), 1, True))
    damaged = bytearray(path.read_bytes())
    middle = len(damaged) // 4096 // 2 * 4096  # a page of result rows, whatever the tables before them
    damaged[middle + 100 : middle + 400] = b"\xff" * 300
    path.write_bytes(bytes(damaged))
    with open_outbox_at(path, OutboxConfig()) as outbox:
        assert (1, 0, 1) == (outbox.stats().corrupt_recovered, outbox.stats().pending, outbox.next_seq())
    assert 1 == len(list(tmp_path.glob("outbox.db.corrupt-*")))


def test_an_outbox_another_process_holds_is_not_shared_and_results_wait_in_memory(tmp_path, caplog):
    """The file is locked while open: a second opener gets an outbox in memory (durable false) and an ERROR."""
    path = tmp_path / "outbox.db"
    with open_outbox_at(path, OutboxConfig()) as first, caplog.at_level(logging.ERROR, "edge_classifier.outbox"):
        keep_results(first, 2)
        with open_outbox_at(path, OutboxConfig()) as second:
            assert (False, 0, 1) == (second.stats().durable, second.stats().pending, second.next_seq())
    assert "another process has it open" in caplog.text
    with open_outbox_at(path, OutboxConfig()) as reopened:
        assert [1, 2] == pending_seqs(reopened)


def test_the_service_numbers_results_from_the_outbox_with_a_boot_id_and_reports_it_in_metrics(tmp_path):
    """Wired by build_service: seq goes on from the outbox's counter, payloads validate, metrics carry `outbox`."""
    config = Config(device_id="wired", result=ResultConfig(vote_window=1, heartbeat_s=1000.0),
                    mqtt=MqttConfig(metrics_interval_s=1000.0))  # fmt: skip
    runs = []
    for _ in range(2):
        publisher = MemoryPublisher()
        outbox = open_outbox_at(tmp_path / "outbox-wired.db", OutboxConfig())
        frames = [solid_frame(v) for v in (0, 0, 100, 100, 200)]
        seams = Seams(ListSource(frames), publisher, Notifier({}), (fake_classifier(), FAKE_MODEL), outbox=outbox)
        with contextlib.ExitStack() as stack:
            assert "ended" == build_service(config, stack, threading.Event(), seams).loop.run(threading.Event())
        runs.append(publisher.messages)
    results = [[json.loads(m.payload) for m in run if m.topic.endswith("/result")] for run in runs]
    metrics = [json.loads(m.payload) for m in runs[1] if m.topic.endswith("/metrics")]
    for payload in [*results[0], *results[1]]:
        jsonschema.validate(payload, RESULT_SCHEMA)
    jsonschema.validate(metrics[-1], METRICS_SCHEMA)
    # Nothing acknowledges a memory publisher's messages: the first run's three results are replayed first.
    assert (
        [1, 2, 3], [1, 2, 3, 4, 5, 6], [True, True, True, None, None, None], 2,
        {"pending": 6, "dropped": 0, "denied": 0, "replayed": 3, "corrupt_recovered": 0, "errors": 0, "durable": True},
    ) == (
        [r["seq"] for r in results[0]], [r["seq"] for r in results[1]], [r.get("replayed") for r in results[1]],
        len({r["boot_id"] for r in results[0] + results[1]}), metrics[-1]["outbox"],
    )  # fmt: skip


# ------------------------------------------------------------------------ behind a real mosquitto, in-process
@pytest.fixture
def sink(tmp_path: Path) -> Iterator[tuple[Broker, OutboxPublisher, Outbox, MqttPublisher]]:
    """A persistent mosquitto, and an outbox sink on an MqttPublisher with the outbox's delivery hook."""
    broker = persistent_broker(tmp_path / "broker").start()
    outbox = open_outbox_at(tmp_path / "outbox-sink.db", OutboxConfig())
    topics = Topics("edge-classifier", "sink")
    publisher = MqttPublisher(
        "127.0.0.1", broker.port, topics.client_id, topics.status, reconnect_min_s=0.05, reconnect_max_s=0.2,
        keepalive_s=5, delivery=outbox.deliveries,
    )  # fmt: skip
    try:
        yield broker, OutboxPublisher(publisher, outbox, topics.result), outbox, publisher
    finally:
        publisher.close()
        outbox.close()
        broker.stop()


def play_loop(outbox_sink: OutboxPublisher, until: Callable[[], bool]) -> None:
    """What the main loop does between frames: service(), on_connect after a new connection, tick(); until UNTIL."""
    deadline, tick = time.monotonic() + WAIT_S, threading.Event()
    while not until():
        assert time.monotonic() < deadline, f"not within {WAIT_S}s: {outbox_sink.stats()}"
        if outbox_sink.service():
            outbox_sink.on_connect()
        outbox_sink.tick(time.monotonic())
        tick.wait(FRAME_WAIT_S)


def come_online(outbox_sink: OutboxPublisher) -> None:
    """Play the loop until the publisher announces a connection, and start its replay as the loop would."""
    deadline, tick = time.monotonic() + WAIT_S, threading.Event()
    while not outbox_sink.service():
        assert time.monotonic() < deadline, f"not within {WAIT_S}s: {outbox_sink.stats()}"
        tick.wait(FRAME_WAIT_S)
    outbox_sink.on_connect()


def send_acknowledged(outbox_sink: OutboxPublisher, outbox: Outbox, count: int) -> None:
    """Online, then COUNT live results sent and acknowledged by the broker."""
    come_online(outbox_sink)
    for _ in range(count):
        outbox_sink.send(result(outbox.next_seq(), "edge-classifier/sink/result"))
    play_loop(outbox_sink, lambda: outbox.stats().pending == 0)


def test_results_made_while_the_broker_is_away_go_out_after_it_returns_in_order_and_flagged(sink, tmp_path):
    """Three live results, the broker stopped, five more, the broker back: all eight in order, the five flagged
    and not retained but the newest, which is the retained state; the outbox is empty once they are acknowledged."""
    broker, outbox_sink, outbox, publisher = sink
    subscriber = SessionSubscriber(broker.port, "edge-classifier/sink/result", "outbox-sink-session")
    try:
        send_acknowledged(outbox_sink, outbox, 3)
        broker.stop()
        play_loop(outbox_sink, lambda: not publisher.stats().connected)
        for _ in range(5):
            assert outbox_sink.send(result(outbox.next_seq(), "edge-classifier/sink/result"))
        held = outbox.stats().pending
        broker.start()
        play_loop(outbox_sink, lambda: outbox.stats().pending == 0 and publisher.stats().connects == 2)
        subscriber.wait_for(result_count(8))
        received = subscriber.results()
    finally:
        subscriber.close()
    retained = SessionSubscriber(broker.port, "edge-classifier/sink/result", "outbox-sink-retained")
    retained.wait_for(result_count(1))
    retained.close()
    assert (5, list(range(1, 9)), [None] * 3 + [True] * 5, 0) == (
        held, [r["seq"] for r in received], [r.get("replayed") for r in received], publisher.stats().publish_skipped,
    )  # fmt: skip
    assert ((8, True), True) == (
        (json.loads(retained.messages[0][1])["seq"], json.loads(retained.messages[0][1])["replayed"]),
        retained.messages[0][2],
    )  # fmt: skip


def test_a_restart_replays_what_the_last_process_left_before_new_results(sink, tmp_path):
    """Rows left by an earlier process (a reopened outbox) go out first, flagged, then the new results live."""
    broker, _, _, _ = sink
    path = tmp_path / "outbox-restart.db"
    with open_outbox_at(path, OutboxConfig()) as before:
        keep_results(before, 4, "edge-classifier/restart/result")  # never sent: the process "died"
    subscriber = SessionSubscriber(broker.port, "edge-classifier/restart/result", "outbox-restart-session")
    topics = Topics("edge-classifier", "restart")
    with open_outbox_at(path, OutboxConfig()) as outbox:
        publisher = MqttPublisher("127.0.0.1", broker.port, topics.client_id, topics.status,
                                  delivery=outbox.deliveries)  # fmt: skip
        try:
            outbox_sink = OutboxPublisher(publisher, outbox, topics.result)
            play_loop(outbox_sink, lambda: outbox.stats().pending == 0)
            outbox_sink.send(result(outbox.next_seq(), topics.result, "boot-b"))
            play_loop(outbox_sink, lambda: outbox.stats().pending == 0)
            subscriber.wait_for(result_count(5))
        finally:
            publisher.close()
            subscriber.close()
    received = subscriber.results()
    assert ([1, 2, 3, 4, 5], [True] * 4 + [None], ["boot-a"] * 4 + ["boot-b"]) == (
        [r["seq"] for r in received], [r.get("replayed") for r in received], [r["boot_id"] for r in received],
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- end to end
def attempt_lines(port: int) -> Callable[[str], bool]:
    """The daemon's DEBUG line before each new connection attempt (after a failure or a lost connection)."""
    return lambda line: f"next connection attempt to 127.0.0.1:{port} in" in line


def test_a_replay_request_sends_acknowledged_results_again_flagged_and_not_retained(sink, tmp_path):
    """Five results acknowledged by mosquitto, then a replay of seqs 2-4: the three arrive again, in order, flagged
    `replayed`, and the retained result is still seq 5; seq 9 (never made) is named as gone."""
    broker, outbox_sink, outbox, _ = sink
    subscriber = SessionSubscriber(broker.port, "edge-classifier/sink/result", "outbox-replay-session")
    try:
        send_acknowledged(outbox_sink, outbox, 5)
        subscriber.wait_for(result_count(5))
        done = outbox_sink.replay(2, 4)
        subscriber.wait_for(result_count(8))
        again = subscriber.results()[5:]
    finally:
        subscriber.close()
    retained = SessionSubscriber(broker.port, "edge-classifier/sink/result", "outbox-replay-retained")
    retained.wait_for(result_count(1))
    retained.close()
    assert ((3, 0, [], []), [2, 3, 4], [True] * 3, 5, [9]) == (
        (done.sent, done.unsent, done.waiting, done.gone), [r["seq"] for r in again],
        [r["replayed"] for r in again], retained.results()[0]["seq"], outbox_sink.replay(9, 9).gone,
    )  # fmt: skip


@pytest.mark.slow
def test_no_result_is_lost_when_the_broker_is_away_20s_and_the_daemon_is_killed_meanwhile(tmp_path, daemons):
    """Results every 0.2 s; the broker stopped for about 20 attempts a second apart; the daemon SIGKILLed after
    10 of them and started again: a persistent-session subscriber gets every seq, in order, repeats flagged."""
    broker = persistent_broker(tmp_path / "broker").start()
    subscriber = SessionSubscriber(broker.port, "edge-classifier/durable/#", "outbox-e2e-session")
    args = ("--source", str(SAMPLE_VIDEO), "--device-id", "durable", "--set", "mqtt.host=127.0.0.1",
            "--set", f"mqtt.port={broker.port}", "--set", "source.loop=true", "--set", "result.heartbeat_s=0.2",
            "--set", f"state_dir={tmp_path / 'state'}", "--set", "mqtt.reconnect_min_s=1",
            "--set", "mqtt.reconnect_max_s=1", "--set", "mqtt.connect_wait_s=0", "--set", "log_level=debug",
            "--set", "mqtt.metrics_interval_s=1", "--set", "homeassistant.enabled=false")  # fmt: skip
    try:
        first = daemons(*args)
        subscriber.wait_for(result_count(10))
        first_boot = subscriber.results()[0]["boot_id"]
        broker.stop()
        for _ in range(10):  # about 10 s of the daemon's time without a broker
            first.wait_for_line(attempt_lines(broker.port))
        first.stop(signal.SIGKILL)  # nothing is flushed, nothing said
        second = daemons(*args)
        second.wait_for_line(lambda line: "from earlier runs to send first" in line)
        for _ in range(10):
            second.wait_for_line(attempt_lines(broker.port))
        broker.start()
        # Once a result made after the reconnect arrives (not replayed), everything older arrived before it.
        subscriber.wait_for(lambda messages: any(
            topic.endswith("/result") and json.loads(payload)["boot_id"] != first_boot
            and "replayed" not in json.loads(payload) for topic, payload, *_ in messages
        ))  # fmt: skip
        count = len(subscriber.results())
        subscriber.wait_for(result_count(count + 5))
        assert 0 == second.stop(), second.log
        subscriber.wait_for(lambda messages: any(t.endswith("/status") and p == b"offline" for t, p, *_ in messages))
    finally:
        subscriber.close()
        broker.stop()
    received = subscriber.results()
    report = delivery_report(received)
    metrics = [json.loads(p) for t, p, *_ in subscriber.messages if t.endswith("/metrics")]
    for payload in received:
        jsonschema.validate({k: v for k, v in payload.items() if k != "_dup"}, RESULT_SCHEMA)
    jsonschema.validate(metrics[-1], METRICS_SCHEMA)
    boot_a = [r["seq"] for r in received if r["boot_id"] == report["boots"][0]]
    print(f"\n{len(received)} result messages, {len(report['seqs'])} results (seq 1-{report['seqs'][-1]}), boots "
          f"{len(report['boots'])} (the first's last seq {max(boot_a)}); first arrivals that were replays "
          f"{report['replayed_first']}; repeats flagged {report['flagged_repeats']}, unflagged "
          f"{report['unflagged_repeats']}, broker redeliveries {report['broker_redeliveries']}; last metrics outbox "
          f"{metrics[-1]['outbox']}")  # fmt: skip
    assert (list(range(1, len(report["seqs"]) + 1)), 2, 0, True) == (
        report["seqs"], len(report["boots"]), report["unflagged_repeats"], report["replayed_first"] > 50,
    ), report  # fmt: skip
