"""Ingest throughput against raw SentenceTransformer.encode, and re-ingest after no change / one edit.

    .venv/bin/python benchmarks/ingest.py [--passages 2000] [--rounds 2]

Builds a synthetic Markdown corpus of paragraph-sized passages in a temp folder and times, side by side in
this one process with the model loaded once for both: `run_ingest(rebuild=True)` and the floor, the same
model's `encode` over exactly the passage texts that ingest embedded, with the same batch size. They run
alternately (floor, ingest, ingest, floor, ... `--rounds` of each), so that other load on the machine falls
on both alike; the ratio is of their summed times. `rag ingest --rebuild --json` as a fresh process (import
and model load included) is timed too, against the same floor.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path

from common import RAG, emit, env_for, machine, ratio, run_child, synthetic_corpus


def ingest(env, cwd, *flags) -> tuple[float, float, dict]:
    wall, rss, out = run_child([RAG, "ingest", "--json", *flags], env, cwd)
    return wall, rss, json.loads(out)


def side_by_side(settings, texts: list[str], rounds: int) -> dict:
    """Alternate timed runs of the raw encode and the in-process rebuild; the model loads once, first."""
    import rag.embeddings as embeddings
    from rag.ingest import run_ingest

    started = time.perf_counter()
    encoder = embeddings.load_encoder(embeddings.resolve_model_path(settings.embedding_model),
                                      settings.embed_batch_size)
    load_s = time.perf_counter() - started
    model, batch = encoder.model, settings.embed_batch_size
    model.encode(texts[:batch], batch_size=batch)  # warm-up

    embedded: list[str] = []
    real_encode = embeddings.SentenceEncoder.encode

    def recording(self, batch_texts, progress=False):  # what the rebuild embeds, to check it is the floor's
        embedded.extend(batch_texts)
        return real_encode(self, batch_texts, progress)

    def floor() -> float:
        start = time.perf_counter()
        model.encode(texts, batch_size=batch, normalize_embeddings=True, convert_to_numpy=True)
        return time.perf_counter() - start

    def rebuild() -> float:
        embedded.clear()
        embeddings.SentenceEncoder.encode = recording
        try:
            start = time.perf_counter()
            run_ingest(settings, rebuild=True)
            return time.perf_counter() - start
        finally:
            embeddings.SentenceEncoder.encode = real_encode

    floors, ingests = [], []
    for n in range(rounds):
        for run in ((floor, rebuild) if n % 2 == 0 else (rebuild, floor)):
            (floors if run is floor else ingests).append(run())
            if run is rebuild:
                assert sorted(embedded) == sorted(texts), "the rebuild embedded other texts than the floor"
    return {"floor_s": floors, "ingest_s": ingests, "load_s": load_s}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--passages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2, help="timed runs of each, alternating")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rag-bench-ingest-"))
    corpus = synthetic_corpus(work / "corpus", args.passages)
    env = env_for(work / "vectorstore", corpus)

    ingest(env, work)  # the first build also exports the ONNX query model, which --rebuild then reuses
    wall, rss, report = ingest(env, work, "--rebuild")
    embedded = report["embedded"]
    manifest = json.loads((work / "vectorstore" / "manifest.json").read_text())
    records = work / "vectorstore" / manifest["records_file"]["name"]
    with sqlite3.connect(records) as db:  # the default settings embed a passage's text as it is
        texts = [row[0] for row in db.execute("SELECT text FROM passages ORDER BY id")]
    assert len(texts) == embedded

    from rag.config import Settings

    settings = Settings(corpus_dir=corpus, index_dir=work / "vectorstore")
    timed = side_by_side(settings, texts, args.rounds)
    floor_s, ingest_s = sum(timed["floor_s"]) / args.rounds, sum(timed["ingest_s"]) / args.rounds

    # Re-ingest: nothing changed, then one paragraph of one file edited.
    same_wall, _, same = ingest(env, work)
    post = corpus / "post-0000.md"
    post.write_text(post.read_text().replace("Post 0 paragraph 3.", "Post 0 paragraph 3, edited."))
    edit_wall, _, edit = ingest(env, work)

    ingest_pps, floor_pps = embedded / ingest_s, embedded / floor_s
    emit({
        "benchmark": "ingest", "machine": machine(), "corpus": {"files": report["files"],
                                                                "passages": report["passages"],
                                                                "unique_passages": report["unique_passages"]},
        "index_type": manifest["index_type"], "batch_size": settings.embed_batch_size, "rounds": args.rounds,
        "ingest_rebuild": {
            "passages_per_s": round(ingest_pps, 1), "in_process_s": round(ingest_s, 2),
            "in_process_runs_s": [round(s, 2) for s in timed["ingest_s"]],
            "process_wall_s": round(wall, 2), "process_passages_per_s": round(embedded / wall, 1),
            "peak_rss_mib": round(rss), "embedded": embedded,
        },
        "floor_sentence_transformers_encode": {
            "passages_per_s": round(floor_pps, 1), "encode_s": round(floor_s, 2),
            "encode_runs_s": [round(s, 2) for s in timed["floor_s"]],
            "import_and_load_s": round(timed["load_s"], 2),
        },
        "ratio_ingest_to_floor": ratio(ingest_pps, floor_pps), "goal_ratio_at_least": 0.95,
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
