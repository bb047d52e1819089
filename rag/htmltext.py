"""HTML to title and paragraphs: scripts, styles and page furniture dropped."""

from __future__ import annotations

import re

from bs4 import BeautifulSoup

from .types import Paragraph

_DROP = ["script", "style", "noscript", "template", "svg", "iframe", "object", "embed",
         "nav", "header", "footer", "aside", "form", "button", "head"]
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?)\]])")
_BLOCKS = ["p", "li", "pre", "blockquote", "td", "dd", "dt", "figcaption", *_HEADINGS]


def _text(element) -> str:
    # Joining inline tags with spaces keeps words apart but strands punctuation: "<b>94%</b>." -> "94% ."
    return _SPACE_BEFORE_PUNCT.sub(r"\1", " ".join(element.get_text(" ", strip=True).split()))


def parse_html(markup: str) -> tuple[str, str, list[Paragraph]]:
    """Return (title, category, paragraphs); the title comes from <title>, else the first <h1>."""
    soup = BeautifulSoup(markup, "html.parser")
    title = _text(soup.title) if soup.title else ""
    meta = soup.find("meta", attrs={"name": "category"})
    category = str(meta.get("content") or "").strip() if meta else ""
    for element in soup.find_all(_DROP):
        element.decompose()
    paragraphs, section = [], ""
    for element in soup.find_all(_BLOCKS):
        if element.find_parent(_BLOCKS):  # its text is already part of the enclosing block
            continue
        words = _text(element)
        if not words:
            continue
        if element.name in _HEADINGS:
            if element.name == "h1" and not title:
                title = words
            elif words != title:
                section = words
        else:
            paragraphs.append(Paragraph(words, section))
    if not paragraphs:  # bare text in <body> or <div>s with no block tags
        body = soup.body or soup
        paragraphs = [Paragraph(" ".join(line.split()), section)
                      for line in body.get_text("\n").splitlines() if line.strip()]
    return title, category, paragraphs
