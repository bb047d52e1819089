"""The query path on the shipped corpus: warm latency, cold start, peak memory.

    .venv/bin/python benchmarks/query.py [--runs 300] [--cold-runs 5] [--index-dir DIR]

- warm p50/p95 of Assistant.search and of an extractive Assistant.ask, against the floor of embedding
  one question with the same OnnxEncoder (`encode([q])`), same questions, same process;
- a fresh `rag ask "..." --json` process against a fresh process that only imports sentence_transformers
  (medians of several runs), with each one's peak RSS (the child's own ru_maxrss), and the RSS goal.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from common import (
    PYTHON,
    QUESTIONS,
    RAG,
    SHIPPED_CORPUS,
    emit,
    env_for,
    fresh_process,
    machine,
    ms,
    percentile,
    ratio,
    timed,
)

# Issue 20: the cold `rag ask` process on the shipped corpus stays under this peak RSS (GNU time %M).
GOAL_COLD_RSS_MIB = 150


def build(index_dir: Path | None) -> Path:
    from rag import Assistant, Settings

    if index_dir:
        return index_dir
    index_dir = Path(tempfile.mkdtemp(prefix="rag-bench-query-")) / "vectorstore"
    Assistant(Settings(corpus_dir=SHIPPED_CORPUS, index_dir=index_dir)).ingest()
    return index_dir


def warm(fn, runs: int) -> dict:
    for q in QUESTIONS:
        fn(q)
    times = [timed(lambda q=q: fn(q))[1] for _ in range(max(1, runs // len(QUESTIONS))) for q in QUESTIONS]
    return {"p50_ms": ms(statistics.median(times)), "p95_ms": ms(percentile(times, 0.95)), "n": len(times)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--index-dir", type=Path)
    args = parser.parse_args()
    from rag import Assistant, Settings

    index_dir = build(args.index_dir)
    assistant = Assistant(Settings(corpus_dir=SHIPPED_CORPUS, index_dir=index_dir, answerer="extractive"))
    assistant.load()
    with assistant._index.borrow() as resources:
        encoder, manifest = resources.encoder, resources.store.manifest
    floor = warm(lambda q: encoder.encode([q]), args.runs)
    search = warm(lambda q: assistant.search(q), args.runs)
    ask = warm(lambda q: assistant.ask(q), args.runs)

    env = env_for(index_dir, SHIPPED_CORPUS, RAG_ANSWERER="extractive")
    cwd = index_dir.parent
    cold_ask = fresh_process([RAG, "ask", QUESTIONS[-1], "--json"], env, cwd, args.cold_runs)
    cold_search = fresh_process([RAG, "search", QUESTIONS[0], "--json"], env, cwd, args.cold_runs)
    st_import = fresh_process([PYTHON, "-c", "import sentence_transformers"], env, cwd, max(3, args.cold_runs // 2 + 1))
    emit({
        "benchmark": "query", "machine": machine(),
        "index": {"passages": manifest.unique_passages, "type": manifest.index_type},
        "floor_query_embedding": floor,
        "search_warm": {**search, "p50_vs_floor": ratio(search["p50_ms"], floor["p50_ms"])},
        "ask_extractive_warm": {**ask, "p50_vs_floor": ratio(ask["p50_ms"], floor["p50_ms"])},
        "goal_p50_vs_floor_at_most": 2.0,
        "cold_rag_ask_json": cold_ask,
        "cold_rag_search_json": cold_search,
        "floor_import_sentence_transformers": st_import,
        "cold_ask_vs_import": ratio(cold_ask["median_s"], st_import["median_s"]), "goal_cold_ratio_at_most": 0.3,
        "rss_ask_vs_import": ratio(cold_ask["peak_rss_mib"], st_import["peak_rss_mib"]),
        "goal_cold_ask_peak_rss_mib_at_most": GOAL_COLD_RSS_MIB,
    })


if __name__ == "__main__":
    main()
