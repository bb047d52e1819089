"""Claim verification on real LLM answers with human hallucination labels (RAGTruth QA, dev split).

    .venv/bin/python benchmarks/verification.py [--data ../shared/eval/ragtruth_qa_dev.jsonl] [--model M]

Each response is split into sentences by the product's splitter; a sentence is hallucinated when it
overlaps a labelled span by 4 or more characters. Every sentence is checked against the answer's three
passages (no markers: any passage may support it), with the question it answers, by the verifier
RAG_VERIFIER_MODEL names (default `overlap`), through the same `Verifier.check` an answer uses. A response
is flagged when any sentence is removed. Figures for the held-out questions (scripts/reader/ragtruth_split.json:
never trained or tuned on), the whole file, and per model; ms per answer is the verification time alone.

`routing` says what RAG_VERIFIER=auto would do with an LLM configured: which sentences the local check
decides itself and which it leaves to the one judge request per answer (rag.answer.judge), and how many of
each are hallucinated. The judge itself cannot run here (no LLM), nor the quote check (RAGTruth's answers
carry no quotes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path

from common import ROOT, emit, machine, percentile

from rag import Settings
from rag.answer.citations import strip_markers
from rag.answer.judge import Judge
from rag.answer.verify import load_verifier
from rag.text import sentence_spans

DATA = ROOT.parent / "shared" / "eval" / "ragtruth_qa_dev.jsonl"
SPLIT = ROOT / "scripts" / "reader" / "ragtruth_split.json"
JUDGE = Judge(Settings(openai_api_key="unused"), [], everything=False)  # only its routing rule is used
BARS = {"clean_kept": 0.90, "hallucinated_removed": 0.75, "response_f1": 0.60, "p95_ms": 150}  # the reading model's goals


def labelled_sentences(row: dict) -> list[tuple[str, bool]]:
    spans = [(s["start"], s["end"]) for s in row["hallucinated_spans"]]
    text = row["response"]
    return [(text[a:b], any(min(b, e) - max(a, s) >= 4 for s, e in spans)) for a, b in sentence_spans(text, lines=True)]


def check_answers(rows: list[dict], verifier) -> list[dict]:
    results = []
    for row in rows:
        started = time.perf_counter()
        verdicts, routes = [], []
        for sentence, hallucinated in labelled_sentences(row):
            claim, _ = strip_markers(sentence, len(row["passages"]))
            check = verifier.check(claim, row["passages"], question=row["question"]) if claim else None
            verdicts.append((hallucinated, check is None or check.supported))
            routes.append((hallucinated, check is not None and JUDGE.wants(verifier.name, check.verdict, check.score)))
        results.append({"row": row, "verdicts": verdicts, "routes": routes, "ms": (time.perf_counter() - started) * 1000})
    return results


def figures(results: list[dict]) -> dict:
    clean = [kept for r in results for bad, kept in r["verdicts"] if not bad]
    bad = [not kept for r in results for is_bad, kept in r["verdicts"] if is_bad]
    flagged = [any(not kept for _, kept in r["verdicts"]) for r in results]
    truth = [bool(r["row"]["hallucinated_spans"]) for r in results]
    tp = sum(f and t for f, t in zip(flagged, truth))
    precision = tp / sum(flagged) if any(flagged) else 0.0
    recall = tp / sum(truth) if any(truth) else 0.0
    ms = [r["ms"] for r in results]
    return {
        "answers": len(results), "sentences": len(clean) + len(bad), "hallucinated_sentences": len(bad),
        "clean_kept": round(statistics.fmean(clean), 3) if clean else None,
        "hallucinated_removed": round(statistics.fmean(bad), 3) if bad else None,
        "response_precision": round(precision, 3), "response_recall": round(recall, 3),
        "response_f1": round(2 * precision * recall / (precision + recall), 3) if precision + recall else 0.0,
        "p50_ms": round(percentile(ms, 0.5), 1), "p95_ms": round(percentile(ms, 0.95), 1),
    }


def routing(results: list[dict]) -> dict:
    """What auto mode leaves to the judge: sentences, answers that would make a judge request, and the
    hallucinated sentences among those the local check decides itself."""
    routes = [route for r in results for route in r["routes"]]
    sent = [bad for bad, to_judge in routes if to_judge]
    decided = [(bad, kept) for r in results for (bad, to_judge), (_, kept) in zip(r["routes"], r["verdicts"])
               if not to_judge]
    return {
        "sentences_to_judge": round(len(sent) / len(routes), 3) if routes else None,
        "answers_with_a_judge_request": round(statistics.fmean(any(t for _, t in r["routes"]) for r in results), 3),
        "hallucinated_among_sent": round(statistics.fmean(sent), 3) if sent else None,
        "decided_locally": len(decided),
        "hallucinated_kept_locally": sum(bad and kept for bad, kept in decided),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", default=None, help="RAG_VERIFIER_MODEL to measure (default: the setting)")
    args = parser.parse_args()
    settings = Settings(**({"verifier_model": args.model} if args.model else {}))
    rows = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    held_out = set(json.loads(SPLIT.read_text())["heldout_source_ids"])
    verifier = load_verifier(settings)
    results = check_answers(rows, verifier)
    by_model = defaultdict(list)
    for result in results:
        by_model[result["row"]["model"]].append(result)
    emit({
        "benchmark": "verification", "machine": machine(), "verifier": settings.verifier_model,
        "data": str(args.data), "bars": BARS,
        "held_out": figures([r for r in results if r["row"]["source_id"] in held_out]),
        "auto_routing_held_out": routing([r for r in results if r["row"]["source_id"] in held_out]),
        "whole_file": figures(results),
        "per_model": {model: figures(group) for model, group in sorted(by_model.items())},
    })


if __name__ == "__main__":
    main()
