"""The on-disk index: FAISS's own index file, passage records in SQLite, and the manifest.

Every write makes a new generation of files and publishes it by replacing the manifest, so a crash
at any moment leaves the previous index loadable. Writers are serialized by a file lock; readers
never lock, and the previous generation is kept so a reader that raced a writer still finds it.
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

import faiss
import numpy as np
from filelock import FileLock, Timeout

from .errors import IndexBusy, IndexCorrupt, IndexMismatch
from .manifest import (
    MANIFEST_NAME, BuildSpec, Manifest, file_entry, publish, read_manifest, verify_file, write_manifest,
)
from .types import Passage, Source

LOCK_NAME = ".lock"
_FORBIDDEN_SUFFIXES = (".pkl", ".pickle", ".joblib", ".npy", ".npz")
INDEX_TYPES = ("flat", "hnsw")
# Map the index file's vectors instead of copying them into the process (FAISS >= 1.10: flat codes, which
# is also the storage of IndexHNSWFlat). A FAISS build without it falls back to an ordinary read.
_MMAP_FLAGS = getattr(faiss, "IO_FLAG_MMAP_IFC", 0) | faiss.IO_FLAG_READ_ONLY


@dataclass(frozen=True)
class IndexOptions:
    """Which FAISS index an ingest writes, and how an HNSW index is built and searched."""

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


@dataclass(frozen=True)
class Record:
    """A passage as written: its key (a hash of the embedded text), text and sources."""

    key: str
    text: str
    sources: tuple[Source, ...]


class FaissStore:
    """A loaded and verified index."""

    def __init__(self, index_dir: Path, manifest: Manifest, index: faiss.Index, db: sqlite3.Connection):
        self.index_dir = index_dir
        self.manifest = manifest
        self.index = index
        self.db = db

    @classmethod
    def open(cls, index_dir: Path, expected: BuildSpec, ef_search: int = IndexOptions.ef_search) -> FaissStore:
        """Load and verify the current index; ef_search applies to an HNSW index."""
        try:
            return cls._open(index_dir, expected, ef_search)
        except IndexCorrupt:
            # A writer may have published a new generation between our reads: look once more.
            time.sleep(0.05)
            return cls._open(index_dir, expected, ef_search)

    @classmethod
    def _open(cls, index_dir: Path, expected: BuildSpec, ef_search: int) -> FaissStore:
        manifest = read_manifest(index_dir)
        manifest.check_spec(expected)
        refuse_foreign_files(index_dir)
        index_path = verify_file(index_dir, manifest.index_file)  # checksums first: FAISS reads nothing unchecked
        records_path = verify_file(index_dir, manifest.records_file)
        index = _read_index(index_path)
        if index.d != manifest.dimension or index.ntotal != manifest.unique_passages:
            raise IndexCorrupt(f"{index_path.name} holds {index.ntotal}x{index.d}, the manifest says "
                               f"{manifest.unique_passages}x{manifest.dimension}")
        if _kind(index) != manifest.index_type:
            raise IndexCorrupt(f"{index_path.name} is a {_kind(index)} index, the manifest says {manifest.index_type}")
        if isinstance(index, faiss.IndexHNSW):
            index.hnsw.efSearch = ef_search
        db = sqlite3.connect(f"file:{records_path}?mode=ro&immutable=1", uri=True, check_same_thread=False)
        return cls(index_dir, manifest, index, db)

    def close(self) -> None:
        self.db.close()

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        if vector.shape[-1] != self.index.d:
            raise IndexMismatch(f"query vectors have {vector.shape[-1]} dimensions, the index {self.index.d}")
        scores, ids = search_index(self.index, vector.reshape(1, -1).astype(np.float32), k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def lexical(self, terms: Sequence[str], n: int, weights: tuple[float, float, float]) -> list[tuple[int, float]]:
        """BM25 matches for any of the terms, best first, as (id, score) with higher better."""
        if not terms:
            return []
        query = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        rows = self.db.execute(
            "SELECT rowid, bm25(lexical, ?, ?, ?) AS rank FROM lexical WHERE lexical MATCH ? "
            "ORDER BY rank LIMIT ?", (*weights, query, n))
        return [(int(i), -float(rank)) for i, rank in rows]

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        return np.vstack([self.index.reconstruct(int(i)) for i in ids]) if ids else np.zeros((0, self.index.d))

    def passages(self, ids: Sequence[int]) -> list[Passage]:
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(f"SELECT id, text, sources FROM passages WHERE id IN ({marks})", list(ids))
        found = {row[0]: row for row in rows}
        if len(found) != len(set(ids)):
            raise IndexCorrupt("passage records are missing")
        return [_passage(*found[i]) for i in ids]

    def vectors_by_key(self) -> dict[str, np.ndarray]:
        """Every stored vector by passage key, so an ingest re-embeds only what changed."""
        rows = self.db.execute("SELECT id, key FROM passages ORDER BY id").fetchall()
        if not rows:
            return {}
        vectors = self.index.reconstruct_n(0, self.index.ntotal)
        return {key: vectors[i] for i, key in rows}


def search_index(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """FAISS search, on one OpenMP thread for a handful of queries.

    Measured on 2 cores: a single query on a 10k-50k flat index took ~16 ms with FAISS's default two
    threads and 0.2-2.3 ms with one; at 1M, 128 ms against 51 ms. The thread count is per calling thread
    in OpenMP, so this does not slow an ingest's index build or another thread's search.
    """
    if len(queries) > 4:
        return index.search(queries, k)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return index.search(queries, k)
    finally:
        faiss.omp_set_num_threads(threads)


def _read_index(path: Path) -> faiss.Index:
    """Memory-mapped where this FAISS can (the pages are the OS's file cache, shared between processes)."""
    try:
        return faiss.read_index(str(path), _MMAP_FLAGS)
    except RuntimeError:
        pass
    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        raise IndexCorrupt(f"FAISS cannot read {path.name}") from exc


def _kind(index: faiss.Index) -> str:
    if isinstance(index, faiss.IndexHNSWFlat):
        return "hnsw"
    if isinstance(index, faiss.IndexFlatIP):
        return "flat"
    return type(index).__name__


def build_index(vectors: np.ndarray, dimension: int, kind: str, options: IndexOptions) -> faiss.Index:
    """A FAISS inner-product index over the (normalized) vectors: cosine similarity either way."""
    if kind == "flat":
        index = faiss.IndexFlatIP(dimension)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dimension, options.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = options.ef_construction
        index.hnsw.efSearch = options.ef_search
    else:
        raise ValueError(f"unknown index type {kind!r}: use one of auto, {', '.join(INDEX_TYPES)}")
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def _passage(passage_id: int, text: str, sources_json: str) -> Passage:
    try:
        sources = tuple(Source(**s) for s in json.loads(sources_json))
    except (ValueError, TypeError) as exc:
        raise IndexCorrupt("a passage record is malformed") from exc
    return Passage(passage_id, text, sources)


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


def write_generation(
    index_dir: Path, spec: BuildSpec, dimension: int, records: Sequence[Record], vectors: np.ndarray,
    index_options: IndexOptions = IndexOptions(), **manifest_fields,
) -> Manifest:
    """Write a new generation of index files and publish it. Call with the ingest lock held."""
    options = index_options
    kind = options.choose(len(records))
    generation = f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
    index_path = index_dir / f"index-{generation}.faiss"
    records_path = index_dir / f"passages-{generation}.sqlite"
    _write_faiss(index_path, build_index(vectors, dimension, kind, options))
    _write_records(records_path, records)
    params = ({"m": options.m, "ef_construction": options.ef_construction, "ef_search": options.ef_search}
              if kind == "hnsw" else {})
    manifest = Manifest(
        spec=spec, dimension=dimension, generation=generation,
        built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        index_file=file_entry(index_path), records_file=file_entry(records_path),
        unique_passages=len(records), index_type=kind, index_params=params, **manifest_fields,
    )
    write_manifest(index_dir, manifest)
    return manifest


def _write_faiss(path: Path, index: faiss.Index) -> None:
    tmp = path.with_name(path.name + ".tmp")
    faiss.write_index(index, str(tmp))
    publish(tmp, path)


def _write_records(path: Path, records: Sequence[Record]) -> None:
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
