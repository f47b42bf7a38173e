"""Visual search quality and cost: the camera-like view generator, the retrieval measurement recomputed on the
committed photos against models/report/retrieval.json, and the brute-force search bench's structure.

The recall figures are compared exactly: the views are bit-identical from run to run (OpenCV's warp, blur and JPEG
paths are bit-exact) and so are the int8 model's outputs (checked: repeated runs, and 1 and 2 interpreter threads,
give the same embeddings; the file records their sha256). Another CPU or library version may round an embedding
differently (its `embeddings_sha256` would differ) and flip a near-tie between two catalogue items: a failure there
means recording the figures on that machine, not a bug in the search.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
from photos import PHOTOS

from edge_classifier.bench.search import search_bench, storage_variants, top_k
from edge_classifier.model.classifier import read_image_bgr
from edge_classifier_build.camera_views import CROP_AREA, JPEG_QUALITY, camera_views, draw_params, view_seed
from edge_classifier_build.retrieval import Vectors, catalogue_photos, measure, quality
from helpers import DEFAULT_MANIFEST, MODELS, ROOT

REPORTED = MODELS / "report" / "retrieval.json"
FIGURES = ("embedding", "class_scores", "items", "queries", "views_per_photo")


def first_photos(count: int) -> list[tuple[str, np.ndarray]]:
    """The first COUNT committed photos in the measurement's order, with their keys."""
    paths, keys, _ = catalogue_photos(PHOTOS)
    return [(key, read_image_bgr(path)) for path, key in zip(paths[:count], keys[:count], strict=True)]


def test_camera_views_are_the_same_in_every_run():
    """Two calls give byte-identical views: each view's draws are seeded by the photo's key and the view's index."""
    for key, photo in first_photos(3):
        first, again = camera_views(photo, key, 3), camera_views(photo, key, 3)
        assert [view.tobytes() for view in first] == [view.tobytes() for view in again]


def test_a_camera_view_differs_from_its_photo_but_keeps_its_size():
    """A view has the photo's shape and dtype, yet differs from it and from the photo's other views."""
    for key, photo in first_photos(3):
        views = camera_views(photo, key, 3)
        assert [(photo.shape, np.uint8)] * 3 == [(view.shape, view.dtype) for view in views]
        differences = [float(np.mean(np.abs(view.astype(np.int16) - photo))) for view in views]
        assert [True] * 3 == [difference > 5 for difference in differences], differences
        assert 3 == len({view.tobytes() for view in views})


def test_view_draws_depend_on_key_and_index_and_stay_in_range():
    """Seeds differ by key and by index; the crop keeps 70-95% of the area and JPEG quality stays in 40-90."""
    assert 4 == len({view_seed("dress/a.jpg", 0), view_seed("dress/a.jpg", 1), view_seed("dress/b.jpg", 0),
                     view_seed("hat/a.jpg", 0)})  # fmt: skip
    for index in range(200):
        params = draw_params(224, 224, view_seed("shoes/x.jpg", index))
        left, top, width, height = params.crop
        area = width * height / 224**2
        assert (True, True, True) == (
            CROP_AREA[0] - 1e-9 <= area <= CROP_AREA[1] + 1e-9,
            0 <= left <= 224 - width and 0 <= top <= 224 - height,
            JPEG_QUALITY[0] <= params.jpeg_quality <= JPEG_QUALITY[1],
        ), params


def test_quality_counts_recall_and_precision_by_class():
    """On a hand-made catalogue: recall@1/@5 count the query's own item, precision@5 leaves it out."""
    items = np.eye(6, dtype=np.float32)
    queries = np.array([[1, 0.5, 0, 0, 0, 0], [0.6, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0.1]], dtype=np.float32)
    vectors = Vectors(items, queries, np.array([0, 0, 5]), np.array([0, 0, 0, 1, 1, 1]))
    figures = quality(vectors)
    # Query 0: item 0 first. Query 1: item 1 first, item 0 second. Query 2: item 4 first, item 5 second.
    # Without their own item, the 5 nearest are all other items in index order after the best.
    assert (1, 3, 33.33, 100.0) == (
        figures["hits_at_1"],
        figures["hits_at_5"],
        figures["recall_at_1"],
        figures["recall_at_5"],
    )
    # Query 0 (class 0): items 1, 2, 3, 4, 5 -> 2 of class 0; query 1: 1, 2, 3, 4, 5 -> 2; query 2 (class 1): 4, 0, 1, 2, 3 -> 2.
    assert (6, 40.0) == (figures["class_hits_at_5"], figures["precision_at_5"])


def test_recall_figures_are_those_in_the_report():
    """The measurement rerun on the committed photos gives exactly the figures of models/report/retrieval.json."""
    reported = json.loads(REPORTED.read_text())
    measured = measure(PHOTOS, reported["views_per_photo"], DEFAULT_MANIFEST)
    assert {key: reported[key] for key in FIGURES} == {key: measured[key] for key in FIGURES}
    assert (True, True) == (reported["target_recall_at_5"]["met"], reported["embedding"]["recall_at_5"] >= 95.0)


def test_retrieval_cli_prints_json(tmp_path):
    """`python -m edge_classifier_build.retrieval --json` on two classes of three photos prints the document."""
    for folder in ("hat", "shoes"):
        (tmp_path / folder).mkdir()
        for photo in sorted((PHOTOS / folder).glob("*.jpg"))[:3]:
            shutil.copy(photo, tmp_path / folder / photo.name)
    out = subprocess.run([sys.executable, "-m", "edge_classifier_build.retrieval", "--photos", str(tmp_path),
                          "--views", "2", "--json"], capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert 0 == out.returncode, out.stderr
    document = json.loads(out.stdout)
    assert (6, 2, 12) == (document["items"], document["views_per_photo"], document["queries"])
    assert {"recall_at_1", "recall_at_5", "precision_at_5"} <= set(document["embedding"])


def test_search_bench_reports_every_size():
    """search_bench (in its child process with one BLAS thread) gives p50, p95 and the matrix's MB per size."""
    report = search_bench(sizes=(100, 1000), dims=32, k=5, queries=3)
    assert (["100", "1000"], 1, 5) == (list(report["sizes"]), report["blas_threads"], report["top_k"])
    row = report["sizes"]["1000"]
    assert (1000, round(1000 * 32 * 4 / 2**20, 2)) == (row["items"], row["matrix_mb"])
    assert [True, True] == [0 < row["p50_ms"] <= row["p95_ms"] for row in report["sizes"].values()]


def test_search_bench_in_process_and_storage_variants():
    """In this process (blas_threads None) the same keys; float16 keeps float32's top k, int8 stores a quarter."""
    assert ["1000"] == list(search_bench(sizes=(1000,), dims=16, queries=2, blas_threads=None)["sizes"])
    variants = storage_variants(items=2000, dims=64, k=5, queries=3)
    assert (1.0, 1.0) == (variants["float32"]["top_k_kept"], variants["float16"]["top_k_kept"])
    assert round(2000 * (64 + 4) / 2**20, 2) == variants["int8"]["matrix_mb"]


def test_top_k_orders_the_best_first():
    """top_k gives the K highest scores' indices, best first."""
    assert [3, 0, 2] == top_k(np.array([0.5, 0.1, 0.4, 0.9, 0.2], dtype=np.float32), 3).tolist()
