"""Retrieval settings across the three eval corpora: which fusion weights, candidate depth and diversity
each corpus prefers, retrieval only (k = 5). Indexes are built once into a work folder.

    .venv/bin/python scripts/retrieval/sweep.py [--work /tmp/rag-sweep] [--grid '{"lexical_weight": [0.6, 0.8]}']

Prints one JSON line per (corpus, setting) and a summary of the best settings by mean MRR and by the
worst corpus.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rag import Assistant, Settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "eval" / "squad_dev_subset"
CORPORA = {
    "case_studies": (ROOT / "corpus", ROOT / "tests" / "data" / "eval_case_studies.jsonl"),
    "wiki": (ROOT / "tests" / "data" / "eval_corpus", ROOT / "tests" / "data" / "eval_corpus_questions.jsonl"),
    "squad": (SHARED / "corpus", SHARED / "questions.jsonl"),
}
GRID = {
    "dense_weight": [0.0, 1.0],
    "lexical_weight": [0.0, 0.1, 0.2, 0.3, 0.5],
    "fetch_k": [30],
    "mmr_lambda": [0.8, 1.0],
}
METRICS = ("hit@k", "mrr", "answer_in_retrieved", "chars@k")


def assistants(work: Path) -> dict[str, tuple[Assistant, Path]]:
    built = {}
    for name, (corpus, questions) in CORPORA.items():
        assistant = Assistant(Settings(index_dir=work / name / "vectorstore", corpus_dir=corpus))
        assistant.ingest([corpus], sync=True)
        built[name] = (assistant, questions)
    return built


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=Path("/tmp/rag-sweep"))
    parser.add_argument("--grid", type=json.loads, default={}, help="JSON: setting -> values, replacing the default's")
    args = parser.parse_args()
    GRID.update(args.grid)
    built = assistants(args.work)
    rows = []
    for values in itertools.product(*GRID.values()):
        setting = dict(zip(GRID, values))
        if setting["dense_weight"] == setting["lexical_weight"] == 0:
            continue
        row = {"setting": setting}
        for name, (assistant, questions) in built.items():
            report = assistant.configured(**setting).evaluate(questions, k=5, retrieval_only=True)["rag"]
            row[name] = {m: report[m] for m in METRICS}
        rows.append(row)
        print(json.dumps(row), flush=True)
    for key in ("mrr", "answer_in_retrieved"):
        best = max(rows, key=lambda r: sum(r[c][key] for c in CORPORA))
        worst_best = max(rows, key=lambda r: min(r[c][key] for c in CORPORA))
        print(json.dumps({"best_mean_" + key: best}))
        print(json.dumps({"best_worst_" + key: worst_best}))


if __name__ == "__main__":
    main()
