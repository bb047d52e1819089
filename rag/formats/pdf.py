"""PDF files through pypdf: text per page in the order the page draws it, one post per file."""

from __future__ import annotations

import io
import logging

from ..types import Paragraph
from . import Unreadable
from .pages import Line, paragraphs_from_pages


def read_pdf(data: bytes, is_heading) -> tuple[str, list[Paragraph], list[int], int]:
    """(title from the metadata or "", paragraphs, 1-based numbers of pages with no text, page count)."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # a damaged page is reported once, by number, not per object
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise Unreadable("encrypted PDF (it needs a password): save a copy without one and ingest that")
        pages = [_page_lines(page) for page in reader.pages]
        title = _metadata_title(reader)
    except DependencyError as exc:
        raise Unreadable(f"encrypted PDF that pypdf cannot open here ({exc})") from exc
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
        raise Unreadable(f"not a readable PDF ({type(exc).__name__}: {exc})") from exc
    paragraphs, empty = paragraphs_from_pages(pages, is_heading)
    return title, paragraphs, empty, len(pages)


def _page_lines(page) -> list[Line]:
    """The page's text lines, each with the height it sits at and its font size (paragraph gaps and
    headings show in those when the text itself has no blank lines)."""
    pieces: list[tuple[str, float, float]] = []

    def visit(text, cm, tm, font, size) -> None:
        if text:
            pieces.append((text, cm[1] * tm[4] + cm[3] * tm[5] + cm[5], abs(size * tm[3] * cm[3]) or size))

    page.extract_text(extraction_mode="plain", visitor_text=visit)
    lines: list[Line] = []
    current, where = "", None
    for text, y, size in pieces:
        for i, part in enumerate(text.split("\n")):
            if i:
                lines.append(Line(current, *(where or (None, None))))
                current, where = "", None
            if part.strip() and where is None:
                where = (y, size)
            current += part
    if current:
        lines.append(Line(current, *(where or (None, None))))
    return lines


def _metadata_title(reader) -> str:
    title = (reader.metadata or {}).get("/Title") if reader.metadata is not None else None
    title = " ".join(str(title or "").split())
    # Word's PDF export writes "Microsoft Word - name.docx" there: a file name, not a title.
    return "" if not title or title.lower().startswith("microsoft word") or title.lower() == "untitled" else title
