"""Search: one matrix-vector product over every photo, the best photo per item, the top N items above a minimum."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_classifier.catalogue.index import CatalogueIndex

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Match:
    """One catalogue item similar to the query: cosine similarity of its best photo, rounded to 4 places."""

    id: str
    name: str
    similarity: float
    price: float | None = None
    url: str | None = None
    item_class: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The payload form: optional fields only when the item has them (`class`, not `item_class`)."""
        document: dict[str, Any] = {"id": self.id, "name": self.name, "similarity": self.similarity}
        optional = {"price": self.price, "url": self.url, "class": self.item_class}
        return document | {key: value for key, value in optional.items() if value is not None}


class CatalogueSearch:
    """Brute-force cosine search over an index (unit vectors: the dot product is the cosine)."""

    def __init__(self, index: CatalogueIndex):
        self.index = index
        self._matrix = index.matrix
        self._starts = index.starts
        self._positions = {item.info.id: n for n, item in enumerate(index.items)}

    @property
    def model_sha256(self) -> str:
        return self.index.model.sha256

    def search(self, embedding: npt.NDArray[np.float32], top_n: int, min_similarity: float) -> tuple[Match, ...]:
        """The TOP_N items whose best photo is at least MIN_SIMILARITY, best first (ties: catalogue order)."""
        if not len(self.index):
            return ()
        photo_scores = self._matrix @ embedding.astype(np.float32, copy=False)
        item_scores = np.maximum.reduceat(photo_scores, self._starts)
        order = best_first(item_scores, top_n)
        matches = []
        for position in order:
            score = float(item_scores[position])
            if score < min_similarity:
                break
            info = self.index.items[position].info
            matches.append(Match(info.id, info.name, round(score, 4), info.price, info.url, info.item_class))
        return tuple(matches)

    def thumbnail(self, item_id: str) -> bytes | None:
        """The item's JPEG thumbnail, or None for an unknown id."""
        position = self._positions.get(item_id)
        return None if position is None else self.index.items[position].thumbnail_bytes()

    def thumbnail_path(self, item_id: str) -> Path | None:
        """Where the item's thumbnail is stored (relative to nothing: an absolute path), None when not on disk."""
        position = self._positions.get(item_id)
        thumbnail = None if position is None else self.index.items[position].thumbnail
        return thumbnail if isinstance(thumbnail, Path) else None


def best_first(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.intp]:
    """The indices of the K highest scores, highest first, ties in index order."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.intp)
    if k < len(scores):
        candidates = np.argpartition(-scores, k - 1)[:k]
        candidates.sort()
    else:
        candidates = np.arange(len(scores))
    return candidates[np.argsort(-scores[candidates], kind="stable")]
