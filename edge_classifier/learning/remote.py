"""Classes taught, forgotten or listed through the running daemon (HTTP, MQTT command), on the main loop's thread.

The loop is the only owner of the classifier, so the photos are embedded there, between frames, and the file is
changed as `edge-classifier teach` and `forget` change it (written beside the old one and renamed in: on any
failure the stored classes stay as they were); the loop's taught component reads it again at once, so the next
frame and the next prediction use it. Photos arrive decoded and shrunk by the caller.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from edge_classifier.errors import BusyError, EdgeClassifierError, InputError, ModelError
from edge_classifier.learning.store import load_taught, save_taught, taught_path
from edge_classifier.learning.taught import TaughtClasses, check_label, spelled_as_known
from edge_classifier.service.inbox import (
    ForgetRequest,
    TaughtChange,
    TaughtEntry,
    TaughtListRequest,
    TaughtRequest,
    TeachRequest,
)

if TYPE_CHECKING:
    from pathlib import Path

    from edge_classifier.service.loop import MainLoop

logger = logging.getLogger(__name__)
MAX_PHOTOS = 8  # per teach over HTTP or MQTT, as per catalogue item (a class may be taught again with more)


class NotTaughtError(InputError):
    """A forget names a label that was never taught for the serving model."""


def serve_teaching(loop: MainLoop, request: TaughtRequest) -> None:
    """Carry out a teach, forget or list; any refusal is the reply's exception and the stored file is unchanged."""
    try:
        if isinstance(request, TeachRequest):
            change = _teach(loop, request)
        elif isinstance(request, ForgetRequest):
            change = _forget(loop, request)
        else:
            change = _list(loop, request)
    except EdgeClassifierError as exc:
        logger.warning("taught classes not changed: %s", exc)
        request.reply.set_exception(exc)
        return
    request.reply.set_result(change)


def _stored(loop: MainLoop) -> tuple[Path, TaughtClasses]:
    """Where the serving model's classes are kept and what the file holds now (InputError: unusable file)."""
    parts = loop.parts
    spec = parts.classifier.embedding_spec
    if parts.taught is None or spec is None:
        raise ModelError(f"model {parts.model.name} {parts.model.version} gives no embedding output: teaching "
                         "needs one (a manifest with `outputs.embedding`, as the default model has)")  # fmt: skip
    path = taught_path(parts.taught.state_dir, parts.model.sha256)
    return path, load_taught(path, parts.model.sha256, spec.shape[-1])


def _changeable(loop: MainLoop) -> tuple[Path, TaughtClasses]:
    if loop.parts.models.probation is not None:
        raise BusyError(f"model {loop.parts.model.name} is still being verified on live frames: classes are "
                        "taught for it once it is")  # fmt: skip
    return _stored(loop)


def _entries(loop: MainLoop, taught: TaughtClasses) -> tuple[TaughtEntry, ...]:
    trained = {label.lower() for label in loop.parts.classifier.labels}
    return tuple(
        TaughtEntry(label, entry.photos, label.lower() in trained) for label, entry in sorted(taught.classes.items())
    )


def _saved(loop: MainLoop, path: Path, updated: TaughtClasses) -> float:
    """Store UPDATED and have the loop use it from the next frame; the milliseconds it took."""
    started = time.perf_counter()
    save_taught(path, updated)
    parts = loop.parts
    if parts.taught is not None:
        parts.taught.refresh(parts.model.sha256, parts.classifier.embedding_spec, force=True)
    return 1000 * (time.perf_counter() - started)


def _teach(loop: MainLoop, request: TeachRequest) -> TaughtChange:
    parts = loop.parts
    label = check_label(request.label)
    path, taught = _changeable(loop)
    if not request.images:
        raise InputError(f"no photo to teach {label!r} from: send at least one")
    label = spelled_as_known(label, parts.classifier.labels, taught.labels)
    started = time.perf_counter()
    embeddings: list[npt.NDArray[np.float32]] = []
    for image in request.images:
        embedding = parts.classifier.classify(image).embedding
        assert embedding is not None  # _stored() checked that the model gives one
        embeddings.append(embedding)
    embed_ms = 1000 * (time.perf_counter() - started)
    updated = taught.teach(label, embeddings)
    save_ms = _saved(loop, path, updated)
    entries = _entries(loop, updated)
    refines = next(entry.refines for entry in entries if entry.label == label)
    logger.info("%s %r from %d photos (%d in all) for model %s %s", "refined trained class" if refines else
                "taught new class", label, len(embeddings), updated.classes[label].photos, parts.model.name,
                parts.model.version)  # fmt: skip
    action = "refined" if refines else "taught"
    return TaughtChange(action, label, len(embeddings), entries, parts.model, embed_ms, save_ms)


def _forget(loop: MainLoop, request: ForgetRequest) -> TaughtChange:
    parts = loop.parts
    path, taught = _changeable(loop)
    label = spelled_as_known(request.label.strip(), parts.classifier.labels, taught.labels)
    if label not in taught.classes:
        names = ", ".join(repr(name) for name in taught.labels) or "none"
        raise NotTaughtError(f"{label!r} is not a taught class (taught: {names})")
    photos = taught.classes[label].photos
    updated = taught.forget(label)
    save_ms = _saved(loop, path, updated)
    logger.info("forgot taught class %r for model %s %s", label, parts.model.name, parts.model.version)
    return TaughtChange("forgotten", label, photos, _entries(loop, updated), parts.model, 0.0, save_ms)


def _list(loop: MainLoop, request: TaughtListRequest) -> TaughtChange:
    _, taught = _stored(loop)
    return TaughtChange("listed", None, 0, _entries(loop, taught), loop.parts.model)


def taught_document(change: TaughtChange) -> dict[str, Any]:
    """What both the HTTP answer and the MQTT acknowledgement say about a change or a list."""
    return {
        "action": change.action,
        "label": change.label,
        "photos": change.photos,
        "classes": [entry._asdict() for entry in change.classes],
        "model": change.model.as_dict(),
    }
