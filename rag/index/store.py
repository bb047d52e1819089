"""The vector-store interface every backend implements, and the index options they share.

A backend keeps the vectors (a FAISS file, a Milvus collection); the passage records and the BM25 table
are the generation's SQLite file (`Records`), the same for every backend. Backends are named in one
table, rag.index.registry, which also opens and writes them.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np

from ..errors import IndexCorrupt
from ..types import Passage
from .manifest import FileEntry, Manifest
from .records import Record, Records

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

    @classmethod
    def from_settings(cls, settings: Settings) -> IndexOptions:
        return cls(settings.index_type, settings.hnsw_threshold, settings.hnsw_m,
                   settings.hnsw_ef_construction, settings.hnsw_ef_search)

    def choose(self, count: int) -> str:
        """Exact search below the threshold (it is cheap there, and exact); a graph above it."""
        if self.type in INDEX_TYPES:
            return self.type
        return "hnsw" if count >= self.hnsw_threshold else "flat"


class VectorStore(ABC):
    """A loaded, checked index generation. Passage ids are 0..count-1 within the generation."""

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

    @abstractmethod
    def vectors_by_key(self, keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Stored vectors by passage key (all, or those asked for): what an ingest need not embed again."""

    def _close_vectors(self) -> None:  # noqa: B027 - most backends hold nothing else
        """Release what the backend holds besides the records."""

    def lexical(self, terms: Sequence[str], n: int, weights: tuple[float, float, float]) -> list[tuple[int, float]]:
        """BM25 matches for any of the terms, best first (SQLite FTS5 on every backend)."""
        return self._records.lexical(terms, n, weights)

    def passages(self, ids: Sequence[int]) -> list[Passage]:
        return self._records.passages(ids)

    def records(self) -> list[Record]:
        return self._records.all()

    def count(self) -> int:
        return self.manifest.unique_passages

    def keys(self) -> set[str]:
        """Every stored passage key (a hash of the embedded text)."""
        return set(self._records.keys())

    def close(self) -> None:
        self._records.close()
        self._close_vectors()


class GenerationWriter(Protocol):
    """A backend's half of writing a generation; the registry writes the records and the manifest."""

    existing: set[str]  # keys whose vectors the target already holds (nothing to send for them)

    def write(self, generation: str, records: Sequence[Record], vectors: dict[str, np.ndarray]) -> FileEntry | None:
        """Store the vectors (every record's key not in `existing` is in `vectors`); the index file written, if any."""

    def location(self) -> dict[str, str]:
        """Where the vectors are, as the manifest records it (never a credential)."""

    def finish(self, records: Sequence[Record]) -> None:
        """After the generation is published: drop what no published generation needs."""


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


def reuse_vectors(records: Sequence[Record], fresh: dict[str, np.ndarray], previous: VectorStore | None,
                  existing: set[str]) -> dict[str, np.ndarray]:
    """The vectors a write must send: freshly embedded ones, and the previous store's for the other
    records the target does not hold yet (that is how an edit and `rag migrate` avoid re-embedding)."""
    need = [r.key for r in records if r.key not in fresh and r.key not in existing]
    known = previous.vectors_by_key(need) if need and previous is not None else {}
    if len(known) < len(set(need)):
        raise IndexCorrupt(f"{len(set(need)) - len(known)} passage vectors to reuse are missing")
    return {**known, **fresh}
