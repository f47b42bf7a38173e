"""The composition root: builds the running service from a Config (model, self-test, source, publisher, loop)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from edge_classifier.capture.opening import check_source
from edge_classifier.capture.source import OpenCVSource
from edge_classifier.config.settings import Config, mqtt_password
from edge_classifier.model.loading import min_score, open_classifier
from edge_classifier.mqtt.client import MqttPublisher, tls_context
from edge_classifier.mqtt.topics import Topics
from edge_classifier.service.loop import LoopSettings, run_loop
from edge_classifier.service.metrics import Metrics
from edge_classifier.service.notify import Notifier
from edge_classifier.service.payloads import Reporter
from edge_classifier.service.voting import Voter

logger = logging.getLogger(__name__)


def wait_for_broker(publisher: MqttPublisher, seconds: float, stop: threading.Event) -> bool:
    """Wait for the first connection, but give up at once on a stop request (systemd's stop timeout is short)."""
    deadline = time.monotonic() + seconds
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if publisher.wait_connected(min(max(remaining, 0.0), 0.1)):
            return True
        if remaining <= 0:
            return False
    return False


def run_service(config: Config, stop: threading.Event) -> str:
    """Run until stopped or a finite source ends; start-up problems raise EdgeClassifierError."""
    started = time.monotonic()
    device_id = config.device
    topics = Topics(config.mqtt.prefix, device_id)
    check_source(config.source)
    tls = tls_context(config.mqtt.ca_file) if config.mqtt.tls else None
    with contextlib.ExitStack() as stack:
        notifier = stack.enter_context(Notifier())
        classifier, model = open_classifier(config.model)
        stack.enter_context(classifier)
        mqtt = config.mqtt
        publisher = stack.enter_context(
            MqttPublisher(
                mqtt.host, mqtt.port, topics.client_id, topics.status,
                username=mqtt.username, password=mqtt_password(mqtt), tls=tls,
                keepalive_s=mqtt.keepalive_s,
                reconnect_min_s=mqtt.reconnect_min_s, reconnect_max_s=mqtt.reconnect_max_s,
            )
        )  # fmt: skip
        if not wait_for_broker(publisher, mqtt.connect_wait_s, stop) and not stop.is_set():
            logger.warning("broker %s:%d not reachable yet; classifying anyway and retrying", mqtt.host, mqtt.port)
        source = stack.enter_context(OpenCVSource(config.source))
        stack.callback(notifier.stopping)
        threshold = min_score(config.result, classifier)
        logger.info(
            "device %s: %s -> %s %s (unknown below %.2f) -> mqtt %s:%d %s/# (start-up %.2fs)",
            device_id, config.source.uri, model.name, model.version, threshold, mqtt.host, mqtt.port, topics.base,
            time.monotonic() - started,
        )  # fmt: skip
        now = time.monotonic()
        reporter = Reporter(
            publisher, topics, mqtt.qos, config.result.heartbeat_s,
            1.0 / mqtt.inference_max_hz if mqtt.publish_inference else None, mqtt.metrics_interval_s, now,
        )  # fmt: skip
        return run_loop(
            LoopSettings(device_id, model, config.result.top_k),
            source, classifier, publisher, reporter,
            Voter(config.result.vote_window, threshold), Metrics(), notifier, stop,
        )  # fmt: skip
