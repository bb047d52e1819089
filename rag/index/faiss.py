"""The FAISS backend (RAG_STORE=faiss): passage vectors under their stable passage ids, in segments.

A generation's vectors are a base segment (flat or HNSW) and small flat delta segments, one per ingest
that added passages, each an ID map over a FAISS index in its own immutable file; passages removed since
the base was built are listed in a deleted-ids file and filtered out of every search. So an ingest
writes only what it changed. When the deleted share passes RAG_INDEX_REBUILD_SHARE, or the deltas grow
large, the ingest rebuilds one base from the live vectors once it has published its own generation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from ..config import Settings
from ..errors import IndexCorrupt, IndexMismatch
from .files import publish
from .manifest import FileEntry, Manifest, file_entry, verify_file
from .records import Records, Row
from .store import INDEX_TYPES, IndexOptions, Vectors, VectorStore

# Map the index file's vectors instead of copying them into the process (FAISS >= 1.10: flat codes, which
# is also the storage of IndexHNSWFlat). A FAISS build without it falls back to an ordinary read.
_MMAP_FLAGS = getattr(faiss, "IO_FLAG_MMAP_IFC", 0) | faiss.IO_FLAG_READ_ONLY
MAX_DELTAS = 8  # more delta segments than this are merged into one (each costs a search)
DELTA_SHARE = 0.25  # deltas holding more vectors than this share of the base are folded into a new base


@dataclass
class Segment:
    """One index file: a FAISS ID map and its passage ids, ascending."""

    index: faiss.IndexIDMap
    ids: np.ndarray

    @property
    def inner(self) -> faiss.Index:
        return faiss.downcast_index(self.index.index)


class FaissStore(VectorStore):
    """A loaded and verified generation: vectors in FAISS, records and BM25 in SQLite."""

    name = "faiss"

    def __init__(self, manifest: Manifest, records: Records, segments: list[Segment], deleted: np.ndarray,
                 ef_search: int) -> None:
        super().__init__(manifest, records)
        self.segments = segments
        self.deleted = deleted
        self.dimension = manifest.dimension
        self.ef_search = ef_search
        self._skips = [_deleted_selector(segment, deleted) for segment in segments]

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        if vector.shape[-1] != self.dimension:
            raise IndexMismatch(f"query vectors have {vector.shape[-1]} dimensions, the index {self.dimension}")
        query = vector.reshape(1, -1).astype(np.float32)
        found: list[tuple[int, float]] = []
        for segment, skip in zip(self.segments, self._skips):
            scores, ids = search_index(segment.index, query, k, _search_params(segment, skip, self.ef_search))
            found += [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
        return sorted(found, key=lambda hit: -hit[1])[:k]

    def vectors(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        out = np.zeros((len(ids), self.dimension), dtype=np.float32)
        wanted = np.asarray(ids, dtype=np.int64)
        todo = np.ones(len(wanted), dtype=bool)
        for segment in self.segments:
            positions = np.searchsorted(segment.ids, wanted)
            inside = todo & (positions < len(segment.ids))
            inside[inside] &= segment.ids[positions[inside]] == wanted[inside]
            inner = segment.inner
            for row in np.flatnonzero(inside):
                out[row] = inner.reconstruct(int(positions[row]))
            todo &= ~inside
        if todo.any():
            raise IndexCorrupt(f"{int(todo.sum())} passage vectors are missing")
        return out

    def live_ids(self) -> np.ndarray:
        """Every live passage id, ascending."""
        ids = np.concatenate([segment.ids for segment in self.segments]) if self.segments else np.zeros(0, np.int64)
        return np.sort(ids[~np.isin(ids, self.deleted)])


@dataclass(frozen=True)
class _Skip:
    """The selector of a segment's deleted ids; FAISS holds raw pointers, so both objects live here."""

    selector: faiss.IDSelector
    batch: faiss.IDSelectorBatch


def _deleted_selector(segment: Segment, deleted: np.ndarray) -> _Skip | None:
    positions = np.searchsorted(segment.ids, deleted)
    inside = deleted[(positions < len(segment.ids)) & (segment.ids[np.minimum(positions, len(segment.ids) - 1)]
                                                       == deleted)] if len(segment.ids) else deleted[:0]
    if not len(inside):
        return None
    batch = faiss.IDSelectorBatch(inside)
    return _Skip(faiss.IDSelectorNot(batch), batch)


def _search_params(segment: Segment, skip: _Skip | None, ef_search: int) -> faiss.SearchParameters | None:
    """Skip the deleted passages inside the search, and search a graph as configured.

    New parameters for every search: IndexIDMap points the parameters' selector at an object on its own stack
    for the length of a search, so parameters shared by two threads searching at once would crash.
    """
    if isinstance(segment.inner, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW(efSearch=ef_search)  # type: ignore[attr-defined]  # not in the stubs
    elif skip is None:
        return None
    else:
        params = faiss.SearchParameters()
    if skip is not None:
        params.sel = skip.selector
    return params


class FaissBackend:
    name = "faiss"

    @classmethod
    def open(cls, settings: Settings, manifest: Manifest, records: Records) -> FaissStore:
        if manifest.index_file is None:
            raise IndexCorrupt("the manifest names no FAISS index file")
        index_dir = Path(settings.index_dir)
        segments = [_read_segment(verify_file(index_dir, entry), manifest.dimension)
                    for entry in (manifest.index_file, *manifest.segment_files)]
        deleted = read_ids(verify_file(index_dir, manifest.deleted_file)) if manifest.deleted_file else \
            np.zeros(0, dtype=np.int64)
        stored = sum(len(segment.ids) for segment in segments)
        if stored - len(deleted) != manifest.unique_passages:
            raise IndexCorrupt(f"the index files hold {stored - len(deleted)} live vectors, the manifest says "
                               f"{manifest.unique_passages}")
        if _kind(segments[0].inner) != manifest.index_type:
            raise IndexCorrupt(f"{manifest.index_file.name} is a {_kind(segments[0].inner)} index, the manifest "
                               f"says {manifest.index_type}")
        for segment in segments:
            if isinstance(segment.inner, faiss.IndexHNSW):
                segment.inner.hnsw.efSearch = settings.hnsw_ef_search
        return FaissStore(manifest, records, segments, deleted, settings.hnsw_ef_search)

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

    @classmethod
    def needs_rebuild(cls, manifest: Manifest, options: IndexOptions) -> bool:
        return needs_rebuild(manifest, options)

    @classmethod
    def rebuild(cls, store: VectorStore, index_dir: Path, generation: str, options: IndexOptions) -> dict:
        assert isinstance(store, FaissStore)
        return rebuild(store, index_dir, generation, options)


class FaissWriter:
    """Writes a generation's segment files: a new base for a full write, else a delta and the deleted ids."""

    existing: set[str] = set()  # every vector a generation adds is written into its own file

    def __init__(self, index_dir: Path, dimension: int, kind: str, options: IndexOptions) -> None:
        self.index_dir, self.dimension, self.kind, self.options = index_dir, dimension, kind, options

    def write(self, generation: str, rows: Sequence[Row], vectors: Vectors, removed: Sequence[int],
              previous: VectorStore | None) -> dict:
        """The manifest fields of the new generation's vector files."""
        ids = np.fromiter((row.id for row in rows), dtype=np.int64, count=len(rows))
        if not isinstance(previous, FaissStore):
            base = self.segment_file(f"index-{generation}", build_index(vectors, ids, self.dimension, self.kind,
                                                                         self.options))
            return {"index_file": base, "segment_files": [], "deleted_file": None, "index_type": self.kind}
        manifest = previous.manifest
        deltas = list(manifest.segment_files)
        deleted = np.union1d(previous.deleted, np.asarray(removed, dtype=np.int64))
        if len(ids):
            if len(deltas) >= MAX_DELTAS:  # fold the deltas and this one into one
                merged = np.concatenate([s.ids for s in previous.segments[1:]])
                kept = merged[~np.isin(merged, deleted)]
                flat = build_index(_stored(previous, kept), kept, self.dimension, "flat", self.options)
                _add(flat, vectors, ids)  # new ids are past every stored one: the order holds
                deleted, deltas = deleted[~np.isin(deleted, merged)], []
            else:
                flat = build_index(vectors, ids, self.dimension, "flat", self.options)
            deltas.append(self.segment_file(f"index-{generation}", flat))
        deleted_file = self._ids_file(f"deleted-{generation}", deleted) if len(deleted) else None
        return {"index_file": manifest.index_file, "segment_files": deltas, "deleted_file": deleted_file,
                "index_type": manifest.index_type}

    def segment_file(self, stem: str, index: faiss.Index) -> FileEntry:
        path = self.index_dir / f"{stem}.faiss"
        tmp = path.with_name(path.name + ".tmp")
        write_index(index, tmp)
        publish(tmp, path)
        return file_entry(path)

    def _ids_file(self, stem: str, ids: np.ndarray) -> FileEntry:
        path = self.index_dir / f"{stem}.ids"
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as handle:
            handle.write(np.ascontiguousarray(ids, dtype="<i8").tobytes())
        publish(tmp, path)
        return file_entry(path)

    def location(self) -> dict[str, str]:
        return {}

    def finish(self, stale_keys: set[str] | None) -> None:
        """Old generations' files are removed by the ingest once no reader needs them."""


def needs_rebuild(manifest: Manifest, options: IndexOptions) -> bool:
    """Whether the deleted share, or the deltas, have grown enough to rebuild one base segment."""
    if manifest.index_file is None:
        return False
    deleted = manifest.deleted_file.bytes // 8 if manifest.deleted_file else 0
    stored = manifest.unique_passages + deleted
    in_deltas = sum(entry.bytes for entry in manifest.segment_files) // (4 * manifest.dimension + 8)
    return deleted > options.rebuild_share * stored or in_deltas > DELTA_SHARE * (stored - in_deltas) or \
        options.choose(manifest.unique_passages) != manifest.index_type


def rebuild(store: FaissStore, index_dir: Path, generation: str, options: IndexOptions) -> dict:
    """One base segment of the live vectors: the manifest fields of the rebuilt generation."""
    ids = store.live_ids()
    kind = options.choose(len(ids))
    index = build_index(_stored(store, ids), ids, store.dimension, kind, options)
    writer = FaissWriter(index_dir, store.dimension, kind, options)
    return {"index_file": writer.segment_file(f"index-{generation}", index), "segment_files": [],
            "deleted_file": None, "index_type": kind}


def read_ids(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype="<i8").astype(np.int64)


def search_index(index: faiss.Index, queries: np.ndarray, k: int,
                 params: faiss.SearchParameters | None = None) -> tuple[np.ndarray, np.ndarray]:
    """FAISS search, on one OpenMP thread for a handful of queries.

    Measured on 2 cores: a single query on a 10k-50k flat index took ~16 ms with FAISS's default two
    threads and 0.2-2.3 ms with one; at 1M, 128 ms against 51 ms. The thread count is per calling thread
    in OpenMP, so this does not slow an ingest's index build or another thread's search.
    """
    if len(queries) > 4:
        return index.search(queries, k, params=params)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return index.search(queries, k, params=params)
    finally:
        faiss.omp_set_num_threads(threads)


def write_index(index: faiss.Index, path: Path) -> None:
    """Through a Python file, so a full disk is an OSError at once: FAISS's own writer turns it into an
    assertion text, or for a small index only prints it when closing and leaves a truncated file."""
    with path.open("wb") as handle:
        writer = faiss.PyCallbackIOWriter(handle.write)  # type: ignore[attr-defined]  # SWIG, not in the stubs
        faiss.write_index(index, writer)


def _read_segment(path: Path, dimension: int) -> Segment:
    index = _read_index(path)
    if not isinstance(index, faiss.IndexIDMap) or index.d != dimension:
        raise IndexCorrupt(f"{path.name} is not an ID-mapped index of {dimension}-d vectors")
    ids = faiss.vector_to_array(index.id_map)
    if len(ids) != index.ntotal or (len(ids) > 1 and not (np.diff(ids) > 0).all()):
        raise IndexCorrupt(f"{path.name} has malformed passage ids")
    return Segment(index, ids)


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


def _stored(store: FaissStore, ids: np.ndarray) -> Vectors:
    return Vectors(len(ids), store.dimension, lambda start, stop: store.vectors(ids[start:stop]))


def _add(index: faiss.IndexIDMap, vectors: Vectors, ids: np.ndarray) -> None:
    for start, part in vectors.batches():
        index.add_with_ids(part, np.asarray(ids[start:start + len(part)], dtype=np.int64))


def build_index(vectors: Vectors | np.ndarray, ids: np.ndarray, dimension: int, kind: str,
                options: IndexOptions) -> faiss.IndexIDMap:
    """An inner-product index over the (normalized) vectors, under their passage ids: cosine either way.
    The vectors are added a batch at a time, so only the index holds all of them."""
    inner: faiss.Index
    if kind == "flat":
        inner = faiss.IndexFlatIP(dimension)
    elif kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dimension, options.m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = options.ef_construction
        inner.hnsw.efSearch = options.ef_search
    else:
        raise ValueError(f"unknown index type {kind!r}: use one of auto, {', '.join(INDEX_TYPES)}")
    index = faiss.IndexIDMap(inner)
    _add(index, vectors if isinstance(vectors, Vectors) else Vectors.of(vectors), ids)
    return index
