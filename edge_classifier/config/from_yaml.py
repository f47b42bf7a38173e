"""Typed trees: plain YAML values checked against frozen dataclasses, every error naming the dotted key."""

from __future__ import annotations

import dataclasses
import math
import reprlib
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from edge_classifier.config.yaml_reading import parse_yaml
from edge_classifier.errors import ConfigError

# Values in messages are cut short: an error stays one readable line for a 70,000-character string
# or a structure built from YAML aliases (whose full repr would never finish).
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = 6
_SHORT.maxlevel = 2


def show(value: Any) -> str:
    """repr() of a value for a one-line message, shortened."""
    return _SHORT.repr(value)


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
        return build_dataclass(hint, value, key)
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


def build_dataclass(cls: Any, data: Any, prefix: str) -> Any:
    """A frozen dataclass from a tree of plain values; ConfigError naming the dotted key on any mismatch."""
    if isinstance(data, _Typed):
        data = data.parsed
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping of keys, got {show(data)}")
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
            if value is None:
                # `key: #3` is `key:` and a comment to YAML, which is easy to miss.
                raise ConfigError(f"{key}: expected {exc}, got nothing: YAML read the value as empty "
                                  "('#' starts a comment; quote a value that begins with it)") from None  # fmt: skip
            raise ConfigError(f"{key}: expected {exc}, got {show(value)}") from None
    return cls(**kwargs)


# What YAML reads as null on purpose; anything else it reads as null (`#3`, `---`) was meant as text.
_NULLS = ("", "~", "null", "Null", "NULL")


def set_dotted(tree: dict[str, Any], assignment: str) -> None:
    """Apply one `--set KEY=VALUE` to the tree; the value stays text and YAML until its key's type is known."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {show(assignment)}: expected KEY=VALUE, for example mqtt.host=broker.local")
    try:
        value = parse_yaml(raw, f"--set {key}", key) if raw else ""
    except yaml.YAMLError:
        value = raw
    if (isinstance(value, str) and value != raw.strip()) or (value is None and raw.strip() not in _NULLS):
        value = raw  # YAML ate part or all of it ('#' comment, '---' marker, quotes): the user meant the text as typed
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
