"""`rag eval` and `Assistant.evaluate`: this assistant's figures on a question set, and the LangChain
recipe's on the same posts when asked."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UserError
from .conversations import evaluate_conversations, is_conversation_file, load_conversations
from .metrics import Result, evaluate, load_questions, result_of

if TYPE_CHECKING:
    from ..assistant import Assistant


def evaluate_assistant(assistant: Assistant, questions_file: Path, k: int, baseline: bool,
                       retrieval_only: bool = False) -> dict:
    """This assistant's figures; with `baseline`, the LangChain recipe's and plain BM25's on the same
    posts and questions ("langchain", "bm25"); `retrieval_only` skips the answers. A file of conversations
    ({"turns": [...]}) is replayed turn by turn instead ("conversations", "wrong_turns")."""
    def search(question: str) -> list[Result]:
        return [result_of(hit) for hit in assistant.search(question, k=k).hits]

    if is_conversation_file(questions_file):
        if baseline or retrieval_only:
            raise UserError("--baseline and --retrieval-only apply to question files; a conversation file is "
                            "replayed with answers, so leave them out")
        summary, wrong = evaluate_conversations(load_conversations(questions_file),
                                                lambda q, history: assistant.ask(q, history=history, k=k), search)
        return {"k": k, "conversations": summary, "wrong_turns": wrong}
    questions = load_questions(questions_file)

    ask = None if retrieval_only else (lambda q: assistant.ask(q, k=k))
    summary, misses = evaluate(questions, search, ask)
    report = {"k": k, "rag": summary, "misses": misses}
    if baseline:
        from .baseline import baseline_for
        from .bm25 import bm25_for

        report["langchain"], _ = evaluate(questions, baseline_for(assistant.settings, k))
        report["bm25"], _ = evaluate(questions, bm25_for(assistant.settings, k))
    return report
