"""Ingest throughput against raw SentenceTransformer.encode, and re-ingest after no change / one edit.

    .venv/bin/python benchmarks/ingest.py [--passages 2000]

Builds a synthetic Markdown corpus of paragraph-sized passages in a temp folder, times
`rag ingest --rebuild --json` as a fresh process, then, in another fresh process, the floor: the same
model's `encode` over exactly the passage texts that ingest embedded, with the same batch size.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
from pathlib import Path

from common import PYTHON, RAG, emit, env_for, machine, ratio, run_child, synthetic_corpus

FLOOR = """
import json, sqlite3, sys, time
t0 = time.perf_counter()
from sentence_transformers import SentenceTransformer
from rag.embeddings import resolve_model_path
from rag.config import Settings
settings = Settings()
model = SentenceTransformer(str(resolve_model_path(settings.embedding_model)), device="cpu")
t1 = time.perf_counter()
texts = [row[0] for row in sqlite3.connect(sys.argv[1]).execute("SELECT text FROM passages ORDER BY id")]
model.encode(texts[:settings.embed_batch_size], batch_size=settings.embed_batch_size)  # warm-up
t2 = time.perf_counter()
model.encode(texts, batch_size=settings.embed_batch_size, normalize_embeddings=True)
t3 = time.perf_counter()
print(json.dumps({"passages": len(texts), "import_and_load_s": t1 - t0, "encode_s": t3 - t2}))
"""


def ingest(env, cwd, *flags) -> tuple[float, float, dict]:
    wall, rss, out = run_child([RAG, "ingest", "--json", *flags], env, cwd)
    return wall, rss, json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--passages", type=int, default=2000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rag-bench-ingest-"))
    corpus = synthetic_corpus(work / "corpus", args.passages)
    env = env_for(work / "vectorstore", corpus)

    ingest(env, work)  # the first build also exports the ONNX query model, which --rebuild then reuses
    wall, rss, report = ingest(env, work, "--rebuild")
    embedded = report["embedded"]
    manifest = json.loads((work / "vectorstore" / "manifest.json").read_text())
    records = work / "vectorstore" / manifest["records_file"]["name"]
    _, _, out = run_child([PYTHON, "-c", FLOOR, str(records)], env, work)
    floor = json.loads(out)
    assert floor["passages"] == embedded == sqlite3.connect(records).execute(
        "SELECT count(*) FROM passages").fetchone()[0]

    # Re-ingest: nothing changed, then one paragraph of one file edited.
    same_wall, _, same = ingest(env, work)
    post = corpus / "post-0000.md"
    post.write_text(post.read_text().replace("Post 0 paragraph 3.", "Post 0 paragraph 3, edited."))
    edit_wall, _, edit = ingest(env, work)

    ingest_pps = embedded / report["seconds"]
    floor_pps = embedded / floor["encode_s"]
    emit({
        "benchmark": "ingest", "machine": machine(), "corpus": {"files": report["files"],
                                                                "passages": report["passages"],
                                                                "unique_passages": report["unique_passages"]},
        "index_type": manifest["index_type"],
        "ingest_rebuild": {
            "passages_per_s": round(ingest_pps, 1), "in_process_s": report["seconds"],
            "process_wall_s": round(wall, 2), "process_passages_per_s": round(embedded / wall, 1),
            "peak_rss_mib": round(rss), "embedded": embedded,
        },
        "floor_sentence_transformers_encode": {
            "passages_per_s": round(floor_pps, 1), "encode_s": round(floor["encode_s"], 2),
            "import_and_load_s": round(floor["import_and_load_s"], 2),
        },
        "ratio_ingest_to_floor": ratio(ingest_pps, floor_pps), "goal_ratio_at_least": 0.9,
        "ratio_process_to_floor": ratio(embedded / wall, floor_pps),
        "reingest_no_change": {"embedded": same["embedded"], "in_process_s": same["seconds"],
                               "process_wall_s": round(same_wall, 3), "wrote_index": same["wrote_index"],
                               "goal": "0 embedded, < 1 s"},
        "reingest_one_edited_file": {"embedded": edit["embedded"], "reused": edit["reused"],
                                     "in_process_s": edit["seconds"], "process_wall_s": round(edit_wall, 2),
                                     "changed_files": edit["changed_files"]},
    })


if __name__ == "__main__":
    main()
