"""Milvus Lite next to FAISS flat, through the store interface the assistant uses.

    .venv/bin/python benchmarks/milvus.py [--size 100000] [--queries 300] [--hnsw]

Synthetic clustered 384-d unit vectors (as benchmarks/scale.py) with a short text record each. Per
backend: the store write an ingest does (records + BM25 file, then the vectors: a FAISS index file or
inserts into a new Milvus collection), opening the store, one dense query at a time with k = 30
(RAG_FETCH_K), and fetching 60 candidates' vectors (what MMR reads on every question). recall@10 is
against FAISS flat's exact top 10. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import machine, ms, percentile
from scale import DIM, FETCH_K, clustered

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from rag.config import Settings  # noqa: E402
from rag.index.manifest import BuildSpec  # noqa: E402
from rag.index.records import Record  # noqa: E402
from rag.index.registry import open_store, write_store  # noqa: E402
from rag.types import Source  # noqa: E402

SPEC = BuildSpec("synthetic", 1, 256)


def records(count: int) -> list[Record]:
    return [Record(f"{i:032x}", f"synthetic passage number {i} about topic {i % 997}",
                   (Source(f"Post {i % 5000}", f"posts/{i % 5000}.md", "Section", "bench", i),))
            for i in range(count)]


def run(store: str, index_type: str, recs: list[Record], vectors: np.ndarray, queries: np.ndarray,
        folder: Path) -> tuple[dict, np.ndarray]:
    settings = Settings(index_dir=folder / f"{store}-{index_type}", store=store, index_type=index_type)
    settings.index_dir.mkdir(parents=True)
    fresh = dict(zip((r.key for r in recs), vectors))
    start = time.perf_counter()
    write_store(settings, SPEC, DIM, recs, fresh, None, posts=5000, passages=len(recs))
    write_s = time.perf_counter() - start
    start = time.perf_counter()
    loaded = open_store(settings, SPEC)
    open_s = time.perf_counter() - start
    for q in queries[:10]:
        loaded.search(q, FETCH_K)  # warm-up
    times, found = [], []
    for q in queries:
        start = time.perf_counter()
        hits = loaded.search(q, FETCH_K)
        times.append(time.perf_counter() - start)
        found.append([i for i, _ in hits[:10]])
    rng = np.random.default_rng(1)
    fetch = []
    for _ in range(100):
        ids = rng.choice(len(recs), 60, replace=False).tolist()
        start = time.perf_counter()
        loaded.vectors(ids)
        fetch.append(time.perf_counter() - start)
    loaded.close()
    row = {"store": store, "index_type": index_type, "write_s": round(write_s, 2),
           "write_vectors_per_s": round(len(recs) / write_s), "open_s": round(open_s, 3),
           "search_p50_ms": ms(statistics.median(times)), "search_p95_ms": ms(percentile(times, 0.95)),
           "fetch_60_vectors_p50_ms": ms(statistics.median(fetch)),
           "fetch_60_vectors_p95_ms": ms(percentile(fetch, 0.95))}
    return row, np.array(found)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--hnsw", action="store_true", help="also HNSW on both backends (slow builds)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((2000, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = clustered(args.size, rng, centres)
    picks = vectors[rng.integers(0, args.size, args.queries)]
    queries = picks + rng.standard_normal(picks.shape, dtype=np.float32) * 0.03
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    recs = records(args.size)
    plan = [("faiss", "flat"), ("milvus", "flat")] + ([("faiss", "hnsw"), ("milvus", "hnsw")] if args.hnsw else [])
    rows, truth = [], None
    with tempfile.TemporaryDirectory(prefix="rag-milvus-bench-") as folder:
        for store, kind in plan:
            row, found = run(store, kind, recs, vectors, queries, Path(folder))
            if truth is None:
                truth = found
            row["recall_at_10"] = round(float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])), 4)
            row["disk_mib"] = round(sum(p.stat().st_size for p in (Path(folder) / f"{store}-{kind}").rglob("*")
                                        if p.is_file()) / 2**20, 1)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
            shutil.rmtree(Path(folder) / f"{store}-{kind}", ignore_errors=True)
    print(json.dumps({"benchmark": "milvus", "machine": machine(), "passages": args.size, "dimension": DIM,
                      "k": FETCH_K, "queries": args.queries, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
