"""Follow-up questions: history hygiene and the rule-based standalone rewrite used without an LLM."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from ..types import Turn

_FOLLOW_UP = re.compile(
    r"^\s*(and|but|also|so|then|what about|how about|why|how long|how much)\b"
    r"|\b(it|its|that|this|those|these|them|there|same)\b",
    re.I,
)
_SHORT = 4


def as_turns(history: Iterable[Turn | Mapping | Sequence] | None, limit: int) -> list[Turn]:
    """Accept Turn records, {"role", "content"} dicts or (role, content) pairs; keep the last `limit`."""
    turns = []
    for item in history or []:
        if isinstance(item, Turn):
            turns.append(item)
        elif isinstance(item, Mapping):
            turns.append(Turn(str(item.get("role", "user")), str(item.get("content", ""))))
        else:
            role, content = item
            turns.append(Turn(str(role), str(content)))
    return [t for t in turns if t.content.strip()][-limit:] if limit else []


def looks_like_follow_up(question: str) -> bool:
    return len(question.split()) < _SHORT or bool(_FOLLOW_UP.search(question))


def rule_rewrite(history: Sequence[Turn], question: str) -> str:
    """Without an LLM: attach the question the follow-up leans on: the last one that stood on its own."""
    asked = [t.content for t in history if t.role == "user"]
    if not asked or not looks_like_follow_up(question):
        return question
    anchor = next((q for q in reversed(asked) if not looks_like_follow_up(q)), asked[-1])
    return f"{question} (following up on: {anchor})"
