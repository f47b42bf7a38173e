"""Brute-force visual search at catalogue scale: top-k by one matrix-vector product, latency and memory by size.

The catalogue is N random unit vectors of the embedding's length (1,280 float32 values, seeded, so every run
searches the same matrix); a query is another random unit vector. One search is `matrix @ query` (cosine
similarity of unit vectors), `argpartition` for the k best, then a sort of those k. `storage_variants` (for the
report, not part of `bench`) compares float16 and int8 storage of the same matrix: memory, latency with numpy and
how many of float32's top k they keep.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

SIZES = (1_000, 10_000, 100_000)
DIMS = 1280  # the default model's embedding
TOP_K = 10
QUERIES = 50
WARMUP = 2  # searches not counted
CHUNK_ROWS = 8192  # rows generated (and, for the storage variants, converted to float32) at a time
# The daemon would search on one thread while inference holds the others; a multithreaded BLAS on cores that
# other work shares also gave bimodal timings here (10k items: 1.3 or 8 ms). So the measurement runs in a child
# process whose BLAS is limited to BLAS_THREADS (which also keeps its 0.5 GB matrix out of the caller's memory).
BLAS_THREADS = 1
CHILD_TIMEOUT_S = 600

Matrix = npt.NDArray[Any]
Vector = npt.NDArray[np.float32]


def unit_matrix(items: int, dims: int, seed: int) -> npt.NDArray[np.float32]:
    """ITEMS random unit vectors of DIMS float32 values, made chunk by chunk (no full-size temporary)."""
    rng = np.random.default_rng(seed)
    matrix = np.empty((items, dims), dtype=np.float32)
    for start in range(0, items, CHUNK_ROWS):
        chunk = rng.standard_normal((min(CHUNK_ROWS, items - start), dims), dtype=np.float32)
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        matrix[start : start + len(chunk)] = chunk
    return matrix


def unit_queries(count: int, dims: int, seed: int) -> npt.NDArray[np.float32]:
    return unit_matrix(count, dims, seed + 1_000_003)  # a stream of its own, never the catalogue's rows


def top_k(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.intp]:
    """The indices of the K highest scores, best first."""
    k = min(k, len(scores))
    best = np.argpartition(scores, len(scores) - k)[len(scores) - k :]
    return best[np.argsort(-scores[best], kind="stable")]


def search(matrix: npt.NDArray[np.float32], query: Vector, k: int) -> npt.NDArray[np.intp]:
    """Brute force: one matrix-vector product, then the top K."""
    scores: npt.NDArray[np.float32] = matrix @ query
    return top_k(scores, k)


def timed_ms(run: Callable[[Vector], object], queries: npt.NDArray[np.float32]) -> dict[str, float]:
    """p50 / p95 milliseconds of RUN over the queries, the first WARMUP runs not counted."""
    seconds = []
    for i, query in enumerate(queries):
        start = time.perf_counter()
        run(query)
        if i >= WARMUP:
            seconds.append(time.perf_counter() - start)
    ms = np.array(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p95_ms": round(float(np.percentile(ms, 95)), 3)}


def in_child(function: str, kwargs: dict[str, Any], blas_threads: int) -> dict[str, Any]:
    """FUNCTION(**KWARGS) of this module run in a fresh Python whose BLAS uses BLAS_THREADS threads."""
    threads = str(blas_threads)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    out = subprocess.run([sys.executable, "-m", __name__, function, json.dumps(kwargs)], env=env, capture_output=True,
                         text=True, timeout=CHILD_TIMEOUT_S)  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"search bench child failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    result: dict[str, Any] = json.loads(out.stdout)
    return {**result, "blas_threads": blas_threads}


def search_bench(sizes: Sequence[int] = SIZES, dims: int = DIMS, k: int = TOP_K, queries: int = QUERIES,
                 seed: int = 0, blas_threads: int | None = BLAS_THREADS) -> dict[str, Any]:  # fmt: skip
    """Latency (p50, p95) and the matrix's memory for a brute-force top-K search at each catalogue size.

    In a child process with BLAS_THREADS BLAS threads; None: in this process, its BLAS as it is.
    """
    kwargs: dict[str, Any] = {"sizes": list(sizes), "dims": dims, "k": k, "queries": queries, "seed": seed}
    if blas_threads is not None:
        return in_child("measure_search", kwargs, blas_threads)
    return {**measure_search(**kwargs), "blas_threads": None}


def measure_search(sizes: Sequence[int], dims: int, k: int, queries: int, seed: int) -> dict[str, Any]:
    """search_bench's measurement, in the calling process."""
    query_vectors = unit_queries(queries + WARMUP, dims, seed)
    by_size: dict[str, Any] = {}
    for items in sizes:
        matrix = unit_matrix(items, dims, seed)
        by_size[str(items)] = {
            "items": items,
            "matrix_mb": round(matrix.nbytes / 2**20, 2),
            **timed_ms(partial(search, matrix, k=k), query_vectors),
        }
        logger.info("search over %d items: p50 %.3f ms", items, by_size[str(items)]["p50_ms"])
        del matrix
    return {
        "method": "brute force: float32 matrix @ query, argpartition, sort of the top k",
        "dims": dims,
        "dtype": "float32",
        "top_k": k,
        "queries": queries,
        "seed": seed,
        "cores": len(os.sched_getaffinity(0)),
        # Other processes compete for the same cores and memory bandwidth: timings move with this.
        "load_average_1min": round(os.getloadavg()[0], 2),
        "sizes": by_size,
    }


def chunked_scores(matrix: Matrix, query: Vector, row_scale: npt.NDArray[np.float32] | None = None) -> Vector:
    """matrix @ query, a float16 or int8 matrix converted to float32 a chunk at a time (numpy has no such kernel)."""
    scores = np.empty(len(matrix), dtype=np.float32)
    for start in range(0, len(matrix), CHUNK_ROWS):
        scores[start : start + CHUNK_ROWS] = matrix[start : start + CHUNK_ROWS].astype(np.float32, copy=False) @ query
    return scores if row_scale is None else scores * row_scale


def scored_top_k(scores: Callable[[Vector], Vector], k: int, query: Vector) -> npt.NDArray[np.intp]:
    return top_k(scores(query), k)


def int8_rows(matrix: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]:
    """Symmetric int8 quantisation with one scale per row: (codes, scale) with row ~= codes * scale."""
    scale = (np.abs(matrix).max(axis=1) / 127.0).astype(np.float32)
    codes = np.round(matrix / scale[:, None]).astype(np.int8)
    return codes, scale


def storage_variants(items: int = 100_000, dims: int = DIMS, k: int = TOP_K, queries: int = 10, seed: int = 0,
                     blas_threads: int = BLAS_THREADS) -> dict[str, Any]:  # fmt: skip
    """float32, float16 and int8 storage of one random catalogue: MB, p50 ms with numpy, share of float32's top K."""
    kwargs: dict[str, Any] = {"items": items, "dims": dims, "k": k, "queries": queries, "seed": seed}
    return in_child("measure_storage", kwargs, blas_threads)


def measure_storage(items: int, dims: int, k: int, queries: int, seed: int) -> dict[str, Any]:
    """storage_variants' measurement, in the calling process."""
    matrix = unit_matrix(items, dims, seed)
    query_vectors = unit_queries(queries + WARMUP, dims, seed)
    exact = [set(search(matrix, q, k).tolist()) for q in query_vectors]
    half = matrix.astype(np.float16)
    codes, scale = int8_rows(matrix)
    variants: dict[str, tuple[int, Callable[[Vector], Vector]]] = {
        "float32": (matrix.nbytes, partial(chunked_scores, matrix)),
        "float16": (half.nbytes, partial(chunked_scores, half)),
        "int8": (codes.nbytes + scale.nbytes, partial(chunked_scores, codes, row_scale=scale)),
    }
    report: dict[str, Any] = {"items": items, "dims": dims, "top_k": k, "queries": queries,
                              "kept_over_queries": len(query_vectors)}  # fmt: skip
    for name, (nbytes, scores) in variants.items():
        kept = [len(exact[i] & set(top_k(scores(q), k).tolist())) for i, q in enumerate(query_vectors)]
        report[name] = {
            "matrix_mb": round(nbytes / 2**20, 2),
            **timed_ms(partial(scored_top_k, scores, k), query_vectors),
            "top_k_kept": round(sum(kept) / (k * len(kept)), 4),
        }
    return report


def main(argv: list[str]) -> int:
    """`python -m edge_classifier.bench.search FUNCTION KWARGS_JSON`: in_child's other end; prints the result."""
    functions: dict[str, Callable[..., dict[str, Any]]] = {"measure_search": measure_search,
                                                          "measure_storage": measure_storage}  # fmt: skip
    print(json.dumps(functions[argv[0]](**json.loads(argv[1]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
