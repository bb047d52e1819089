"""The vector-store interface every backend implements, and the index options they share.

A backend keeps the vectors (a FAISS file, a Milvus collection); the passage records and the BM25 table
are the generation's SQLite file (`Records`), the same for every backend. Backends are named in one
table, rag.index.registry, which also opens and writes them.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np

from ..types import Passage
from .manifest import Manifest
from .records import Records, Row

if TYPE_CHECKING:
    from ..config import Settings

INDEX_TYPES = ("flat", "hnsw")


@dataclass(frozen=True)
class IndexOptions:
    """Which vector index an ingest writes, and how an HNSW index is built and searched."""

    type: str = "auto"  # "auto", "flat" or "hnsw"
    hnsw_threshold: int = 50_000
    m: int = 32
    ef_construction: int = 80
    ef_search: int = 192
    rebuild_share: float = 0.2

    @classmethod
    def from_settings(cls, settings: Settings) -> IndexOptions:
        return cls(settings.index_type, settings.hnsw_threshold, settings.hnsw_m,
                   settings.hnsw_ef_construction, settings.hnsw_ef_search, settings.index_rebuild_share)

    def choose(self, count: int) -> str:
        """Exact search below the threshold (it is cheap there, and exact); a graph above it."""
        if self.type in INDEX_TYPES:
            return self.type
        return "hnsw" if count >= self.hnsw_threshold else "flat"


class VectorStore(ABC):
    """A loaded, checked index generation. Passage ids are stable: a passage keeps its id while it lives."""

    name: ClassVar[str]

    def __init__(self, manifest: Manifest, records: Records) -> None:
        self.manifest = manifest
        self._records = records

    @abstractmethod
    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k nearest passages by inner product (cosine: vectors are normalized), best first."""

    @abstractmethod
    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """The stored vectors of these passages, in this order."""

    def _close_vectors(self) -> None:  # noqa: B027 - most backends hold nothing else
        """Release what the backend holds besides the records."""

    def lexical(self, terms: Sequence[str], n: int, weights: tuple[float, float, float],
                candidates: Sequence[int] = ()) -> list[tuple[int, float]]:
        """BM25 matches for any of the terms, best first (SQLite FTS5 on every backend); common words
        rescore the matches of the others and the candidates."""
        return self._records.lexical(terms, n, weights, candidates)

    def passages(self, ids: Sequence[int]) -> list[Passage]:
        return self._records.passages(ids)

    @property
    def records(self) -> Records:
        return self._records

    def count(self) -> int:
        return self.manifest.unique_passages

    def close(self) -> None:
        self._records.close()
        self._close_vectors()


@dataclass(frozen=True)
class Vectors:
    """The vectors of a generation's new rows, in row order, made a batch at a time as a writer reads them:
    a million 384-d vectors are 1.5 GB, and holding them all while the index copies them in doubles that."""

    count: int
    dimension: int
    make: Callable[[int, int], np.ndarray]  # the vectors of rows [start, stop)
    batch: int = 65_536

    @classmethod
    def of(cls, array: np.ndarray) -> Vectors:
        array = np.ascontiguousarray(array, dtype=np.float32)
        return cls(len(array), array.shape[1], lambda start, stop: array[start:stop])

    def batches(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, that batch's vectors as contiguous float32), in row order."""
        for start in range(0, self.count, self.batch):
            stop = min(start + self.batch, self.count)
            yield start, np.ascontiguousarray(self.make(start, stop), dtype=np.float32)

    def array(self) -> np.ndarray:
        out = np.empty((self.count, self.dimension), dtype=np.float32)
        for start, part in self.batches():
            out[start:start + len(part)] = part
        return out


@dataclass
class Changes:
    """What a generation changes: rows born (with their vectors, in order) and rows that die. A full
    write (`previous` None in write_store) holds every row of the new index in `added`."""

    added: list[Row]
    vectors: Vectors
    removed: list[Row]
    next_id: int


class GenerationWriter(Protocol):
    """A backend's half of writing a generation; the registry writes the records and the manifest."""

    def write(self, generation: str, rows: Sequence[Row], vectors: Vectors, removed: Sequence[int],
              previous: VectorStore | None) -> dict:
        """Store the rows' vectors, drop the removed ids from searches: the manifest's vector fields.
        previous is the published store to update, or None to write everything anew."""

    def location(self) -> dict[str, str]:
        """Where the vectors are, as the manifest records it (never a credential)."""

    def finish(self, stale_keys: set[str] | None) -> None:
        """After the generation is published: drop vectors of these keys (None: every key not written)."""


class Backend(Protocol):
    name: str

    @classmethod
    def open(cls, settings: Settings, manifest: Manifest, records: Records) -> VectorStore: ...

    @classmethod
    def writer(cls, settings: Settings, model: str, dimension: int, kind: str,
               options: IndexOptions) -> contextlib.AbstractContextManager[GenerationWriter]: ...

    @classmethod
    def location(cls, settings: Settings) -> dict[str, str]: ...

    @classmethod
    def describe(cls, settings: Settings, manifest: Manifest) -> str:
        """Where the vectors of this index are, for people (never a credential)."""

    @classmethod
    def needs_rebuild(cls, manifest: Manifest, options: IndexOptions) -> bool:
        """Whether deletions and additions have degraded the index enough to rebuild it."""

    @classmethod
    def rebuild(cls, store: VectorStore, index_dir: Path, generation: str, options: IndexOptions) -> dict:
        """Rebuild the store's index from its live vectors: the new generation's manifest fields."""
