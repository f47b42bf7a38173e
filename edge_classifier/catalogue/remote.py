"""Catalogue changes asked of the running daemon (HTTP upload, MQTT command), carried out on the main loop's thread.

The loop is the only owner of the classifier, so the photos are embedded there, between frames; the index is then
updated as `catalogue add` / `remove` do it (written beside the old one and renamed in: on any failure the stored
index stays as it was) and the daemon's catalogue runtime loads the new one at once, not at its next re-check.
Photos arrive decoded and no larger than MAX_SIDE_PX (shrunk by the caller), so a request holds little memory.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import numpy.typing as npt

from edge_classifier.catalogue.cli import existing_index
from edge_classifier.catalogue.index import CatalogueIndex, CatalogueItem, embedding_dims, thumbnail_jpeg
from edge_classifier.catalogue.items import ItemInfo, item_info_from
from edge_classifier.catalogue.photos import forget_photos, store_photo
from edge_classifier.catalogue.store import save_index
from edge_classifier.errors import BusyError, EdgeClassifierError, InputError
from edge_classifier.service.inbox import CatalogueAddRequest, CatalogueChange, CatalogueRemoveRequest

if TYPE_CHECKING:
    from pathlib import Path

    from edge_classifier.service.loop import MainLoop

logger = logging.getLogger(__name__)
MAX_PHOTOS = 8  # per item added over HTTP or MQTT
# A photo is shrunk to this longer side before it waits for the loop: the model sees a 224-pixel crop and the
# thumbnail is 128 pixels, so nothing is lost, and 8 photos hold 8 x 4.9 MB at most instead of 8 x 48 MB.
MAX_SIDE_PX = 1280
ITEM_WHERE = "item"  # how an error names the item's description (`item: price: expected a number ...`)


class CatalogueOffError(InputError):
    """The daemon runs with catalogue.enabled: false: nothing to add to or remove from."""


class UnknownItemError(InputError):
    """A remove names an id the catalogue does not hold."""


def item_info(document: Any) -> ItemInfo:
    """The item's description checked as an item.json is; InputError `item: <field>: <problem>`."""
    from pathlib import Path

    return item_info_from(document, Path(ITEM_WHERE))


def shrunk(image: npt.NDArray[np.uint8], max_side: int = MAX_SIDE_PX) -> npt.NDArray[np.uint8]:
    """IMAGE with its longer side at most MAX_SIDE (INTER_AREA, aspect kept); unchanged when already small."""
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def serve_catalogue(loop: MainLoop, request: CatalogueAddRequest | CatalogueRemoveRequest) -> None:
    """Carry out an add or a remove; any refusal is the reply's exception and the stored index is unchanged."""
    try:
        change = _add(loop, request) if isinstance(request, CatalogueAddRequest) else _remove(loop, request)
    except EdgeClassifierError as exc:
        logger.warning("catalogue change refused: %s", exc)
        request.reply.set_exception(exc)
        return
    request.reply.set_result(change)


def _state_dir(loop: MainLoop) -> Path:
    catalogue = loop.parts.catalogue
    if catalogue is None:
        raise CatalogueOffError("visual search is off (catalogue.enabled: false): no catalogue to change")
    return catalogue.state_dir


def _current(loop: MainLoop, dims: int) -> CatalogueIndex:
    """The stored index for the serving model; BusyError while a new model is on probation (it may be rolled back)."""
    parts = loop.parts
    if parts.models.probation is not None:
        raise BusyError(f"model {parts.model.name} is still being verified on live frames: its catalogue is changed "
                        "once it is")  # fmt: skip
    return existing_index(_state_dir(loop), parts.model, dims) or CatalogueIndex(parts.model, dims, ())


def _add(loop: MainLoop, request: CatalogueAddRequest) -> CatalogueChange:
    parts = loop.parts
    dims = embedding_dims(parts.classifier, parts.model)
    base = _current(loop, dims)
    if not request.images:
        raise InputError("no photo: an item needs at least one")
    started = time.perf_counter()
    rows: list[Any] = []
    names: list[str] = []
    try:
        for image in request.images:
            embedding = parts.classifier.classify(image).embedding
            assert embedding is not None  # embedding_dims() checked the model gives one
            rows.append(embedding)
            names.append(store_photo(_state_dir(loop), request.info.id, image))  # kept for a rebuild for another model
        item = CatalogueItem(request.info, np.stack(rows).astype(np.float32), thumbnail_jpeg(request.images[0]),
                             tuple(names))  # fmt: skip
        embedded = time.perf_counter()
        replaced = request.info.id in base.ids()
        updated = base.with_items([item])
        save_index(_state_dir(loop), updated)
    except BaseException:
        forget_photos(_state_dir(loop), names)  # the photo store as it was, too
        raise
    saved = time.perf_counter()
    _reload(loop, dims)
    logger.info("catalogue: item %s %s (%d photos); %d items", request.info.id,
                "replaced" if replaced else "added", len(rows), len(updated))  # fmt: skip
    return CatalogueChange(request.info, len(rows), replaced, len(updated), parts.model,
                           1000 * (embedded - started), 1000 * (saved - embedded))  # fmt: skip


def _remove(loop: MainLoop, request: CatalogueRemoveRequest) -> CatalogueChange:
    parts = loop.parts
    dims = embedding_dims(parts.classifier, parts.model)
    base = _current(loop, dims)
    if request.item_id not in base.ids():
        raise UnknownItemError(f"no item with id {request.item_id!r} in the catalogue ({len(base)} items)")
    started = time.perf_counter()
    updated = base.without([request.item_id])
    gone = next(item for item in base.items if item.info.id == request.item_id)
    save_index(_state_dir(loop), updated)
    saved = time.perf_counter()
    _reload(loop, dims)
    logger.info("catalogue: item %s removed; %d items", request.item_id, len(updated))
    return CatalogueChange(gone.info, len(gone.vectors), True, len(updated), parts.model, 0.0,
                           1000 * (saved - started))  # fmt: skip


def _reload(loop: MainLoop, dims: int) -> None:
    """The runtime serves the new index from the next frame (it re-checks every few seconds anyway)."""
    if loop.parts.catalogue is not None:
        loop.parts.catalogue.refresh(loop.parts.model, dims)


def change_document(change: CatalogueChange) -> dict[str, Any]:
    """What both the HTTP answer and the MQTT acknowledgement say about a change."""
    return {
        "item": change.item.as_dict(),
        "photos": change.photos,
        "replaced": change.replaced,
        "items": change.items,
        "model": change.model.as_dict(),
    }
