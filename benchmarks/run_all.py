"""Run every benchmark (one after another, so they do not share the CPU) and write benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/run_all.py            # or: make bench
    .venv/bin/python benchmarks/run_all.py --render   # only rewrite RESULTS.md from benchmarks/results/*.json
    .venv/bin/python benchmarks/run_all.py --only ingest,query

Each script's JSON is kept in benchmarks/results/<name>.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from common import machine

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SCRIPTS = ["ingest", "query", "app_memory", "scale", "verification", "documents", "server_load", "million-100k",
           "million-1m", "verification-overlap", "reading", "request_caps"]
# Arguments a script runs with here: the service's soak is cut to 2 minutes (run server_load.py alone for 10).
ARGS = {"server_load": ["--soak", "120"], "verification": ["--model", "reader"],
        "verification-overlap": ["--model", "overlap"], "million-100k": ["--passages", "100000"],
        "million-1m": ["--passages", "1000000", "--reingest", "edit,add,delete,no-change"]}


def run(name: str) -> None:
    print(f"== {name}", file=sys.stderr, flush=True)
    script = name.split("-")[0]  # million-100k and million-1m are million.py at two sizes
    out = subprocess.run([sys.executable, str(HERE / f"{script}.py"), *ARGS.get(name, [])], cwd=HERE, check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(out)


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def perf_table(ing, qry, app) -> list[str]:
    rows = ["| what | figure | floor (same run) | ratio | goal |", "| --- | --- | --- | --- | --- |"]
    if ing:
        i, f = ing["ingest_rebuild"], ing["floor_sentence_transformers_encode"]
        rows.append(f"| `rag ingest --rebuild`, {ing['corpus']['unique_passages']} passages (passages/s, "
                    f"in-process {i['in_process_s']} s) | {i['passages_per_s']} | raw `SentenceTransformer.encode`, "
                    f"same texts and batch: {f['passages_per_s']} | {ing['ratio_ingest_to_floor']} | "
                    f"≥ {ing.get('goal_ratio_at_least', 0.9)} |")
        rows.append(f"| same, as a process incl. start-up ({i['process_wall_s']} s wall) | "
                    f"{i['process_passages_per_s']} | {f['passages_per_s']} | {ing['ratio_process_to_floor']} | |")
        n, e = ing["reingest_no_change"], ing["reingest_one_edited_file"]
        rows.append(f"| re-ingest, nothing changed: passages embedded / in-process s / process s | "
                    f"{n['embedded']} / {n['in_process_s']} / {n['process_wall_s']} | – | – | 0, < 1 s |")
        rows.append(f"| re-ingest, one paragraph of one file edited: embedded / in-process s / process s | "
                    f"{e['embedded']} / {e['in_process_s']} / {e['process_wall_s']} | – | – | |")
    if qry:
        fl = qry["floor_query_embedding"]
        for key, label in (("search_warm", "`Assistant.search`"), ("ask_extractive_warm", "extractive `Assistant.ask`")):
            r = qry[key]
            rows.append(f"| warm {label} p50 / p95 (ms) | {r['p50_ms']} / {r['p95_ms']} | one query embedding "
                        f"(`OnnxEncoder.encode([q])`) {fl['p50_ms']} / {fl['p95_ms']} | {r['p50_vs_floor']} (p50) "
                        f"| ≤ 2 |")
        c, s = qry["cold_rag_ask_json"], qry["floor_import_sentence_transformers"]
        rows.append(f"| fresh `rag ask \"…\" --json` process, median of {c['runs']} (s) | {c['median_s']} | "
                    f"`import sentence_transformers` alone, median of {s['runs']}: {s['median_s']} | "
                    f"{qry['cold_ask_vs_import']} | ≤ 0.3 |")
        cs = qry["cold_rag_search_json"]
        rows.append(f"| fresh `rag search \"…\" --json` process (s) | {cs['median_s']} | {s['median_s']} | "
                    f"{round(cs['median_s'] / s['median_s'], 3)} | |")
        rows.append(f"| peak RSS of a fresh `rag ask` (MiB, GNU time %M) | {c['peak_rss_mib']} | `import sentence_transformers`: "
                    f"{s['peak_rss_mib']} | {qry['rss_ask_vs_import']} | |")
    if app:
        rows.append(f"| Streamlit server peak RSS (VmHWM) after one answer (MiB) | "
                    f"{app['app_peak_rss_mib_after_one_answer']} (before the question: "
                    f"{app['app_peak_rss_mib_before_question']}) | `import sentence_transformers`: "
                    f"{app['floor_import_sentence_transformers_peak_rss_mib']} | {app['app_vs_import']} | |")
    return rows


def scale_table(scale) -> list[str]:
    rows = [f"Dense search alone, one query at a time, k = {scale['k']}, {scale['dimension']}-d synthetic clustered "
            "unit vectors; recall@10 against exact (flat) search; memory = the index as FAISS writes it.", "",
            "| passages | index | build (s) | p50 / p95 (ms) | speed-up vs flat p50 | recall@10 | memory (MiB) |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for result in scale["results"]:
        for r in result["rows"]:
            build = "" if r["build_s"] is None else r["build_s"]
            rows.append(f"| {result['passages']:,} | {r['index'].strip()} | {build} | {r['p50_ms']} / {r['p95_ms']} | "
                        f"{r['speedup_vs_flat']} | {r.get('recall_at_10', '')} | {r['memory_mib']} |")
    return rows


def verification_table(result) -> list[str]:
    keys = ["clean_kept", "hallucinated_removed", "response_precision", "response_recall", "response_f1",
            "p50_ms", "p95_ms"]
    bars = result["bars"]
    rows = [f"Verifier `{result['verifier']}` on RAGTruth QA (dev split, human labels); bars: clean kept ≥ "
            f"{bars['clean_kept']}, hallucinated removed ≥ {bars['hallucinated_removed']}, response F1 ≥ "
            f"{bars['response_f1']}, p95 ≤ {bars['p95_ms']} ms.", "",
            "| part | answers | sentences (hallucinated) | " + " | ".join(keys) + " |",
            "| --- | --- | --- | " + " | ".join("---" for _ in keys) + " |"]
    parts = [("held-out", result["held_out"]), ("whole file", result["whole_file"]),
             *((f"model {m}", f) for m, f in result["per_model"].items())]
    for name, f in parts:
        rows.append(f"| {name} | {f['answers']} | {f['sentences']} ({f['hallucinated_sentences']}) | "
                    + " | ".join(str(f[k]) for k in keys) + " |")
    return rows


def reading_table(reading, verification, overlap) -> list[str]:
    """The reading model against word overlap (the product before it), each figure beside its goal."""
    rows = ["| figure | goal | word overlap (before) | reading model |", "| --- | --- | --- | --- |"]
    if verification and overlap:
        after, before = verification["held_out"], overlap["held_out"]
        for key, goal in (("clean_kept", "≥ 0.90"), ("hallucinated_removed", "≥ 0.75"), ("response_f1", "≥ 0.60"),
                          ("p95_ms", "≤ 150")):
            label = "verification ms per answer p95" if key == "p95_ms" else f"RAGTruth held out: {key.replace('_', ' ')}"
            rows.append(f"| {label} | {goal} | {before[key]} | {after[key]} |")
    if reading:
        goals = {("squad", "answer_in_answer"): "≥ 0.85", ("squad", "false_abstention_rate"): "≤ 0.03",
                 ("case_studies", "ask_p95_ms"): "≤ 300"}
        for corpus, by_reader in reading["results"].items():
            before, after = by_reader["overlap (before)"], by_reader["reading model"]
            rerank = by_reader["rerank"]
            rows.append(f"| {corpus}: MRR / answer in retrieved, reranked top {rerank['pool']} (not shipped) | "
                        f"higher on all three | {rerank['off']['mrr']} / {rerank['off']['answer_in_retrieved']} | "
                        f"{rerank['on']['mrr']} / {rerank['on']['answer_in_retrieved']} |")
            rows.append(f"| {corpus}: reranking ms p50 beside search ms p50 | ≤ 2x search | "
                        f"{rerank['search_p50_ms']} | {rerank['rerank_p50_ms']} |")
            for key in ("answer_in_answer", "false_abstention_rate", "citation_precision", "abstention_precision",
                        "abstention_recall", "ask_p50_ms", "ask_p95_ms"):
                if after.get(key) is not None or before.get(key) is not None:
                    rows.append(f"| {corpus}: {key.replace('_', ' ')} | {goals.get((corpus, key), '')} | "
                                f"{before.get(key)} | {after.get(key)} |")
    return rows


def documents_table(d) -> list[str]:
    p, f, x, i, s = d["pdf"], d["floor_pypdf_extract_text"], d["docx"], d["ingest_pdf_process"], d["stale_check"]
    return [
        "| what | figure | floor (same run) | ratio |", "| --- | --- | --- | --- |",
        f"| PDF read by the loader, {p['pages']} pages ({p['bytes'] / 1e6:.1f} MB; pages/s) | {p['pages_per_s']} | "
        f"pypdf `extract_text()` alone: {f['pages_per_s']} | {d['ratio_loader_to_pypdf']} (time) |",
        f"| .docx read by the loader, {x['paragraphs']} paragraphs (paragraphs/s) | {x['paragraphs_per_s']} | – | – |",
        f"| `rag ingest` of that PDF into a new index, fresh process: wall s / passages / peak RSS MiB | "
        f"{i['wall_s']} / {i['passages']} / {i['peak_rss_mib']} | – | – |",
        f"| newer-index check per question (stat of the manifest) p50 / p95 µs | {s['stamp_p50_us']} / "
        f"{s['stamp_p95_us']} | warm search p50: {s['warm_search_p50_ms']} ms | {s['stamp_share_of_search']} |",
    ]


def server_table(s) -> list[str]:
    setup, soak = s["setup"], s["soak"]
    load1 = s["load_average_1_5_15_min"]
    rows = [f"`rag serve` on the shipped corpus, `RAG_SERVER_RATE_LIMIT=0`; each level: that many clients (threads, "
            f"one HTTP connection each) asking `POST /v1/ask` back to back for {setup['seconds_per_level']:.0f} s, "
            f"{setup['questions']} different case-study questions from tests/data in turn. The clients and the "
            f"fake LLM (tests/fake_openai.py, `scripted_llm`) share the machine with the server, and so does "
            f"whatever else runs (the 1-minute load average when the run began: {load1['at_start'][0]}; after each "
            "level in the last column, which counts this benchmark's own busy threads too). Peak RSS is the server's VmHWM "
            "after the level (it only rises level to level). Errors: any non-200 or failed request.", "",
            "| answers | clients | requests | req/s | p50 / p95 / p99 (ms) | errors | server peak RSS (MiB) | load avg |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for mode, label in (("extractive", "extractive"), ("fake_llm", "LLM (fake, in-process)")):
        for r in s["load"][mode]["levels"]:
            rows.append(f"| {label} | {r['clients']} | {r['requests']} | {r['req_per_s']} | {r['p50_ms']} / "
                        f"{r['p95_ms']} / {r['p99_ms']} | {r['errors']} | {r['peak_rss_mib']} | {r['load_average_1_min']} |")
    if soak:
        rows += ["", f"Soak: {soak['seconds'] / 60:.0f} min, {soak['clients']} clients ({soak['mix']}); "
                     f"server RSS sampled every {soak['sample_every_s']:.0f} s. {soak['requests']} requests, "
                     f"{soak['errors']} errors. RSS after the first minute {soak['rss_after_first_minute_mib']} MiB, "
                     f"at the end {soak['rss_at_end_mib']} MiB: growth {soak['growth_after_first_minute_mib']} MiB "
                     f"(goal < {soak['goal_growth_mib_below']:.0f}); least-squares slope after the first minute "
                     f"{soak['slope_mib_per_10_min']} MiB per 10 min, over the second half alone "
                     f"{soak.get('slope_second_half_mib_per_10_min')} MiB per 10 min; peak {soak['peak_rss_mib']} "
                     f"MiB. Per-level figures and the RSS samples: `benchmarks/results/server_load.json`."]
    return rows


def _at(result: dict | None, *path: str):
    """A figure deep in a result, unwrapping {"value", "goal"}; "–" where the run has none."""
    for key in path:
        if not isinstance(result, dict) or result.get(key) is None:
            return "–"
        result = result[key]
    return result["value"] if isinstance(result, dict) and "value" in result else result


def _records_s(result: dict) -> object:
    inside = result["ingest"]["inside_stages_s"]
    return inside.get("records_create", inside.get("records_write", "–"))  # records_write: its name before incremental updates


def million_table(runs: list[tuple[str, dict | None]]) -> list[str]:
    """The scale benchmark's figures, one column per run, each row next to its goal from issue 20."""
    runs = [(label, result) for label, result in runs if result]
    if not runs:
        return []
    both = ("p50_ms", "p95_ms")

    def pair(result, *path):
        return " / ".join(str(_at(result, *path, key)) for key in both)

    rows_spec = [
        ("passages (unique)", lambda r: f"{_at(r, 'ingest', 'report', 'passages'):,} "
                                        f"({_at(r, 'ingest', 'report', 'unique_passages'):,})", ""),
        ("full ingest, fresh process (s)", lambda r: _at(r, "ingest", "process_wall_s"), ""),
        ("  of which chunking (model tokenizer) / FAISS build / records + FTS5 (s)",
         lambda r: f"{_at(r, 'ingest', 'stages_s', 'chunk')} / {_at(r, 'ingest', 'inside_stages_s', 'faiss_build')}"
                   f" / {_records_s(r)}", ""),
        ("peak ingest RSS (MiB)", lambda r: _at(r, "ingest", "peak_rss_mib"), "< 4096"),
        ("re-ingest, one paragraph of one file edited (s)", lambda r: _at(r, "reingest", "one_file_edit",
                                                                          "process_wall_s"), "< 5"),
        ("re-ingest, one file added / one deleted / nothing changed (s)",
         lambda r: " / ".join(str(_at(r, "reingest", step, "process_wall_s"))
                              for step in ("add_one_file", "delete_one_file", "no_change")), ""),
        ("re-ingest, one paragraph edited, real embedding model (s)",
         lambda r: _at(r, "reingest", "one_file_edit_real_encoder", "process_wall_s"), ""),
        ("hybrid search p50 / p95 (ms)", lambda r: pair(r, "search", "hybrid", "all"), "p95 < 50"),
        ("dense search p50 / p95 (ms)", lambda r: pair(r, "search", "dense", "all"), ""),
        ("lexical search, common words p50 / p95 (ms)", lambda r: pair(r, "search", "lexical", "common"), ""),
        ("lexical search, rare words p50 / p95 (ms)", lambda r: pair(r, "search", "lexical", "rare"), ""),
        ("`rag info`, fresh process (s)", lambda r: _at(r, "info", "wall_s"), ""),
        ("cold `rag ask`, fresh process (s) / its peak RSS (MiB)",
         lambda r: f"{_at(r, 'ask_cold', 'wall_s')} / {_at(r, 'ask_cold', 'peak_rss_mib')}", "< 1 s"),
        ("bytes on disk per passage: all / FAISS / records + FTS5",
         lambda r: " / ".join(str(_at(r, "disk", part, "per_unique_passage"))
                              for part in ("index_folder", "vectors_faiss", "records_sqlite")), ""),
    ]
    header = "| figure | " + " | ".join(label for label, _ in runs) + " | goal |"
    rows = [header, "|" + " --- |" * (len(runs) + 2)]
    for name, figure, goal in rows_spec:
        rows.append(f"| {name} | " + " | ".join(str(figure(r)) for _, r in runs) + f" | {goal} |")
    return rows


def scale_runs() -> list[tuple[str, dict | None]]:
    return [("100k, before (115afc7)", load("million-100k-before")), ("100k", load("million-100k")),
            ("1M", load("million-1m"))]


def render() -> str:
    ing, qry, app, scale, verification, documents, server = (load(n) for n in SCRIPTS[:7])
    m = next((r["machine"] for r in (ing, qry, app, scale) if r), machine())
    lines = ["## Performance, measured", "",
             f"Machine: {m['nproc']} cores ({m['cpu']}), {m['ram_gib']} GiB RAM, CPU only, Python {m['python']}. "
             "Each figure is next to its floor, measured in the same run. Reproduce: `make bench` "
             "(`.venv/bin/python benchmarks/run_all.py`; about 20 minutes; JSON in `benchmarks/results/`).", ""]
    lines += perf_table(ing, qry, app)
    if ing:
        lines += ["", f"Ingest corpus: {ing['corpus']['files']} synthetic Markdown files, "
                      f"{ing['corpus']['unique_passages']} paragraph passages of ~70 words. Query figures: the shipped "
                      f"corpus ({qry['index']['passages'] if qry else '?'} unique passages, {qry['index']['type'] if qry else '?'} index)."]
    if scale:
        lines += ["", "### Dense search at scale", ""] + scale_table(scale)
    if any(result for _, result in scale_runs()):
        lines += ["", "### A synthetic corpus of 100k and 1M passages, end to end", "",
                  "`benchmarks/million.py`: Markdown files of 60-150-word paragraphs whose words follow the "
                  "repository's own prose plus a Zipf tail of rare words, ~3% boilerplate repeated across files; "
                  "the ingest's embedder is a deterministic stand-in (hashed trigrams), everything else is the "
                  "real code, and searches use the real ONNX query model. Each ingest, `rag info` and `rag ask` "
                  "is a fresh process.", ""] + million_table(scale_runs())
    if verification:
        lines += ["", "### Claim verification", ""] + verification_table(verification)
    reading = reading_table(load("reading"), verification, load("verification-overlap"))
    if len(reading) > 2:
        lines += ["", "### The reading model", ""] + reading
    if documents:
        lines += ["", "### Documents", ""] + documents_table(documents)
    if server:
        lines += ["", "### The service under load", ""] + server_table(server)
    return "\n".join(lines) + "\n"


def update_readme() -> None:
    """The README's generated tables (between their markers) from the same results as RESULTS.md."""
    readme = HERE.parent / "README.md"
    text = readme.read_text()
    tables = {"performance": perf_table(load("ingest"), load("query"), load("app_memory")),
              "scale": million_table(scale_runs()),
              "reading": reading_table(load("reading"), load("verification"), load("verification-overlap"))}
    for name, rows in tables.items():
        start, end = f"<!-- make bench: {name} -->\n", f"<!-- end {name} -->"
        if start in text and end in text and rows:
            head, rest = text.split(start, 1)
            text = head + start + "\n".join(rows) + "\n" + end + rest.split(end, 1)[1]
    readme.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--render", action="store_true", help="only rewrite RESULTS.md from saved JSON")
    parser.add_argument("--only", default=",".join(SCRIPTS))
    args = parser.parse_args()
    if not args.render:
        for name in args.only.split(","):
            run(name)
    (HERE / "RESULTS.md").write_text(render())
    update_readme()
    print((HERE / "RESULTS.md").read_text())


if __name__ == "__main__":
    main()
