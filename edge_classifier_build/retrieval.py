"""Retrieval quality of the default model's embedding: a catalogue of real photos searched with camera-like views.

The catalogue holds one item per photo (the committed validation photos, `tests/data/real-photos/<class>/*.jpg`);
the queries are N camera-like views of each photo (`camera_views`). Every image goes through the runtime's own
path (`Classifier.classify`, the daemon's preprocessing and the int8 model), the search is brute force: cosine
similarity of unit vectors is a dot product. Reported, for the embedding and, as a baseline, for the trained
head's class scores (L2-normalised): recall@1 and recall@5 (the query's own item among the 1 / 5 nearest items)
and precision@5 by class (the share of the 5 nearest items, the query's own item left out, that have its class).

    python -m edge_classifier_build.retrieval --photos tests/data/real-photos --views 3 --json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_classifier.model.classifier import Classifier, read_image_bgr

from .camera_views import camera_view, generator_settings
from .paths import MODELS_DIR, REAL_PHOTOS_DIR, shown

logger = logging.getLogger(__name__)

DEFAULT_MANIFEST = MODELS_DIR / "clothing-mobilenetv2.json"
DEFAULT_VIEWS = 3
RECALL_TARGET = 95.0  # recall@5, percent (issue 18)
Matrix = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Vectors:
    """Unit vectors of the catalogue's items and of the queries, with each query's item and every class index."""

    items: Matrix
    queries: Matrix
    query_item: npt.NDArray[np.int64]
    item_class: npt.NDArray[np.int64]

    @property
    def query_class(self) -> npt.NDArray[np.int64]:
        return self.item_class[self.query_item]


def catalogue_photos(photos: Path) -> tuple[list[Path], list[str], npt.NDArray[np.int64]]:
    """Every photo (class folders in sorted order, photos in name order), its key ('class/name') and class index."""
    folders = sorted(p for p in photos.iterdir() if p.is_dir())
    paths = [photo for folder in folders for photo in sorted(folder.glob("*.jpg"))]
    classes = [index for index, folder in enumerate(folders) for _ in sorted(folder.glob("*.jpg"))]
    if not paths:
        raise ValueError(f"{photos}: no <class>/*.jpg photos")
    return paths, [p.relative_to(photos).as_posix() for p in paths], np.array(classes, dtype=np.int64)


def unit_rows(rows: list[npt.NDArray[np.float32]]) -> Matrix:
    """The rows stacked and scaled to unit length (the embeddings already are; the class scores are not)."""
    matrix = np.stack(rows).astype(np.float32)
    unit: Matrix = (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)
    return unit


def embed_all(classifier: Classifier, photos: Path, views: int) -> tuple[Vectors, Vectors, str]:
    """Embedding vectors and class-score vectors of the photos and their views, and a digest of the embeddings."""
    paths, keys, item_class = catalogue_photos(photos)
    embeddings: list[npt.NDArray[np.float32]] = []
    scores: list[npt.NDArray[np.float32]] = []
    query_embeddings: list[npt.NDArray[np.float32]] = []
    query_scores: list[npt.NDArray[np.float32]] = []
    query_item: list[int] = []
    for item, (path, key) in enumerate(zip(paths, keys, strict=True)):
        photo = read_image_bgr(path)
        for frame, embedded, scored in [(photo, embeddings, scores)] + [
            (camera_view(photo, key, index), query_embeddings, query_scores) for index in range(views)
        ]:
            result = classifier.classify(frame)
            if result.embedding is None:
                raise ValueError("the model gives no embedding: its manifest names no embedding output")
            embedded.append(result.embedding)
            scored.append(result.scores.astype(np.float32))
        query_item += [item] * views
    owners = np.array(query_item, dtype=np.int64)
    by_embedding = Vectors(unit_rows(embeddings), unit_rows(query_embeddings), owners, item_class)
    by_scores = Vectors(unit_rows(scores), unit_rows(query_scores), owners, item_class)
    digest = hashlib.sha256(by_embedding.items.tobytes() + by_embedding.queries.tobytes()).hexdigest()
    return by_embedding, by_scores, digest


def ranked(similarity: Matrix, k: int) -> npt.NDArray[np.int64]:
    """The K most similar items of each row, best first (ties: the lower item index first)."""
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    return np.asarray(order, dtype=np.int64)


def percent(hits: int, total: int) -> float:
    return round(100.0 * hits / total, 2)


def quality(vectors: Vectors, k: int = 5) -> dict[str, Any]:
    """recall@1, recall@K and precision@K by class of the queries against the catalogue (counts and percent)."""
    similarity = vectors.queries @ vectors.items.T
    rows = np.arange(len(vectors.query_item))
    top = ranked(similarity, k)
    hits_1 = int(np.sum(top[:, 0] == vectors.query_item))
    hits_k = int(np.sum(np.any(top == vectors.query_item[:, None], axis=1)))
    similarity[rows, vectors.query_item] = -np.inf  # search by class: the query's own item is not an answer
    same_class = vectors.item_class[ranked(similarity, k)] == vectors.query_class[:, None]
    class_hits = int(np.sum(same_class))
    queries = len(rows)
    return {
        "recall_at_1": percent(hits_1, queries),
        f"recall_at_{k}": percent(hits_k, queries),
        f"precision_at_{k}": percent(class_hits, queries * k),
        "hits_at_1": hits_1,
        f"hits_at_{k}": hits_k,
        f"class_hits_at_{k}": class_hits,
    }


def photo_precision(vectors: Vectors, k: int = 5) -> dict[str, Any]:
    """Precision@K by class with the catalogue's own photos as queries (each leaving itself out)."""
    similarity = vectors.items @ vectors.items.T
    np.fill_diagonal(similarity, -np.inf)
    class_hits = int(np.sum(vectors.item_class[ranked(similarity, k)] == vectors.item_class[:, None]))
    return {f"precision_at_{k}": percent(class_hits, len(vectors.item_class) * k), f"class_hits_at_{k}": class_hits}


def measure(photos: Path = REAL_PHOTOS_DIR, views: int = DEFAULT_VIEWS, manifest: Path = DEFAULT_MANIFEST,
            threads: int = 1) -> dict[str, Any]:  # fmt: skip
    """The whole measurement as one JSON-ready document."""
    with Classifier.from_manifest(manifest, num_threads=threads) as classifier:
        by_embedding, by_scores, digest = embed_all(classifier, photos, views)
        sha256 = classifier.manifest.sha256 if classifier.manifest is not None else None
    embedding = quality(by_embedding)
    logger.info("recall@1 %.2f%%, recall@5 %.2f%%", embedding["recall_at_1"], embedding["recall_at_5"])
    return {
        "schema": "edge-classifier/retrieval/v1",
        "model": shown(manifest),
        "model_sha256": sha256,
        "photos": shown(photos),
        "items": len(by_embedding.items),
        "views_per_photo": views,
        "queries": len(by_embedding.queries),
        "generator": generator_settings(),
        "search": "brute force, cosine similarity of L2-normalised vectors; ties: lower item index first",
        "embedding": {**embedding, "photo_queries": photo_precision(by_embedding)},
        "class_scores": {**quality(by_scores), "photo_queries": photo_precision(by_scores)},
        "target_recall_at_5": {"threshold": RECALL_TARGET, "met": embedding["recall_at_5"] >= RECALL_TARGET},
        "embeddings_sha256": digest,
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m edge_classifier_build.retrieval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--photos", type=Path, default=REAL_PHOTOS_DIR, help="folder of <class>/*.jpg photos")
    p.add_argument("--views", type=int, default=DEFAULT_VIEWS, help="camera-like views (queries) per photo")
    p.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST, help="a model whose manifest names an embedding")
    p.add_argument("--threads", type=int, default=1, help="interpreter threads")
    p.add_argument("--search-bench", action="store_true", help="add search latency and memory at 1k-100k items")
    p.add_argument("--json", action="store_true", help="print the whole document as JSON (default: a summary)")
    p.add_argument("--output", type=Path, help="also write the JSON document here (e.g. models/report/retrieval.json)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.views < 1:
        print("error: --views must be at least 1", file=sys.stderr)
        return 2
    if not args.photos.is_dir():
        print(f"error: --photos {args.photos} is not a folder", file=sys.stderr)
        return 2
    document = measure(args.photos, args.views, args.manifest, args.threads)
    if args.search_bench:
        from edge_classifier.bench.search import search_bench, storage_variants

        document["search_bench"] = {**search_bench(), "storage": storage_variants()}
    text = json.dumps(document, indent=2)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")
    if args.json:
        print(text)
    else:
        e, s = document["embedding"], document["class_scores"]
        print(f"{document['queries']} queries, {document['items']} items: embedding recall@1 {e['recall_at_1']}%, "
              f"recall@5 {e['recall_at_5']}%, precision@5 {e['precision_at_5']}%; class scores recall@1 "
              f"{s['recall_at_1']}%, recall@5 {s['recall_at_5']}%, precision@5 {s['precision_at_5']}%")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
