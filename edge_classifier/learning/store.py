"""Taught classes on disk: `<state_dir>/taught/<model sha256>.json`, written atomically (temp file + rename).

The file is keyed by the model's sha256 because embeddings of another model live in another space: a model swap
finds no taught classes (or the ones taught for that model), never ones it cannot use. A file whose content names
another model, another length of embedding or is not what this module writes is refused with one line.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from edge_classifier.errors import InputError
from edge_classifier.learning.taught import TaughtClass, TaughtClasses, check_label

SCHEMA = "edge-classifier/taught/v1"


def taught_path(state_dir: Path, model_sha256: str) -> Path:
    """Where the classes taught for this model are kept."""
    return state_dir / "taught" / f"{model_sha256}.json"


def load_taught(path: Path, model_sha256: str, dims: int) -> TaughtClasses:
    """The classes stored at PATH for this model; none when the file does not exist; InputError when unusable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return TaughtClasses(model_sha256, dims)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"taught classes {path}: cannot be read ({exc.__class__.__name__})") from None
    try:
        document = json.loads(text)
        return _from_document(document, model_sha256, dims)
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError(f"taught classes {path}: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON (line {exc.lineno})"
    if isinstance(exc, KeyError):
        return f"missing {exc.args[0]!r}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _from_document(document: Any, model_sha256: str, dims: int) -> TaughtClasses:
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise ValueError(f"not a {SCHEMA} document")
    if document["model_sha256"] != model_sha256:
        raise ValueError(
            f"taught for model sha256 {str(document['model_sha256'])[:12]}..., not this model ({model_sha256[:12]}...)"
        )
    if document["dims"] != dims:
        raise ValueError(f"embeddings of {document['dims']} values, this model gives {dims}")
    classes: dict[str, TaughtClass] = {}
    for label, entry in document["classes"].items():
        total = np.asarray(entry["sum"], dtype=np.float64)
        count, photos = entry["count"], entry["photos"]
        if total.shape != (dims,) or not np.all(np.isfinite(total)):
            raise ValueError(f"class {label!r}: its sum is not {dims} finite numbers")
        if not isinstance(count, int) or not isinstance(photos, int) or count < 1 or photos < 1:
            raise ValueError(f"class {label!r}: count and photos must be positive whole numbers")
        name = check_label(label)
        classes[name] = TaughtClass(name, total, count, photos)
    return TaughtClasses(model_sha256, dims, classes)


def to_document(taught: TaughtClasses) -> dict[str, Any]:
    """The JSON form: per class the embedding sum, how many embeddings were summed and the photos taught."""
    return {
        "schema": SCHEMA,
        "model_sha256": taught.model_sha256,
        "dims": taught.dims,
        "updated": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "classes": {
            label: {
                "sum": [_rounded(x) for x in entry.total.tolist()],
                "count": entry.count,
                "photos": entry.photos,
            }
            for label, entry in sorted(taught.classes.items())
        },
    }


def _rounded(value: float) -> float:
    return 0.0 if not math.isfinite(value) else round(value, 7)


def save_taught(path: Path, taught: TaughtClasses) -> None:
    """Write atomically: a temporary file beside PATH, flushed to disk, renamed over it; InputError on failure."""
    text = json.dumps(to_document(taught), separators=(",", ":"))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise InputError(f"taught classes {path}: cannot write ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        reason = exc.strerror or str(exc)
        raise InputError(f"taught classes {path}: cannot write ({reason}); the old file is unchanged") from None
