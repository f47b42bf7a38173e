"""The `catalogue/add` and `catalogue/remove` commands: change the visual-search catalogue of the running daemon.

Run on the main loop's thread like every command; the change itself is served as the inbox's catalogue requests
are (embed the photos, replace the stored index, load it), and the answer waits on the request's future as
model/load's does. A photo is base64 in the JSON payload, at most MAX_PHOTO_BYTES (the snapshot's cap) and at
most http.max_image_pixels, checked from its header before it is decoded.
"""

from __future__ import annotations

import base64
import binascii
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from edge_classifier.catalogue.remote import MAX_PHOTOS, change_document, item_info, serve_catalogue, shrunk
from edge_classifier.commands.context import CommandContext
from edge_classifier.commands.outcome import CommandError, Outcome, Pending, Result, settled
from edge_classifier.commands.snapshot import MAX_SNAPSHOT_BYTES
from edge_classifier.commands.validation import MAX_PAYLOAD_BYTES
from edge_classifier.errors import InputError
from edge_classifier.http.images import Image, decode_image
from edge_classifier.http.problems import RequestError
from edge_classifier.service.inbox import CatalogueAddRequest, CatalogueRemoveRequest

if TYPE_CHECKING:
    from edge_classifier.service.loop import MainLoop

MAX_PHOTO_BYTES = MAX_SNAPSHOT_BYTES
MAX_PHOTO_CHARS = 4 * -(-MAX_PHOTO_BYTES // 3)  # its base64 form (699052 characters)
# The largest catalogue/add payload: MAX_PHOTOS photos of the largest size and the usual 8 KiB for the rest.
MAX_ADD_PAYLOAD_BYTES = MAX_PHOTOS * MAX_PHOTO_CHARS + MAX_PAYLOAD_BYTES


def decode_photo(text: str, max_pixels: int) -> Image:
    """A base64 photo decoded and shrunk; RequestError naming what is wrong with it."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(400, "not valid base64") from None
    if len(data) > MAX_PHOTO_BYTES:
        raise RequestError(413, f"{len(data)} bytes, more than {MAX_PHOTO_BYTES}")
    image, _ = decode_image(data, max_pixels)
    return shrunk(image)


def decode_photos(texts: list[str], max_pixels: int) -> tuple[list[Image], list[dict[str, Any]]]:
    """The base64 photos that decode, and the others by number (from 1) with why; CommandError when none does."""
    images, skipped = [], []
    for number, text in enumerate(texts, start=1):
        try:
            images.append(decode_photo(text, max_pixels))
        except RequestError as exc:
            skipped.append({"photo": number, "reason": str(exc)})
    if not images:
        reasons = "; ".join(f"photo {entry['photo']}: {entry['reason']}" for entry in skipped)
        raise CommandError("invalid", f"no usable photo: {reasons}")
    return images, skipped


def _settle(future: Future[Any], skipped: list[dict[str, Any]] | None) -> Outcome:
    extra = {} if skipped is None else {"photos_skipped": skipped}
    return settled(future, "the catalogue was not changed", lambda change: change_document(change) | extra)


def catalogue_add(context: CommandContext, loop: MainLoop, document: dict[str, Any]) -> Result:
    """Embed the photos that decode (the others are named in `photos_skipped`) and store the item."""
    try:
        info = item_info(document["item"])
    except InputError as exc:
        raise CommandError("invalid", str(exc)) from None
    images, skipped = decode_photos(document["photos"], context.config.http.max_image_pixels)
    request = CatalogueAddRequest(info, tuple(images))
    serve_catalogue(loop, request)  # on this, the loop's, thread: between two frames
    waiting = Outcome("accepted", {"item": info.as_dict(), "photos_skipped": skipped})
    return Pending(request.reply, lambda future: _settle(future, skipped), waiting)


def catalogue_remove(context: CommandContext, loop: MainLoop, document: dict[str, Any]) -> Result:
    request = CatalogueRemoveRequest(document["item_id"])
    serve_catalogue(loop, request)
    waiting = Outcome("accepted", {"item": {"id": document["item_id"]}})
    return Pending(request.reply, lambda future: _settle(future, None), waiting)
