"""Typed, immutable configuration: YAML file + `--set key=value` overrides, validated at start-up."""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from .errors import ConfigError
from .topics import sanitize_device_id

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


@dataclass(frozen=True)
class ResultConfig:
    """How per-frame scores become a stable label."""

    top_k: int = field(default=3, metadata=_limits(1, 100))
    vote_window: int = field(default=5, metadata=_limits(1, 1000))
    min_score: float = field(default=0.5, metadata=_limits(0.0, 1.0))
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


def _describe(hint: Any) -> str:
    if hint is type(None):
        return "null"
    origin = get_origin(hint)
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(hint))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(hint))
    if origin is tuple:
        return "a list of numbers"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false", Path: "a path"}.get(
        hint, str(hint)
    )


@dataclass(frozen=True)
class _Typed:
    """A --set value as typed and as YAML reads it; the key's type decides which one counts."""

    text: str
    parsed: Any


def _text_wanted(hint: Any) -> bool:
    """A key that holds text (a string or a path), and never a number, takes a --set value as typed."""
    options = get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)
    return any(o in (str, Path) for o in options) and not any(o in (int, float, bool) for o in options)


def _resolve(value: Any, hint: Any) -> Any:
    if not isinstance(value, _Typed):
        return value
    # `--set device_id=0042` means the text 0042 (YAML reads 42), `--set mqtt.username=null` still null.
    if _text_wanted(hint) and value.parsed is not None and not isinstance(value.parsed, str):
        return value.text.strip()
    return value.parsed


def _convert(key: str, value: Any, hint: Any, meta: dict[str, Any]) -> Any:
    """Value checked against a type hint; ValueError(message) if it does not fit."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        concrete = [o for o in options if o is not type(None)]
        for option in concrete:
            try:
                return _convert(key, value, option, meta)
            except ValueError as exc:
                last = exc
        # With one real alternative (an optional value) its own message, range included, is clearest.
        raise last if len(concrete) == 1 else ValueError(_describe(hint))
    if hint is type(None):
        if value is None:
            return None
        raise ValueError("null")
    if origin is Literal:
        if value in get_args(hint):
            return value
        raise ValueError(_describe(hint))
    if origin is tuple:
        if (
            isinstance(value, list)
            and value
            and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        ):
            return tuple(float(v) for v in value)
        raise ValueError("a non-empty list of finite numbers")
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ValueError("true or false")
    if hint in (int, float):
        low, high = meta.get("low"), meta.get("high")
        wanted = _describe(hint) + (f" from {low:g} to {high:g}" if low is not None else "")
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (hint is int and not isinstance(value, int))
        ):
            raise ValueError(wanted)
        if not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
            raise ValueError(wanted)
        return hint(value)
    if hint is str:
        if isinstance(value, str):
            return value
        raise ValueError("a string")
    if hint is Path:
        if isinstance(value, str) and value:
            return Path(value).expanduser()
        raise ValueError("a path")
    raise TypeError(f"unsupported config type {hint!r} for {key}")


def _build(cls: Any, data: Any, prefix: str) -> Any:
    if isinstance(data, _Typed):
        data = data.parsed
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping of keys, got {data!r}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields), key=str)
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else str(unknown[0])
        raise ConfigError(f"{key}: unknown key (known keys here: {', '.join(fields)})")
    kwargs = {}
    for name, given in data.items():
        key = f"{prefix}.{name}" if prefix else name
        value = _resolve(given, hints[name])
        try:
            kwargs[name] = _convert(key, value, hints[name], dict(fields[name].metadata))
        except ValueError as exc:
            raise ConfigError(f"{key}: expected {exc}, got {value!r}") from None
    return cls(**kwargs)


def _set_dotted(tree: dict[str, Any], assignment: str) -> None:
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, for example mqtt.host=broker.local")
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str) and value != raw.strip():
        value = raw  # YAML ate part of it (a '#' comment, quotes): the user meant the text as typed
    if not isinstance(value, dict | list):
        value = _Typed(raw, value)
    node = tree
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {part} is not a section")
        node = child
    node[parts[-1]] = value


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
        _set_dotted(tree, assignment)
    config: Config = _build(Config, tree, "")
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
    channels = 1 if pre.color_order == "GRAY" else 3
    for name, values in (("mean", pre.mean), ("std", pre.std)):
        if len(values) not in (1, channels):
            raise ConfigError(
                f"model.preprocessing.{name}: color_order {pre.color_order} needs "
                f"{'1 value' if channels == 1 else '1 or 3 values'}, got {list(values)}"
            )
    if any(s <= 0 for s in pre.std):
        raise ConfigError(f"model.preprocessing.std: every value must be positive, got {list(pre.std)}")
    if config.mqtt.ca_file is not None and not config.mqtt.tls:
        raise ConfigError(f"mqtt.ca_file: {str(config.mqtt.ca_file)!r} is set but mqtt.tls is false")
    if not config.mqtt.prefix or any(c in config.mqtt.prefix for c in "#+") or config.mqtt.prefix.startswith("/"):
        raise ConfigError(
            f"mqtt.prefix: expected a topic prefix without '#', '+' or a leading '/', got {config.mqtt.prefix!r}"
        )
    return config


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
