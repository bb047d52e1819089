"""The FAISS backend (RAG_STORE=faiss): the vectors in FAISS's own index file, one per generation."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import faiss
import numpy as np

from ..config import Settings
from ..errors import IndexCorrupt, IndexMismatch
from .files import publish
from .manifest import FileEntry, Manifest, file_entry, verify_file
from .records import Record, Records
from .store import INDEX_TYPES, IndexOptions, VectorStore

# Map the index file's vectors instead of copying them into the process (FAISS >= 1.10: flat codes, which
# is also the storage of IndexHNSWFlat). A FAISS build without it falls back to an ordinary read.
_MMAP_FLAGS = getattr(faiss, "IO_FLAG_MMAP_IFC", 0) | faiss.IO_FLAG_READ_ONLY


class FaissStore(VectorStore):
    """A loaded and verified generation: vectors in FAISS, records and BM25 in SQLite."""

    name = "faiss"

    def __init__(self, manifest: Manifest, records: Records, index: faiss.Index) -> None:
        super().__init__(manifest, records)
        self.index = index

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        if vector.shape[-1] != self.index.d:
            raise IndexMismatch(f"query vectors have {vector.shape[-1]} dimensions, the index {self.index.d}")
        scores, ids = search_index(self.index, vector.reshape(1, -1).astype(np.float32), k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        return np.vstack([self.index.reconstruct(int(i)) for i in ids]) if ids else np.zeros((0, self.index.d))

    def vectors_by_key(self, keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        stored = self._records.keys()
        if not stored:
            return {}
        vectors = self.index.reconstruct_n(0, self.index.ntotal)
        wanted = None if keys is None else set(keys)
        return {key: vectors[i] for i, key in enumerate(stored) if wanted is None or key in wanted}


class FaissBackend:
    name = "faiss"

    @classmethod
    def open(cls, settings: Settings, manifest: Manifest, records: Records) -> FaissStore:
        if manifest.index_file is None:
            raise IndexCorrupt("the manifest names no FAISS index file")
        index_path = verify_file(Path(settings.index_dir), manifest.index_file)
        index = _read_index(index_path)
        if index.d != manifest.dimension or index.ntotal != manifest.unique_passages:
            raise IndexCorrupt(f"{index_path.name} holds {index.ntotal}x{index.d}, the manifest says "
                               f"{manifest.unique_passages}x{manifest.dimension}")
        if _kind(index) != manifest.index_type:
            raise IndexCorrupt(f"{index_path.name} is a {_kind(index)} index, the manifest says {manifest.index_type}")
        if isinstance(index, faiss.IndexHNSW):
            index.hnsw.efSearch = settings.hnsw_ef_search
        return FaissStore(manifest, records, index)

    @classmethod
    @contextlib.contextmanager
    def writer(cls, settings: Settings, model: str, dimension: int, kind: str,
               options: IndexOptions) -> Iterator[FaissWriter]:
        yield FaissWriter(Path(settings.index_dir), dimension, kind, options)

    @classmethod
    def location(cls, settings: Settings) -> dict[str, str]:
        return {}

    @classmethod
    def describe(cls, settings: Settings, manifest: Manifest) -> str:
        return str(Path(settings.index_dir) / (manifest.index_file.name if manifest.index_file else "?"))


class FaissWriter:
    existing: set[str] = set()  # every generation gets a whole new file

    def __init__(self, index_dir: Path, dimension: int, kind: str, options: IndexOptions) -> None:
        self.index_dir, self.dimension, self.kind, self.options = index_dir, dimension, kind, options

    def write(self, generation: str, records: Sequence[Record], vectors: dict[str, np.ndarray]) -> FileEntry:
        matrix = np.stack([vectors[r.key] for r in records]) if records else np.zeros((0, self.dimension))
        path = self.index_dir / f"index-{generation}.faiss"
        tmp = path.with_name(path.name + ".tmp")
        write_index(build_index(matrix, self.dimension, self.kind, self.options), tmp)
        publish(tmp, path)
        return file_entry(path)

    def location(self) -> dict[str, str]:
        return {}

    def finish(self, records: Sequence[Record]) -> None:
        """Old generations' files are removed by the ingest once no reader needs them."""


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


def write_index(index: faiss.Index, path: Path) -> None:
    """Through a Python file, so a full disk is an OSError at once: FAISS's own writer turns it into an
    assertion text, or for a small index only prints it when closing and leaves a truncated file."""
    with path.open("wb") as handle:
        writer = faiss.PyCallbackIOWriter(handle.write)  # type: ignore[attr-defined]  # SWIG, not in the stubs
        faiss.write_index(index, writer)


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
    index: faiss.Index
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
