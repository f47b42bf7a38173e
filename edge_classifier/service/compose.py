"""The composition root: the one place that builds the service from a Config (used by run, bench and probes)."""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge_classifier.capture.frames import Wakeable
from edge_classifier.capture.opening import check_source
from edge_classifier.capture.source import FrameSource, OpenCVSource
from edge_classifier.catalogue.runtime import open_catalogue
from edge_classifier.commands.center import CommandCenter
from edge_classifier.config.settings import Config, ConfigSource, mqtt_password, state_directory
from edge_classifier.homeassistant.component import discovery_component
from edge_classifier.learning.daemon import TaughtComponent
from edge_classifier.model.classifier import Classifier
from edge_classifier.model.identity import ModelInfo
from edge_classifier.model.loading import LoadedModel, load_with_fallback
from edge_classifier.mqtt.client import MqttPublisher, Publisher, tls_context
from edge_classifier.mqtt.topics import Topics
from edge_classifier.outbox.opening import open_outbox
from edge_classifier.outbox.outbox import Outbox
from edge_classifier.outbox.sink import OutboxComponent, OutboxPublisher
from edge_classifier.service.hot_swap import ModelKeeper
from edge_classifier.service.inbox import Inbox
from edge_classifier.service.live_settings import LiveSettings
from edge_classifier.service.loop import LoopParts, MainLoop
from edge_classifier.service.metrics import Metrics
from edge_classifier.service.notify import Notifier
from edge_classifier.service.operator import OperatorRequests
from edge_classifier.service.reporter import Reporter
from edge_classifier.service.routes import build_router
from edge_classifier.service.state import RuntimeState

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Seams:
    """Replacements for the I/O edges (bench, probes, tests); None means the real one the config describes."""

    source: FrameSource | None = None
    publisher: Publisher | None = None
    notifier: Notifier | None = None
    model: tuple[Classifier, ModelInfo] | None = None
    clock: Callable[[], float] = time.monotonic
    outbox: Outbox | None = None  # None: the one the config describes with the real publisher, none with a seam


@dataclass(frozen=True)
class Service:
    """A wired service: run `loop` on one thread; other threads use `inbox` and read `state` and `metrics`."""

    loop: MainLoop
    inbox: Inbox
    state: RuntimeState
    metrics: Metrics


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


def open_publisher(
    config: Config, topics: Topics, tls: ssl.SSLContext | None, stop: threading.Event, outbox: Outbox | None = None
) -> MqttPublisher:
    mqtt = config.mqtt
    publisher = MqttPublisher(
        mqtt.host, mqtt.port, topics.client_id, topics.status,
        username=mqtt.username, password=mqtt_password(mqtt), tls=tls,
        keepalive_s=mqtt.keepalive_s, reconnect_min_s=mqtt.reconnect_min_s, reconnect_max_s=mqtt.reconnect_max_s,
        protocol=mqtt.protocol, max_offline_s=mqtt.max_offline_s,
        delivery=outbox.deliveries if outbox is not None else None,
    )  # fmt: skip
    if not wait_for_broker(publisher, mqtt.connect_wait_s, stop) and not stop.is_set():
        logger.warning("broker %s:%d not reachable yet; classifying anyway and retrying", mqtt.host, mqtt.port)
    return publisher


def build_service(
    config: Config,
    stack: contextlib.ExitStack,
    stop: threading.Event,
    seams: Seams | None = None,
    operator: OperatorRequests | None = None,
    config_source: ConfigSource | None = None,
) -> Service:
    """Open every resource into `stack` (closed in reverse order) and wire the loop; errors are EdgeClassifierError."""
    seams = seams or Seams()
    started = seams.clock()
    topics = Topics(config.mqtt.prefix, config.device)
    if seams.source is None:
        check_source(config.source)
    # A bad CA file is a configuration error, found before the model loads.
    tls = tls_context(config.mqtt.ca_file) if config.mqtt.tls and seams.publisher is None else None
    notifier = stack.enter_context(seams.notifier or Notifier())
    loaded = LoadedModel(*seams.model) if seams.model else load_with_fallback(config.model)
    classifier, model = loaded.classifier, loaded.info
    stack.callback(classifier.close)  # the loop may swap models: it closes the one serving (below)
    # Results wait here until acknowledged; opened before the publisher and closed after it, so that the PUBACKs
    # its close flushes still delete their rows. A publisher seam (bench, tests) acknowledges nothing: no outbox.
    outbox = seams.outbox or (open_outbox(config) if seams.publisher is None else None)
    if outbox is not None:
        stack.enter_context(outbox)
    publisher = seams.publisher or open_publisher(config, topics, tls, stop, outbox)
    stack.callback(publisher.close)
    commands = CommandCenter(config, topics, config_source, seams.clock)
    router = build_router(config, topics, commands)
    for topic_filter, qos in router.subscriptions():
        publisher.subscribe(topic_filter, qos)
    source = seams.source or OpenCVSource(config.source)
    stack.callback(source.close)
    stack.callback(notifier.stopping)
    settings = LiveSettings.resolve(config.result, classifier)
    mqtt = config.mqtt
    now = seams.clock()
    reporter = Reporter(
        topics, mqtt.qos, settings.heartbeat_s,
        1.0 / mqtt.inference_max_hz if mqtt.publish_inference else None, mqtt.metrics_interval_s, now,
        log=outbox,
    )  # fmt: skip
    outbox_sink: OutboxPublisher | None = None
    if outbox is not None:
        publisher = outbox_sink = OutboxPublisher(publisher, outbox, topics.result)
        logger.info("%s; boot_id %s", outbox.describe(), reporter.boot_id)
    metrics = Metrics(seams.clock)
    inbox = Inbox(on_submit=source.wake if isinstance(source, Wakeable) else None)
    state = RuntimeState(model, source.stats(), publisher.stats(), loaded.fallback)
    parts = LoopParts(
        config.device, source, publisher, classifier, model, settings, reporter, metrics, notifier, inbox, state,
        seams.clock, operator or OperatorRequests(), router, [commands], ModelKeeper(loaded.fallback), commands.reload,
    )  # fmt: skip
    # A publisher seam (bench, tests) reaches no Home Assistant: nothing to record.
    if (discovery := discovery_component(config, topics, keep_record=seams.publisher is None)) is not None:
        parts.components.append(discovery)
    if outbox_sink is not None:
        parts.results = outbox_sink
        parts.components.append(OutboxComponent(outbox_sink))
    if (catalogue := open_catalogue(config.catalogue, state_directory(config), classifier, model)) is not None:
        parts.catalogue = catalogue
        parts.components.append(catalogue)  # reloads the index when it is rebuilt or another model serves
    parts.taught = TaughtComponent(state_directory(config))  # taught classes: read now, again when they change
    parts.taught.refresh(model.sha256, classifier.embedding_spec)
    parts.components.append(parts.taught)
    loop = MainLoop(parts)
    stack.callback(loop.close)
    stack.callback(inbox.close)
    logger.info(
        "device %s: %s -> %s %s (unknown below %.2f) -> mqtt %s:%d %s/# (start-up %.2fs)",
        config.device, config.source.uri, model.name, model.version, settings.min_score,
        mqtt.host, mqtt.port, topics.base, seams.clock() - started,
    )  # fmt: skip
    return Service(loop, inbox, state, metrics)


def run_service(
    config: Config,
    stop: threading.Event,
    operator: OperatorRequests | None = None,
    config_source: ConfigSource | None = None,
) -> str:
    """Run until stopped or a finite source ends; start-up problems raise EdgeClassifierError."""
    with contextlib.ExitStack() as stack:
        service = build_service(config, stack, stop, operator=operator, config_source=config_source)
        if config.http.enabled:
            from edge_classifier.http.server import open_http  # waitress and friends load only when enabled

            stack.enter_context(open_http(config, service))  # closed first: streams end, waiting predictions fail
        return service.loop.run(stop)
