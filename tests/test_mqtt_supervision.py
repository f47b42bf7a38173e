"""The MQTT connection under stress, against real mosquitto brokers: failures say why, counters tell the truth,
backoff holds, ACL denials show, and a dead or hung network thread stops the service."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_classifier.capture.source import SourceStats
from edge_classifier.config.settings import Config, MqttConfig
from edge_classifier.errors import ServiceError
from edge_classifier.mqtt.backoff import Backoff
from edge_classifier.mqtt.client import MqttPublisher, PublisherStats, tls_context
from edge_classifier.mqtt.network import LOOP_S
from edge_classifier.mqtt.topics import Topics
from edge_classifier.service.compose import Seams, build_service
from edge_classifier.service.loop import FRAME_WAIT_S
from edge_classifier.service.messages import Message
from edge_classifier.service.metrics import Metrics
from edge_classifier.service.notify import Notifier
from edge_classifier.service.payloads import metrics_message, utc_now
from fakes import FAKE_MODEL, EndlessSource, ListSource, fake_classifier, solid_frame
from helpers import SAMPLE_VIDEO, SCHEMAS, Broker, Subscriber, free_port

WAIT_S = 20.0  # bound on every wait; each step takes milliseconds
METRICS_SCHEMA = json.loads((SCHEMAS / "metrics.schema.json").read_text())
NOT_AUTHORIZED = "Not authorized"


# ---------------------------------------------------------------------------------------------- helpers
class ManualClock:
    """Monotonic time that moves only when the test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class LogWatch(logging.Handler):
    """Every record of edge_classifier.mqtt and the loop, debug included, in a list and a queue to wait on."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._queue: queue.Queue[logging.LogRecord] = queue.Queue()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self._queue.put(record)

    def wait_for(self, predicate: Callable[[logging.LogRecord], bool], count: int = 1) -> list[logging.LogRecord]:
        """The first COUNT new records matching predicate; fails after WAIT_S."""
        deadline, found = time.monotonic() + WAIT_S, []
        while len(found) < count:
            try:
                record = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"{len(found)} of {count} log records within {WAIT_S}s: {self.lines()}") from None
            if predicate(record):
                found.append(record)
        return found

    def lines(self, level: int = logging.WARNING) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= level]


@pytest.fixture
def log() -> Iterator[LogWatch]:
    watch = LogWatch()
    loggers = [logging.getLogger(name) for name in ("edge_classifier.mqtt", "edge_classifier.service.loop")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(watch)
        logger.setLevel(logging.DEBUG)
    yield watch
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(watch)
        logger.setLevel(level)


def next_attempt(record: logging.LogRecord) -> bool:
    return record.getMessage().startswith("next connection attempt")


@pytest.fixture
def publishers() -> Iterator[Callable[..., MqttPublisher]]:
    """Makes publishers for 127.0.0.1:PORT with short reconnect delays; all are closed when the test ends."""
    made: list[MqttPublisher] = []

    def make(port: int, device: str, **options: Any) -> MqttPublisher:
        options = {"reconnect_min_s": 0.05, "reconnect_max_s": 0.2, "keepalive_s": 5, **options}
        topics = Topics("edge-classifier", device)
        made.append(MqttPublisher("127.0.0.1", port, topics.client_id, topics.status, **options))
        return made[-1]

    yield make
    for publisher in made:
        publisher.close()


def pump(publisher: MqttPublisher, predicate: Callable[[], bool]) -> None:
    """Play the main loop: service() every FRAME_WAIT_S until predicate() holds; fails after WAIT_S."""
    deadline, tick = time.monotonic() + WAIT_S, threading.Event()
    while not predicate():
        assert time.monotonic() < deadline, f"not within {WAIT_S}s: {publisher.stats()}"
        publisher.service()
        tick.wait(FRAME_WAIT_S)


@contextlib.contextmanager
def serviced(publisher: MqttPublisher) -> Iterator[None]:
    """The main loop's part on a thread of its own: service() every FRAME_WAIT_S until the block ends."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(FRAME_WAIT_S):
            publisher.service()

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(run)
        try:
            yield
        finally:
            stop.set()
            future.result(WAIT_S)  # re-raises what service() raised


def metrics_document(stats: PublisherStats) -> dict[str, Any]:
    """The metrics payload the daemon would publish with these publisher stats, checked against its schema."""
    source = SourceStats("running", 0, 0, 0, 0)
    message = metrics_message(Topics("edge-classifier", "m"), utc_now(), "m", Metrics().reader().read(), source, stats)
    document: dict[str, Any] = json.loads(message.payload)
    jsonschema.validate(document, METRICS_SCHEMA)
    return document


def paho_factory(kind: type[mqtt.Client], made: list[Any] | None = None) -> Callable[..., mqtt.Client]:
    def factory(client_id: str, protocol: Any) -> mqtt.Client:
        client = kind(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
        if made is not None:
            made.append(client)
        return client

    return factory


class DyingClient(mqtt.Client):
    """paho's client whose loop() dies once connected, as paho does on an over-long field."""

    def loop(self, timeout: float = 1.0) -> Any:
        rc = super().loop(timeout)
        if self.is_connected():
            raise struct.error("'H' format requires 0 <= number <= 65535")
        return rc


class WedgedClient(mqtt.Client):
    """paho's client whose loop() blocks until released, as a call stuck in the kernel would."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.entered, self.release = threading.Event(), threading.Event()

    def loop(self, timeout: float = 1.0) -> Any:
        self.entered.set()
        self.release.wait(WAIT_S)
        return super().loop(timeout)


class DroppingServer:
    """A TCP listener that reads each CONNECT and closes the connection, after a successful MQTT 5 CONNACK or not."""

    def __init__(self, connack: bool):
        self.connack = connack
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(WAIT_S)
                _read_packet(conn)
                if self.connack:
                    conn.sendall(bytes([0x20, 3, 0, 0, 0]))  # CONNACK: no session, Success, no properties
                    conn.shutdown(socket.SHUT_WR)  # an orderly close after the CONNACK, not a reset
                    while conn.recv(4096):
                        pass

    def close(self) -> None:
        self._listener.close()


def _read_packet(conn: socket.socket) -> bytes:
    """One whole MQTT packet (the CONNECT), so that closing afterwards sends FIN, not RST."""
    header = conn.recv(1)
    length, shift = 0, 0
    while True:
        byte = conn.recv(1)[0]
        length += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    body = b""
    while len(body) < length:
        body += conn.recv(length - len(body))
    return header + body


def openssl(folder: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Broker, int, Path]]:
    """mosquitto with a TLS listener whose certificate names DNS:localhost only; its folder holds ca.crt and other.crt."""
    folder = tmp_path_factory.mktemp("tls")
    for name in ("ca", "other"):
        openssl(folder, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.crt")  # fmt: skip
    (folder / "san.cnf").write_text("subjectAltName=DNS:localhost\n")
    openssl(folder, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", "server.key", "-out", "server.csr")  # fmt: skip
    openssl(folder, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "server.crt")  # fmt: skip
    tls_port = free_port()
    stay_root = "user root\n" if os.geteuid() == 0 else ""  # the key is in a private folder (see test_tls.py)
    broker = Broker(folder, extra_config=stay_root + (
        f"listener {tls_port} 127.0.0.1\ncafile {folder / 'ca.crt'}\n"
        f"certfile {folder / 'server.crt'}\nkeyfile {folder / 'server.key'}\n"
    )).start()  # fmt: skip
    yield broker, tls_port, folder
    broker.stop()


# ---------------------------------------------------------------------------------- 1: supervision
def test_a_network_thread_killed_by_an_exception_stops_the_main_loop_with_service_error(broker, publishers, log):
    """paho's loop raising struct.error kills the network thread; the main loop raises ServiceError (exit 70)."""
    publisher = publishers(broker.port, "dying", client_factory=paho_factory(DyingClient))
    stop = threading.Event()
    seams = Seams(EndlessSource(0), publisher, Notifier({}), (fake_classifier(), FAKE_MODEL))
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(1) as pool:
        service = build_service(Config(device_id="dying"), stack, stop, seams)
        future = pool.submit(service.loop.run, stop)
        try:
            with pytest.raises(ServiceError) as raised:
                future.result(WAIT_S)
        finally:
            stop.set()
    died = [r for r in log.records if r.getMessage() == "the MQTT network thread died"]
    assert (70, "the MQTT network thread died: struct.error: 'H' format requires 0 <= number <= 65535", 1, True) == (
        raised.value.exit_code, str(raised.value), len(died), died[0].exc_info is not None,
    )  # fmt: skip


def test_a_hung_network_thread_raises_service_error_once_past_the_stall_limit(broker, publishers):
    """A loop() that never returns is found by service() once it is late by more than 2 x keepalive + 30 s."""
    clock, made = ManualClock(), []
    publisher = publishers(broker.port, "wedged", client_factory=paho_factory(WedgedClient, made), clock=clock)
    assert made[0].entered.wait(WAIT_S)
    try:
        publisher.service()  # not late yet
        clock.now += LOOP_S + 2 * 5 + 30 + 1
        with pytest.raises(ServiceError) as raised:
            publisher.service()
    finally:
        made[0].release.set()
    expected = (
        "the MQTT network thread has made no progress for 41s (limit 40s: twice mqtt.keepalive_s plus 30s to connect)"
    )
    assert expected == str(raised.value)


SITECUSTOMIZE = '''"""Fault injection for one test: paho's loop() dies once connected, as on an over-long field."""
import struct

import paho.mqtt.client as mqtt

_loop = mqtt.Client.loop


def _dying_loop(self, timeout=1.0):
    rc = _loop(self, timeout)
    if self.is_connected():
        raise struct.error("'H' format requires 0 <= number <= 65535")
    return rc


mqtt.Client.loop = _dying_loop
'''


@pytest.mark.slow
def test_the_daemon_exits_70_when_its_network_thread_dies(broker, subscriber, daemons, tmp_path):
    """The daemon whose paho loop dies exits 70 (systemd restarts it), and the broker marks it offline."""
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    proc = daemons("--source", str(SAMPLE_VIDEO), "--device-id", "dies", "--set", "source.loop=true",
                   "--set", "mqtt.host=127.0.0.1", "--set", f"mqtt.port={broker.port}",
                   env={"PYTHONPATH": str(tmp_path)})  # fmt: skip
    error = proc.wait_for_line(lambda line: line.startswith("error: "), timeout=120)
    code = proc.wait(WAIT_S)
    will = subscriber.wait_for(lambda m: m.topic == "edge-classifier/dies/status")
    expected = "error: the MQTT network thread died: struct.error: 'H' format requires 0 <= number <= 65535\n"
    assert (70, "offline", expected) == (code, will.payload, error)


def test_the_watchdog_is_not_fed_once_nothing_could_be_published_for_max_offline_s(publishers, log):
    """With the broker away for longer than mqtt.max_offline_s, frames still flow but WATCHDOG=1 stops; logged once."""
    publisher = publishers(free_port(), "offline", max_offline_s=0.2)

    def at_frame_three_wait_until_offline_too_long(index: int) -> None:
        if index == 3:
            pump(publisher, lambda: publisher.stats().publishing_lost)

    received = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    address = f"edge-classifier-test-{os.getpid()}-{id(received)}"
    received.bind("\0" + address)
    notifier = Notifier({"NOTIFY_SOCKET": "@" + address, "WATCHDOG_USEC": "2"})
    source = ListSource([solid_frame(0)] * 8, at_frame_three_wait_until_offline_too_long)
    config = Config(device_id="offline", mqtt=MqttConfig(metrics_interval_s=1000.0))
    with received, contextlib.ExitStack() as stack:
        seams = Seams(source, publisher, notifier, (fake_classifier(), FAKE_MODEL))
        assert "ended" == build_service(config, stack, threading.Event(), seams).loop.run(threading.Event())
        received.setblocking(False)
        datagrams = []
        with contextlib.suppress(BlockingIOError):
            while True:
                datagrams.append(received.recv(4096).decode())
    stopped = [line for line in log.lines(logging.ERROR) if "no longer feeding the systemd watchdog" in line]
    assert (3, 1, 8) == (datagrams.count("WATCHDOG=1"), len(stopped), source.served)


# ------------------------------------------------------------------------ 2: every failure says why
@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong CA", "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "),
        ("wrong host name", "certificate verify failed: IP address mismatch, certificate is not valid for '127.0.0.1'"),
        ("plaintext on the TLS port", "the broker closed the connection before accepting it (if the port is a TLS "
                                      "listener, set mqtt.tls: true)"),
        ("closed port", "[Errno 111] Connection refused"),
    ],
)  # fmt: skip
def test_every_failed_connection_attempt_says_why_once_and_is_counted(tls_broker, publishers, log, case, expected):
    """Each failed attempt is counted and its reason kept for metrics; the reason is logged once, not per attempt."""
    _, tls_port, folder = tls_broker
    if case == "closed port":
        publisher = publishers(free_port(), "why")
    elif case == "plaintext on the TLS port":
        publisher = publishers(tls_port, "why")
    else:
        ca = folder / ("other.crt" if case == "wrong CA" else "ca.crt")
        publisher = publishers(tls_port, "why", tls=tls_context(ca))
    log.wait_for(next_attempt, count=4)
    stats = publisher.stats()
    warnings = log.lines()
    assert (1, True, True, True, stats.last_error) == (
        len(warnings), expected in warnings[0], expected in str(stats.last_error), stats.connect_failures >= 4,
        metrics_document(stats)["mqtt"]["last_error"],
    ), warnings  # fmt: skip


def test_the_right_ca_and_host_name_connect_over_tls(tls_broker, publishers):
    """The same TLS listener accepts the client that trusts its CA and names it localhost (the control case)."""
    _, tls_port, folder = tls_broker
    topics = Topics("edge-classifier", "tls-ok")
    publisher = MqttPublisher(
        "localhost", tls_port, topics.client_id, topics.status, tls=tls_context(folder / "ca.crt")
    )
    try:
        assert (True, 1) == (publisher.wait_connected(WAIT_S), publisher.stats().connects)
    finally:
        publisher.close()


@pytest.mark.parametrize("protocol", ["mqttv5", "mqttv311"])
def test_a_refused_connect_says_the_connack_reason(tmp_path, publishers, log, protocol):
    """A broker that refuses anonymous clients: the CONNACK reason 'Not authorized' is logged once and counted."""
    broker = Broker(tmp_path)
    broker.config.write_text(broker.config.read_text().replace("allow_anonymous true", "allow_anonymous false"))
    broker.start()
    try:
        publisher = publishers(broker.port, "refused", protocol=protocol)
        log.wait_for(next_attempt, count=3)
        stats = publisher.stats()
    finally:
        broker.stop()
    expected = "the broker refused the connection: Not authorized"
    assert ([f"could not connect to broker 127.0.0.1:{broker.port}: {expected}; retrying in 0.05s"], expected, 0) == (
        log.lines(), stats.last_error, stats.connects
    )  # fmt: skip


# ------------------------------------------------------------- 3: counters that tell the truth, backoff
@pytest.mark.parametrize("connack", [False, True], ids=["drops-every-connect", "accepts-then-drops"])
def test_a_flapping_broker_gets_growing_backoff_bounded_warnings_and_every_connection_counted(publishers, log, connack):
    """Attempts wait 0.05, 0.1, 0.2, 0.4, 0.4 s (no reset by a connection that did not last); one warning in all."""
    server = DroppingServer(connack)
    try:
        publisher = publishers(server.port, "flap", reconnect_min_s=0.05, reconnect_max_s=0.4)
        delays = [record.args[1] for record in log.wait_for(next_attempt, count=6)]
        stats = publisher.stats()
    finally:
        server.close()
    warnings = log.lines()
    # Without service() being called at all: connections are counted where they happen.
    counted = stats.connects if connack else stats.connect_failures
    expected_warning = "connection to broker" if connack else "could not connect to broker"
    assert ([0.05, 0.1, 0.2, 0.4, 0.4, 0.4], 1, True, True) == (
        delays, len(warnings), warnings[0].startswith(expected_warning), counted >= 6
    ), (warnings, stats)  # fmt: skip


def test_backoff_starts_again_from_the_minimum_only_after_a_stable_connection():
    """Doubling up to the maximum; a connection that lasted stable_after_s resets it, a shorter one does not."""
    backoff = Backoff(1.0, 8.0, stable_after_s=30.0)
    delays = [backoff.after_failure() for _ in range(5)]
    assert ([1.0, 2.0, 4.0, 8.0, 8.0], 8.0, 1.0, 2.0) == (
        delays, backoff.after_loss(29.0), backoff.after_loss(30.0), backoff.after_failure()
    )  # fmt: skip


def test_a_broker_killed_and_restarted_gets_online_every_time_and_every_connection_counted(tmp_path, publishers, log):
    """Three broker lives: `online` is published (retained) to each, and three connections are counted."""
    broker = Broker(tmp_path).start()
    publisher = publishers(broker.port, "restart")
    onlines = []
    try:
        with serviced(publisher):
            for life in range(3):
                if life:
                    broker = Broker(tmp_path, port=broker.port).start()
                subscriber = Subscriber(broker.port, "edge-classifier/restart/status")
                onlines.append(subscriber.wait_for(lambda m: m.payload == "online"))
                subscriber.close()
                broker.proc.kill()  # no clean shutdown: the connection just ends
                broker.proc.wait(WAIT_S)
    finally:
        broker.stop()
    stats = publisher.stats()
    lost = [line for line in log.lines() if line.startswith("connection to broker")]
    assert (3, 3, 2, 1) == (len(onlines), stats.connects, metrics_document(stats)["mqtt"]["reconnects"], len(lost))


def test_client_id_takeovers_count_every_connection_and_announce_online_on_each(broker, subscriber, publishers):
    """A twin with our client id takes the session over three times: four connections, four `online`."""
    publisher = publishers(broker.port, "twin")
    topics = Topics("edge-classifier", "twin")
    with serviced(publisher):
        subscriber.wait_for(lambda m: m.topic == topics.status and m.payload == "online")
        for _ in range(3):
            twin = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=topics.client_id)
            accepted = threading.Event()
            twin.on_connect = lambda *args, accepted=accepted: accepted.set()
            twin.connect("127.0.0.1", broker.port)
            deadline = time.monotonic() + WAIT_S
            while not accepted.is_set() and time.monotonic() < deadline:
                twin.loop(0.1)
            twin.disconnect()
            subscriber.wait_for(lambda m: m.topic == topics.status and m.payload == "online")
    onlines = [m for m in subscriber.seen if m.topic == topics.status and m.payload == "online"]
    assert (4, 4) == (publisher.stats().connects, len(onlines))


# ------------------------------------------------------------------------------ 4: ACL denials
ACL_V5 = "topic readwrite edge-classifier/acl/status\ntopic read edge-classifier/acl/result\n"


def acl_broker(folder: Path, acl: str) -> Broker:
    """mosquitto whose ACL for anonymous clients is ACL (started as root, it stays root to read the file)."""
    (folder / "acl").write_text(acl)
    stay_root = "user root\n" if os.geteuid() == 0 else ""
    return Broker(folder, extra_config=f"{stay_root}acl_file {folder / 'acl'}\n").start()


def test_mqtt5_a_publish_the_acl_denies_is_logged_with_its_topic_and_counted(tmp_path, publishers, log):
    """mosquitto answers a denied QoS 1 publish with PUBACK 0x87: warned once naming the topic, counted each time."""
    broker = acl_broker(tmp_path, ACL_V5)
    try:
        publisher = publishers(broker.port, "acl")
        assert publisher.wait_connected(WAIT_S)
        pump(publisher, lambda: publisher.send(Message("edge-classifier/acl/status", "online", 1, True)))
        for _ in range(2):
            assert publisher.send(Message("edge-classifier/acl/result", "{}", 1, True))
        pump(publisher, lambda: publisher.stats().publish_denied == 2)
        stats, warnings = publisher.stats(), log.lines()
    finally:
        broker.stop()
    warning = f"broker 127.0.0.1:{broker.port} denied a publish to edge-classifier/acl/result: Not authorized"
    assert ([warning + " (see its ACL for this client)"], 2, "publish to edge-classifier/acl/result denied: Not authorized") == (
        warnings, metrics_document(stats)["mqtt"]["publish_denied"], stats.last_error
    )  # fmt: skip


def test_mqtt311_a_status_echo_that_does_not_come_back_is_reported_as_a_denial(tmp_path, publishers, log):
    """MQTT 3.1.1 acknowledges a denied publish as any other: the missing echo of `online` is warned and counted."""
    broker = acl_broker(tmp_path, "topic read edge-classifier/echo/status\n")
    clock = ManualClock()
    try:
        publisher = publishers(broker.port, "echo", protocol="mqttv311", clock=clock)
        assert publisher.wait_connected(WAIT_S)
        assert publisher.service()  # `online` announced, echo check started
        clock.now += 5 + 1  # the check waits one keepalive
        pump(publisher, lambda: publisher.stats().publish_denied == 1)
        warnings = log.lines()
    finally:
        broker.stop()
    assert (1, True, True) == (
        len(warnings), "edge-classifier/echo/status" in warnings[0], "did not come back within 5s" in warnings[0]
    ), warnings  # fmt: skip


def test_mqtt311_an_allowed_status_echo_is_no_denial(broker, publishers, log):
    """Where the ACL allows it, `online` comes back and nothing is counted (the control case)."""
    publisher = publishers(broker.port, "echo-ok", protocol="mqttv311")
    assert publisher.wait_connected(WAIT_S)
    pump(publisher, lambda: any("echoed our status" in r.getMessage() for r in log.records))
    assert ([], 0) == (log.lines(), publisher.stats().publish_denied)


# --------------------------------------------------------------------- both protocols: the basics hold
@pytest.mark.parametrize("protocol", ["mqttv5", "mqttv311"])
def test_status_and_qos1_results_are_retained_with_both_protocols(broker, subscriber, publishers, protocol):
    """online, a QoS 1 retained result and offline arrive; a late subscriber finds `offline` and the result retained."""
    publisher = publishers(broker.port, protocol, protocol=protocol)
    topics = Topics("edge-classifier", protocol)
    assert publisher.wait_connected(WAIT_S)
    pump(publisher, lambda: publisher.send(Message(topics.result, '{"seq": 1}', 1, True)))
    publisher.close()
    offline = subscriber.wait_for(lambda m: m.topic == topics.status and m.payload == "offline")
    late = Subscriber(broker.port, f"{topics.base}/#")
    try:
        retained = {}
        for _ in range(2):
            message = late.wait_for(lambda m: m.retain)
            retained[message.topic] = message.payload
    finally:
        late.close()
    seen = [(m.topic, m.payload) for m in subscriber.seen if m.topic.startswith(topics.base)]
    assert ([(topics.status, "online"), (topics.result, '{"seq": 1}')], "offline") == (seen[:2], offline.payload)
    assert {topics.status: "offline", topics.result: '{"seq": 1}'} == retained


@pytest.mark.slow
def test_mqtt311_daemon_publishes_valid_payloads_and_its_last_will_fires(broker, subscriber, daemons):
    """With mqtt.protocol mqttv311 the daemon goes online, publishes valid results and metrics; SIGKILL fires its Will."""
    proc = daemons("--source", str(SAMPLE_VIDEO), "--device-id", "v311", "--set", "source.loop=true",
                   "--set", "mqtt.host=127.0.0.1", "--set", f"mqtt.port={broker.port}",
                   "--set", "mqtt.protocol=mqttv311", "--set", "mqtt.metrics_interval_s=0.5")  # fmt: skip
    online = subscriber.wait_for(lambda m: m.topic == "edge-classifier/v311/status")
    result = subscriber.wait_for(lambda m: m.topic == "edge-classifier/v311/result")
    metrics = subscriber.wait_for(lambda m: m.topic == "edge-classifier/v311/metrics")
    jsonschema.validate(metrics.json(), METRICS_SCHEMA)
    jsonschema.validate(result.json(), json.loads((SCHEMAS / "result.schema.json").read_text()))
    code = proc.stop(signal.SIGKILL)
    will = subscriber.wait_for(lambda m: m.topic == "edge-classifier/v311/status")
    mqtt_metrics = metrics.json()["mqtt"]
    assert ("online", -signal.SIGKILL, "offline", 0, None) == (
        online.payload, code, will.payload, mqtt_metrics["publish_denied"], mqtt_metrics["last_error"]
    )  # fmt: skip
