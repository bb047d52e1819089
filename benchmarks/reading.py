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
import statistics
import tempfile
import time
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


def rerank_trial(assistant: Assistant, questions: Path, k: int, pool: int = 10) -> dict:
    """Reranking measured, not shipped: the fused top `pool` passages reordered by the model's P(answers)
    (question, passage with its title), top k kept. Retrieval figures with and without it, and its cost
    beside the search's own time (the issue's bar: no more than twice the search time)."""
    from rag.answer.reader import reading_model
    from rag.eval.metrics import load_questions, result_of, retrieval_metrics

    model = reading_model(assistant.settings)
    plain, reranked, search_ms, rerank_ms = [], [], [], []
    for question in (q for q in load_questions(questions) if q.gold):
        started = time.perf_counter()
        hits = list(assistant.search(question.text, k=pool).hits)
        search_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        scores = model.answers(question.text, [(h.passage.text, "; ".join(h.passage.titles)) for h in hits])
        rerank_ms.append((time.perf_counter() - started) * 1000)
        order = sorted(range(len(hits)), key=lambda i: -scores[i])
        plain.append(retrieval_metrics(question, [result_of(h) for h in hits[:k]]))
        reranked.append(retrieval_metrics(question, [result_of(hits[i]) for i in order[:k]]))

    def mean(rows: list[dict], key: str) -> float:
        return round(statistics.fmean(r[key] for r in rows), 3)

    keys = ("hit", "mrr", "answer_in_retrieved")
    return {"pool": pool, "off": {key: mean(plain, key) for key in keys},
            "on": {key: mean(reranked, key) for key in keys},
            "search_p50_ms": round(statistics.median(search_ms), 1),
            "rerank_p50_ms": round(statistics.median(rerank_ms), 1)}


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
            results[name]["rerank"] = rerank_trial(Assistant(settings), questions, args.k)
    emit({"benchmark": "reading", "machine": machine(), "k": args.k, "goals": GOALS, "results": results})


if __name__ == "__main__":
    main()
