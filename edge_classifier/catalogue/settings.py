"""The `catalogue` config section: whether the daemon adds similar catalogue items to `result`, how many, how close."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _limits(low: float | None = None, high: float | None = None) -> dict[str, Any]:
    return {"low": low, "high": high}


@dataclass(frozen=True)
class CatalogueConfig:
    """Visual search: `similar` in every `result` when an index built for the serving model exists."""

    # On: used when `edge-classifier catalogue build` made an index for the serving model; nothing happens without.
    enabled: bool = True
    # At most this many items, best first, one per item (its best-matching photo).
    top_n: int = field(default=5, metadata=_limits(1, 100))
    # Cosine similarity of the frame's embedding with an item's best photo. Measured with the default model on the
    # 341 committed real photos (each one item) and a camera-like view of each (crop, rotation, light, blur, JPEG):
    # the view scores 0.88 with its own item (median; 0.56 at the 1st percentile), photos of different garment
    # kinds 0.16 (0.56 at the 99th percentile), scenes with no garment (walls, an empty counter, noise) 0.29 at most.
    min_similarity: float = field(default=0.5, metadata=_limits(-1.0, 1.0))
