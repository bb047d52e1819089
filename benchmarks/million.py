"""Scale: a synthetic corpus of up to a million passages, ingested with a fast stand-in for the embedder.

    .venv/bin/python benchmarks/million.py [--passages 1000000] [--queries 200] [--keep DIR]

Builds a project folder with `corpus/` of Markdown files (50-200 paragraphs of 60-150 words each, a
`# Title` and `## Section` headings, ~3% boilerplate paragraphs repeated across files). The words follow
a real distribution: the frequencies of the repository's own prose (the shipped corpus and the eval
corpus in tests/data), extended by a Zipf tail of synthetic rare words, so that both very common and
very rare terms exist at every size. Everything is seeded.

The ingest runs as a fresh `rag` process (in-process `Assistant.ingest`) in which
`rag.embeddings.SentenceEncoder` is replaced by a deterministic stand-in (hashed byte trigrams, 384
dimensions, L2-normalized): the real model's rate is known separately (benchmarks/ingest.py), and at
~40-80 passages/s a million passages would take hours. Everything else is the real code: reading,
parsing, chunking with the model's tokenizer, deduplication, the ONNX query-model export, the FAISS
index and the SQLite records + FTS5 table. Stage times come from wrapping well-known functions (a
function the code no longer has reports null).

Then: bytes on disk per passage; re-ingest after one edited paragraph, an added file, a deleted file,
nothing changed (fresh processes, stand-in encoder) and one edited paragraph with the real encoder;
warm search p50/p95 (dense, lexical, hybrid; lexical and raw FTS5 for common and for rare words) with
the real ONNX query model; `rag info` and cold `rag ask` as fresh processes. JSON on stdout; progress
on stderr. Each figure sits next to its goal from issue 20.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import re
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from common import PYTHON, RAG, ROOT, emit, env_for, load_average, machine, ms, percentile, run_child

DIM = 384  # all-MiniLM-L6-v2's dimension: stored vectors must match the real query model's
SEED = 7
TAIL_WORDS = 400_000
TAIL_MASS = 0.10  # share of all word occurrences drawn from the synthetic tail
TAIL_EXPONENT = 1.1
BOILERPLATE = 200  # paragraphs repeated across files
BOILERPLATE_RATE = 0.03
GOALS = {"edit": "< 5 s", "hybrid_p95": "< 50 ms", "ingest_rss": "< 4096 MiB (4 GiB)", "ask": "< 1 s"}
START = time.perf_counter()


def say(message: str) -> None:
    print(f"[million {time.perf_counter() - START:7.1f}s] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the corpus

def real_words() -> tuple[list[str], list[str]]:
    """Lowercased word tokens of the repository's own prose, and the files they came from."""
    files = sorted(p for p in (ROOT / "corpus").rglob("*") if p.is_file())
    files += sorted(p for p in (ROOT / "tests" / "data" / "eval_corpus").rglob("*")
                    if p.suffix in (".md", ".html", ".txt"))
    tokens: list[str] = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".html":
            text = re.sub(r"<[^>]+>", " ", text)
        tokens += re.findall(r"[a-z]+(?:'[a-z]+)?|\d+", text.lower())
    return tokens, [p.relative_to(ROOT).as_posix() for p in files]


def synthetic_words(count: int, taken: set[str]) -> list[str]:
    """Distinct pronounceable nonsense words of three syllables, in a scrambled but fixed order."""
    onsets = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
              "br", "dr", "gr", "kr", "pl", "st", "tr", "sh", "ch", "th"]
    syllables = [o + v for o in onsets for v in ("a", "e", "i", "o", "u", "ai", "ou", "ea")]
    base = len(syllables)  # 192; 192**3 ~ 7M words
    words = []
    for j in range(count):
        x = (j * 2654435761 + 12345) % base**3  # a bijection: the multiplier is coprime with 192**3
        word = syllables[x // base**2] + syllables[x // base % base] + syllables[x % base]
        words.append(word + "x" if word in taken else word)
    return words


class Vocabulary:
    """Real words with their observed frequencies (90% of occurrences) and a Zipf tail of rare ones."""

    def __init__(self) -> None:
        tokens, self.sources = real_words()
        counts = Counter(tokens)
        self.real = sorted(counts, key=lambda w: (-counts[w], w))
        p_real = np.array([counts[w] for w in self.real], dtype=np.float64)
        p_real *= (1 - TAIL_MASS) / p_real.sum()
        tail = synthetic_words(TAIL_WORDS, set(self.real))
        p_tail = np.arange(1, TAIL_WORDS + 1, dtype=np.float64) ** -TAIL_EXPONENT
        p_tail *= TAIL_MASS / p_tail.sum()
        self.words = np.array(self.real + tail, dtype=object)
        self.cdf = np.cumsum(np.concatenate([p_real, p_tail]))
        self.cdf[-1] = 1.0
        self.real_tokens = len(tokens)
        self.topical = [w for w in self.real if len(w) > 3 and not w.isdigit() and w not in _stopwords()]

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.searchsorted(self.cdf, rng.random(n), side="right")


@functools.lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    try:
        from rag.text import STOPWORDS

        return frozenset(STOPWORDS)
    except ImportError:
        return frozenset("a an and are as at be by for from how in is it of on or that the this to was what "
                         "when where which who why with".split())


def paragraph(words: list[str], cuts: np.ndarray) -> str:
    """Words in sentences of the given lengths, each capitalized and ended with a full stop."""
    sentences, start = [], 0
    for length in cuts:
        if start >= len(words):
            break
        piece = words[start:start + int(length)]
        start += int(length)
        first = piece[0]
        piece[0] = first[:1].upper() + first[1:]
        sentences.append(" ".join(piece) + ".")
    return " ".join(sentences)


class CorpusWriter:
    """Writes the Markdown files one at a time and keeps what the benchmark needs to know about them."""

    def __init__(self, vocab: Vocabulary, seed: int) -> None:
        self.vocab = vocab
        self.rng = np.random.default_rng(seed)
        self.counts = np.zeros(len(vocab.words), dtype=np.int64)  # occurrences outside the boilerplate
        self._pending: list[np.ndarray] = []
        self.files: list[Path] = []
        self.paragraphs = self.repeated = self.words = self.bytes = 0
        self.boilerplate = [self._paragraph(count=False) for _ in range(BOILERPLATE)]
        weights = 1.0 / np.arange(1, BOILERPLATE + 1)
        self._boiler_cdf = np.cumsum(weights / weights.sum())

    def _paragraph(self, count: bool = True) -> str:
        n = int(self.rng.integers(60, 151))
        idx = self.vocab.sample(self.rng, n)
        if count:
            self._pending.append(idx)
            self.words += n
        return paragraph(self.vocab.words[idx].tolist(), self.rng.integers(8, 23, n // 8 + 1))

    def _heading(self, low: int, high: int) -> str:
        picks = self.rng.integers(0, min(400, len(self.vocab.topical)), int(self.rng.integers(low, high + 1)))
        return " ".join(self.vocab.topical[i].capitalize() for i in picks)

    def write_file(self, path: Path, paragraphs: int) -> None:
        lines = [f"# {self._heading(3, 6)}", ""]
        next_section = int(self.rng.integers(2, 8))
        for i in range(paragraphs):
            if i == next_section:
                lines += [f"## {self._heading(2, 4)}", ""]
                next_section += int(self.rng.integers(5, 16))
            if self.rng.random() < BOILERPLATE_RATE:
                lines.append(self.boilerplate[int(np.searchsorted(self._boiler_cdf, self.rng.random()))])
                self.repeated += 1
                self.words += lines[-1].count(" ") + 1
            else:
                lines.append(self._paragraph())
            lines.append("")
        text = "\n".join(lines)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        self.bytes += len(text.encode())
        self.paragraphs += paragraphs
        self.files.append(path)
        if len(self._pending) > 20_000:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self.counts += np.bincount(np.concatenate(self._pending), minlength=len(self.counts))
            self._pending = []

    def write_corpus(self, folder: Path, passages: int) -> None:
        number = 0
        while self.paragraphs < passages:
            size = min(int(self.rng.integers(50, 201)), passages - self.paragraphs)
            self.write_file(folder / f"part-{number // 100:03d}" / f"doc-{number:05d}.md", size)
            number += 1
        self.flush()


def query_sets(vocab: Vocabulary, counts: np.ndarray, n: int, seed: int) -> dict:
    """Questions of common words (the most frequent non-stopwords) and of rare ones (1-5 occurrences)."""
    rng = np.random.default_rng(seed + 1)
    topical_rank = [i for i, w in enumerate(vocab.real) if w in set(vocab.topical)]
    common = sorted(topical_rank, key=lambda i: -counts[i])[:40]
    tail_start = len(vocab.real)
    rare = np.flatnonzero((counts[tail_start:] >= 1) & (counts[tail_start:] <= 5)) + tail_start
    half = n // 2
    common_q = [" ".join(vocab.words[i] for i in rng.choice(common, 3, replace=False)) for _ in range(half)]
    rare_q = [" ".join(vocab.words[i] for i in rng.choice(rare, 2, replace=False)) for _ in range(n - half)]
    return {
        "common": [f"What about {q}?" for q in common_q], "rare": [f"What about {q}?" for q in rare_q],
        "common_words": [vocab.words[i] for i in common[:10]],
        "common_word_occurrences": [int(counts[i]) for i in common[:10]],
        "rare_words_available": int(len(rare)),
    }


# ---------------------------------------------------------------- the child processes

class StandInEncoder:
    """Deterministic, fast stand-in for SentenceEncoder: signed feature hashing of byte trigrams of the
    lowercased text into 384 dimensions, less the direction that all English text shares (estimated once
    from the shipped corpus), L2-normalized. Texts that share wording get close vectors; unrelated
    paragraphs have cosines around 0.2 (5-95%: 0.08-0.32), in the range of real sentence embeddings."""

    dimension = DIM

    def __init__(self, model_path, batch_size: int = 32) -> None:
        self.batch_size = batch_size
        self.seconds = 0.0
        self.texts = 0
        shipped = [p for path in sorted((ROOT / "corpus").rglob("*")) if path.is_file()
                   for p in path.read_text(encoding="utf-8", errors="replace").split("\n\n") if len(p) > 100]
        background = self._hashed(shipped).mean(axis=0) if shipped else np.zeros(DIM, dtype=np.float32)
        norm = float(np.linalg.norm(background))
        self._background = (background / norm).astype(np.float32) if norm else background.astype(np.float32)

    @staticmethod
    def _hashed(texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        step = 4096
        for start in range(0, len(texts), step):
            batch = texts[start:start + step]
            data = np.frombuffer("\x00".join(batch).lower().encode("utf-8"), dtype=np.uint8).astype(np.uint64)
            owner = np.zeros(len(data), dtype=np.int64)
            owner[np.flatnonzero(data == 0) + 1] = 1  # the separators mark where each text starts
            owner = np.cumsum(owner)
            if len(data) >= 3:
                grams = (data[:-2] << np.uint64(16)) | (data[1:-1] << np.uint64(8)) | data[2:]
                mixed = (grams * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)
                keep = (owner[:-2] == owner[2:]) & (data[:-2] != 0) & (data[2:] != 0)
                bucket = (mixed % np.uint64(DIM)).astype(np.int64)
                sign = np.where((mixed >> np.uint64(20)) & np.uint64(1), 1.0, -1.0)
                flat = np.bincount(owner[:-2][keep] * DIM + bucket[keep], weights=sign[keep],
                                   minlength=len(batch) * DIM)
                out[start:start + len(batch)] = flat.reshape(len(batch), DIM)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def encode(self, texts: list[str], progress=False) -> np.ndarray:
        started = time.perf_counter()
        out = self._hashed(texts)
        out -= np.outer(out @ self._background, self._background)
        norms = np.linalg.norm(out, axis=1)
        out[norms == 0, 0] = 1.0  # an empty text still gets a unit vector
        norms[norms == 0] = 1.0
        out /= norms[:, None]
        self.seconds += time.perf_counter() - started
        self.texts += len(texts)
        if callable(progress):
            progress(len(texts), len(texts))
        return np.ascontiguousarray(out, dtype=np.float32)


def _hwm_mib() -> float | None:
    try:
        match = re.search(r"^VmHWM:\s*(\d+) kB", Path("/proc/self/status").read_text(), re.M)
        return round(int(match.group(1)) / 1024, 1) if match else None
    except OSError:
        return None


class StageClock:
    """Wraps functions by module and name; a function that is not there reports null."""

    def __init__(self) -> None:
        self.seconds: dict[str, float | None] = {}
        self.calls: Counter = Counter()
        self.hwm_after: dict[str, float | None] = {}

    def wrap(self, where: str, name: str, label: str) -> None:
        self.seconds.setdefault(label, None)
        module_name, _, class_name = where.partition(":")
        try:
            owner = importlib.import_module(module_name)
            if class_name:
                owner = getattr(owner, class_name)
            original = getattr(owner, name)
        except (ImportError, AttributeError):
            return
        clock = self

        @functools.wraps(original)
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                clock.seconds[label] = (clock.seconds[label] or 0.0) + time.perf_counter() - started
                clock.calls[label] += 1
                clock.hwm_after[label] = _hwm_mib()

        setattr(owner, name, timed)
        self.seconds[label] = 0.0


# (where, function, label, part of): "top" stages follow one another; the others are inside one of them.
STAGES = [
    ("rag.ingest", "_open_previous", "open_previous_index", "top"),
    ("rag.ingest", "load_paths", "read_parse", "top"),
    ("rag.ingest", "chunk_posts", "chunk", "top"),
    ("rag.ingest", "diff_records", "diff_records", "top"),
    ("rag.ingest", "group_duplicates", "dedupe", "diff_records"),
    ("rag.onnx_encoder", "export_onnx", "query_model_export", "top"),
    ("rag.ingest", "_vectors", "vectors", "top"),
    ("rag.ingest", "write_store", "write_store", "top"),
    ("rag.index.faiss:FaissWriter", "write", "faiss_write", "write_store"),
    ("rag.index.faiss", "build_index", "faiss_build", "write_store"),
    ("rag.index.registry", "create_records", "records_create", "write_store"),
    ("rag.index.registry", "update_records", "records_update", "write_store"),
    ("rag.ingest", "rebuild_if_due", "rebuild_if_due", "top"),
    ("rag.index.manifest", "sha256_file", "sha256", "anywhere"),
]


def child_ingest(real: bool) -> None:
    """One ingest in this (fresh) process, with the stand-in encoder unless `real`; JSON on stdout."""
    import rag.embeddings as embeddings

    started = time.perf_counter()
    clock = StageClock()
    stand_in = None
    if real:
        clock.wrap("rag.embeddings:SentenceEncoder", "__init__", "encoder_load")
        clock.wrap("rag.embeddings:SentenceEncoder", "encode", "embed")
    else:
        original = embeddings.SentenceEncoder
        created: list[StandInEncoder] = []

        class Patched(StandInEncoder):
            def __init__(self, model_path, batch_size: int = 32) -> None:
                super().__init__(model_path, batch_size)
                created.append(self)

        import rag.ingest  # noqa: F401 - so that every module that names the encoder is loaded

        for name, module in list(sys.modules.items()):  # wherever the real class is named
            if (name == "rag" or name.startswith("rag.")) and getattr(module, "SentenceEncoder", None) is original:
                module.SentenceEncoder = Patched
        cache_clear = getattr(getattr(embeddings, "load_encoder", None), "cache_clear", None)
        if cache_clear:
            cache_clear()
        stand_in = created
    for where, name, label, _ in STAGES:
        clock.wrap(where, name, label)
    from rag import Assistant
    from rag.config import load_settings

    imported = time.perf_counter()
    report = Assistant(load_settings()).ingest().to_dict()
    finished = time.perf_counter()
    stages = dict(clock.seconds)
    if stand_in is not None:
        stages["embed"] = sum(e.seconds for e in stand_in)
        clock.calls["embed_texts"] = sum(e.texts for e in stand_in)
    report["indexed"] = len(report.get("indexed") or ())  # a count, not 10,000 names
    print(json.dumps({
        "report": report, "import_s": imported - started, "ingest_s": finished - imported,
        "stages_s": stages, "calls": dict(clock.calls), "hwm_after_mib": clock.hwm_after,
        "peak_rss_mib_self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


def _records_file(index_dir: Path) -> Path:
    files = sorted(index_dir.glob("passages*.sqlite"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise SystemExit(f"no passages*.sqlite in {index_dir}")
    return files[-1]


def _fts_tables(db: sqlite3.Connection) -> list[str]:
    return [name for name, sql in db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
            if sql and re.search(r"using\s+fts5", sql, re.I)]


def _terms(question: str) -> list[str]:
    try:
        from rag.retrieval import lexical_terms

        return lexical_terms(question)
    except ImportError:
        return [w for w in re.findall(r"\w+", question.lower()) if w not in _stopwords()]


def _summary(times: list[float]) -> dict:
    return {"p50_ms": ms(statistics.median(times)), "p95_ms": ms(percentile(times, 0.95)),
            "max_ms": ms(max(times)), "n": len(times)}


def child_search(queries_file: str, index_dir: str) -> None:
    """Warm search latencies in this process (the real ONNX query model); JSON on stdout."""
    from rag import Assistant
    from rag.config import load_settings

    queries = json.loads(Path(queries_file).read_text())
    common, rare = queries["common"], queries["rare"]
    every = common + rare
    started = time.perf_counter()
    hybrid = Assistant(load_settings())
    hybrid.load()
    load_s = time.perf_counter() - started
    modes = {"hybrid": hybrid, "dense": hybrid.configured(dense_weight=1.0, lexical_weight=0.0),
             "lexical": hybrid.configured(dense_weight=0.0, lexical_weight=1.0)}
    for assistant in modes.values():  # warm-up
        for question in every[:5] + rare[:5]:
            assistant.search(question)
    times: dict[str, dict[str, list[float]]] = {mode: {"common": [], "rare": []} for mode in modes}
    names = list(modes)
    for kind, questions in (("common", common), ("rare", rare)):
        for n, question in enumerate(questions):
            # Interleaved, so the machine's noise falls on all three alike, and each question's first
            # mode (which meets its pages first) rotates.
            for mode in names[n % len(names):] + names[:n % len(names)]:
                start = time.perf_counter()
                modes[mode].search(question)
                times[mode][kind].append(time.perf_counter() - start)
    result: dict = {"load_s": round(load_s, 3), "queries": {"common": len(common), "rare": len(rare)}}
    for mode, by_kind in times.items():
        result[mode] = {"all": _summary(by_kind["common"] + by_kind["rare"]),
                        "common": _summary(by_kind["common"]), "rare": _summary(by_kind["rare"])}
    # The parts of one query, where the loaded index can be reached (internal: null if it moved).
    try:
        with hybrid._index.borrow() as loaded:
            encoder, store = loaded.encoder, loaded.store
            embed_t, dense_t = [], []
            for question in every:
                start = time.perf_counter()
                vector = encoder.encode([question])[0]
                middle = time.perf_counter()
                store.search(vector, hybrid.settings.fetch_k)
                embed_t.append(middle - start)
                dense_t.append(time.perf_counter() - middle)
        result["query_embedding_only"] = _summary(embed_t)
        result["vector_search_only"] = _summary(dense_t)
    except Exception as exc:  # noqa: BLE001
        result["query_embedding_only"] = result["vector_search_only"] = None
        result["parts_error"] = f"{type(exc).__name__}: {exc}"
    hybrid.close()
    # SQLite alone: the FTS5 query as the records file answers it, on its own connection.
    path = _records_file(Path(index_dir))
    db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    tables = _fts_tables(db)
    fts: dict = {"table": tables[0] if tables else None}
    if tables:
        table = tables[0]
        columns = len(db.execute(f"PRAGMA table_info({table})").fetchall())
        weights = ", 1.0, 0.5, 0.5" if columns == 3 else ""
        sql = (f"SELECT rowid, bm25({table}{weights}) AS score FROM {table} WHERE {table} MATCH ? "
               f"ORDER BY score LIMIT {hybrid.settings.fetch_k}")
        fts["sql"] = sql
        for kind, questions in (("common", common), ("rare", rare)):
            matches = [" OR ".join('"' + t.replace('"', '""') + '"' for t in _terms(q)) for q in questions]
            for match in matches[:5]:
                db.execute(sql, (match,)).fetchall()  # warm-up
            spent = []
            for match in matches:
                start = time.perf_counter()
                db.execute(sql, (match,)).fetchall()
                spent.append(time.perf_counter() - start)
            counted = [db.execute(f"SELECT count(*) FROM {table} WHERE {table} MATCH ?", (m,)).fetchone()[0]
                       for m in matches[:20]]
            fts[kind] = {**_summary(spent), "mean_matching_rows": round(statistics.mean(counted), 1),
                         "terms_per_query": round(statistics.mean(len(_terms(q)) for q in questions), 2)}
    db.close()
    result["fts5_raw"] = fts
    print(json.dumps(result))


# ---------------------------------------------------------------- the parent

def read_into_cache(index_dir: Path) -> float:
    """Read every index file once, so warm figures are warm: a file just written is not always still in
    the page cache here (at 1M, the first pass of questions read from disk: hybrid p95 242 ms against 24)."""
    started = time.perf_counter()
    for path in sorted(index_dir.rglob("*")):
        if path.is_file():
            with path.open("rb") as handle:
                while handle.read(1 << 24):
                    pass
    return round(time.perf_counter() - started, 2)


def disk_usage(index_dir: Path, unique: int, passages: int) -> dict:
    def per(n_bytes: int) -> dict:
        return {"bytes": n_bytes, "per_unique_passage": round(n_bytes / unique, 1) if unique else None}

    total = sum(p.stat().st_size for p in index_dir.rglob("*") if p.is_file())
    vectors = sum(p.stat().st_size for p in index_dir.glob("*.faiss"))
    query_model = sum(p.stat().st_size for p in (index_dir / "onnx").rglob("*") if p.is_file()) \
        if (index_dir / "onnx").is_dir() else 0
    records = _records_file(index_dir)
    db = sqlite3.connect(f"file:{records}?mode=ro", uri=True)
    tables: dict = {}
    try:
        owner = {name: table for name, table in db.execute("SELECT name, tbl_name FROM sqlite_master")}
        fts = _fts_tables(db)
        by_name = dict(db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall())
        groups: dict[str, int] = Counter()
        for name, size in by_name.items():
            table = owner.get(name, name)
            group = next((t for t in fts if table == t or table.startswith(t + "_")), table)
            groups[group] += size
        tables = {name: per(size) for name, size in sorted(by_name.items(), key=lambda kv: -kv[1])}
        grouped = {name: per(size) for name, size in sorted(groups.items(), key=lambda kv: -kv[1])}
        method = "dbstat"
    except sqlite3.OperationalError as exc:  # no dbstat in this SQLite: the file as a whole only
        grouped, method = {}, f"unavailable ({exc})"
    finally:
        db.close()
    return {
        "unique_passages": unique, "passages": passages, "method": method,
        "index_folder": per(total), "vectors_faiss": per(vectors), "records_sqlite": per(records.stat().st_size),
        "query_model_onnx": {"bytes": query_model},
        "records_by_table": grouped, "records_by_btree": tables,
    }


def ingest_child(env: dict, cwd: Path, real: bool = False) -> dict:
    argv = [PYTHON, str(Path(__file__).resolve()), "_ingest"] + (["--real"] if real else [])
    wall, rss, out = run_child(argv, env, cwd)
    data = json.loads(out.strip().splitlines()[-1])
    report = data["report"]
    top = {label: data["stages_s"].get(label) for _, _, label, part in STAGES if part == "top"}
    top["embed"] = data["stages_s"].get("embed")
    if "encoder_load" in data["stages_s"]:
        top["encoder_load"] = data["stages_s"]["encoder_load"]
    inner = {label: data["stages_s"].get(label) for _, _, label, part in STAGES if part != "top"}
    known = sum(v for v in top.values() if v)
    rounded = lambda d: {k: (round(v, 3) if v is not None else None) for k, v in d.items()}  # noqa: E731
    return {
        "process_wall_s": round(wall, 2), "in_process_s": report.get("seconds"),
        "import_s": round(data["import_s"], 2), "peak_rss_mib": round(rss, 1),
        "embedded": report.get("embedded"), "reused": report.get("reused"),
        "changed_files": len(report.get("changed_files") or ()), "removed_files": len(report.get("removed_files") or ()),
        "wrote_index": report.get("wrote_index"),
        "stages_s": {**rounded(top), "other": round(data["ingest_s"] - known, 3)},
        "inside_stages_s": rounded(inner), "peak_rss_after_stage_mib": data["hwm_after_mib"],
        "calls": data["calls"], "report": {k: v for k, v in report.items()
                                           if k not in ("changed_files", "removed_files", "skipped", "warnings")},
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_ingest":
        return child_ingest("--real" in sys.argv)
    if len(sys.argv) > 1 and sys.argv[1] == "_search":
        return child_search(sys.argv[2], sys.argv[3])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=1_000_000, help="paragraphs in the corpus")
    parser.add_argument("--queries", type=int, default=200, help="search questions (half common, half rare words)")
    parser.add_argument("--asks", type=int, default=3, help="cold `rag ask` processes (median)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--keep", type=Path, help="build the project here and keep it (must not exist)")
    parser.add_argument("--reingest", default="edit,add,delete,no-change,real-edit",
                        help="which re-ingests to time, in this order (comma-separated): edit (one paragraph of "
                             "one file), add (a new file), delete (a file), no-change, real-edit (one paragraph "
                             "with the real embedding model); empty for none")
    args = parser.parse_args()

    if args.keep:
        args.keep.mkdir(parents=True)
        work = args.keep.resolve()
    else:
        work = Path(tempfile.mkdtemp(prefix="rag-bench-million-"))
    load_start = load_average()
    try:
        result = run(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    result["machine"]["load_average_start"] = load_start
    result["machine"]["load_average_end"] = load_average()
    result["total_s"] = round(time.perf_counter() - START, 1)
    emit(result)


def run(args: argparse.Namespace, work: Path) -> dict:
    corpus, index_dir = work / "corpus", work / "vectorstore"
    (work / ".env").write_text("RAG_CORPUS_DIR=corpus\nRAG_INDEX_DIR=vectorstore\n")
    env = env_for(index_dir, corpus)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        env.pop(name, None)  # the offline extractive answerer
    say(f"generating {args.passages:,} paragraphs in {corpus}")
    started = time.perf_counter()
    vocab = Vocabulary()
    writer = CorpusWriter(vocab, args.seed)
    writer.write_corpus(corpus, args.passages)
    generate_s = time.perf_counter() - started
    queries = query_sets(vocab, writer.counts, args.queries, args.seed)
    queries_file = work / "queries.json"
    queries_file.write_text(json.dumps(queries))
    said_corpus = {
        "files": len(writer.files), "paragraphs": writer.paragraphs, "repeated_paragraphs": writer.repeated,
        "words": writer.words, "bytes": writer.bytes, "generate_s": round(generate_s, 1),
        "vocabulary": {"real_words": len(vocab.real), "real_tokens": vocab.real_tokens, "sources": vocab.sources,
                       "synthetic_tail_words": TAIL_WORDS, "tail_share_of_occurrences": TAIL_MASS,
                       "tail_zipf_exponent": TAIL_EXPONENT,
                       "distinct_words_used": int(np.count_nonzero(writer.counts))},
        "common_words": dict(zip(queries["common_words"], queries["common_word_occurrences"])),
        "rare_words_with_1_to_5_occurrences": queries["rare_words_available"],
    }
    say(f"corpus: {len(writer.files):,} files, {writer.bytes / 2**20:.0f} MiB in {generate_s:.0f} s; ingesting")

    full = ingest_child(env, work)
    say(f"ingest: {full['process_wall_s']} s, peak RSS {full['peak_rss_mib']} MiB, stages {full['stages_s']}")
    unique, passages = full["report"]["unique_passages"], full["report"]["passages"]
    full["passages_per_s"] = round(passages / full["in_process_s"], 1) if full["in_process_s"] else None
    full["peak_rss_mib"] = {"value": full["peak_rss_mib"], "goal": GOALS["ingest_rss"]}
    index_type = json.loads((index_dir / "manifest.json").read_text()).get("index_type") \
        if (index_dir / "manifest.json").is_file() else None

    say("bytes on disk")
    disk = disk_usage(index_dir, unique, passages)

    say("reading the index files into the OS page cache")
    cache_s = read_into_cache(index_dir)
    say(f"warm search: {args.queries} questions x dense, lexical, hybrid")
    wall, rss, out = run_child([PYTHON, str(Path(__file__).resolve()), "_search", str(queries_file),
                                str(index_dir)], env, work)
    search = json.loads(out.strip().splitlines()[-1])
    search["process_wall_s"], search["peak_rss_mib"] = round(wall, 2), round(rss, 1)
    search["page_cache_read_s"] = cache_s
    search["hybrid"]["all"]["goal"] = "p95 " + GOALS["hybrid_p95"]
    say(f"search: hybrid p95 {search['hybrid']['all']['p95_ms']} ms, lexical common p95 "
        f"{search['lexical']['common']['p95_ms']} ms, rare {search['lexical']['rare']['p95_ms']} ms")

    say("rag info")
    info_runs = [run_child([RAG, "info", "--json"], env, work) for _ in range(3)]
    info = {"wall_s": round(statistics.median(r[0] for r in info_runs), 3),
            "peak_rss_mib": round(statistics.median(r[1] for r in info_runs), 1), "runs": len(info_runs)}

    question = queries["common"][0]
    say(f"cold rag ask x{args.asks}: {question!r}")
    # The stand-in vectors are unrelated to the real query model's, so every cosine is near 0 and the
    # default threshold would abstain; RAG_MIN_SCORE=-1 makes it answer and verify as a real question does.
    ask_env = {**env, "RAG_MIN_SCORE": "-1"}
    asks = [run_child([RAG, "ask", question, "--json"], ask_env, work) for _ in range(args.asks)]
    answer = json.loads(asks[-1][2])
    ask = {"wall_s": {"value": round(statistics.median(a[0] for a in asks), 3), "goal": GOALS["ask"]},
           "min_s": round(min(a[0] for a in asks), 3),
           "peak_rss_mib": round(statistics.median(a[1] for a in asks), 1), "runs": len(asks),
           "abstained": answer.get("abstained"), "citations": len(answer.get("citations") or ()),
           "timings": answer.get("timings"), "question": question, "min_score": -1}

    reingest: dict = {}
    pool = set(writer.boilerplate)

    def edit_paragraph(path: Path, mark: str) -> None:
        lines = path.read_text(encoding="utf-8").split("\n")
        body = [i for i, line in enumerate(lines) if line and not line.startswith("#") and line not in pool]
        i = body[min(3, len(body) - 1)]
        lines[i] = lines[i].rstrip(".") + f" {mark}."
        path.write_text("\n".join(lines), encoding="utf-8")

    steps = {
        "edit": ("one_file_edit", lambda: edit_paragraph(writer.files[len(writer.files) // 2], "edited for the benchmark")),
        "add": ("add_one_file", lambda: writer.write_file(corpus / "part-new" / "added.md", 100)),
        "delete": ("delete_one_file", lambda: writer.files[1].unlink()),
        "no-change": ("no_change", lambda: None),
        "real-edit": ("one_file_edit_real_encoder",
                      lambda: edit_paragraph(writer.files[len(writer.files) // 3], "edited again for the benchmark")),
    }
    for step in [s for s in args.reingest.split(",") if s]:
        name, change = steps[step]
        say(f"re-ingest: {name}")
        change()
        reingest[name] = ingest_child(env, work, real=step == "real-edit")
        if step in ("edit", "real-edit"):
            reingest[name]["process_wall_s"] = {"value": reingest[name]["process_wall_s"], "goal": GOALS["edit"]}
        say(f"  {reingest[name]['process_wall_s']} s wall, embedded {reingest[name]['embedded']}, "
            f"stages {reingest[name]['stages_s']}")

    return {
        "benchmark": "million", "machine": machine(),
        "setup": {
            "passages_requested": args.passages, "seed": args.seed, "index_type": index_type,
            "reingests": args.reingest,
            "ingest_encoder": "stand-in: hashed byte trigrams into 384 dimensions, L2-normalized "
                              "(real model: ~40-80 passages/s on these 2 cores, see benchmarks/ingest.py)",
            "query_encoder": "the real ONNX export of all-MiniLM-L6-v2 made by the ingest",
            "processes": "each ingest, `rag info` and `rag ask` is a fresh process (wall incl. start-up); "
                         "peak RSS is GNU time's %M; the index files are read into the OS page cache before the searches "
                         "(warm disk)",
        },
        "goals": GOALS,
        "corpus": said_corpus,
        "ingest": full,
        "disk": disk,
        "search": search,
        "info": info,
        "ask_cold": ask,
        "reingest": reingest,
    }


if __name__ == "__main__":
    main()
