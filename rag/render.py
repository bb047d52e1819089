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
