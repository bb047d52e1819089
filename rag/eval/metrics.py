"""`rag eval`: retrieval and answer quality on a question set, optionally against the LangChain recipe.

A question line is {"question", "gold_titles" | "gold_files", "answers"}; empty gold marks a question
the corpus does not answer. Retrieval metrics ask whether the results name the gold posts (or files);
answer metrics whether the expected strings reach the retrieved text, the answer, and its citations.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..types import Hit


@dataclass(frozen=True)
class Question:
    text: str
    gold: tuple[str, ...]
    answers: tuple[str, ...]
    by_file: bool


@dataclass(frozen=True)
class Result:
    """One retrieved passage as the metrics see it: where it is from and what it says."""

    titles: frozenset[str]
    files: frozenset[str]
    text: str


def load_questions(path: Path) -> list[Question]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the question file {path}: {exc}") from exc
    questions = [parse_question(json_line(line, f"{path}:{number}"), f"{path}:{number}")
                 for number, line in enumerate(lines, 1) if line.strip()]
    if not questions:
        raise UserError(f"{path} holds no questions")
    return questions


def json_line(line: str, where: str) -> object:
    try:
        return json.loads(line)
    except ValueError as exc:
        raise UserError(f"{where}: not a JSON line ({exc})") from None


def parse_question(row: object, where: str, gold_required: bool = True) -> Question:
    """One question, checked field by field: a wrong type is named with its line (`where`), never
    taken apart (a string as a list of characters) or asked as "None"."""
    if not isinstance(row, dict):
        raise UserError(f'{where}: expected a JSON object {{"question", "gold_titles" or "gold_files", "answers"}}')
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise UserError(f'{where}: "question" must be a non-empty string')
    by_file = "gold_files" in row
    gold = strings(row, "gold_files" if by_file else "gold_titles", where, gold_required)
    return Question(question, gold, strings(row, "answers", where), by_file)


def strings(row: dict, field: str, where: str, required: bool = False) -> tuple[str, ...]:
    """The list of strings in row[field] (empty when it is absent and not required)."""
    if field not in row:
        if required:
            raise UserError(f'{where}: "{field}" is missing: list the posts (or "gold_files") that answer the '
                            "question, [] when none does")
        return ()
    value = row[field]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise UserError(f'{where}: "{field}" must be a list of strings, e.g. ["Cost"] ([] when none applies)')
    return tuple(value)


def result_of(hit: Hit) -> Result:
    sources = hit.passage.sources
    return Result(frozenset(s.title for s in sources), frozenset(s.path for s in sources), hit.passage.text)


def _is_gold(result: Result, question: Question, gold: str) -> bool:
    if not question.by_file:
        return gold in result.titles
    return any(path == gold or path.endswith("/" + gold) for path in result.files)


def _contains(text: str, answers: Sequence[str]) -> bool:
    return any(a.lower() in text.lower() for a in answers)


def retrieval_metrics(question: Question, results: Sequence[Result]) -> dict[str, float]:
    ranks = [r for r, res in enumerate(results, 1) if any(_is_gold(res, question, g) for g in question.gold)]
    found = {g for g in question.gold if any(_is_gold(res, question, g) for res in results)}
    return {
        "hit": float(bool(ranks)),
        "all_sources": float(found == set(question.gold)),
        "mrr": 1.0 / ranks[0] if ranks else 0.0,
        "answer_in_retrieved": float(_contains(" ".join(r.text for r in results), question.answers)),
        "chars": float(sum(len(r.text) for r in results)),
    }


def answer_metrics(question: Question, answer) -> dict[str, float]:
    if question.gold:
        cited = [c.hit.passage.text for c in answer.citations]
        return {
            "answer_in_answer": float(_contains(answer.text, question.answers)),
            "cited_supporting": sum(_contains(t, question.answers) for t in cited),
            "cited": len(cited),
            "abstained_in_scope": float(answer.abstained),
        }
    return {"abstained_out_of_scope": float(answer.abstained)}


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def summarize(rows: list[dict], search_ms: list[float], ask_ms: list[float]) -> dict[str, float | None]:
    in_scope = [r for r in rows if r["in_scope"]]
    out_scope = [r for r in rows if not r["in_scope"]]

    def mean(key: str, group: list[dict]) -> float | None:
        values = [r[key] for r in group if key in r]
        return round(statistics.fmean(values), 3) if values else None

    abstained = sum(r.get("abstained_in_scope", 0) for r in in_scope) + sum(
        r.get("abstained_out_of_scope", 0) for r in out_scope)
    correct_abstentions = sum(r.get("abstained_out_of_scope", 0) for r in out_scope)
    cited = sum(r.get("cited", 0) for r in in_scope)
    answered = any("abstained_out_of_scope" in r or "cited" in r for r in rows)
    return {
        "questions": len(rows), "in_scope": len(in_scope), "out_of_scope": len(out_scope),
        "hit@k": mean("hit", in_scope), "all_sources@k": mean("all_sources", in_scope), "mrr": mean("mrr", in_scope),
        "answer_in_retrieved": mean("answer_in_retrieved", in_scope),
        "chars@k": round(statistics.fmean(r["chars"] for r in in_scope)) if in_scope else None,
        "answer_in_answer": mean("answer_in_answer", in_scope),
        "citation_precision": round(sum(r.get("cited_supporting", 0) for r in in_scope) / cited, 3) if cited else None,
        "abstention_precision": round(correct_abstentions / abstained, 3) if answered and abstained else None,
        "abstention_recall": round(correct_abstentions / len(out_scope), 3) if answered and out_scope else None,
        "false_abstention_rate": mean("abstained_in_scope", in_scope),
        "search_p50_ms": round(_percentile(search_ms, 0.5), 2), "search_p95_ms": round(_percentile(search_ms, 0.95), 2),
        "ask_p50_ms": round(_percentile(ask_ms, 0.5), 2) if ask_ms else None,
        "ask_p95_ms": round(_percentile(ask_ms, 0.95), 2) if ask_ms else None,
    }


def evaluate(questions: Sequence[Question], search: Callable[[str], list[Result]],
             ask: Callable[[str], object] | None = None) -> tuple[dict, list[dict]]:
    """The summary metrics, and the in-scope questions whose results miss a gold post or file."""
    rows, search_ms, ask_ms, missed = [], [], [], []
    for question in questions:
        started = time.perf_counter()
        results = search(question.text)
        search_ms.append((time.perf_counter() - started) * 1000)
        row = {"in_scope": bool(question.gold), **(retrieval_metrics(question, results) if question.gold else {})}
        if row.get("all_sources", 1) < 1:
            missed.append({"question": question.text, "gold": list(question.gold),
                           "got": sorted({t for r in results for t in (r.files if question.by_file else r.titles)})})
        if ask is not None:
            started = time.perf_counter()
            answer = ask(question.text)
            ask_ms.append((time.perf_counter() - started) * 1000)
            row.update(answer_metrics(question, answer))
        rows.append(row)
    return summarize(rows, search_ms, ask_ms), missed
