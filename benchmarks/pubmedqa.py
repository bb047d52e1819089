"""Biomedical abstracts with expert-labelled questions (PubMedQA PQA-L, pubmedqa/pubmedqa, MIT): measurement only.

    .venv/bin/python benchmarks/pubmedqa.py --data PATH/ori_pqal.json [--questions 300]

The 1,000 abstracts become a library of Markdown files, one a paper, its sections as headings and its title
left out (the question is the paper's title: kept, search would find it word for word).
For a fixed sample of questions: how often the offline answer quotes the question's own paper, how often it
abstains (and why), and how often search puts that paper first, for the reading model and word overlap.
The data is not in the repository: `fetch` github:pubmedqa/pubmedqa and pass data/ori_pqal.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import emit, machine, percentile

from rag import Assistant, Settings


def write_library(papers: dict, folder: Path) -> None:
    for pmid, paper in papers.items():
        body = "\n\n".join(f"## {label.title()}\n\n{text}" for label, text in zip(paper["LABELS"], paper["CONTEXTS"]))
        (folder / f"{pmid}.md").write_text(f"# Paper {pmid}\n\n{body}\n")


def trial(assistant: Assistant, questions: list[tuple[str, str]]) -> dict:
    own = first = 0
    reasons: Counter[str] = Counter()
    ms = []
    for pmid, question in questions:
        started = time.perf_counter()
        answer = assistant.ask(question)
        ms.append((time.perf_counter() - started) * 1000)
        if answer.abstained:
            reasons[answer.abstain_reason or "unknown"] += 1
        elif any(pmid in s.path for c in answer.citations for s in c.hit.passage.sources):
            own += 1
        hits = assistant.search(question).hits
        first += bool(hits) and any(pmid in s.path for s in hits[0].passage.sources)
    n = len(questions)
    return {"answered_from_own_paper": round(own / n, 3), "abstained": round(sum(reasons.values()) / n, 3),
            "abstain_reasons": dict(reasons), "search_top1_own_paper": round(first / n, 3),
            "ask_p50_ms": round(statistics.median(ms), 1), "ask_p95_ms": round(percentile(ms, 0.95), 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True, help="pubmedqa's data/ori_pqal.json")
    parser.add_argument("--questions", type=int, default=300)
    args = parser.parse_args()
    papers = json.loads(args.data.read_text())
    sample = random.Random(7).sample(sorted(papers.items()), args.questions)
    questions = [(pmid, paper["QUESTION"]) for pmid, paper in sample]
    results = {}
    with tempfile.TemporaryDirectory(prefix="rag-pubmedqa-") as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        write_library(papers, corpus)
        settings = Settings(corpus_dir=corpus, index_dir=Path(tmp) / "index", answerer="extractive")
        Assistant(settings).ingest()
        for label, reader in (("reading model", "bundled"), ("overlap", "overlap")):
            results[label] = trial(Assistant(settings.replace(reader_model=reader)), questions)
    emit({"benchmark": "pubmedqa", "machine": machine(), "papers": len(papers), "questions": len(questions),
          "results": results})


if __name__ == "__main__":
    main()
