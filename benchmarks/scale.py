"""Dense search at scale: flat vs HNSW (vs IVF) on synthetic 384-d unit vectors, against exact search.

    .venv/bin/python benchmarks/scale.py [--sizes 10000,100000,1000000] [--queries 200]

The vectors are clustered (2000 centres, noise of similar norm) rather than uniform on the sphere,
which is closer to sentence embeddings: uniform random 384-d vectors have no meaningful neighbours.
Queries are perturbed copies of stored vectors. One query at a time with k = 30 (RAG_FETCH_K), as the
query path asks; recall@10 compares with the flat index's exact top 10. Memory is the index's size as
FAISS writes it (what a normal read holds in RAM; what a memory-mapped read maps).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import faiss
import numpy as np
from common import emit, machine, ms, percentile, ratio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from rag.index.faiss import build_index, search_index  # noqa: E402
from rag.index.store import IndexOptions  # noqa: E402

DIM, FETCH_K = 384, 30


def clustered(count: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    out = np.empty((count, DIM), dtype=np.float32)
    for start in range(0, count, 100_000):
        n = min(100_000, count - start)
        block = centres[rng.integers(0, len(centres), n)] + rng.standard_normal((n, DIM), dtype=np.float32) * 0.06
        block = np.ascontiguousarray(block, dtype=np.float32)
        faiss.normalize_L2(block)
        out[start:start + n] = block
    return out


def latency(index: faiss.Index, queries: np.ndarray, search=search_index) -> tuple[list[float], np.ndarray]:
    """One query at a time through the store's search (FaissStore.search calls search_index)."""
    times, found = [], []
    for q in queries:
        start = time.perf_counter()
        _, ids = search(index, q.reshape(1, -1), FETCH_K)
        times.append(time.perf_counter() - start)
        found.append(ids[0][:10])
    return times, np.array(found)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return round(float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])), 4)


def size_mib(index: faiss.Index) -> float:
    return round(len(faiss.serialize_index(index)) / 2**20, 1)


def measure(name: str, build, queries: np.ndarray, truth: np.ndarray | None) -> dict:
    start = time.perf_counter()
    index = build()
    build_s = time.perf_counter() - start
    latency(index, queries[:5])  # warm-up
    times, found = latency(index, queries)
    row = {"index": name, "build_s": round(build_s, 2), "p50_ms": ms(statistics.median(times)),
           "p95_ms": ms(percentile(times, 0.95)), "memory_mib": size_mib(index)}
    if truth is not None:
        row["recall_at_10"] = recall(found, truth)
    return row, index, found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,25000,50000,100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ivf", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    options = IndexOptions()
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((2000, DIM), dtype=np.float32)
    faiss.normalize_L2(centres)
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        data = clustered(size, rng, centres)
        nq = args.queries if size < 1_000_000 else max(50, args.queries // 2)
        picks = rng.integers(0, size, nq)
        queries = np.ascontiguousarray(data[picks] + rng.standard_normal((nq, DIM), dtype=np.float32) * 0.03,
                                       dtype=np.float32)
        faiss.normalize_L2(queries)
        flat_row, flat, truth = measure("flat", partial(build_index, data, np.arange(size), DIM, "flat", options), queries, None)
        flat_row["recall_at_10"] = 1.0
        times, _ = latency(flat, queries, lambda index, q, k: index.search(q, k))
        before = {"index": "  flat, FAISS default OpenMP threads (before)", "build_s": None,
                  "p50_ms": ms(statistics.median(times)), "p95_ms": ms(percentile(times, 0.95)),
                  "memory_mib": flat_row["memory_mib"], "recall_at_10": 1.0}
        rows = [flat_row, before]
        del flat
        if size >= 100_000 or size == 10_000:  # the small extra sizes only place the flat/HNSW threshold
            row, index, _ = measure(f"hnsw M={options.m} efC={options.ef_construction} efS={options.ef_search}",
                                    partial(build_index, data, np.arange(size), DIM, "hnsw", options), queries, truth)
            rows.append(row)
            for ef in (48, 192):
                faiss.downcast_index(index.index).hnsw.efSearch = ef  # the graph under the passage-id map
                times, found = latency(index, queries)
                rows.append({"index": f"  same graph, efSearch={ef}", "build_s": None,
                             "p50_ms": ms(statistics.median(times)), "p95_ms": ms(percentile(times, 0.95)),
                             "memory_mib": row["memory_mib"], "recall_at_10": recall(found, truth)})
            del index
            if args.ivf:
                nlist = int(4 * np.sqrt(size))

                def ivf(data=data, size=size, nlist=nlist):
                    quantizer = faiss.IndexFlatIP(DIM)
                    index = faiss.IndexIVFFlat(quantizer, DIM, nlist, faiss.METRIC_INNER_PRODUCT)
                    sample = data[rng.choice(size, min(size, 40 * nlist, 50_000), replace=False)]
                    index.train(sample)
                    index.add(data)
                    index.nprobe = max(8, nlist // 32)
                    return index

                row, index, _ = measure(f"ivf nlist={nlist} nprobe={max(8, nlist // 32)}", ivf, queries, truth)
                rows.append(row)
                del index
        for row in rows:
            row["speedup_vs_flat"] = ratio(flat_row["p50_ms"], row["p50_ms"])
        results.append({"passages": size, "queries": nq, "rows": rows})
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
        del data
    emit({"benchmark": "scale", "machine": machine(), "dimension": DIM, "k": FETCH_K,
          "floor": "flat (exact) search at the same size", "results": results})


if __name__ == "__main__":
    main()
