"""The report's visual-search section, rendered from models/report/retrieval.json alone (Markdown lines).

That file is written by `python -m edge_classifier_build.retrieval --search-bench --output ...`: the retrieval
quality of the default model's embedding on the committed photos and the brute-force search's cost by size.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

RESULTS_NAME = "retrieval.json"  # beside the sweep's results file
# A Raspberry Pi 4 (Cortex-A72, LPDDR4) against this x86-64 machine for a memory-bound float32 matrix-vector
# product: an estimate (memory bandwidth and SIMD width), not a measurement.
PI_SLOWDOWN = (4, 6)
COMMAND = "python -m edge_classifier_build.retrieval --photos tests/data/real-photos --views 3 --search-bench"


def pct(value: float) -> str:
    return f"{value:.2f}"


def quality_lines(doc: dict[str, Any]) -> list[str]:
    e, s, g = doc["embedding"], doc["class_scores"], doc["generator"]
    target = doc["target_recall_at_5"]
    met = "met" if target["met"] else "not met"
    return [
        "## Visual search: retrieval quality",
        "",
        f"How well the default model's embedding finds a catalogue item from a camera's view of it. The catalogue: "
        f"the {doc['items']} committed validation photos (`{doc['photos']}`), one item each. The queries: "
        f"{doc['views_per_photo']} camera-like views of every photo ({doc['queries']} queries), made by "
        f"`edge_classifier_build/camera_views.py`: a crop of {g['crop_area'][0]:.0%}-{g['crop_area'][1]:.0%} of the "
        f"area, a rotation of up to ±{g['max_rotation_deg']:g}°, a perspective warp (corners moved by up to "
        f"{g['max_corner_shift']:.0%}), a Gaussian blur (sigma {g['blur_sigma'][0]:g}-{g['blur_sigma'][1]:g} px), "
        f"contrast ×{g['contrast'][0]:g}-{g['contrast'][1]:g} and brightness {g['brightness'][0]:+g} to "
        f"{g['brightness'][1]:+g}, JPEG re-compression at quality {g['jpeg_quality'][0]}-{g['jpeg_quality'][1]}, "
        "each view seeded by its photo's path and index. Every image goes through the daemon's own path "
        "(`Classifier.classify`: centre crop, int8 model, the embedding L2-normalised by the runtime); the search is "
        "brute force, cosine similarity as a dot product. recall@k: the query's own item is among the k nearest; "
        "precision@5 by class: the share of the 5 nearest items, the query's own item left out, that have the "
        "query's class. The baseline searches with the trained head's 10 class scores (L2-normalised) instead.",
        "",
        "| Search with | recall@1 % | recall@5 % | precision@5 by class %, views | precision@5 %, photos |",
        "|---|---:|---:|---:|---:|",
        f"| embedding (1,280 values) | {pct(e['recall_at_1'])} | {pct(e['recall_at_5'])} | "
        f"{pct(e['precision_at_5'])} | {pct(e['photo_queries']['precision_at_5'])} |",
        f"| class scores (10 values, baseline) | {pct(s['recall_at_1'])} | {pct(s['recall_at_5'])} | "
        f"{pct(s['precision_at_5'])} | {pct(s['photo_queries']['precision_at_5'])} |",
        "",
        f"Target recall@5 ≥ {target['threshold']:g}%: {pct(e['recall_at_5'])}%, {met}. Precision@5 with views: the "
        "camera-like views as queries; with photos: each catalogue photo itself as the query, leaving itself out.",
        "",
        f"The embedding finds the photographed item first for {pct(e['recall_at_1'])}% of the views; the class "
        f"scores, which cannot tell two items of one class apart, for {pct(s['recall_at_1'])}%. Searching by class "
        f"the class scores do slightly better ({pct(s['precision_at_5'])}% against {pct(e['precision_at_5'])}%): "
        "the head was trained for exactly that, while the embedding also carries colour, pattern and background, "
        'so some of an item\'s nearest neighbours are look-alikes of another class. For "similar items" that is '
        "wanted; a shop that wants same-class results only can filter the neighbours by the predicted label.",
        "",
        "Caveats. The embedding's backbone was fine-tuned on the training split of the same 10 classes (the "
        "validation photos were not trained on, but the recipe was chosen on them), so garments of other kinds "
        "may be separated less well. The queries are synthetic views of the catalogue's own photos, not new "
        "photos of the same garment (another angle, light, background, worn or laid flat): no data set here has "
        "several photos of one garment, and recall on real customer photos will be lower than these figures.",
        "",
        f"Reproduce: `{COMMAND} --output models/report/retrieval.json` (about 5 s for the recall figures). "
        "The figures are deterministic: the views are bit-identical between runs and the int8 model's embeddings "
        "are too (1 and 2 interpreter threads give the same; their sha256 is recorded as `embeddings_sha256`); "
        "`tests/test_retrieval.py` recomputes them and compares them exactly with the file.",
        "",
    ]


def estimate(ms: float) -> str:
    low, high = PI_SLOWDOWN
    return f"{ms * low:.1f}-{ms * high:.1f}"


def cost_lines(bench: dict[str, Any]) -> list[str]:
    sizes = bench["sizes"]
    lines = [
        "### Search cost by catalogue size",
        "",
        f"Brute force on random seeded unit vectors of {bench['dims']:,} float32 values: one matrix-vector product, "
        f"`argpartition` for the top {bench['top_k']}, a sort of those; p50 and p95 over {bench['queries']} "
        f"queries after a warm-up, numpy with {bench['blas_threads']} BLAS thread (the daemon would search on one "
        "thread while inference holds the others; two BLAS threads on these shared cores gave bimodal timings), "
        f"on the x86-64 machine of the other figures ({bench['cores']} cores of an Intel Xeon, load average "
        f"{bench['load_average_1min']:g} during the run). `edge-classifier bench` reports the same as `search`. "
        f"The Pi 4 column is an estimate, not a measurement: these x86 times ×{PI_SLOWDOWN[0]}-{PI_SLOWDOWN[1]} "
        "(the product is bound by memory bandwidth beyond a few thousand items).",
        "",
        "| Items | Matrix MB | p50 ms | p95 ms | Pi 4 estimate, p50 ms |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in sizes.values():
        lines.append(f"| {row['items']:,} | {row['matrix_mb']:g} | {row['p50_ms']:.3f} | {row['p95_ms']:.3f} | "
                     f"{estimate(row['p50_ms'])} |")  # fmt: skip
    lines.append("")
    storage = bench.get("storage")
    if storage:
        lines += [
            f"Storage of {storage['items']:,} items (numpy, {storage['blas_threads']} BLAS thread; top k kept: the "
            f"share of float32's top {storage['top_k']} the variant finds, over {storage['kept_over_queries']} "
            "queries):",
            "",
            "| Stored as | Matrix MB | p50 ms | p95 ms | Top k kept |",
            "|---|---:|---:|---:|---:|",
        ]
        for name in ("float32", "float16", "int8"):
            row = storage[name]
            lines.append(f"| {name} | {row['matrix_mb']:g} | {row['p50_ms']:.3f} | {row['p95_ms']:.3f} | "
                         f"{row['top_k_kept']:.4f} |")  # fmt: skip
        lines += [
            "",
            "int8 is one scale per row; random vectors in 1,280 dimensions have nearly equal similarities, a harsher "
            "test than real embeddings. For this model int8 storage loses nothing: its embedding is itself an int8 "
            "output (one scale and zero point for the tensor), so its raw 1,280 bytes and the vector's norm give "
            "the same cosine (up to float rounding). numpy has no float16 or int8 matrix-vector kernel: their times "
            "here are mostly the conversion to float32, chunk by chunk, and a library with such kernels (faiss's "
            "scalar quantizer, sqlite-vec's int8 vectors) would read a half or a quarter of the memory instead.",
            "",
        ]
    return lines


def index_lines(bench: dict[str, Any]) -> list[str]:
    sizes = {int(k): v for k, v in bench["sizes"].items()}
    if 10_000 not in sizes or 100_000 not in sizes:
        return []
    ten, hundred = sizes[10_000], sizes[100_000]
    fifty_ms = ten["p50_ms"] + (hundred["p50_ms"] - ten["p50_ms"]) * 40 / 90  # interpolated, not measured
    return [
        "When an approximate index would pay, on a Pi-class CPU (from the estimate above): at 10,000 items a "
        f"search costs about {estimate(ten['p50_ms'])} ms and {ten['matrix_mb']:g} MB, and `result` (which carries "
        "the similar items) goes out on a change of label and every heartbeat, not every frame: brute force is "
        "right at shop scale. Around 50,000 items it reaches about "
        f"{estimate(fifty_ms)} ms (interpolated) and {hundred['matrix_mb'] / 2:g} MB in float32; at 100,000 "
        f"about {estimate(hundred['p50_ms'])} ms and {hundred['matrix_mb']:g} MB, more than a 1-2 GB device "
        "should hold for one index. Memory binds first: stored as the model's own int8 output, the vectors take "
        "a quarter of that with the same results (but need a library that computes on int8: in numpy the "
        "conversion costs more time than the smaller read saves). Beyond about 50,000 items (or 10,000 if every "
        f"frame were searched, when {estimate(ten['p50_ms'])} ms per frame would matter) an approximate index "
        "pays: faiss (IVF or HNSW, optionally with int8 or product-quantised codes) has aarch64 wheels; "
        "sqlite-vec's released `vec0` tables scan every row (brute force over float, "
        "int8 or bit vectors: they cut memory, not the scan), and its first approximate index (`rescore`) was "
        "merged upstream only in March 2026; hnswlib has no aarch64 wheel. These thresholds rest on the "
        f"×{PI_SLOWDOWN[0]}-{PI_SLOWDOWN[1]} estimate: measure on the device before relying on them.",
        "",
    ]


def retrieval_section(doc: dict[str, Any]) -> list[str]:
    """The `## Visual search: retrieval quality` section (Markdown lines) from retrieval.json's document."""
    lines = quality_lines(doc)
    bench = doc.get("search_bench")
    if bench:
        lines += [*cost_lines(bench), *index_lines(bench)]
    return lines
