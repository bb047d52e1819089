"""`rag eval` and `Assistant.evaluate`: this assistant's figures on a question set, and the LangChain
recipe's on the same posts when asked."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .metrics import Result, evaluate, load_questions, result_of

if TYPE_CHECKING:
    from ..assistant import Assistant


def evaluate_assistant(assistant: Assistant, questions_file: Path, k: int, baseline: bool) -> dict:
    questions = load_questions(questions_file)

    def search(question: str) -> list[Result]:
        return [result_of(hit) for hit in assistant.search(question, k=k).hits]

    summary, misses = evaluate(questions, search, lambda q: assistant.ask(q, k=k))
    report = {"k": k, "rag": summary, "misses": misses}
    if baseline:
        from .baseline import baseline_for

        report["baseline"], _ = evaluate(questions, baseline_for(assistant.settings, k))
    return report
