"""Multi-turn evaluation: conversations replayed turn by turn, each turn scored in the light of its kind.

A line is {"turns": [{"question", "gold_titles" | "gold_files", "answers", "kind", "subject"}, ...]}.
Kinds: "standalone", "switch" and "contains_that" must be left as asked; "followup" must be rewritten
to name its `subject` words and answered; "followup_oos" (the corpus does not answer it) must abstain;
"dangling" (nothing to refer to) must ask what it means.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..types import Answer
from .metrics import Question, Result, answer_metrics, json_line, parse_question, retrieval_metrics, strings

KINDS = ("standalone", "followup", "switch", "contains_that", "followup_oos", "dangling")
_STAND_ALONE = ("standalone", "switch", "contains_that")
_SHAPE = '{"turns": [{"question", "gold_titles" or "gold_files", "answers", "kind", "subject"}, ...]}'


@dataclass(frozen=True)
class ConversationTurn:
    question: Question
    kind: str
    subject: tuple[str, ...]


def is_conversation_file(path: Path) -> bool:
    """Whether the file's first line is a conversation ({"turns": [...]}) rather than a question."""
    try:
        with path.open(encoding="utf-8") as handle:
            first = next((line for line in handle if line.strip()), "")
        row = json.loads(first)
        return isinstance(row, dict) and "turns" in row
    except (OSError, UnicodeDecodeError, ValueError):
        return False


def load_conversations(path: Path) -> list[list[ConversationTurn]]:
    conversations = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            where = f"{path}:{number}"
            row = json_line(line, where)
            turns = row.get("turns") if isinstance(row, dict) else None
            if not isinstance(turns, list) or not turns:
                raise UserError(f"{where}: expected {_SHAPE}")
            conversations.append([_turn(turn, f"{where}: turn {n}") for n, turn in enumerate(turns, 1)])
    if not conversations:
        raise UserError(f"{path} holds no conversations")
    return conversations


def _turn(row: object, where: str) -> ConversationTurn:
    question = parse_question(row, where, gold_required=False)
    assert isinstance(row, dict)  # parse_question refuses anything else
    kind = row.get("kind", "standalone")
    if kind not in KINDS:
        raise UserError(f'{where}: "kind" must be one of {", ".join(KINDS)}')
    return ConversationTurn(question, kind, tuple(word.lower() for word in strings(row, "subject", where)))


def evaluate_conversations(conversations: Sequence[Sequence[ConversationTurn]],
                           ask: Callable[[str, list[tuple[str, str]]], Answer],
                           search: Callable[[str], list[Result]]) -> tuple[dict, list[dict]]:
    """The summary over all turns, and the turns that went wrong (with what the assistant did)."""
    rows, wrong = [], []
    for conversation in conversations:
        history: list[tuple[str, str]] = []
        for turn in conversation:
            answer = ask(turn.question.text, list(history))
            row = _score(turn, answer, search)
            rows.append(row)
            if not row["right"]:
                wrong.append({"kind": turn.kind, "question": turn.question.text, "history": [q for r, q in history
                              if r == "user"], "searched_for": answer.standalone_question, "answer": answer.text})
            history += [("user", turn.question.text), ("assistant", answer.text)]
    return _summary(rows), wrong


def _score(turn: ConversationTurn, answer: Answer, search: Callable[[str], list[Result]]) -> dict:
    rewritten = (answer.standalone_question or turn.question.text) != turn.question.text
    row: dict = {"kind": turn.kind, "clarified": float(answer.needs_clarification),
                 "declined": float(answer.abstained or answer.needs_clarification)}
    if turn.kind in _STAND_ALONE:
        row["left_alone"] = float(not rewritten)
    if turn.kind in ("followup", "followup_oos") and turn.subject:
        searched = answer.standalone_question.lower()
        row["subject_kept"] = float(all(word in searched for word in turn.subject))
    if turn.question.gold:
        row.update(retrieval_metrics(turn.question, search(answer.standalone_question or turn.question.text)))
        row.update(answer_metrics(turn.question, answer))
        row["right"] = bool(row["answer_in_answer"]) and row.get("left_alone", 1.0) == 1.0
    elif turn.kind == "dangling":
        row["right"] = answer.needs_clarification
    else:
        row["right"] = bool(row["declined"])
    return row


def _summary(rows: list[dict]) -> dict:
    def mean(key: str, group: list[dict]) -> float | None:
        values = [r[key] for r in group if key in r]
        return round(statistics.fmean(values), 3) if values else None

    answerable = [r for r in rows if "hit" in r]
    by_kind = {kind: [r for r in rows if r["kind"] == kind] for kind in KINDS}
    return {
        "turns": len(rows), **{f"turns_{kind}": len(group) for kind, group in by_kind.items()},
        "right": mean("right", [{"right": float(r["right"])} for r in rows]),
        "left_alone": mean("left_alone", rows), "subject_kept": mean("subject_kept", rows),
        "hit@k": mean("hit", answerable), "answer_in_answer": mean("answer_in_answer", answerable),
        "followup_answer_in_answer": mean("answer_in_answer", by_kind["followup"]),
        "false_abstention_rate": mean("declined", answerable),
        "followup_oos_abstained": mean("declined", by_kind["followup_oos"]),
        "dangling_clarified": mean("clarified", by_kind["dangling"]),
        "clarified_wrongly": mean("clarified", [r for r in rows if r["kind"] != "dangling"]),
    }
