"""MQTT over TLS against a real mosquitto TLS listener, with certificates made by openssl for the test."""

import os
import shutil
import signal
import subprocess
import time

import pytest

from helpers import SAMPLE_VIDEO, Broker, Subscriber, free_port

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")]


def openssl(folder, *args):
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)


def make_ca(folder, name):
    """A self-signed CA: NAME.key and NAME.crt in FOLDER."""
    openssl(folder, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.crt")  # fmt: skip
    return folder / f"{name}.crt"


def make_server_cert(folder, ca):
    """server.key and server.crt for 127.0.0.1 and localhost, signed by the CA named CA."""
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(folder, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", "server.key", "-out", "server.csr")  # fmt: skip
    openssl(folder, "x509", "-req", "-in", "server.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "server.crt")  # fmt: skip


@pytest.fixture
def tls_broker(tmp_path):
    """mosquitto with a plain listener (for the test's subscriber) and a TLS one (for the daemon)."""
    make_ca(tmp_path, "ca")
    make_server_cert(tmp_path, "ca")
    tls_port = free_port()
    # Started as root, mosquitto drops to user 'mosquitto' before reading the key, which lives in
    # pytest's private temporary folder: stay root instead.
    stay_root = "user root\n" if os.geteuid() == 0 else ""
    broker = Broker(tmp_path, extra_config=stay_root + (
        f"listener {tls_port} 127.0.0.1\ncafile {tmp_path / 'ca.crt'}\n"
        f"certfile {tmp_path / 'server.crt'}\nkeyfile {tmp_path / 'server.key'}\n"
    )).start()  # fmt: skip
    broker.tls_port = tls_port
    yield broker
    broker.stop()


def tls_args(port, device, ca_file):
    return ("--source", str(SAMPLE_VIDEO), "--device-id", device, "--set", "source.loop=true",
            "--set", "mqtt.host=127.0.0.1", "--set", f"mqtt.port={port}", "--set", "mqtt.tls=true",
            "--set", f"mqtt.ca_file={ca_file}", "--set", "mqtt.reconnect_min_s=1", "--set", "mqtt.reconnect_max_s=1")  # fmt: skip


def test_daemon_publishes_over_tls_when_the_broker_certificate_verifies(tls_broker, tmp_path, daemons):
    """With the broker's CA as mqtt.ca_file the daemon connects over TLS, goes online, publishes, and goes offline."""
    subscriber = Subscriber(tls_broker.port)
    try:
        proc = daemons(*tls_args(tls_broker.tls_port, "tls", tmp_path / "ca.crt"))
        online = subscriber.wait_for(lambda m: m.topic == "edge-classifier/tls/status")
        result = subscriber.wait_for(lambda m: m.topic == "edge-classifier/tls/result")
        code = proc.stop(signal.SIGTERM)
        offline = subscriber.wait_for(lambda m: m.topic == "edge-classifier/tls/status")
    finally:
        subscriber.close()
    assert ("online", "clothing-mobilenetv2", 0, "offline") == (
        online.payload, result.json()["model"]["name"], code, offline.payload)  # fmt: skip


def status_once_frames_flow(proc, timeout=60.0):
    """Ask for status lines (SIGUSR1) until one shows classified frames, or the last one after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        proc.proc.send_signal(signal.SIGUSR1)
        line = proc.wait_for_line(lambda text: "status: " in text)
        if " frames 0," not in line or time.monotonic() > deadline:
            return line


def test_a_broker_certificate_from_another_ca_is_refused_and_the_daemon_keeps_classifying(
    tls_broker, tmp_path, daemons
):
    """A broker whose certificate the configured CA did not sign is never connected to; classifying goes on."""
    other_ca = make_ca(tmp_path, "other")
    subscriber = Subscriber(tls_broker.port)
    try:
        proc = daemons(*tls_args(tls_broker.tls_port, "mitm", other_ca))
        proc.wait_for_line(lambda line: "could not connect to broker 127.0.0.1" in line)
        assert " frames 0," not in status_once_frames_flow(proc), proc.log
        proc.wait_for_line(lambda line: "could not connect to broker 127.0.0.1" in line)
        code = proc.stop(signal.SIGTERM)
    finally:
        subscriber.close()
    assert (0, []) == (code, [m for m in subscriber.seen if m.topic.startswith("edge-classifier/mitm/")])
