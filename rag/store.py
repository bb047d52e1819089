"""The on-disk index: FAISS's own index file, passage records in SQLite, and the manifest.

Every write makes a new generation of files and publishes it by replacing the manifest, so a crash
at any moment leaves the previous index loadable. Writers are serialized by a file lock; readers
never lock, and the previous generation is kept so a reader that raced a writer still finds it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np

from .errors import IndexCorrupt, IndexMismatch
from .manifest import BuildSpec, Manifest, file_entry, publish, read_manifest, verify_file, write_manifest
from .records import (
    INDEX_TYPES, IndexOptions, Record, SqliteRecords, built_at, keys_by_id, new_generation, open_records,
    refuse_foreign_files, write_records,
)

# Map the index file's vectors instead of copying them into the process (FAISS >= 1.10: flat codes, which
# is also the storage of IndexHNSWFlat). A FAISS build without it falls back to an ordinary read.
_MMAP_FLAGS = getattr(faiss, "IO_FLAG_MMAP_IFC", 0) | faiss.IO_FLAG_READ_ONLY


class FaissStore(SqliteRecords):
    """A loaded and verified index: vectors in FAISS, records and BM25 in SQLite (rag.records)."""

    name = "faiss"

    def __init__(self, index_dir: Path, manifest: Manifest, index: faiss.Index, db):
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
        manifest.check_store("faiss")
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
        return cls(index_dir, manifest, index, open_records(records_path))

    def close(self) -> None:
        self.db.close()

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        if vector.shape[-1] != self.index.d:
            raise IndexMismatch(f"query vectors have {vector.shape[-1]} dimensions, the index {self.index.d}")
        scores, ids = search_index(self.index, vector.reshape(1, -1).astype(np.float32), k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        return np.vstack([self.index.reconstruct(int(i)) for i in ids]) if ids else np.zeros((0, self.index.d))

    def count(self) -> int:
        return int(self.index.ntotal)

    def keys(self) -> set[str]:
        return set(keys_by_id(self.db))

    def vectors_by_key(self, keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Stored vectors by passage key (all, or those asked for), so an ingest re-embeds only what changed."""
        stored = keys_by_id(self.db)
        if not stored:
            return {}
        vectors = self.index.reconstruct_n(0, self.index.ntotal)
        wanted = None if keys is None else set(keys)
        return {key: vectors[i] for i, key in enumerate(stored) if wanted is None or key in wanted}

    def describe(self) -> dict[str, str]:
        return {"store": "faiss", "location": str(self.index_dir / self.manifest.index_file.name)}


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


# ---------------------------------------------------------------- writing


def write_generation(
    index_dir: Path, spec: BuildSpec, dimension: int, records: Sequence[Record], vectors: np.ndarray,
    index_options: IndexOptions | None = None, **manifest_fields,
) -> Manifest:
    """Write a new generation of index files and publish it. Call with the ingest lock held."""
    options = index_options or IndexOptions()
    kind = options.choose(len(records))
    generation = new_generation()
    index_path = index_dir / f"index-{generation}.faiss"
    records_path = index_dir / f"passages-{generation}.sqlite"
    _write_faiss(index_path, build_index(vectors, dimension, kind, options))
    write_records(records_path, records)
    manifest = Manifest(
        spec=spec, dimension=dimension, generation=generation, built_at=built_at(),
        index_file=file_entry(index_path), records_file=file_entry(records_path),
        unique_passages=len(records), index_type=kind, index_params=options.params(kind), **manifest_fields,
    )
    write_manifest(index_dir, manifest)
    return manifest


def write_faiss_store(settings, spec: BuildSpec, dimension: int, records: Sequence[Record],
                      fresh: dict[str, np.ndarray], previous, **manifest_fields) -> Manifest:
    """The FAISS backend's ingest write: fresh vectors where embedded, the previous store's for the rest."""
    need = [r.key for r in records if r.key not in fresh]
    known = previous.vectors_by_key(need) if need and previous is not None else {}
    vectors = np.stack([fresh[r.key] if r.key in fresh else known[r.key] for r in records])
    return write_generation(settings.index_dir, spec, dimension, records, vectors,
                            index_options=IndexOptions.from_settings(settings), **manifest_fields)


def _write_faiss(path: Path, index: faiss.Index) -> None:
    tmp = path.with_name(path.name + ".tmp")
    faiss.write_index(index, str(tmp))
    publish(tmp, path)
