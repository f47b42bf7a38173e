"""Signals an operator sends: SIGUSR1 logs a status line, SIGHUP reloads the configuration, SIGTERM stops cleanly."""

import contextlib
import logging
import signal
import threading

import pytest

from edge_classifier.config.settings import ConfigSource
from edge_classifier.mqtt.memory import MemoryPublisher
from edge_classifier.service.compose import Seams, build_service
from edge_classifier.service.operator import OperatorRequests
from fakes import FAKE_MODEL, EndlessSource, FakeRunner, fake_classifier
from helpers import SAMPLE_VIDEO, Subscriber


def test_status_and_reload_requests_are_served_by_the_loop(caplog):
    """A status request gives one line with model, label and frames; a reload request one line of what it applied
    (the configuration is read again: with nothing changed, nothing); both clear."""
    operator = OperatorRequests()
    with contextlib.ExitStack() as stack:
        seams = Seams(EndlessSource(100), MemoryPublisher(), model=(fake_classifier(FakeRunner()), FAKE_MODEL))
        config_source = ConfigSource(None, ("device_id=unit",))
        service = build_service(config_source.load(), stack, threading.Event(), seams, operator, config_source)
        for _ in range(3):
            service.loop.step()
        operator.status = operator.reload = True
        with caplog.at_level(logging.INFO, logger="edge_classifier"):
            service.loop.step()
            service.loop.step()
    loggers = ("edge_classifier.service.loop", "edge_classifier.commands.reload")
    lines = [r.getMessage() for r in caplog.records if r.name in loggers]
    assert 2 == len(lines), lines
    assert (True, True, False, False) == (
        lines[0].startswith("status: model fake 1, label hundred (0.90), frames 4,"),
        lines[1].startswith("reload (SIGHUP): applied nothing; restart needed for nothing; serving model fake 1"),
        operator.status,
        operator.reload,
    ), lines


@pytest.mark.slow  # waits for status lines from a running daemon (~10 s)
def test_daemon_survives_sighup_and_sigusr1_then_stops_cleanly(broker, daemons):
    """SIGHUP (a reload) and SIGUSR1 do not kill the daemon: it logs them, keeps publishing; SIGTERM says offline."""
    subscriber = Subscriber(broker.port, "edge-classifier/sig/#")
    try:
        proc = daemons("--source", str(SAMPLE_VIDEO), "--device-id", "sig", "--set", "source.loop=true",
                       "--set", "mqtt.host=127.0.0.1", "--set", f"mqtt.port={broker.port}")  # fmt: skip
        subscriber.wait_for(lambda m: m.topic.endswith("/result"))
        proc.proc.send_signal(signal.SIGHUP)
        hangup = proc.wait_for_line(lambda line: "SIGHUP" in line)
        proc.proc.send_signal(signal.SIGUSR1)
        status = proc.wait_for_line(lambda line: "status: " in line)
        subscriber.wait_for(lambda m: m.topic.endswith("/metrics"))  # still publishing
        code = proc.stop(signal.SIGTERM)
        offline = subscriber.wait_for(lambda m: m.topic.endswith("/status") and m.payload == "offline")
    finally:
        subscriber.close()
    assert (0, "offline", True, True) == (
        code,
        offline.payload,
        "reload (SIGHUP): applied nothing" in hangup,
        "model clothing-mobilenetv2" in status,
    ), proc.log
