"""Question hygiene: what reaches retrieval is non-empty, printable and of bounded length."""

from __future__ import annotations

import unicodedata

from ..errors import EmptyQuestion


def clean_question(text: str, max_chars: int) -> tuple[str, list[str]]:
    """Return the question to search for and notices the user should see."""
    notices = []
    printable = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co") else ch for ch in str(text)
    )
    question = " ".join(printable.split())
    if not question:
        raise EmptyQuestion()
    if len(question) > max_chars:
        notices.append(f"the question was cut from {len(question)} to {max_chars} characters "
                       "(RAG_MAX_QUESTION_CHARS)")
        question = question[:max_chars].rsplit(" ", 1)[0] or question[:max_chars]
    return question, notices
