"""Showing model and corpus text in markdown interfaces without letting it link, embed or format."""

from __future__ import annotations

import re

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~])")
_URL_START = re.compile(r"(?i)\b(https?|ftp|www)(\S)")


def safe_markdown(text: str) -> str:
    """Markdown that shows the text as written: escaped syntax, so no link, image, HTML or emphasis,
    and URLs broken by a zero-width space so they are not auto-linked either."""
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    return _URL_START.sub(lambda m: f"{m.group(1)}\u200b{m.group(2)}", escaped)


def rewrite_note(question: str, standalone: str, limit: int = 160) -> str | None:
    """How a follow-up was read, briefly; None when the question was searched as asked."""
    if not standalone or standalone == question:
        return None
    if standalone.startswith(question) and standalone.endswith(")") and " (about: " in standalone:
        return "Read as a follow-up about: " + standalone[len(question):].strip()[len("(about: "):-1]
    shown = standalone if len(standalone) <= limit else standalone[:limit - 3].rstrip() + "..."
    return "Searched for: " + shown
