"""The vector-store interface and the choice of backend (RAG_STORE=faiss|milvus).

The Assistant, retrieval and ingest talk only to this. Both backends keep the passage records and the
BM25 table in the generation's SQLite file (rag.records) and publish generations through the same
manifest; they differ in where the vectors live. Neither backend's package (faiss, pymilvus) is
imported here: the chosen backend's module is imported when a store is opened or written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .manifest import BuildSpec, Manifest
from .records import Record
from .types import Passage

if TYPE_CHECKING:
    from .config import Settings

STORES = ("faiss", "milvus")


class VectorStore(Protocol):
    """A loaded, checked index generation. Passage ids are 0..count-1 within the generation."""

    name: str
    manifest: Manifest

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k nearest passages by inner product (cosine: vectors are normalized), best first."""

    def lexical(self, terms: Sequence[str], n: int, weights: tuple[float, float, float]) -> list[tuple[int, float]]:
        """BM25 matches for any of the terms, best first (SQLite FTS5 on both backends)."""

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """The stored vectors of these passages, in this order."""

    def passages(self, ids: Sequence[int]) -> list[Passage]: ...

    def count(self) -> int: ...

    def keys(self) -> set[str]:
        """Every stored passage key (a hash of the embedded text): what an ingest need not embed again."""

    def records(self) -> list[Record]: ...

    def vectors_by_key(self, keys: Sequence[str] | None = None) -> dict[str, np.ndarray]: ...

    def describe(self) -> dict[str, str]:
        """The backend and where its vectors are (never a credential)."""

    def close(self) -> None: ...


def open_store(settings: Settings, spec: BuildSpec, store: str | None = None) -> VectorStore:
    """Load and check the current generation with the given backend (default: RAG_STORE)."""
    store = store or settings.store
    if store == "milvus":
        from .milvus_store import MilvusStore

        return MilvusStore.open(settings, spec)
    from .store import FaissStore

    return FaissStore.open(settings.index_dir, spec, settings.hnsw_ef_search)


def write_store(
    settings: Settings, spec: BuildSpec, dimension: int, records: Sequence[Record],
    fresh: dict[str, np.ndarray], previous: VectorStore | None, store: str | None = None, **manifest_fields,
) -> Manifest:
    """Write and publish a generation holding exactly these records. Call with the ingest lock held.

    fresh has the vectors embedded by this ingest; every other record's vector comes from previous
    (which may be the other backend: that is how `rag migrate` copies without re-embedding).
    """
    store = store or settings.store
    if store == "milvus":
        from .milvus_store import write_milvus_store

        return write_milvus_store(settings, spec, dimension, records, fresh, previous, **manifest_fields)
    from .store import write_faiss_store

    return write_faiss_store(settings, spec, dimension, records, fresh, previous, **manifest_fields)


def location_of(settings: Settings, store: str | None = None) -> dict[str, str]:
    """What the manifest records about where the vectors are (compared to notice a moved target)."""
    if (store or settings.store) == "milvus":
        from .milvus_store import MilvusTarget

        return MilvusTarget.from_settings(settings).location()
    return {}
