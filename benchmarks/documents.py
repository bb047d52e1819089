"""Document formats: extraction speed against raw pypdf, what a 300-page PDF costs to ingest, and what
the per-question check for a newer index costs.

    .venv/bin/python benchmarks/documents.py [--pages 300]

Makes a PDF (fpdf2: a running header, a page-number footer, three paragraphs of ~70 words per page) and
a .docx with the same paragraphs (python-docx), reads them through the product's loaders (pages/s,
paragraphs/s) next to the floor of pypdf's own `extract_text()` over the same pages, then times
`rag ingest FILE --json` as a fresh process on a new index, and the stamp check of the published
manifest that every question makes (one stat call) next to a warm search.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import RAG, WORDS, emit, env_for, machine, ms, percentile, ratio, run_child

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from documents import make_docx, make_pdf  # noqa: E402

from rag import Assistant, Settings  # noqa: E402
from rag.corpus import load_paths  # noqa: E402
from rag.resources import Loader  # noqa: E402


def paragraphs(pages: int, per_page: int = 3, seed: int = 11) -> list[list[str]]:
    rng = random.Random(seed)
    out = []
    for page in range(pages):
        texts = [f"# Part {page}"] if page % 10 == 0 else []
        for _ in range(per_page):
            sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 16))).capitalize() + "."
                         for _ in range(5)]
            texts.append(" ".join(sentences))
        out.append(texts)
    return out


def best_of(fn, runs: int = 3) -> float:
    return min(_time(fn) for _ in range(runs))


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def raw_pypdf(path: Path) -> None:
    from pypdf import PdfReader

    for page in PdfReader(path).pages:
        page.extract_text()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rag-docs-bench-") as folder:
        work = Path(folder)
        content = paragraphs(args.pages)
        pdf = make_pdf(work / "corpus" / "report.pdf", content, title="Report", header="ACME review", footer=True)
        docx = make_docx(work / "docx" / "report.docx", "Report",
                         [("text", text) for page in content for text in page if not text.startswith("#")])
        pdf_s, floor_s = best_of(lambda: load_paths([pdf], 10**9, work)), best_of(lambda: raw_pypdf(pdf))
        docx_s = best_of(lambda: load_paths([docx], 10**9, work))
        loaded = load_paths([pdf], 10**9, work)
        pdf_bytes = pdf.stat().st_size
        docx_paragraphs = sum(len(p.paragraphs) for p in load_paths([docx], 10**9, work).posts)
        wall, rss, out = run_child([RAG, "ingest", str(pdf), "--json"], env_for(work / "vectorstore"), work)
        report = json.loads(out)
        stamp = stamp_and_search(work)
    emit({
        "machine": machine(),
        "pdf": {"pages": args.pages, "bytes": pdf_bytes,
                "paragraphs": sum(len(p.paragraphs) for p in loaded.posts), "warnings": len(loaded.warnings),
                "extract_s": round(pdf_s, 3), "pages_per_s": round(args.pages / pdf_s, 1)},
        "floor_pypdf_extract_text": {"s": round(floor_s, 3), "pages_per_s": round(args.pages / floor_s, 1)},
        "ratio_loader_to_pypdf": ratio(pdf_s, floor_s),
        "docx": {"paragraphs": docx_paragraphs, "extract_s": round(docx_s, 3),
                 "paragraphs_per_s": round(docx_paragraphs / docx_s, 1)},
        "ingest_pdf_process": {"wall_s": round(wall, 2), "peak_rss_mib": round(rss, 1),
                               "passages": report["unique_passages"], "embedded": report["embedded"],
                               "in_process_s": report["seconds"]},
        "stale_check": stamp,
    })


def stamp_and_search(work: Path) -> dict:
    settings = Settings(index_dir=work / "vectorstore", corpus_dir=work / "corpus")
    loader = Loader(settings)
    stamps = []
    for _ in range(2000):
        start = time.perf_counter()
        loader.stamp()
        stamps.append(time.perf_counter() - start)
    assistant = Assistant(settings)
    assistant.search("warm up")
    searches = [_time(lambda: assistant.search("which storage budget review took 30 days?")) for _ in range(50)]
    return {"stamp_p50_us": round(statistics.median(stamps) * 1e6, 1),
            "stamp_p95_us": round(percentile(stamps, 0.95) * 1e6, 1),
            "warm_search_p50_ms": ms(statistics.median(searches)),
            "stamp_share_of_search": round(statistics.median(stamps) / statistics.median(searches), 5)}


if __name__ == "__main__":
    main()
