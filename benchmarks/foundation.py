"""Foundation figures: ingest, no-change re-ingest, cold and warm search. Prints one JSON object.

    .venv/bin/python benchmarks/foundation.py [--corpus corpus] [--runs 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import percentile, timed

QUESTIONS = [
    "How did they cut cloud costs?", "Why did the database fail during traffic spikes?",
    "What did mob programming do to defect rates?", "How are breaking API changes announced?",
]


def cold_process(argv, env, cwd, runs=5):
    """Median wall time of a fresh process (what a user waits for at the shell)."""
    times = []
    for _ in range(runs):
        _, seconds = timed(lambda: subprocess.run(argv, env=env, cwd=cwd, check=True, capture_output=True))
        times.append(seconds)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default="corpus")
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rag import Assistant, Settings

    workdir = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    settings = Settings(corpus_dir=Path(args.corpus).resolve(), index_dir=workdir / "vectorstore")
    report, ingest_s = timed(lambda: Assistant(settings).ingest())
    again, reingest_s = timed(lambda: Assistant(settings).ingest())
    assistant = Assistant(settings)
    assistant.search("warm up")
    warm = [timed(lambda q=q: assistant.search(q))[1] for _ in range(args.runs // 4) for q in QUESTIONS]

    env = {**os.environ, "RAG_INDEX_DIR": str(settings.index_dir), "RAG_CORPUS_DIR": str(settings.corpus_dir)}
    rag = str(Path(sys.executable).with_name("rag"))
    print(json.dumps({
        "posts": report.posts, "passages": report.passages, "unique_passages": report.unique_passages,
        "ingest_s": round(ingest_s, 3),
        "reingest_no_change_s": round(reingest_s, 3), "reingest_embedded": again.embedded,
        "search_warm_p50_ms": round(statistics.median(warm) * 1000, 2),
        "search_warm_p95_ms": round(percentile(warm, 0.95) * 1000, 2),
        "rag_search_cold_process_s": round(cold_process([rag, "search", QUESTIONS[0], "--json"], env, workdir), 3),
        "rag_ingest_no_change_process_s": round(cold_process([rag, "ingest", "--json"], env, workdir), 3),
        "import_sentence_transformers_process_s": round(
            cold_process([sys.executable, "-c", "import sentence_transformers"], env, workdir, runs=3), 3),
    }, indent=2))


if __name__ == "__main__":
    main()
