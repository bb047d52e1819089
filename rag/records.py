"""What every vector-store backend shares: passage records and BM25 in SQLite, generations, the lock.

The passage records (text, every source) and the lexical FTS5 table live in one SQLite file per
generation beside the manifest, whichever backend holds the vectors, so BM25 and the passages a
search returns are the same bytes for FAISS and Milvus. Nothing here imports a vector library.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from .errors import IndexBusy, IndexCorrupt
from .manifest import MANIFEST_NAME, publish
from .types import Passage, Source

LOCK_NAME = ".lock"
_FORBIDDEN_SUFFIXES = (".pkl", ".pickle", ".joblib", ".npy", ".npz")
INDEX_TYPES = ("flat", "hnsw")


@dataclass(frozen=True)
class IndexOptions:
    """Which vector index an ingest writes, and how an HNSW index is built and searched."""

    type: str = "auto"  # "auto", "flat" or "hnsw"
    hnsw_threshold: int = 50_000
    m: int = 32
    ef_construction: int = 80
    ef_search: int = 192

    @classmethod
    def from_settings(cls, settings) -> IndexOptions:
        return cls(settings.index_type, settings.hnsw_threshold, settings.hnsw_m,
                   settings.hnsw_ef_construction, settings.hnsw_ef_search)

    def choose(self, count: int) -> str:
        """Exact search below the threshold (it is cheap there, and exact); a graph above it."""
        if self.type in INDEX_TYPES:
            return self.type
        return "hnsw" if count >= self.hnsw_threshold else "flat"

    def params(self, kind: str) -> dict[str, int]:
        return ({"m": self.m, "ef_construction": self.ef_construction, "ef_search": self.ef_search}
                if kind == "hnsw" else {})


@dataclass(frozen=True)
class Record:
    """A passage as written: its key (a hash of the embedded text), text and sources."""

    key: str
    text: str
    sources: tuple[Source, ...]


def new_generation() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"


def built_at() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ---------------------------------------------------------------- reading


def open_records(path: Path) -> sqlite3.Connection:
    """The (already checksummed) records file, read-only."""
    return sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False)


def lexical(db: sqlite3.Connection, terms: Sequence[str], n: int,
            weights: tuple[float, float, float]) -> list[tuple[int, float]]:
    """BM25 matches for any of the terms, best first, as (id, score) with higher better."""
    if not terms:
        return []
    query = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
    rows = db.execute(
        "SELECT rowid, bm25(lexical, ?, ?, ?) AS rank FROM lexical WHERE lexical MATCH ? "
        "ORDER BY rank LIMIT ?", (*weights, query, n))
    return [(int(i), -float(rank)) for i, rank in rows]


def passages(db: sqlite3.Connection, ids: Sequence[int]) -> list[Passage]:
    marks = ",".join("?" * len(ids))
    rows = db.execute(f"SELECT id, text, sources FROM passages WHERE id IN ({marks})", list(ids))
    found = {row[0]: row for row in rows}
    if len(found) != len(set(ids)):
        raise IndexCorrupt("passage records are missing")
    return [_passage(*found[i]) for i in ids]


def keys_by_id(db: sqlite3.Connection) -> list[str]:
    """Every passage key, at the position of its id (ids are 0..n-1 in a generation)."""
    return [key for _, key in db.execute("SELECT id, key FROM passages ORDER BY id")]


def all_records(db: sqlite3.Connection) -> list[Record]:
    """Every record in id order, as an ingest would write it again (migrations copy these)."""
    rows = db.execute("SELECT id, key, text, sources FROM passages ORDER BY id")
    return [Record(key, text, _passage(i, text, sources).sources) for i, key, text, sources in rows]


def _passage(passage_id: int, text: str, sources_json: str) -> Passage:
    try:
        sources = tuple(Source(**s) for s in json.loads(sources_json))
    except (ValueError, TypeError) as exc:
        raise IndexCorrupt("a passage record is malformed") from exc
    return Passage(passage_id, text, sources)


class SqliteRecords:
    """What every backend reads from its generation's SQLite file (`self.db`): BM25, passages, records."""

    db: sqlite3.Connection

    def lexical(self, terms: Sequence[str], n: int, weights: tuple[float, float, float]) -> list[tuple[int, float]]:
        """BM25 matches for any of the terms, best first, as (id, score) with higher better."""
        return lexical(self.db, terms, n, weights)

    def passages(self, ids: Sequence[int]) -> list[Passage]:
        return passages(self.db, ids)

    def records(self) -> list[Record]:
        return all_records(self.db)


def refuse_foreign_files(index_dir: Path) -> None:
    """Serialized Python objects have no business in the index folder: never load around them."""
    for path in index_dir.iterdir():
        if path.suffix.lower() in _FORBIDDEN_SUFFIXES:
            raise IndexCorrupt(f"unexpected file {path.name} in the index folder (this index never uses pickle)")


# ---------------------------------------------------------------- writing


@contextlib.contextmanager
def ingest_lock(index_dir: Path, timeout: float, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    index_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(index_dir / LOCK_NAME))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if on_wait:
            on_wait()
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise IndexBusy(timeout) from None
    try:
        yield
    finally:
        lock.release()


def write_records(path: Path, records: Sequence[Record]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    db = sqlite3.connect(tmp)
    try:
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("CREATE TABLE passages (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, "
                   "text TEXT NOT NULL, sources TEXT NOT NULL)")
        # BM25 over text, post titles and sections: SQLite's FTS5, saved and checksummed with the records.
        db.execute("CREATE VIRTUAL TABLE lexical USING fts5(text, titles, sections, "
                   "tokenize = 'porter unicode61')")
        db.executemany(
            "INSERT INTO passages VALUES (?, ?, ?, ?)",
            ((i, r.key, r.text, json.dumps([s.to_dict() for s in r.sources], ensure_ascii=False))
             for i, r in enumerate(records)),
        )
        db.executemany(
            "INSERT INTO lexical (rowid, text, titles, sections) VALUES (?, ?, ?, ?)",
            ((i, r.text, " ; ".join(dict.fromkeys(s.title for s in r.sources)),
              " ; ".join(dict.fromkeys(s.section for s in r.sources if s.section)))
             for i, r in enumerate(records)),
        )
        db.commit()
    finally:
        db.close()
    publish(tmp, path)


def remove_stale_files(index_dir: Path, keep_generations: set[str]) -> None:
    """Drop temp files left by a killed ingest and generations no reader can still be using."""
    for path in index_dir.iterdir():
        if path.is_dir():
            if path.name.startswith(".") and (".tmp-" in path.name or ".old-" in path.name):
                shutil.rmtree(path, ignore_errors=True)  # a half-made export from a killed ingest
            continue
        if path.name == MANIFEST_NAME or path.name == LOCK_NAME:
            continue
        is_ours = path.suffix in (".faiss", ".sqlite", ".tmp") and path.name.startswith(
            ("index-", "passages-", MANIFEST_NAME))
        if is_ours and not any(g in path.name and not path.name.endswith(".tmp") for g in keep_generations):
            path.unlink(missing_ok=True)
