"""Command payloads: strict JSON objects of bounded size, checked against the schemas/cmd-*.schema.json files.

The schemas are compiled once by fastjsonschema: a well-kept library that adds 1.4 MB RSS to the daemon, against
3.9 MB for jsonschema (referencing, rpds-py, attrs) and 0.07 MB for a hand-written validator (measured with the
default model loaded, 600 validations each). The request schemas use only keywords that mean the same in draft 7,
which fastjsonschema implements, and in the 2020-12 dialect they declare; the tests check both against jsonschema.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastjsonschema

from edge_classifier.commands.outcome import CommandError

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
MAX_PAYLOAD_BYTES = 8192  # a model path is the longest value a command takes (4096); catalogue/add: more
MAX_MESSAGE_CHARS = 200  # of a value shown in an error: an acknowledgement stays short whatever was sent
ID_MAX_CHARS = 128


def schema_path(command: str) -> Path:
    """schemas/cmd-<name>.schema.json, a '/' in the name as '-' (model/load: cmd-model-load.schema.json)."""
    return SCHEMAS / f"cmd-{command.replace('/', '-')}.schema.json"


def short(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """One line of at most `limit` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


class _DuplicateKeyError(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKeyError(f"key {short(key, 60)!r} given twice")
            seen.add(key)
    return document


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "true or false", type(None): "null"}
    return names.get(type(value), "a number")


def parse_payload(payload: bytes, limit: int = MAX_PAYLOAD_BYTES) -> dict[str, Any]:
    """The payload as a JSON object; CommandError (invalid) for anything else, too big, or not strictly JSON."""
    if len(payload) > limit:
        raise CommandError("invalid", f"payload is {len(payload)} bytes; a command takes at most {limit}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError("invalid", "payload is not UTF-8 text") from None
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError:
        raise CommandError("invalid", "payload nests too deeply") from None
    except json.JSONDecodeError as exc:
        raise CommandError("invalid", f"payload is not JSON: {exc.msg} at character {exc.pos}") from None
    except ValueError as exc:  # a duplicate key, NaN or Infinity, an integer too long to convert
        raise CommandError("invalid", f"payload is not strict JSON: {short(str(exc))}") from None
    if not isinstance(document, dict):
        raise CommandError("invalid", f"payload must be a JSON object, got {_kind(document)}")
    return document


def request_id(document: Any) -> str | None:
    """The request's `id` when it is one that can be echoed (a short string without control characters)."""
    value = document.get("id") if isinstance(document, dict) else None
    if not isinstance(value, str) or not 0 < len(value) <= ID_MAX_CHARS:
        return None
    return value if all(ord(c) >= 0x20 and c != "\x7f" for c in value) else None


class RequestSchema:
    """One command's request schema, compiled when the command first comes: a kiosk that never gets a command
    does not hold the compiled validators (1.6 MB of the daemon's anonymous memory for all of them)."""

    def __init__(self, command: str):
        self.path = schema_path(command)
        self.schema = json.loads(self.path.read_text(encoding="utf-8"))
        self._validate: Callable[[dict[str, Any]], object] | None = None

    def check(self, document: dict[str, Any]) -> None:
        """CommandError (invalid) naming the key and the rule the document breaks."""
        if self._validate is None:
            self._validate = fastjsonschema.compile(self.schema)
        try:
            self._validate(document)
        except fastjsonschema.JsonSchemaValueException as exc:
            raise CommandError("invalid", describe(exc)) from None


def describe(exc: fastjsonschema.JsonSchemaValueException) -> str:
    """fastjsonschema's `data.key must ...` as `key: must ...`, a `not` rule (control characters) in plain words."""
    path = [str(part) for part in (exc.path or [])[1:]]
    where = ".".join(path) if path else "payload"
    if exc.rule == "not":
        return short(f"{where}: must not contain control characters")
    rule = exc.message.split(" ", 1)[1] if " " in exc.message else exc.message
    return short(f"{where}: {rule}")
