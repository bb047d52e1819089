"""The one table of vector-store backends, and opening and writing a generation with any of them.

Nothing else in the package names a backend: a backend's module (and its vector library) is imported
only when a store of that kind is opened or written.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from ..errors import IndexCorrupt, UserError
from ..extras import require
from .files import built_at, new_generation, refuse_foreign_files
from .manifest import BuildSpec, Manifest, file_entry, read_manifest, verify_file, write_manifest
from .records import Record, Records, write_records
from .store import Backend, IndexOptions, VectorStore, reuse_vectors

if TYPE_CHECKING:
    from ..config import Settings

# name: (module, class, the package it needs, the extra that installs it)
BACKENDS = {
    "faiss": ("rag.index.faiss", "FaissBackend", "faiss", None),
    "milvus": ("rag.index.milvus", "MilvusBackend", "pymilvus", "milvus"),
}


def backend(name: str) -> type[Backend]:
    try:
        module, cls, package, extra = BACKENDS[name]
    except KeyError:
        raise UserError(f"unknown vector store {name!r}: set RAG_STORE to one of {', '.join(BACKENDS)}") from None
    if extra:
        require(package, extra, f"the {name} vector store")
    return cast("type[Backend]", getattr(importlib.import_module(module), cls))


def open_store(settings: Settings, spec: BuildSpec, store: str | None = None) -> VectorStore:
    """Load and check the current generation with the given backend (default: RAG_STORE)."""
    kind = backend(store or settings.store)
    try:
        return _open(settings, spec, kind)
    except IndexCorrupt:
        # A writer may have published a new generation between our reads: look once more.
        time.sleep(0.05)
        return _open(settings, spec, kind)


def _open(settings: Settings, spec: BuildSpec, kind: type[Backend]) -> VectorStore:
    index_dir = Path(settings.index_dir)
    manifest = read_manifest(index_dir)
    manifest.check_spec(spec)
    manifest.check_store(kind.name)
    refuse_foreign_files(index_dir)
    records = Records(verify_file(index_dir, manifest.records_file))  # checksums first: nothing read unchecked
    try:
        return kind.open(settings, manifest, records)
    except BaseException:
        records.close()
        raise


def write_store(
    settings: Settings, spec: BuildSpec, dimension: int, records: Sequence[Record],
    fresh: dict[str, np.ndarray], previous: VectorStore | None, store: str | None = None, **manifest_fields,
) -> Manifest:
    """Write and publish a generation holding exactly these records. Call with the ingest lock held.

    fresh has the vectors embedded by this ingest; every other record's vector comes from previous
    (which may be another backend: that is how `rag migrate` copies without re-embedding).
    """
    name = store or settings.store
    options = IndexOptions.from_settings(settings)
    kind = options.choose(len(records))
    index_dir = Path(settings.index_dir)
    with backend(name).writer(settings, spec.model, dimension, kind, options) as writer:
        vectors = reuse_vectors(records, fresh, previous, writer.existing)
        generation = new_generation()
        index_file = writer.write(generation, records, vectors)
        records_path = index_dir / f"passages-{generation}.sqlite"
        write_records(records_path, records)
        manifest = Manifest(
            spec=spec, dimension=dimension, generation=generation, built_at=built_at(), index_file=index_file,
            records_file=file_entry(records_path), unique_passages=len(records), index_type=kind, store=name,
            store_location=writer.location(), **manifest_fields,
        )
        write_manifest(index_dir, manifest)  # the one step that switches readers to the new generation
        writer.finish(records)
    return manifest


def location_of(settings: Settings, store: str | None = None) -> dict[str, str]:
    """What the manifest records about where the vectors are (compared to notice a moved target)."""
    return backend(store or settings.store).location(settings)


def describe_location(settings: Settings, manifest: Manifest) -> str:
    return backend(manifest.store).describe(settings, manifest)
