"""PDF files through pypdf: text per page in the order the page draws it, one post per file."""

from __future__ import annotations

import io
import logging
import re
import time
from dataclasses import dataclass, field

from ..types import Paragraph
from . import Unreadable
from .boilerplate import real_title
from .pages import Line, paragraphs_from_pages

MAX_PAGE_CONTENT = 1_000_000  # bytes of drawing instructions; real pages use well under 200 KB
MAX_SECONDS = 120  # per file: a small hostile PDF can ask for minutes of text extraction


@dataclass
class PdfText:
    title: str  # from the metadata, or ""
    paragraphs: list[Paragraph]
    empty: list[int]  # 1-based numbers of the pages with no text
    pages: int
    notes: list[str] = field(default_factory=list)  # pages that were not read, and why


def read_pdf(data: bytes, is_heading, max_seconds: float = MAX_SECONDS) -> PdfText:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # a damaged page is reported once, by number, not per object
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise Unreadable("encrypted PDF (it needs a password): save a copy without one and ingest that")
        pages, notes, unread = _read_pages(reader, time.monotonic() + max_seconds)
        title = _metadata_title(reader)
    except DependencyError as exc:
        raise Unreadable(f"encrypted PDF that pypdf cannot open here ({exc})") from exc
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
        raise Unreadable(f"not a readable PDF ({type(exc).__name__}: {exc})") from exc
    paged = paragraphs_from_pages(pages, is_heading)
    return PdfText(title or paged.title, paged.paragraphs, [n for n in paged.empty if n not in unread],
                   len(reader.pages), notes)


def _read_pages(reader, deadline: float) -> tuple[list[list[Line]], list[str], set[int]]:
    """Each page's lines; a damaged or overloaded page is left out with a note (and its number), and
    reading stops at the deadline with the pages read so far."""
    pages: list[list[Line]] = []
    notes = []
    unread = set()
    for number, page in enumerate(reader.pages, 1):
        if time.monotonic() > deadline:
            notes.append(f"stopped at page {number} of {len(reader.pages)}: reading took too long")
            break
        try:
            contents = page.get_contents()
            if contents is not None and len(contents.get_data()) > MAX_PAGE_CONTENT:
                notes.append(f"page {number} not read: over {MAX_PAGE_CONTENT:,} bytes of drawing instructions")
                pages.append([])
                unread.add(number)
                continue
            pages.append(_page_lines(page))
        except Exception as exc:  # noqa: BLE001 - one damaged page must not cost the others
            notes.append(f"page {number} not read ({type(exc).__name__}: {exc})")
            pages.append([])
            unread.add(number)
    return pages, notes, unread


def _page_lines(page) -> list[Line]:
    """The page's text lines, each with the height it sits at, its font size and whether it is bold
    (paragraph gaps, headings and footnotes show in those when the text itself has no blank lines).
    Footnote and citation markers set small beside the text ("verifiers¹") are left out."""
    pieces: list[tuple[str, float, float, bool]] = []

    def visit(text, cm, tm, font, size) -> None:
        if text:
            name = str((font or {}).get("/BaseFont", "")).lower()
            pieces.append((text, cm[1] * tm[4] + cm[3] * tm[5] + cm[5], abs(size * tm[3] * cm[3]) or size,
                           "bold" in name or "black" in name or "heavy" in name))

    page.extract_text(extraction_mode="plain", visitor_text=visit)
    lines: list[Line] = []
    current, where = "", None
    for n, (text, y, size, bold) in enumerate(pieces):
        if _MARKER.match(text) and _smaller_than_beside(pieces, n):
            continue
        for i, part in enumerate(text.split("\n")):
            if i:
                lines.append(Line(current, *(where or (None, None, False))))
                current, where = "", None
            if part.strip() and where is None:
                where = (y, size, bold)
            current += part
    if current:
        lines.append(Line(current, *(where or (None, None, False))))
    return lines


_MARKER = re.compile(r"^[\d*†‡§,\[\]]{1,5}$")


def _smaller_than_beside(pieces: list[tuple[str, float, float, bool]], n: int) -> bool:
    """A piece in type under 80% of the text on either side of it, on the same line: a superscript."""
    size = pieces[n][2]
    beside = [pieces[i][2] for i in (n - 1, n + 1) if 0 <= i < len(pieces) and "\n" not in pieces[i][0][-1:]]
    return bool(beside) and size < 0.8 * max(beside)


def _metadata_title(reader) -> str:
    """The metadata title when it names the document (Word's PDF export writes "Microsoft Word - name.docx")."""
    title = (reader.metadata or {}).get("/Title") if reader.metadata is not None else None
    return real_title(str(title or ""))
