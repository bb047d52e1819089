"""Paged text (a PDF's pages of lines) to paragraphs that know their pages: running headers and footers
dropped, words hyphenated at line ends joined, and a paragraph that runs over a page break kept whole."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

from ..types import Paragraph

_SENTENCE_END = tuple(".!?:;”\"')]")
_HYPHENATED = re.compile(r"[A-Za-z]-$")
_DIGITS = re.compile(r"\d+")
_PAGE_NUMBER = re.compile(r"^(\d{1,4}|[ivxlc]{1,7}|[Pp]age \d{1,4}( of \d{1,4})?|\d{1,4} ?/ ?\d{1,4})$")
_EDGE_LINES = 2  # running headers and footers sit in the first or last lines of a page
_SHORT_LINE = 0.7  # a line this much shorter than the page's long lines ends its paragraph
_GAP = 1.4  # a gap this many times the usual line spacing ends a paragraph
_SIZE_STEP = 0.5  # points of font size that set a heading apart from its text


class Line(NamedTuple):
    """A line of a page, with the height it sits at and its font size when the format says."""

    text: str
    y: float | None = None
    size: float | None = None


def _shape(line: str) -> str:
    """A line with its numbers blanked: 'Page 3 of 9' and 'Page 4 of 9' are the same running footer."""
    return _DIGITS.sub("#", " ".join(line.lower().split()))


def running_lines(pages: Sequence[list[Line]]) -> set[str]:
    """Shapes of the lines at a page's top or bottom that repeat on most pages (at least three)."""
    if len(pages) < 3:
        return set()
    seen: Counter[str] = Counter()
    for lines in pages:
        edges = [line.text for line in lines[:_EDGE_LINES] + lines[-_EDGE_LINES:]]
        seen.update({_shape(text) for text in edges})
    return {shape for shape, count in seen.items() if count >= max(3, len(pages) // 2 + 1)}


def _is_furniture(line: str, index: int, count: int, running: set[str]) -> bool:
    line = line.strip()
    at_edge = index < _EDGE_LINES or index >= count - _EDGE_LINES
    return at_edge and (_shape(line) in running or bool(_PAGE_NUMBER.match(line.strip())))


def _join(text: str, line: str) -> str:
    if not text:
        return line
    if _HYPHENATED.search(text) and line[:1].islower():
        return text[:-1] + line  # "docu-" + "ment" -> "document"
    return f"{text} {line}"


class _Builder:
    """Accumulates lines into paragraphs, remembering where each page starts inside a paragraph."""

    def __init__(self, is_heading) -> None:
        self.is_heading = is_heading
        self.paragraphs: list[Paragraph] = []
        self.section = ""
        self.text = ""
        self.page = 0
        self.breaks: list[tuple[int, int]] = []

    def add(self, line: str, page: int) -> None:
        line = " ".join(line.split())  # offsets below are in the text as it is kept
        if not self.text:
            self.page, self.breaks = page, []
        joined = _join(self.text, line)
        if page != (self.breaks[-1][1] if self.breaks else self.page):
            self.breaks.append((len(joined) - len(line), page))
        self.text = joined

    def end(self) -> None:
        text = self.text
        if text and self.is_heading(text):
            self.section = text
        elif text:
            self.paragraphs.append(Paragraph(text, self.section, self.page, tuple(self.breaks)))
        self.text = ""


def _spacing(pages: Sequence[list[Line]]) -> float | None:
    """The distance between consecutive lines of a paragraph, when known: the lower quartile of the gaps
    between lines of one size (paragraph gaps are the larger ones)."""
    gaps = [previous.y - line.y for lines in pages for previous, line in zip(lines, lines[1:])
            if previous.y is not None and line.y is not None and previous.size == line.size
            and previous.y > line.y]
    return sorted(gaps)[len(gaps) // 4] if gaps else None


def _breaks_before(previous: Line | None, line: Line, spacing: float | None) -> bool:
    """Whether the layout starts a new paragraph here: a wide gap above the line, or a change of font size."""
    if previous is None or None in (previous.y, line.y, previous.size, line.size, spacing):
        return False
    assert previous.y is not None and line.y is not None and previous.size is not None and line.size is not None
    gap = previous.y - line.y
    return gap > _GAP * spacing or gap < 0 or abs(previous.size - line.size) > _SIZE_STEP  # type: ignore[operator]


def paragraphs_from_pages(pages: Sequence[list[Line]], is_heading) -> tuple[list[Paragraph], list[int]]:
    """Pages (1-based by position) of lines to (paragraphs, numbers of the pages with no text but headers
    and footers). A paragraph ends at a blank line, a wide gap or a change of font size, a line ending a
    sentence well short of the full line width, or a heading: a short line with no end punctuation that
    the next line does not continue. A page break ends a paragraph only after a sentence."""
    running = running_lines(pages)
    kept_pages = [[line._replace(text=line.text.strip()) for i, line in enumerate(page)
                   if not _is_furniture(line.text, i, len(page), running)] for page in pages]
    empty = [number for number, kept in enumerate(kept_pages, 1) if not any(line.text for line in kept)]
    lengths = sorted(len(line.text) for kept in kept_pages for line in kept if line.text)
    full = lengths[int(0.9 * (len(lengths) - 1))] if lengths else 0  # the document's full line width
    spacing = _spacing(kept_pages)
    following = _following_texts(kept_pages)
    builder = _Builder(is_heading)
    for number, kept in enumerate(kept_pages, 1):
        for i, line in enumerate(kept):
            if not line.text or _breaks_before(kept[i - 1] if i else None, line, spacing):
                builder.end()
            if line.text:
                _add_line(builder, line.text, number, following[number - 1][i], full)
        if builder.text.endswith(_SENTENCE_END):
            builder.end()
    builder.end()
    return builder.paragraphs, empty


def _following_texts(pages: Sequence[list[Line]]) -> list[list[str]]:
    """For each line, the text of the next non-empty line after it, across pages ("" at the end)."""
    after, per_page = "", []
    for lines in reversed(pages):
        texts = []
        for line in reversed(lines):
            texts.append(after)
            after = line.text or after
        per_page.append(texts[::-1])
    return per_page[::-1]


def _add_line(builder: _Builder, text: str, page: int, following: str, full: int) -> None:
    heading = builder.is_heading(text) and not following[:1].islower()
    if heading and builder.text.endswith(_SENTENCE_END):
        builder.end()
    builder.add(text, page)
    if len(text) < _SHORT_LINE * full and (heading or text.endswith(_SENTENCE_END)):
        builder.end()
