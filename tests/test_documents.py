"""PDF and Word files: text, sections and pages as written, and every bad file named with its reason."""

from __future__ import annotations

import json

import pytest
from documents import (
    LONG_PARAGRAPH,
    PAPER_FOOTNOTE,
    PAPER_REFERENCES,
    PAPER_SPLIT_END,
    PAPER_SPLIT_START,
    PAPER_TITLE,
    make_docx,
    make_paper_pdf,
    make_pdf,
    make_zip_bomb,
)

from rag.corpus import load_paths
from rag.formats.pages import Line, paragraphs_from_pages

CROSS_PAGE_START = "The migration of the archive clusters was planned for"
CROSS_PAGE_END = "the spring and finished in nine days."


@pytest.fixture
def report_pdf(tmp_path):
    """Four pages with a running header and footer: a heading, a paragraph running over the page break,
    a word hyphenated at a line end, an empty page and a last section."""
    return make_pdf(tmp_path / "corpus" / "fleet.pdf", [
        ["# Storage migration", "Short intro paragraph that ends here.", LONG_PARAGRAPH, CROSS_PAGE_START],
        [CROSS_PAGE_END, "The on-call engineers wrote a docu-\nment for every outage they had."],
        [],
        ["# Results", "Latency fell by 40 percent after the move."],
    ], title="Disk fleet report", header="ACME Storage Review", footer=True)


def _load(path):
    return load_paths([path], 10**8, path.parent)


def test_pdf_text_pages_sections_and_hyphenation(tmp_path, report_pdf):
    result = _load(report_pdf)
    assert not result.skipped and result.read["fleet.pdf"].pages == 4
    (post,) = result.posts
    assert post.title == "Disk fleet report"
    by_text = {p.text: p for p in post.paragraphs}
    assert by_text["Short intro paragraph that ends here."].page == 1
    assert by_text["Short intro paragraph that ends here."].section == "Storage migration"
    assert by_text[LONG_PARAGRAPH].page == 1
    crossing = by_text[f"{CROSS_PAGE_START} {CROSS_PAGE_END}"]
    assert (crossing.page, crossing.page_at(len(crossing.text) - 1)) == (1, 2)
    assert by_text["The on-call engineers wrote a document for every outage they had."].page == 2
    last = by_text["Latency fell by 40 percent after the move."]
    assert (last.page, last.section) == (4, "Results")
    text = " ".join(by_text)
    assert "ACME Storage Review" not in text and "Page 1 of" not in text
    assert [w.message for w in result.warnings] == ["no extractable text on page 3 (scanned images? run OCR first)"]


def test_running_headers_need_most_pages_and_page_numbers_go():
    bodies = ["Costs fell.", "Latency rose.", "Errors halved.", "Teams grew.", "Budgets shrank.", "Sales rose."]
    pages = [[Line("Quarterly review"), *(Line(body) for body in bodies[n:n + 3]), Line(str(n + 1))]
             for n in range(4)]
    pages[1][0] = Line("A heading only here")
    paragraphs, empty, *_ = paragraphs_from_pages(pages, lambda line: False)
    text = " ".join(p.text for p in paragraphs)
    assert "Quarterly review" not in text and "A heading only here" in text and empty == []
    assert not any(p.text.isdigit() for p in paragraphs)


def test_page_offsets_survive_squeezed_spaces_hyphens_and_an_empty_page():
    pages = [[Line("The long  sentence   starts here and goes")], [], [Line("on over a docu-")],
             [Line("ment to its end.")]]
    (paragraph,), empty, *_ = paragraphs_from_pages(pages, lambda line: False)
    assert paragraph.text == "The long sentence starts here and goes on over a document to its end."
    assert empty == [2] and paragraph.page == 1
    assert paragraph.page_at(paragraph.text.index("on over")) == 3
    assert paragraph.page_at(paragraph.text.index("ment to")) == 4 and paragraph.page_at(5) == 1


def test_words_at_a_page_edge_are_not_taken_for_page_numbers():
    words = ["Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf", "Hotel"]
    pages = [[Line(f"{word} team shipped it.") for word in words[n:n + 4]] + [Line(f"{n + 1}")] for n in range(4)]
    pages[1].insert(0, Line("CLI"))
    pages[2].insert(4, Line("Civic duty matters."))
    paragraphs, *_ = paragraphs_from_pages(pages, lambda line: line == "CLI")
    assert [p.section for p in paragraphs] == ["", "CLI", "CLI", "CLI"]
    assert not any(p.text.isdigit() for p in paragraphs) and "Civic duty matters." in paragraphs[2].text


def test_a_wide_gap_or_a_bigger_font_starts_a_paragraph():
    lines = [Line("Results", 700, 14), Line("The first line of a paragraph runs on", 680, 11),
             Line("to its second line.", 667, 11), Line("A new paragraph after a gap.", 640, 11)]
    paragraphs, *_ = paragraphs_from_pages([lines], lambda line: False)
    assert [p.text for p in paragraphs] == [
        "Results", "The first line of a paragraph runs on to its second line.", "A new paragraph after a gap."]


def test_docx_headings_become_sections_and_tables_rows(tmp_path):
    path = make_docx(tmp_path / "review.docx", "Incident review", [
        ("text", "We lost the primary database at 02:00."), ("heading", "Timeline"),
        ("text", "Failover took 14 minutes."), ("table", [["Step", "Minutes"], ["Detect", "4"], ["Failover", "10"]]),
    ])
    (post,) = _load(path).posts
    assert post.title == "Incident review"
    assert [(p.section, p.text) for p in post.paragraphs] == [
        ("", "We lost the primary database at 02:00."), ("Timeline", "Failover took 14 minutes."),
        ("Timeline", "Step | Minutes"), ("Timeline", "Step: Detect | Minutes: 4"),
        ("Timeline", "Step: Failover | Minutes: 10")]
    assert all(p.page is None for p in post.paragraphs)


def test_a_paper_reaches_passages_as_its_text_alone(tmp_path):
    """References, the footnote, its marker, a page number and a figure number left on a line of their own
    are not passages; the sentence over the page break (and past the footnote) is whole; the junk metadata
    title gives way to the first page's biggest type; sections are the bold headings."""
    (post,) = _load(make_paper_pdf(tmp_path / "draft3.pdf")).posts
    assert post.title == PAPER_TITLE
    text = " ".join(p.text for p in post.paragraphs)
    for debris in [*(entry.split(" ", 1)[1][:30] for entry in PAPER_REFERENCES), PAPER_FOOTNOTE[2:40], "Fig. 3"]:
        assert debris not in text
    assert "leaders and verifiers. The leader" in text and " 12 " not in text and "[3]" not in text
    (split,) = [p for p in post.paragraphs if p.text.startswith(PAPER_SPLIT_START)]
    assert split.text == f"{PAPER_SPLIT_START} {PAPER_SPLIT_END}"
    assert (split.page, split.page_at(len(split.text) - 1)) == (1, 2)
    assert {p.section for p in post.paragraphs} == {"1 Introduction", "2 Throughput"}  # the byline is gone too
    assert "Ana Ledger" not in text


def test_a_real_metadata_title_wins_and_a_bare_paper_is_named_by_its_file(tmp_path):
    (post,) = _load(make_paper_pdf(tmp_path / "a.pdf", metadata_title="Ledgers Compared")).posts
    assert post.title == "Ledgers Compared"
    (post,) = _load(make_pdf(tmp_path / "cloud_costs-2024.pdf", [["Costs fell by a third."]],
                             title="untitled")).posts
    assert post.title == "Cloud costs 2024"


def test_docx_titles_and_reference_lists(tmp_path):
    import docx

    path = make_docx(tmp_path / "notes.docx", "", [
        ("heading", "Storage review"), ("text", "Failover took 14 minutes."),
        ("text", "1. Ops team, A.: Runbook for failover, https://example.com/runbook, last accessed 2024/01/02"),
        ("heading", "References"), ("text", "Smith, J., and Doe, A.: Disks at scale. In Proceedings (2010)"),
    ])
    document = docx.Document(str(path))
    document.core_properties.title = "Microsoft Word - draft3.docx"
    document.save(str(path))
    (post,) = _load(path).posts
    assert post.title == "Storage review"
    assert [p.text for p in post.paragraphs] == ["Failover took 14 minutes."]
    document.core_properties.title = "Q3 storage review"
    document.save(str(path))
    assert _load(path).posts[0].title == "Q3 storage review"


def test_bad_documents_are_skipped_by_name_and_reason_and_the_rest_read(tmp_path, report_pdf):
    folder = report_pdf.parent
    make_pdf(folder / "locked.pdf", [["Secret text."]], password="pw")
    make_pdf(folder / "open.pdf", [["Readable text with an empty user password."]], password="")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n garbage \x00\x01 trailer")
    make_zip_bomb(folder / "bomb.docx")
    (folder / "broken.docx").write_bytes(b"PK\x03\x04 not a zip")
    (folder / "old.doc").write_bytes(b"old Word")
    (folder / "huge.pdf").write_bytes(b"%PDF" + b" " * 200_000)
    result = load_paths([folder], 100_000, folder.parent)
    reasons = {s.path: s.reason for s in result.skipped}
    assert reasons["corpus/locked.pdf"].startswith("encrypted PDF (it needs a password)")
    assert reasons["corpus/broken.pdf"].startswith("not a readable PDF")
    assert reasons["corpus/bomb.docx"].startswith("unzips to 60,000,008 bytes")
    assert reasons["corpus/broken.docx"].startswith("not a valid .docx (a broken zip")
    assert reasons["corpus/old.doc"].startswith("unsupported file type .doc")
    assert reasons["corpus/huge.pdf"].startswith("larger than the 100000-byte limit")
    assert set(result.read) == {"corpus/fleet.pdf", "corpus/open.pdf"}


@pytest.mark.slow
def test_pages_reach_search_results_and_rag_info(tmp_path, report_pdf, capsys, make_settings):
    from rag import Assistant
    from rag.cli import main

    make_docx(report_pdf.parent / "review.docx", "Incident review", [("text", "Failover took 14 minutes.")])
    assert main(["ingest", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(report["indexed"]) == ["corpus/fleet.pdf", "corpus/review.docx"]
    hits = Assistant(make_settings()).search("When was the archive cluster migration finished?", k=1).hits
    (source,) = hits[0].passage.sources
    assert (source.page, source.page_end, source.path) == (1, 2, "corpus/fleet.pdf")
    assert main(["search", "--json", "how long did failover take?"]) == 0
    sources = [s for p in json.loads(capsys.readouterr().out)["passages"] for s in p["sources"]]
    assert all("page" in s for s in sources)
    assert {s["page"] for s in sources if s["path"] == "corpus/review.docx"} == {None}
    assert main(["search", "archive clusters planned spring"]) == 0
    assert "Disk fleet report › Storage migration, pp. 1–2" in capsys.readouterr().out
    assert main(["info"]) == 0
    assert "corpus/fleet.pdf (4 pages)" in capsys.readouterr().out
    assert main(["sources", "--json"]) == 0
    titles = {s["path"]: s["title"] for s in json.loads(capsys.readouterr().out)["sources"]}
    assert titles == {"corpus/fleet.pdf": "Disk fleet report", "corpus/review.docx": "Incident review"}
