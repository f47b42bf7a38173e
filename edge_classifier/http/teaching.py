"""/api/taught: list the classes taught for the serving model, teach one from uploaded photos, forget one.

A teach is multipart/form-data: the field `label` and 1 to MAX_PHOTOS file fields `photo`, checked and decoded as a
catalogue item's photos are (a photo that cannot be used is skipped with its reason; none usable is refused), and
handed to the main loop, which embeds them and replaces the stored file; the next frame and prediction use it.
A list also asks the loop, the only reader of the stored file while the daemon runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request

from edge_classifier.errors import InputError
from edge_classifier.http.catalogue import (
    UploadForm,
    ask_loop,
    change_timing,
    check_origin,
    decode_photos,
    read_form,
)
from edge_classifier.http.problems import RequestError
from edge_classifier.http.settings import HttpConfig
from edge_classifier.learning.remote import MAX_PHOTOS, taught_document
from edge_classifier.learning.taught import check_label
from edge_classifier.service.inbox import ForgetRequest, Inbox, TaughtChange, TaughtListRequest, TeachRequest

SCHEMA = "edge-classifier/http-taught/v1"
TEACH_FORM = UploadForm(("label",), "label", "the class's", MAX_PHOTOS)
SEE = "GET /api/taught"
Document = dict[str, Any]


def _document(
    change: TaughtChange, used: list[Document], skipped: list[Document], timing: dict[str, float]
) -> Document:
    timing_ms = {stage: round(ms, 3) for stage, ms in timing.items()}
    return {"schema": SCHEMA} | taught_document(change) | {
        "photos_used": used, "photos_skipped": skipped, "timing_ms": timing_ms}  # fmt: skip


def teach(request: Request, config: HttpConfig, inbox: Inbox, clock: Callable[[], float]) -> Document:
    """POST /api/taught: the class as taught, every taught class, the photos used and skipped, each stage's cost."""
    started = clock()
    check_origin(request)
    form, photos = read_form(request, config, TEACH_FORM)
    try:
        label = check_label(form.get("label", ""))
    except InputError as exc:
        raise RequestError(400, f"label: {exc}") from None
    images, used, skipped = decode_photos(photos, config.max_image_pixels)
    asked = clock()
    change: TaughtChange = ask_loop(inbox, TeachRequest(label, tuple(images)), SEE)
    return _document(change, used, skipped, change_timing(started, asked, clock(), change.embed_ms, change.save_ms))


def forget(request: Request, label: str, inbox: Inbox, clock: Callable[[], float]) -> Document:
    """DELETE /api/taught/<label>: the class forgotten and the taught classes left."""
    started = clock()
    check_origin(request)
    change: TaughtChange = ask_loop(inbox, ForgetRequest(label), SEE)
    return _document(change, [], [], change_timing(started, started, clock(), 0.0, change.save_ms))


def listing(inbox: Inbox, clock: Callable[[], float]) -> Document:
    """GET /api/taught: the classes taught for the serving model."""
    started = clock()
    change: TaughtChange = ask_loop(inbox, TaughtListRequest(), SEE)
    return _document(change, [], [], change_timing(started, started, clock(), 0.0, 0.0))
