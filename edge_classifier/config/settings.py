"""Typed, immutable configuration: YAML file + `--set key=value` overrides, validated at start-up."""

from __future__ import annotations

import os
import socket
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from edge_classifier.catalogue.settings import CatalogueConfig
from edge_classifier.config.from_yaml import build_dataclass, set_dotted, show
from edge_classifier.config.mqtt_values import check_host, check_length, check_names, check_prefix, check_text
from edge_classifier.config.yaml_reading import read_config_file
from edge_classifier.errors import ConfigError
from edge_classifier.homeassistant.settings import HomeAssistantConfig
from edge_classifier.http.settings import HttpConfig, check_http
from edge_classifier.model.preprocess import Preprocessing, PreprocessingValueError
from edge_classifier.mqtt.topics import sanitize_device_id
from edge_classifier.outbox.settings import OutboxConfig

LogLevel = Literal["debug", "info", "warning", "error"]


def _limits(low: float | None = None, high: float | None = None) -> dict[str, Any]:
    return {"low": low, "high": high}


@dataclass(frozen=True)
class SourceConfig:
    """Where frames come from."""

    # Device index (0), device path (/dev/video0), video file, rtsp:// or http:// URL,
    # GStreamer pipeline (contains '!'), or a glob of images (contains * ? or [).
    uri: int | str = 0
    width: int | None = field(default=None, metadata=_limits(1, 16384))
    height: int | None = field(default=None, metadata=_limits(1, 16384))
    fps: float | None = field(default=None, metadata=_limits(0.1, 1000))
    # Files only: "native" plays at the file's frame rate (like a camera, freshest frame wins);
    # "max" hands every frame to the classifier as fast as it can take them.
    file_rate: Literal["native", "max"] = "native"
    loop: bool = False
    # Files and streams (FFmpeg): decoder threads; 0 lets FFmpeg choose. One leaves the other
    # cores to inference and, measured on the sample video, decodes faster than two.
    decode_threads: int = field(default=1, metadata=_limits(0, 64))
    stall_timeout_s: float = field(default=5.0, metadata=_limits(0.1, 3600))
    open_timeout_s: float = field(default=10.0, metadata=_limits(0.1, 3600))
    reopen_backoff_s: float = field(default=0.5, metadata=_limits(0.01, 3600))
    reopen_backoff_max_s: float = field(default=30.0, metadata=_limits(0.01, 3600))


@dataclass(frozen=True)
class PreprocessingConfig:
    """Only for a model without a manifest."""

    color_order: Literal["RGB", "BGR", "GRAY"] = "RGB"
    interpolation: Literal["nearest", "linear", "linear_exact", "area", "cubic"] = "area"
    mean: tuple[float, ...] = (127.5, 127.5, 127.5)
    std: tuple[float, ...] = (127.5, 127.5, 127.5)
    output_kind: Literal["probabilities", "logits"] = "probabilities"


@dataclass(frozen=True)
class ModelConfig:
    """Which model to run and how."""

    manifest: Path | None = None  # None: the default model
    path: Path | None = None  # a .tflite without manifest (needs labels)
    labels: Path | None = None
    preprocessing: PreprocessingConfig = PreprocessingConfig()
    crop: Literal["center", "squash"] | None = None  # None: what the manifest says
    num_threads: int = field(default=2, metadata=_limits(1, 64))
    selftest: bool = True
    # Served when the configured model is missing, corrupt or fails its self-test (said loudly in the log, status
    # and metrics); a bundled model's name or a manifest path. null: no fallback, such a model stops the start-up.
    fallback_manifest: Path | None = Path("clothing-mobilenetv2")  # the bundled default model


DEFAULT_MIN_SCORE = 0.5


@dataclass(frozen=True)
class ResultConfig:
    """How per-frame scores become a stable label."""

    top_k: int = field(default=3, metadata=_limits(1, 100))
    vote_window: int = field(default=5, metadata=_limits(1, 1000))
    # None: the model manifest's calibrated rejection.min_score, else DEFAULT_MIN_SCORE.
    min_score: float | None = field(default=None, metadata=_limits(0.0, 1.0))
    heartbeat_s: float = field(default=30.0, metadata=_limits(0.1, 86400))


@dataclass(frozen=True)
class MqttConfig:
    """Broker connection and what is published."""

    host: str = "localhost"
    port: int = field(default=1883, metadata=_limits(1, 65535))
    username: str | None = None
    # The password comes from password_file, or from systemd's $CREDENTIALS_DIRECTORY/mqtt_password.
    password_file: Path | None = None
    tls: bool = False
    ca_file: Path | None = None
    prefix: str = "edge-classifier"
    keepalive_s: int = field(default=30, metadata=_limits(5, 3600))
    # At start-up, wait this long for the broker before classifying, so first results are not lost.
    connect_wait_s: float = field(default=2.0, metadata=_limits(0.0, 600))
    reconnect_min_s: float = field(default=1.0, metadata=_limits(0.1, 3600))
    reconnect_max_s: float = field(default=60.0, metadata=_limits(0.1, 3600))
    # MQTT 5 reports a denied publish in its PUBACK; mqttv311 for brokers without MQTT 5.
    protocol: Literal["mqttv5", "mqttv311"] = "mqttv5"
    # Unable to publish for longer than this, the daemon stops feeding the systemd watchdog, which then
    # restarts it; 0: never.
    max_offline_s: float = field(default=3600.0, metadata=_limits(0.0, 604800))
    qos: int = field(default=1, metadata=_limits(0, 1))
    publish_inference: bool = False
    inference_max_hz: float = field(default=2.0, metadata=_limits(0.01, 1000))
    metrics_interval_s: float = field(default=10.0, metadata=_limits(0.1, 86400))


@dataclass(frozen=True)
class Config:
    """The whole configuration."""

    device_id: str = ""  # empty: the host name
    log_level: LogLevel = "info"
    # What must survive a restart. null: /var/lib/edge-classifier when it exists and is writable, else
    # $XDG_STATE_HOME/edge-classifier (~/.local/state/edge-classifier); see state_directory().
    state_dir: Path | None = None
    source: SourceConfig = SourceConfig()
    model: ModelConfig = ModelConfig()
    result: ResultConfig = ResultConfig()
    mqtt: MqttConfig = MqttConfig()
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    http: HttpConfig = HttpConfig()
    homeassistant: HomeAssistantConfig = field(default_factory=HomeAssistantConfig)
    catalogue: CatalogueConfig = field(default_factory=CatalogueConfig)

    @property
    def device(self) -> str:
        return sanitize_device_id(self.device_id or socket.gethostname())


SYSTEM_STATE_DIR = Path("/var/lib/edge-classifier")  # systemd's StateDirectory= for the service


def state_directory(config: Config) -> Path:
    """state_dir, else /var/lib/edge-classifier when it exists and is writable, else the user's state directory."""
    if config.state_dir is not None:
        return config.state_dir
    if SYSTEM_STATE_DIR.is_dir() and os.access(SYSTEM_STATE_DIR, os.W_OK | os.X_OK):
        return SYSTEM_STATE_DIR
    xdg = os.environ.get("XDG_STATE_HOME", "")
    return (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "state") / "edge-classifier"


def load_config(path: Path | None = None, overrides: tuple[str, ...] = ()) -> Config:
    """Read, merge and validate; every problem is a ConfigError naming the dotted key and value."""
    tree: Any = {} if path is None else read_config_file(path)
    for assignment in overrides:
        set_dotted(tree, assignment)
    config: Config = build_dataclass(Config, tree, "")
    _check_not_below(
        "mqtt.reconnect_max_s", config.mqtt.reconnect_max_s, "mqtt.reconnect_min_s", config.mqtt.reconnect_min_s
    )
    _check_not_below(
        "source.reopen_backoff_max_s", config.source.reopen_backoff_max_s, "source.reopen_backoff_s",
        config.source.reopen_backoff_s,
    )  # fmt: skip
    if config.model.path is not None and config.model.manifest is not None:
        raise ConfigError(
            f"model.path: give either model.manifest or model.path, not both (path {str(config.model.path)!r})"
        )
    if config.model.path is not None and config.model.labels is None:
        raise ConfigError("model.labels: required with model.path (a model without a manifest needs a labels file)")
    pre = config.model.preprocessing
    try:
        Preprocessing(pre.color_order, "center", pre.interpolation, pre.mean, pre.std)
    except PreprocessingValueError as exc:
        raise ConfigError(f"model.preprocessing.{exc.field}: {exc}") from None
    if config.mqtt.ca_file is not None and not config.mqtt.tls:
        raise ConfigError(f"mqtt.ca_file: {str(config.mqtt.ca_file)!r} is set but mqtt.tls is false")
    _check_mqtt(config)
    check_http(config.http)
    return config


@dataclass(frozen=True)
class ConfigSource:
    """Where the running configuration came from, so that a reload (SIGHUP, the reload command) reads it again."""

    path: Path | None = None
    overrides: tuple[str, ...] = ()

    def load(self) -> Config:
        return load_config(self.path, self.overrides)


def _check_not_below(high_key: str, high: float, low_key: str, low: float) -> None:
    if high < low:
        raise ConfigError(f"{high_key}: {high} is below {low_key} {low}")


def _check_mqtt(config: Config) -> None:
    """Refuse now what MQTT cannot carry: paho's network thread would die on it later, or retry forever."""
    mqtt = config.mqtt
    check_host(mqtt.host)
    check_prefix(mqtt.prefix)
    if mqtt.username is not None:
        check_text("mqtt.username", mqtt.username)
        check_length("mqtt.username", mqtt.username)
    check_text("device_id", config.device_id)
    device_id = config.device_id or socket.gethostname()
    try:
        device = sanitize_device_id(device_id)
    except ValueError:
        given = show(device_id) if config.device_id else f"is not set and the host name {show(device_id)}"
        raise ConfigError(f"device_id: {given} has no letter or digit to name the device by") from None
    check_names(mqtt.prefix, device, device_id)


def mqtt_password(config: MqttConfig) -> str | None:
    """The broker password from password_file or systemd's credential, never from the YAML itself."""
    candidates = [config.password_file] if config.password_file else []
    if os.environ.get("CREDENTIALS_DIRECTORY"):
        candidates.append(Path(os.environ["CREDENTIALS_DIRECTORY"]) / "mqtt_password")
    for candidate in candidates:
        try:
            # Never open a FIFO or device: reading one could block start-up forever.
            mode = candidate.stat().st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ConfigError(f"mqtt.password_file: cannot read {candidate}: {exc.strerror}") from None
        if stat.S_ISDIR(mode):
            raise ConfigError(f"mqtt.password_file: {str(candidate)!r} is a directory")
        if not stat.S_ISREG(mode):
            raise ConfigError(f"mqtt.password_file: {str(candidate)!r} is not a regular file")
        try:
            # An empty file (the installer creates one) means: no password.
            password = candidate.read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise ConfigError(f"mqtt.password_file: cannot read {candidate}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"mqtt.password_file: {candidate} is not UTF-8 text") from None
        if password is not None:
            # Never show the password itself.
            check_text("mqtt.password_file", password, f"the password in {candidate}")
            check_length("mqtt.password_file", password, f"the password in {candidate}")
        return password
    if config.password_file:
        raise ConfigError(f"mqtt.password_file: {str(config.password_file)!r} does not exist")
    return None
