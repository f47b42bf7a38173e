"""The daemon against a locked-down mosquitto: a TLS listener, a password file and an ACL that allows the daemon
only its own prefix and the Home Assistant discovery prefix. Everything works there; each mistake says so."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_commands import Collector, publish, wait_ack
from test_tls import make_ca, make_server_cert

from helpers import SAMPLE_VIDEO, Broker, free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which("openssl") or not shutil.which("mosquitto_passwd"), reason="needs openssl"),
]

DEVICE = "locked"
PASSWORD = "kiosk-secret"
# Anonymous clients (the test's watcher, on the plain listener) read everything and may send commands; the daemon's
# user `kiosk` gets its own prefix and Home Assistant's discovery prefix, nothing else.
ACL = f"""topic read #
topic write edge-classifier/{DEVICE}/cmd/#
user kiosk
topic readwrite edge-classifier/{DEVICE}/#
topic readwrite homeassistant/#
"""


def locked_broker(folder: Path, acl: str) -> Broker:
    """mosquitto with a plain listener (for the test) and a TLS one (for the daemon), a password file and ACL."""
    make_ca(folder, "ca")
    make_server_cert(folder, "ca")
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(folder / "passwd"), "kiosk", PASSWORD], check=True,
                   capture_output=True, timeout=30)  # fmt: skip
    (folder / "acl").write_text(acl)
    tls_port = free_port()
    stay_root = "user root\n" if os.geteuid() == 0 else ""  # the key is in pytest's private folder
    broker = Broker(folder, extra_config=stay_root + (
        f"password_file {folder / 'passwd'}\nacl_file {folder / 'acl'}\n"
        f"listener {tls_port} 127.0.0.1\ncafile {folder / 'ca.crt'}\n"
        f"certfile {folder / 'server.crt'}\nkeyfile {folder / 'server.key'}\n"
    )).start()  # fmt: skip
    broker.tls_port = tls_port  # type: ignore[attr-defined]
    return broker


def daemon_args(broker: Broker, folder: Path, password: str, *extra: str) -> list[str]:
    (folder / "mqtt_password").write_text(password + "\n")
    return ["--source", str(SAMPLE_VIDEO), "--device-id", DEVICE, "--set", "source.loop=true",
            "--set", "mqtt.host=127.0.0.1", "--set", f"mqtt.port={broker.tls_port}",  # type: ignore[attr-defined]
            "--set", "mqtt.tls=true", "--set", f"mqtt.ca_file={folder / 'ca.crt'}",
            "--set", "mqtt.username=kiosk", "--set", f"mqtt.password_file={folder / 'mqtt_password'}",
            "--set", "mqtt.metrics_interval_s=1", "--set", "mqtt.reconnect_min_s=1", "--set", "mqtt.reconnect_max_s=1",
            "--set", f"state_dir={folder / 'state'}", *extra]  # fmt: skip


def seen_or_wait(watcher: Collector, predicate: Any) -> Any:
    """The first message so far that matches, or the next one to come."""
    return next((m for m in watcher.seen if predicate(m)), None) or watcher.wait_for(predicate)


def test_everything_works_over_tls_with_a_password_and_an_acl(tmp_path, daemons):
    """Results, metrics, Home Assistant discovery and a command's answer all pass the ACL; nothing is denied."""
    broker = locked_broker(tmp_path, ACL)
    watcher = Collector(broker.port, "#")
    try:
        daemon = daemons(*daemon_args(broker, tmp_path, PASSWORD))
        watcher.wait_for(lambda m: m.topic == f"edge-classifier/{DEVICE}/result")
        discovery = seen_or_wait(watcher, lambda m: m.topic == f"homeassistant/device/edge-classifier-{DEVICE}/config")
        publish(broker.port, f"edge-classifier/{DEVICE}/cmd/ping", json.dumps({"id": "p1"}))
        ack = wait_ack(watcher, "ping", "p1")
        metrics: dict[str, Any] = watcher.metrics()
        assert 0 == daemon.stop()
    finally:
        watcher.close()
        broker.stop()
    assert (True, "done", 0, True) == (
        bool(json.loads(discovery.payload)), ack["status"], metrics["mqtt"]["publish_denied"], metrics["mqtt"]["connected"],
    )  # fmt: skip


def test_a_wrong_password_is_one_clear_line_and_the_daemon_keeps_classifying(tmp_path, daemons):
    """The broker refuses the CONNECT: the log names the reason, and the daemon stays up, retrying."""
    broker = locked_broker(tmp_path, ACL)
    try:
        daemon = daemons(*daemon_args(broker, tmp_path, "not-the-password"))
        line = daemon.wait_for_line(lambda text: "could not connect" in text or "refused" in text)
        daemon.wait_for_line(lambda text: "next connection attempt" in text or "could not connect" in text)
        running = daemon.poll() is None
        assert 0 == daemon.stop()
    finally:
        broker.stop()
    assert (True, True) == (running, "Not authorized" in line or "user name or password" in line), line


def test_a_publish_outside_the_acl_is_logged_with_its_topic_and_counted_in_metrics(tmp_path, daemons):
    """Without Home Assistant's prefix in the ACL, the discovery publish is denied: a WARNING naming the topic, and
    metrics.mqtt.publish_denied above 0, while results still go out."""
    broker = locked_broker(tmp_path, ACL.replace("topic readwrite homeassistant/#\n", ""))
    watcher = Collector(broker.port, f"edge-classifier/{DEVICE}/#")
    try:
        daemon = daemons(*daemon_args(broker, tmp_path, PASSWORD))
        line = daemon.wait_for_line(lambda text: "denied a publish to homeassistant/" in text)
        watcher.wait_for(lambda m: m.topic.endswith("/metrics") and json.loads(m.payload)["mqtt"]["publish_denied"])
        watcher.wait_for(lambda m: m.topic.endswith("/result"))
        assert 0 == daemon.stop()
    finally:
        watcher.close()
        broker.stop()
    assert (True, True) == ("WARNING" in line, "Not authorized" in line), line
