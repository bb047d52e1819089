"""Paged text (a PDF's pages of lines) to paragraphs that know their pages: running headers and footers,
footnotes, lone figure and page numbers and reference lists dropped, words hyphenated at line ends joined,
and a paragraph that runs over a page break (or a footnote) kept whole."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

from ..types import Paragraph
from .boilerplate import body_text, is_lone_label, is_reference_entry, without_citation_numbers

_SENTENCE_END = tuple(".!?:;”\"')]")
_HYPHENATED = re.compile(r"[A-Za-z]-$")
_DIGITS = re.compile(r"\d+")
_PAGE_NUMBER = re.compile(r"^(\d{1,4}|[ivxlc]{1,7}|[Pp]age \d{1,4}( of \d{1,4})?|\d{1,4} ?/ ?\d{1,4})$")
_EDGE_LINES = 2  # running headers and footers sit in the first or last lines of a page
_SHORT_LINE = 0.7  # a line this much shorter than the page's long lines ends its paragraph
_GAP = 1.4  # a gap this many times the usual line spacing ends a paragraph
_SIZE_STEP = 0.5  # points of font size that set a heading apart from its text
_FOOTNOTE_STEP = 1.0  # points smaller than the body text: a page's last lines in such type are its footnotes
_FOOTNOTE_MARK = re.compile(r"^(?:\d{1,3}|[*†‡§])\s?\S")
_FRONT_WORDS = 12  # under the title, a line shorter than this that ends no sentence is a byline
_TITLE_SCALE = 1.3  # the first page's biggest type, this much over the body's, is the document's title


class Line(NamedTuple):
    """A line of a page, with the height it sits at and its font size when the format says."""

    text: str
    y: float | None = None
    size: float | None = None
    bold: bool = False


class Paged(NamedTuple):
    """Paragraphs of a paged document, the numbers of its pages with no text, and the title its first page
    shows in its biggest type ("" if none)."""

    paragraphs: list[Paragraph]
    empty: list[int]
    title: str = ""


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
        self.heading = False  # the paragraph began on a line that may be a heading

    def add(self, line: str, page: int, heading: bool = False) -> None:
        line = " ".join(without_citation_numbers(line).split())  # offsets below are in the text as it is kept
        if not self.text:
            self.page, self.breaks, self.heading = page, [], heading
        joined = _join(self.text, line)
        if page != (self.breaks[-1][1] if self.breaks else self.page):
            self.breaks.append((len(joined) - len(line), page))
        self.text = joined

    def end(self) -> None:
        text = self.text
        if text and self.heading and self.is_heading(text):
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


def paragraphs_from_pages(pages: Sequence[list[Line]], is_heading) -> Paged:
    """Pages (1-based by position) of lines to paragraphs. A paragraph ends at a blank line, a wide gap or
    a change of font size, a line ending a sentence well short of the full line width, or a heading: a
    short line with no end punctuation that the next line does not continue, in bigger or bold type when
    the format says. A page break ends a paragraph only after a sentence."""
    running = running_lines(pages)
    kept_pages = [[line._replace(text=line.text.strip()) for i, line in enumerate(page)
                   if not _is_furniture(line.text, i, len(page), running)] for page in pages]
    empty = [number for number, kept in enumerate(kept_pages, 1) if not any(line.text for line in kept)]
    body = _body_size(kept_pages)
    kept_pages = [[line for line in _without_footnotes(kept, body) if not is_lone_label(line.text)]
                  for kept in kept_pages]
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
                _add_line(builder, line, number, following[number - 1][i], full, body)
        if builder.text.endswith(_SENTENCE_END):
            builder.end()
    builder.end()
    paragraphs = body_text(builder.paragraphs)
    # The title is read before running heads are dropped: it often repeats as the pages' header.
    title = _title([line._replace(text=line.text.strip()) for line in pages[0]] if pages else [], body)
    # Authors and affiliations under the title are not passages.
    return Paged([p for p in paragraphs if not _front_matter(p, title)], empty, title)


def _front_matter(paragraph: Paragraph, title: str) -> bool:
    """A short line that is no sentence, under the title before any heading: a name or an affiliation."""
    return bool(title) and paragraph.section == title and len(paragraph.text.split()) < _FRONT_WORDS \
        and not paragraph.text.endswith(_SENTENCE_END)


def _body_size(pages: Sequence[list[Line]]) -> float | None:
    """The font size most of the text is set in (by characters), when the format says."""
    sizes: Counter[float] = Counter()
    for kept in pages:
        for line in kept:
            if line.size is not None:
                sizes[round(line.size * 2) / 2] += len(line.text)
    return sizes.most_common(1)[0][0] if sizes else None


def _without_footnotes(lines: list[Line], body: float | None) -> list[Line]:
    """The page less its foot in small type, when that block opens with a footnote mark ("1 The figures...")."""
    if body is None:
        return lines
    start = len(lines)
    while start and (lines[start - 1].size or body) < body - _FOOTNOTE_STEP:
        start -= 1
    if start < len(lines) and _FOOTNOTE_MARK.match(lines[start].text):
        return lines[:start]
    return lines


def _title(first_page: list[Line], body: float | None) -> str:
    """The lines at the top of the first page set in its biggest type, well over the body's."""
    sized = [(line.text, line.size) for line in first_page if line.text and line.size is not None]
    if body is None or not sized:
        return ""
    biggest = max(size for _, size in sized)
    if biggest < _TITLE_SCALE * body:
        return ""
    top = []
    for text, size in sized:
        if abs(size - biggest) <= _SIZE_STEP:
            top.append(text)
        elif top:
            break
    return " ".join(" ".join(top).split())[:200]


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


def _add_line(builder: _Builder, line: Line, page: int, following: str, full: int, body: float | None) -> None:
    text = line.text
    heading = builder.is_heading(text) and not following[:1].islower() and _prominent(line, body)
    if heading and builder.text.endswith(_SENTENCE_END):
        builder.end()
    builder.add(text, page, heading)
    if len(text) < _SHORT_LINE * full and (heading or text.endswith(_SENTENCE_END)):
        builder.end()


def _prominent(line: Line, body: float | None) -> bool:
    """Whether a line may be a heading: set apart by size or weight when the format says (a numbered
    reference entry in small type is not), and never a reference entry."""
    if is_reference_entry(line.text):
        return False
    if line.size is None or body is None:
        return True
    return line.bold or line.size > body + _SIZE_STEP
