"""/api/catalogue/items: list the catalogue, add an item from uploaded photos, remove one; changes go through the inbox.

An upload is multipart/form-data: the fields `id`, `name` and optional `price`, `url`, `class` (checked as an
item.json is) and 1 to MAX_PHOTOS file fields `photo`. Each photo is checked from its header against
http.max_image_pixels before it is decoded (as /api/predict does), decoded one at a time, shrunk to MAX_SIDE_PX,
and handed to the main loop, which embeds them and replaces the stored index; a photo that cannot be used is
skipped with its reason, and an upload with none usable is refused. A change is refused from another site's page
(its Origin is not this server): a form on any web page could otherwise post to a loopback server.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import HTTPException
from werkzeug.formparser import parse_form_data
from werkzeug.wrappers import Request

from edge_classifier.catalogue.items import ItemInfo
from edge_classifier.catalogue.remote import MAX_PHOTOS, CatalogueOffError, UnknownItemError, item_info, shrunk
from edge_classifier.catalogue.runtime import CatalogueRuntime
from edge_classifier.errors import BusyError, InputError, ModelError, StoppedError
from edge_classifier.http.bodies import check_length
from edge_classifier.http.images import Image, decode_image
from edge_classifier.http.problems import RequestError
from edge_classifier.http.search import thumbnail_url
from edge_classifier.http.settings import HttpConfig
from edge_classifier.learning.remote import NotTaughtError
from edge_classifier.model.identity import ModelInfo
from edge_classifier.service.inbox import (
    CatalogueAddRequest,
    CatalogueChange,
    CatalogueRemoveRequest,
    Inbox,
)
from edge_classifier.service.inbox import Request as LoopRequest

ITEM_SCHEMA = "edge-classifier/http-catalogue-item/v1"
ITEMS_SCHEMA = "edge-classifier/http-catalogue-items/v1"
PHOTO_FIELD = "photo"
TEXT_FIELDS = ("id", "name", "price", "url", "class")
MAX_FIELD_BYTES = 64 * 1024  # werkzeug checks it against each chunk read (64 KiB), not only fields
# Embedding 8 photos and rewriting the index take longer than a prediction: the answer waits this long.
CHANGE_TIMEOUT_S = 60.0
Document = dict[str, Any]


def check_origin(request: Request) -> None:
    """A browser names the page's origin on a POST or DELETE: refused unless it is this server itself."""
    origin = request.headers.get("Origin")
    if origin is None:
        return  # curl, scripts: no browser page involved
    if urlsplit(origin).netloc.lower() != request.host.lower():
        raise RequestError(403, f"a change from another site's page is refused (Origin {origin[:100]!r})")


@dataclass(frozen=True)
class UploadForm:
    """What an upload of photos takes: its text fields, a description of them, whose photos, how many at most."""

    text_fields: tuple[str, ...]
    fields_shown: str  # "id, name (price, url, class)"
    whose: str  # "the item's"
    max_photos: int


ITEM_FORM = UploadForm(TEXT_FIELDS, "id, name (price, url, class)", "the item's", MAX_PHOTOS)


def read_form(request: Request, config: HttpConfig, shape: UploadForm) -> tuple[dict[str, str], list[FileStorage]]:
    """A multipart upload's text fields (SHAPE's only) and its photo files (not read yet); RequestError if wrong."""
    check_length(request, config)
    if request.mimetype != "multipart/form-data":
        shown = request.mimetype or "none"
        raise RequestError(415, f"Content-Type {shown} is not accepted: send multipart/form-data with the fields "
                                f"{shape.fields_shown} and the file fields {PHOTO_FIELD!r}")  # fmt: skip
    try:
        _, form, files = parse_form_data(
            request.environ, silent=False, max_content_length=config.max_body_bytes,
            max_form_memory_size=MAX_FIELD_BYTES, max_form_parts=len(shape.text_fields) + shape.max_photos + 1,
        )  # fmt: skip
    except ValueError as exc:
        raise RequestError(400, f"malformed multipart body: {exc}") from None
    except HTTPException as exc:  # too many parts, or a field too large
        raise RequestError(exc.code or 400, f"multipart body refused: {exc.description}") from None
    unknown = sorted({*form} - set(shape.text_fields)) + sorted({*files} - {PHOTO_FIELD})
    if unknown:
        raise RequestError(400, f"unknown field {unknown[0]!r} (expected {', '.join(shape.text_fields)} and the files "
                                f"{PHOTO_FIELD!r})")  # fmt: skip
    photos = files.getlist(PHOTO_FIELD)
    if not photos:
        raise RequestError(400, f"no photo: send {shape.whose} photos as file fields {PHOTO_FIELD!r}")
    if len(photos) > shape.max_photos:
        raise RequestError(400, f"{len(photos)} photos: at most {shape.max_photos} at a time")
    return {key: form[key] for key in shape.text_fields if key in form}, photos


def read_upload(request: Request, config: HttpConfig) -> tuple[ItemInfo, list[FileStorage]]:
    """The item's fields, checked, and its photo files (not read yet); RequestError naming the problem."""
    form, photos = read_form(request, config, ITEM_FORM)
    document: dict[str, Any] = dict(form)
    if "price" in document:
        document["price"] = _number(document["price"])
    try:
        info = item_info(document)
    except InputError as exc:
        raise RequestError(400, str(exc)) from None
    return info, photos


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text  # item_info names it: `price: expected a number of at least 0, got '...'`


def decode_photos(photos: list[FileStorage], max_pixels: int) -> tuple[list[Image], list[Document], list[Document]]:
    """The usable photos decoded and shrunk, what each was, and the ones skipped with why; RequestError if none."""
    images: list[Image] = []
    used: list[Document] = []
    skipped: list[Document] = []
    statuses = set()
    for n, photo in enumerate(photos):
        name = photo.filename or f"photo {n + 1}"
        data = photo.read()
        try:
            if not data:
                raise RequestError(400, "the file is empty")
            image, header = decode_image(data, max_pixels)
        except RequestError as exc:
            skipped.append({"name": name, "reason": str(exc)})
            statuses.add(exc.status)
            continue
        images.append(shrunk(image))
        used.append({"name": name, "format": header.format, "width": header.width, "height": header.height})
        del image, data
    if not images:
        reasons = "; ".join(f"{entry['name']}: {entry['reason']}" for entry in skipped)
        raise RequestError(statuses.pop() if len(statuses) == 1 else 400, f"no usable photo: {reasons}")
    return images, used, skipped


def ask_loop(inbox: Inbox, request: LoopRequest, see: str = "GET /api/catalogue/items") -> Any:
    """Submit a change and wait for the loop; its refusals as RequestError with a fitting status. SEE says where
    to look for whether a change that timed out was made."""
    try:
        future = inbox.submit(request)
    except BusyError as exc:
        raise RequestError(503, f"busy: {exc}", {"Retry-After": "1"}) from None
    except StoppedError as exc:
        raise RequestError(503, str(exc), {"Retry-After": "5"}) from None
    try:
        answer = future.result(CHANGE_TIMEOUT_S)
    except concurrent.futures.TimeoutError:
        if future.cancel():
            raise RequestError(503, f"the main loop did not take the change within {CHANGE_TIMEOUT_S:g}s; nothing "
                                    "changed", {"Retry-After": "5"}) from None  # fmt: skip
        raise RequestError(504, f"the main loop did not finish the change within {CHANGE_TIMEOUT_S:g}s: see {see} "
                                "for whether it was made") from None  # fmt: skip
    except StoppedError as exc:
        raise RequestError(503, str(exc), {"Retry-After": "5"}) from None
    except BusyError as exc:  # a new model on probation
        raise RequestError(503, f"busy: {exc}", {"Retry-After": "5"}) from None
    except (CatalogueOffError, UnknownItemError, NotTaughtError) as exc:
        raise RequestError(404, str(exc)) from None
    except ModelError as exc:  # a model without embeddings, or a catalogue of another model
        raise RequestError(409, str(exc)) from None
    except InputError as exc:  # a full disk, an unreadable stored index
        raise RequestError(400 if "cannot write" not in str(exc) else 507, str(exc)) from None
    return answer


def change_timing(started: float, asked: float, answered: float, embed_ms: float, save_ms: float) -> dict[str, float]:
    """The stages of a change answered through the loop (clock readings in seconds): decoding before it was asked,
    waiting for the loop, the loop's own embed and save, the total. A change with no upload is asked at once."""
    return {"decode": 1000 * (asked - started), "wait": max(0.0, 1000 * (answered - asked) - embed_ms - save_ms),
            "embed": embed_ms, "save": save_ms, "total": 1000 * (answered - started)}  # fmt: skip


def add_item(request: Request, config: HttpConfig, inbox: Inbox, clock: Callable[[], float]) -> Document:
    """POST /api/catalogue/items: the item as stored, its photos used and skipped, and what each stage cost."""
    started = clock()
    check_origin(request)
    info, photos = read_upload(request, config)
    images, used, skipped = decode_photos(photos, config.max_image_pixels)
    asked = clock()
    change: CatalogueChange = ask_loop(inbox, CatalogueAddRequest(info, tuple(images)))
    timing = change_timing(started, asked, clock(), change.embed_ms, change.save_ms)
    action = "replaced" if change.replaced else "added"
    return change_document(change, action, used, skipped, timing) | {"thumbnail": thumbnail_url(info.id)}


def remove_item(request: Request, item_id: str, inbox: Inbox, clock: Callable[[], float]) -> Document:
    """DELETE /api/catalogue/items/<id>: the item removed and the catalogue's size after it."""
    started = clock()
    check_origin(request)
    change: CatalogueChange = ask_loop(inbox, CatalogueRemoveRequest(item_id))
    timing = change_timing(started, started, clock(), 0.0, change.save_ms)
    return change_document(change, "removed", [], [], timing)


def change_document(
    change: CatalogueChange, action: str, used: list[Document], skipped: list[Document], timing: dict[str, float]
) -> Document:
    return {
        "schema": ITEM_SCHEMA,
        "action": action,
        "item": change.item.as_dict(),
        "photos": change.photos,
        "photos_used": used,
        "photos_skipped": skipped,
        "items": change.items,
        "model": change.model.as_dict(),
        "timing_ms": {stage: round(ms, 3) for stage, ms in timing.items()},
    }


def items_document(catalogue: CatalogueRuntime | None, serving: ModelInfo) -> Document:
    """GET /api/catalogue/items: the serving model's catalogue as the daemon has it loaded (empty without one)."""
    search = None if catalogue is None else catalogue.current
    index = search.index if search is not None and search.model_sha256 == serving.sha256 else None
    items = [] if index is None else [
        item.info.as_dict() | {"photos": len(item.vectors), "thumbnail": thumbnail_url(item.info.id)}
        for item in index.items
    ]  # fmt: skip
    return {"schema": ITEMS_SCHEMA, "enabled": catalogue is not None, "model": serving.as_dict(),
            "count": len(items), "items": items}  # fmt: skip
