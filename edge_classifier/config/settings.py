"""Typed, immutable configuration: YAML file + `--set key=value` overrides, validated at start-up."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from edge_classifier.config.from_yaml import build_dataclass, set_dotted
from edge_classifier.errors import ConfigError
from edge_classifier.model.preprocess import Preprocessing, PreprocessingValueError
from edge_classifier.mqtt.topics import sanitize_device_id

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
    qos: int = field(default=1, metadata=_limits(0, 1))
    publish_inference: bool = False
    inference_max_hz: float = field(default=2.0, metadata=_limits(0.01, 1000))
    metrics_interval_s: float = field(default=10.0, metadata=_limits(0.1, 86400))


@dataclass(frozen=True)
class Config:
    """The whole configuration."""

    device_id: str = ""  # empty: the host name
    log_level: LogLevel = "info"
    source: SourceConfig = SourceConfig()
    model: ModelConfig = ModelConfig()
    result: ResultConfig = ResultConfig()
    mqtt: MqttConfig = MqttConfig()

    @property
    def device(self) -> str:
        return sanitize_device_id(self.device_id or socket.gethostname())


def load_config(path: Path | None = None, overrides: tuple[str, ...] = ()) -> Config:
    """Read, merge and validate; every problem is a ConfigError naming the dotted key and value."""
    tree: Any = {}
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path} is not UTF-8 text") from None
        try:
            tree = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise ConfigError(f"config file {path} is not valid YAML{where}") from None
        tree = {} if tree is None else tree
        if not isinstance(tree, dict):
            raise ConfigError(f"config file {path}: expected a mapping of keys at the top level")
    for assignment in overrides:
        set_dotted(tree, assignment)
    config: Config = build_dataclass(Config, tree, "")
    if config.mqtt.reconnect_max_s < config.mqtt.reconnect_min_s:
        raise ConfigError(
            f"mqtt.reconnect_max_s: {config.mqtt.reconnect_max_s} is below "
            f"mqtt.reconnect_min_s {config.mqtt.reconnect_min_s}"
        )
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
    _check_host(config.mqtt.host)
    if not config.mqtt.prefix or any(c in config.mqtt.prefix for c in "#+") or config.mqtt.prefix.startswith("/"):
        raise ConfigError(
            f"mqtt.prefix: expected a topic prefix without '#', '+' or a leading '/', got {config.mqtt.prefix!r}"
        )
    return config


def _check_host(host: str) -> None:
    """Refuse a host name paho cannot encode: its network thread would die on it and never reconnect."""
    try:
        valid = bool(host) and host == host.strip() and bool(host.encode("idna"))
    except UnicodeError:
        valid = False
    if not valid:
        raise ConfigError(f"mqtt.host: {host!r} is not a host name or IP address")


def mqtt_password(config: MqttConfig) -> str | None:
    """The broker password from password_file or systemd's credential, never from the YAML itself."""
    candidates = [config.password_file] if config.password_file else []
    if os.environ.get("CREDENTIALS_DIRECTORY"):
        candidates.append(Path(os.environ["CREDENTIALS_DIRECTORY"]) / "mqtt_password")
    for candidate in candidates:
        if candidate and candidate.is_file():
            try:
                # An empty file (the installer creates one) means: no password.
                return candidate.read_text(encoding="utf-8").strip() or None
            except OSError as exc:
                raise ConfigError(f"mqtt.password_file: cannot read {candidate}: {exc.strerror}") from None
            except UnicodeDecodeError:
                raise ConfigError(f"mqtt.password_file: {candidate} is not UTF-8 text") from None
    if config.password_file:
        raise ConfigError(f"mqtt.password_file: {str(config.password_file)!r} does not exist")
    return None
