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


PAPER_TITLE = "Consensus Protocols for Public Ledgers"
PAPER_SPLIT_START = ("Since then the throughput of public ledgers has grown from single digits to over 60000 "
                     "transactions per second, a change that was exhibited from")
PAPER_SPLIT_END = "the original Bitcoin network to the newest proof of history chains within a decade."
PAPER_REFERENCES = [
    "1. Nakamoto, S.: Bitcoin: A peer-to-peer electronic cash system (2008)",
    "2. Wilkinson, S., Boshevski, T., Brandoff, J., Buterin, V.: Storj a peer-to-peer cloud storage network (2014)",
    "3. Yakovenko, A.: Solana: A new architecture for a high performance blockchain v0.8.13 (2018)",
    "28. Solana Docs Homepage, https://docs.solana.com, last accessed 2021/11/31",
    "35. ARK Homepage, https://ark.io/, last accessed 2021/11/29",
]
PAPER_FOOTNOTE = "1 The figures were taken from each project's public dashboard in November 2021."


def make_paper_pdf(path: Path, metadata_title: str = "Microsoft Word - draft3.docx") -> Path:
    """A research paper as PDF writers lay it out: a big title, numbered bold headings, a footnote marker
    and its footnote in small type at the page's foot, a figure number on its own line, a sentence running
    over a page break past the page number, and a numbered reference list."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title(metadata_title)
    pdf.set_auto_page_break(False)
    pdf.set_margins(20, 20)

    def body(text: str) -> None:
        pdf.set_font("Times", size=10)
        pdf.multi_cell(0, 5, text, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)

    def heading(text: str) -> None:
        pdf.set_font("Times", style="B", size=12)
        pdf.cell(0, 7, text, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1)

    def foot(number: int, notes: list[str]) -> None:
        pdf.set_font("Times", size=7)
        pdf.set_y(-38)
        for note in notes:
            pdf.multi_cell(0, 3.5, note, new_x="LMARGIN", new_y="NEXT")
        pdf.set_y(-22)
        pdf.set_font("Times", size=9)
        pdf.cell(0, 5, str(number), align="C")

    pdf.add_page()
    pdf.set_font("Times", style="B", size=18)
    pdf.multi_cell(0, 9, PAPER_TITLE, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Times", size=10)
    pdf.cell(0, 6, "Ana Ledger and Bo Chain", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    heading("1 Introduction")
    body("Public ledgers agree on the order of transactions without a central operator, and the protocol "
         "that reaches that agreement decides how fast the ledger can go.")
    pdf.set_font("Times", size=10)
    pdf.write(5, "In Solana there are two kinds of nodes, leaders and verifiers")
    pdf.set_font("Times", size=6)
    pdf.write(3, "1")
    pdf.set_font("Times", size=10)
    pdf.write(5, ". The leader orders the transactions and the verifiers replay them to check its work [3].")
    pdf.ln(8)
    pdf.set_font("Times", size=10)
    pdf.cell(0, 5, "12", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 5, "Fig. 3", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    heading("2 Throughput")
    body("Proof of history gives every transaction a verifiable timestamp before consensus, so validators "
         "do not have to talk to each other to agree on the order.")
    body(PAPER_SPLIT_START)
    foot(1, [PAPER_FOOTNOTE])
    pdf.add_page()
    body(PAPER_SPLIT_END)
    body("Sharding splits the ledger into groups of validators that each keep a part of the state.")
    heading("References")
    pdf.set_font("Times", size=9)
    for entry in PAPER_REFERENCES:
        pdf.multi_cell(0, 4.5, entry, new_x="LMARGIN", new_y="NEXT")
    foot(2, [])
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path
