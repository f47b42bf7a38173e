"""The answer of POST /api/search: the image's best label and the catalogue items most like it, with timings."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from edge_classifier.http.images import ImageHeader
from edge_classifier.service.inbox import Prediction
from edge_classifier.service.payloads import top_k_document

SEARCH_SCHEMA = "edge-classifier/http-search/v1"
THUMBNAIL_ROUTE = "/api/catalogue/thumbnail/"


def thumbnail_url(item_id: str) -> str:
    """Where the item's thumbnail is served (its id percent-encoded, `/` included)."""
    return THUMBNAIL_ROUTE + quote(item_id, safe="")


def search_document(
    prediction: Prediction, header: ImageHeader, size: int, via: str, decode_ms: float, wait_ms: float, total_ms: float
) -> dict[str, Any]:
    """`items` best first (at most top_n, each at least catalogue.min_similarity), each with its thumbnail's URL."""
    best = prediction.top_k[0]
    items = [match.as_dict() | {"thumbnail": thumbnail_url(match.id)} for match in prediction.similar or ()]
    return {
        "schema": SEARCH_SCHEMA,
        "items": items,
        "label": best.label,
        "score": round(best.score, 4),
        "top_k": top_k_document(prediction.top_k),
        "model": prediction.model.as_dict(),
        "image": {"format": header.format, "width": header.width, "height": header.height, "bytes": size, "via": via},
        "timing_ms": {
            "decode": round(decode_ms, 3),
            "wait": round(wait_ms, 3),
            "preprocess": round(prediction.preprocess_ms, 3),
            "inference": round(prediction.inference_ms, 3),
            "postprocess": round(prediction.postprocess_ms, 3),
            "search": round(prediction.search_ms, 3),
            "total": round(total_ms, 3),
        },
    }
