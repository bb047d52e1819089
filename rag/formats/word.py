"""Word .docx files through python-docx: headings become sections, tables become rows of text."""

from __future__ import annotations

import io
import zipfile

from ..types import Paragraph
from . import Unreadable
from .boilerplate import body_text, real_title, without_citation_numbers

MAX_UNZIP_RATIO = 100  # a real .docx unzips to a few times its size; a zip bomb to thousands
MIN_UNZIP_CHECK = 20_000_000  # below this many unzipped bytes nothing is refused, whatever the ratio


_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # an encrypted .docx (and a .doc) is an OLE file, not a zip


def check_zip(data: bytes) -> None:
    if data.startswith(_OLE):
        raise Unreadable("a password-protected (or old-format) Word file: save it as a plain .docx and ingest that")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unzipped = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError) as exc:
        raise Unreadable(f"not a valid .docx (a broken zip: {exc})") from exc
    if unzipped > MIN_UNZIP_CHECK and unzipped > MAX_UNZIP_RATIO * len(data):
        raise Unreadable(f"unzips to {unzipped:,} bytes from {len(data):,} (a zip bomb?); not opened")


def read_docx(data: bytes) -> tuple[str, list[Paragraph]]:
    """(title: the core properties' when it names the document, else the Title style's, else the first
    heading's; paragraphs with their sections, less reference lists and lone figure numbers)."""
    check_zip(data)
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
        title = real_title(document.core_properties.title)
        paragraphs, section, first_heading = [], "", ""
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                paragraphs += [Paragraph(row, section) for row in _rows(block)]
                continue
            text = " ".join(without_citation_numbers(block.text).split())
            style = (block.style.name if block.style is not None else "").lower()
            if not text:
                continue
            if style == "title":
                title = title or text
            elif style.startswith("heading"):
                section, first_heading = text, first_heading or text
            else:
                paragraphs.append(Paragraph(text, section))
    except (KeyError, ValueError, AttributeError, zipfile.BadZipFile) as exc:
        raise Unreadable(f"not a readable .docx ({type(exc).__name__}: {exc})") from exc
    return title or first_heading, body_text(paragraphs)


def _rows(table) -> list[str]:
    """Each row as a line of text; under a header row each cell is named by its column
    ("Step: Detect | Minutes: 4"), so a row read alone still says what its numbers are."""
    rows = [[" ".join(cell.text.split()) for cell in row.cells] for row in table.rows]
    header, body = (rows[0], rows[1:]) if len(rows) > 1 else ([], rows)
    lines = [" | ".join(_unique(header))] if header else []
    for cells in body:
        named = [f"{name}: {cell}" if name and name != cell else cell
                 for name, cell in zip(header or [""] * len(cells), cells)]
        lines.append(" | ".join(_unique(named)))
    return [line for line in lines if line]


def _unique(cells: list[str]) -> list[str]:
    """Non-empty cells, a merged cell (python-docx repeats it in every grid column) written once."""
    return [cell for i, cell in enumerate(cells) if cell and (i == 0 or cell != cells[i - 1])]
