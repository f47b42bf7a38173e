"""Assembles the running service from a Config: model, self-test, source, publisher, loop."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path

from .capture import OpenCVSource
from .classifier import Classifier, run_selftest
from .config import DEFAULT_MIN_SCORE, Config, ModelConfig, ResultConfig, mqtt_password
from .errors import ModelError
from .loop import LoopSettings, run_loop
from .manifest import read_labels, sha256_file
from .metrics import Metrics
from .notify import Notifier
from .preprocess import Preprocessing
from .publisher import MqttPublisher, tls_context
from .reporting import ModelInfo, Reporter
from .sources import check_source
from .topics import Topics
from .voting import Voter

logger = logging.getLogger(__name__)

# Real garment photos (clothing-dataset-small); `fashion-mobilenetv2` is the bundled Fashion-MNIST model.
DEFAULT_MODEL = "clothing-mobilenetv2.json"


def default_model_dirs() -> list[Path]:
    """Where the default model is looked for: a source checkout's models/, then the installer's place."""
    checkout = Path(__file__).resolve().parent.parent
    dirs = [checkout / "models"] if (checkout / "pyproject.toml").is_file() else []
    return [*dirs, Path("/var/lib/edge-classifier/models")]


def default_manifest() -> Path:
    for folder in default_model_dirs():
        if (folder / DEFAULT_MODEL).is_file():
            return folder / DEFAULT_MODEL
    places = ", ".join(str(d) for d in default_model_dirs())
    raise ModelError(f"model.manifest not set and the default model {DEFAULT_MODEL} is in none of: {places}")


def resolve_manifest(configured: Path | None) -> Path:
    """The manifest to load: the default model, a path, or a bundled model's bare name (`fashion-mobilenetv2`)."""
    if configured is None:
        return default_manifest()
    if configured.is_file() or configured.parent != Path("."):
        return configured
    name = configured.name if configured.suffix == ".json" else f"{configured.name}.json"
    for folder in default_model_dirs():
        if (folder / name).is_file():
            return folder / name
    places = ", ".join(str(d) for d in default_model_dirs())
    raise ModelError(f"model.manifest {str(configured)!r} is neither a file nor a bundled model in: {places}")


def open_classifier(config: ModelConfig) -> tuple[Classifier, ModelInfo]:
    """Load the configured model; with a manifest, check its sha256 and run its self-test."""
    if config.path is not None:
        assert config.labels is not None  # load_config guarantees it
        pre = config.preprocessing
        spec = Preprocessing(pre.color_order, config.crop or "center", pre.interpolation, pre.mean, pre.std)
        classifier = Classifier(config.path, read_labels(config.labels), spec, pre.output_kind, config.num_threads)
        return classifier, ModelInfo(config.path.stem, "unversioned", sha256_file(config.path))
    manifest_path = resolve_manifest(config.manifest)
    classifier = Classifier.from_manifest(manifest_path, config.num_threads, crop=config.crop)
    manifest = classifier.manifest
    assert manifest is not None
    if config.selftest:
        passed = run_selftest(classifier, manifest.selftest)
        logger.info("model %s %s: self-test passed on %d images", manifest.name, manifest.version, passed)
    return classifier, ModelInfo(manifest.name, manifest.version, manifest.sha256)


def min_score(result: ResultConfig, classifier: Classifier) -> float:
    """The configured min_score, else the one calibrated for the model (its manifest), else the default."""
    if result.min_score is not None:
        return result.min_score
    calibrated = classifier.manifest.min_score if classifier.manifest is not None else None
    return DEFAULT_MIN_SCORE if calibrated is None else calibrated


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
