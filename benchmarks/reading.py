"""The reading model's figures on the three `rag eval` corpora, with the model and with word overlap (no model:
RAG_READER_MODEL=overlap, the product before the model), in one run on the same indexes.

    .venv/bin/python benchmarks/reading.py [--k 5]

Per corpus and reader: the answer string in the offline answer, answerable questions abstained on, citation
precision, abstention precision / recall on out-of-scope questions, and warm ask p50 / p95 (the eval's own
timings). Goals from issue 28: on the SQuAD dev subset, answer string >= 0.85 with false abstention <= 0.03;
warm extractive ask p95 <= 300 ms.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import ROOT, emit, machine

from rag import Assistant, Settings

CORPORA = {
    "case_studies": (ROOT / "corpus", ROOT / "tests" / "data" / "eval_case_studies.jsonl"),
    "wiki": (ROOT / "tests" / "data" / "eval_corpus", ROOT / "tests" / "data" / "eval_corpus_questions.jsonl"),
    "squad": (ROOT.parent / "shared" / "eval" / "squad_dev_subset" / "corpus",
              ROOT.parent / "shared" / "eval" / "squad_dev_subset" / "questions.jsonl"),
}
READERS = {"overlap (before)": "overlap", "reading model": "bundled"}
KEEP = ("answer_in_answer", "false_abstention_rate", "citation_precision", "abstention_precision",
        "abstention_recall", "ask_p50_ms", "ask_p95_ms", "questions", "out_of_scope")
GOALS = {"squad_answer_in_answer": 0.85, "squad_false_abstention_rate": 0.03, "ask_p95_ms": 300}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--only", default=",".join(CORPORA), help="comma-separated corpora")
    args = parser.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="rag-reading-") as tmp:
        for name in args.only.split(","):
            corpus, questions = CORPORA[name]
            settings = Settings(corpus_dir=corpus, index_dir=Path(tmp) / name, answerer="extractive")
            Assistant(settings).ingest()
            results[name] = {}
            for label, reader in READERS.items():
                report = Assistant(settings.replace(reader_model=reader)).evaluate(questions, k=args.k)
                summary = report["rag"]
                results[name][label] = {key: summary.get(key) for key in KEEP if key in summary}
    emit({"benchmark": "reading", "machine": machine(), "k": args.k, "goals": GOALS, "results": results})


if __name__ == "__main__":
    main()
