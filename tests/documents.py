"""Real PDF and Word files with known text on known pages, made by the tests (fpdf2, python-docx)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

LONG_PARAGRAPH = ("The storage team measured every disk in the fleet before the migration started, and "
                  "they found that the oldest controllers failed four times as often as the newest ones, "
                  "which is why the replacement plan put those racks first and finished them within a "
                  "single quarter without any customer-visible downtime at all.")


def make_pdf(path: Path, pages: list[list[str]], title: str = "", header: str = "", footer: bool = False,
             password: str | None = None) -> Path:
    """One page per list of paragraphs ([] leaves a page with no text); a running header and a
    'Page n of m' footer when asked."""
    from fpdf import FPDF

    class Document(FPDF):
        def header(self) -> None:
            if header:
                self.set_font("Helvetica", size=8)
                self.cell(0, 8, header, new_x="LMARGIN", new_y="NEXT")

        def footer(self) -> None:
            if footer:
                self.set_y(-15)
                self.set_font("Helvetica", size=8)
                self.cell(0, 8, f"Page {self.page_no()} of {{nb}}", align="C")

    pdf = Document()
    if title:
        pdf.set_title(title)
    if password is not None:
        pdf.set_encryption(owner_password="owner", user_password=password)
    pdf.set_auto_page_break(False)
    for paragraphs in pages:
        pdf.add_page()
        pdf.set_font("Helvetica", size=11)
        for text in paragraphs:
            if text.startswith("# "):
                pdf.set_font("Helvetica", style="B", size=14)
                pdf.multi_cell(0, 8, text[2:], new_x="LMARGIN", new_y="NEXT")
                pdf.set_font("Helvetica", size=11)
            else:
                pdf.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(4)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


def make_docx(path: Path, title: str, blocks: list[tuple[str, object]]) -> Path:
    """blocks: ("heading", text), ("text", text) or ("table", [[cell, ...], ...])."""
    import docx

    document = docx.Document()
    document.add_heading(title, level=0)
    for kind, content in blocks:
        if kind == "heading":
            document.add_heading(str(content), level=1)
        elif kind == "table":
            rows = list(content)  # type: ignore[call-overload]
            table = document.add_table(rows=len(rows), cols=len(rows[0]))
            for r, row in enumerate(rows):
                for c, cell in enumerate(row):
                    table.cell(r, c).text = cell
        else:
            document.add_paragraph(str(content))
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(str(path))
    return path


def make_zip_bomb(path: Path, unzipped_bytes: int = 60_000_000) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"\0" * unzipped_bytes)
    path.write_bytes(buffer.getvalue())
    return path
