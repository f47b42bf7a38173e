"""The catalogue index in memory: per item its photos' embeddings (one row per photo), description and thumbnail.

One row per photo, not the item's mean: a query matches an item by its best photo (max over photos), so a front
view and a back view of a coat each find the coat, where their mean would sit between both and match neither well.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_classifier.catalogue.items import ItemFolder, ItemInfo
from edge_classifier.catalogue.photos import forget_photos, shrunk_jpeg, store_photo
from edge_classifier.errors import InputError, ModelError
from edge_classifier.model.classifier import Classifier, read_image_bgr
from edge_classifier.model.identity import ModelInfo

logger = logging.getLogger(__name__)

THUMBNAIL_PX = 128  # the longer side
THUMBNAIL_QUALITY = 80

Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class CatalogueItem:
    """One item: its description, a unit vector per photo, its thumbnail (JPEG bytes, or the file holding them) and
    the names of its photos in the photo store (empty for an index written before photos were kept)."""

    info: ItemInfo
    vectors: Vectors  # photos x dims, float32, rows L2-normalised
    thumbnail: bytes | Path
    photos: tuple[str, ...] = ()

    def thumbnail_bytes(self) -> bytes:
        return self.thumbnail if isinstance(self.thumbnail, bytes) else self.thumbnail.read_bytes()


@dataclass(frozen=True)
class CatalogueIndex:
    """The items of one catalogue for one model (its sha256 and embedding length), in a stable order."""

    model: ModelInfo
    dims: int
    items: tuple[CatalogueItem, ...]

    def __len__(self) -> int:
        return len(self.items)

    @cached_property
    def matrix(self) -> Vectors:
        """Every photo's vector, items' rows contiguous and in item order."""
        if not self.items:
            return np.zeros((0, self.dims), dtype=np.float32)
        return np.ascontiguousarray(np.concatenate([item.vectors for item in self.items]), dtype=np.float32)

    @cached_property
    def starts(self) -> npt.NDArray[np.intp]:
        """The first row of each item in `matrix`."""
        counts = [len(item.vectors) for item in self.items]
        return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.intp) if counts else np.zeros(0, np.intp)

    def ids(self) -> list[str]:
        return [item.info.id for item in self.items]

    def with_items(self, added: Iterable[CatalogueItem]) -> CatalogueIndex:
        """Items added, or replacing the ones with the same id (keeping their place)."""
        new = {item.info.id: item for item in added}
        kept = [new.pop(item.info.id, item) for item in self.items]
        return CatalogueIndex(self.model, self.dims, (*kept, *new.values()))

    def without(self, ids: Iterable[str]) -> CatalogueIndex:
        """The index without these ids; InputError naming an id it does not hold (nothing is removed then)."""
        wanted = list(ids)
        missing = [item_id for item_id in wanted if item_id not in set(self.ids())]
        if missing:
            raise InputError(f"no item with id {missing[0]!r} in the catalogue ({len(self)} items)")
        return CatalogueIndex(self.model, self.dims, tuple(i for i in self.items if i.info.id not in set(wanted)))


def thumbnail_jpeg(frame_bgr: npt.NDArray[Any], size: int = THUMBNAIL_PX) -> bytes:
    """A small JPEG of the photo: its longer side SIZE pixels (never enlarged)."""
    return shrunk_jpeg(frame_bgr, size, THUMBNAIL_QUALITY)


def embedding_dims(classifier: Classifier, model: ModelInfo) -> int:
    """The length of the model's embedding; ModelError when the model gives none."""
    if classifier.embedding_spec is None:
        raise ModelError(
            f"model {model.name} {model.version} gives no embedding output: a catalogue needs one "
            "(a manifest with `outputs.embedding`, as the default model has)"
        )
    return int(classifier.embedding_spec.shape[-1])


def embed_items(classifier: Classifier, folders: list[ItemFolder], state_dir: Path) -> list[CatalogueItem]:
    """Every photo of every item through the model, and kept (downscaled) in the photo store for a later rebuild;
    InputError naming the first photo that is not a readable image.

    One item's photos are decoded at a time (a large catalogue never holds all its photos in memory); only the photo
    store is written here, and the photos it stored are removed again on a failure, so a bad photo anywhere leaves
    the stored index (and photos) as they were.
    """
    items: list[CatalogueItem] = []
    stored: list[str] = []
    try:
        for folder in folders:
            rows, names = [], []
            thumbnail = b""
            for photo in folder.photos:
                frame = read_image_bgr(photo)
                embedding = classifier.classify(frame).embedding
                assert embedding is not None  # the caller checked embedding_dims()
                rows.append(embedding)
                names.append(store_photo(state_dir, folder.info.id, frame))
                stored.append(names[-1])
                thumbnail = thumbnail or thumbnail_jpeg(frame)
            items.append(CatalogueItem(folder.info, np.stack(rows).astype(np.float32), thumbnail, tuple(names)))
            logger.debug("item %s: %d photos", folder.info.id, len(rows))
    except BaseException:
        forget_photos(state_dir, stored)  # the photo store as it was, too
        raise
    return items
