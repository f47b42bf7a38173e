"""An index rebuilt for a newly serving model from the photos another model's index kept, a few photos at a time.

The daemon's loop owns the model, so the rebuild runs there between frames: each `step` embeds at most
PHOTOS_PER_STEP stored photos, and the finished index is written with `save_index` (atomically, like a build).
The source is the newest index of another model that kept its photos (one built before photos were kept cannot be
rebuilt: `catalogue build` is the way then).
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_classifier.catalogue.index import CatalogueIndex, CatalogueItem, Vectors, thumbnail_jpeg
from edge_classifier.catalogue.items import ItemInfo, item_info_from
from edge_classifier.catalogue.photos import PHOTOS_DIR, check_names, read_photo
from edge_classifier.model.classifier import Classifier
from edge_classifier.model.identity import ModelInfo

logger = logging.getLogger(__name__)
PHOTOS_PER_STEP = 2  # per loop iteration: frames keep flowing while an index is rebuilt


@dataclass(frozen=True)
class SourceItem:
    """An item of the index rebuilt from: its description and its stored photos."""

    info: ItemInfo
    photos: tuple[str, ...]


@dataclass(frozen=True)
class RebuildSource:
    """The index of another model a rebuild starts from (its `updated` time: the newest one is used)."""

    model: ModelInfo
    updated: str
    items: tuple[SourceItem, ...]


def find_sources(state_dir: Path, model: ModelInfo) -> tuple[RebuildSource | None, list[ModelInfo]]:
    """The newest other model's index whose items all kept their photos (None: none did); and the models of the other
    indexes, which cannot be rebuilt from (written before photos were kept)."""
    root = state_dir / "catalogue"
    usable: list[RebuildSource] = []
    without: list[ModelInfo] = []
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        if entry.name.startswith(".") or entry.name in (model.sha256, PHOTOS_DIR):
            continue
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
            where = entry / "index.json"
            document = json.loads(where.read_text(encoding="utf-8"))
            built = ModelInfo(**document["model"])
            items = []
            for item in document["items"]:
                info = {key: item[key] for key in ("id", "name", "price", "url", "class") if key in item}
                items.append(SourceItem(item_info_from(info, where), check_names(item.get("photos", []), where)))
            if all(item.photos for item in items):
                usable.append(RebuildSource(built, str(document.get("updated", "")), tuple(items)))
            else:
                without.append(built)
    return max(usable, key=lambda source: source.updated, default=None), without


class Rebuild:
    """The index for MODEL being rebuilt from SOURCE's photos; `step` until it returns the finished index."""

    def __init__(self, state_dir: Path, source: RebuildSource, model: ModelInfo, dims: int):
        self.state_dir, self.source, self.model, self.dims = state_dir, source, model, dims
        self._queue = [(n, name) for n, item in enumerate(source.items) for name in item.photos]
        self._rows: list[list[Vectors]] = [[] for _ in source.items]
        self._thumbnails = [b"" for _ in source.items]
        self.done = 0

    @property
    def total(self) -> int:
        return len(self._queue)

    def progress(self) -> str:
        return f"rebuilding catalogue for model {self.model.name} {self.model.version}: {self.done}/{self.total}"

    def step(self, classifier: Classifier, budget: int = PHOTOS_PER_STEP) -> CatalogueIndex | None:
        """Embed up to BUDGET more photos; the finished index once every photo is, else None. InputError for a stored
        photo that is missing or does not decode."""
        for n, name in self._queue[self.done : self.done + budget]:
            frame = read_photo(self.state_dir, name)
            embedding = classifier.classify(frame).embedding
            if embedding is None:
                raise ValueError(f"model {self.model.name} gave no embedding")
            self._rows[n].append(np.asarray(embedding, dtype=np.float32))
            self._thumbnails[n] = self._thumbnails[n] or thumbnail_jpeg(frame)
            self.done += 1
        if self.done < self.total:
            return None
        items = tuple(
            CatalogueItem(item.info, np.stack(rows).astype(np.float32), thumbnail, item.photos)
            for item, rows, thumbnail in zip(self.source.items, self._rows, self._thumbnails, strict=True)
        )
        return CatalogueIndex(self.model, self.dims, items)
