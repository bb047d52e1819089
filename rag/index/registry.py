"""The one table of vector-store backends, and opening and writing a generation with any of them.

Nothing else in the package names a backend: a backend's module (and its vector library) is imported
only when a store of that kind is opened or written.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

from ..errors import IndexCorrupt, RagError, UserError
from ..extras import require
from .files import built_at, new_generation, refuse_foreign_files
from .manifest import BuildSpec, Manifest, read_manifest, records_entry, verify_file, write_manifest
from .records import Records, create_records, update_records
from .store import Backend, Changes, IndexOptions, VectorStore

if TYPE_CHECKING:
    from ..config import Settings

log = logging.getLogger(__name__)

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
    records = Records(verify_file(index_dir, manifest.records_file), manifest.serial, manifest.spec.embed_context)
    try:
        return kind.open(settings, manifest, records)
    except BaseException:
        records.close()
        raise


def write_store(
    settings: Settings, spec: BuildSpec, dimension: int, changes: Changes, previous: VectorStore | None,
    store: str | None = None, **manifest_fields,
) -> Manifest:
    """Write and publish a generation. Call with the ingest lock held.

    With previous (the published store, same backend and place) the changes update it in place; without,
    they are the whole new index, written anew.
    """
    name = store or settings.store
    options = IndexOptions.from_settings(settings)
    index_dir = Path(settings.index_dir)
    current = previous.manifest if previous is not None else None
    unique = (current.unique_passages if current else 0) + len(changes.added) - len(changes.removed)
    kind = current.index_type if current else options.choose(unique)
    with backend(name).writer(settings, spec.model, dimension, kind, options) as writer:
        generation = new_generation()
        vector_fields = writer.write(generation, changes.added, changes.vectors, [r.id for r in changes.removed],
                                     previous)
        if current:
            update_records(index_dir / current.records_file.name, current.serial, changes.added,
                           [r.id for r in changes.removed])
            records_file, serial = current.records_file, current.serial + 1
        else:
            records_path = index_dir / f"passages-{generation}.sqlite"
            create_records(records_path, changes.added, 1)
            records_file, serial = records_entry(records_path), 1
        manifest = Manifest(
            spec=spec, dimension=dimension, generation=generation, built_at=built_at(), records_file=records_file,
            unique_passages=unique, store=name, store_location=writer.location(), serial=serial,
            next_id=changes.next_id, **vector_fields, **manifest_fields,
        )
        write_manifest(index_dir, manifest)  # the one step that switches readers to the new generation
        added = {row.record.key for row in changes.added}
        try:
            writer.finish({row.record.key for row in changes.removed} - added if current else None)
        except RagError as exc:  # published already: the old vectors only cost search slots
            log.warning("the new index generation is published; dropping the vectors it removed failed (%s)", exc)
    return manifest


def rebuild_if_due(settings: Settings, spec: BuildSpec, manifest: Manifest) -> Manifest:
    """After an ingest published its generation: the backend's index rebuilt, if its deletions call for it."""
    kind = backend(manifest.store)
    options = IndexOptions.from_settings(settings)
    if not kind.needs_rebuild(manifest, options):
        return manifest
    try:
        store = open_store(settings, spec, store=manifest.store)
        try:
            generation = new_generation()
            fields = kind.rebuild(store, Path(settings.index_dir), generation, options)
        finally:
            store.close()
        rebuilt = dataclasses.replace(manifest, generation=generation, built_at=built_at(), **fields)
        write_manifest(Path(settings.index_dir), rebuilt)
    except (RagError, OSError) as exc:  # the ingest's own generation is published: its changes are in
        log.warning("the ingest's changes are in; rebuilding the vector index failed (%s): the next ingest "
                    "tries again", exc)
        return manifest
    return rebuilt


def location_of(settings: Settings, store: str | None = None) -> dict[str, str]:
    """What the manifest records about where the vectors are (compared to notice a moved target)."""
    return backend(store or settings.store).location(settings)


def describe_location(settings: Settings, manifest: Manifest) -> str:
    return backend(manifest.store).describe(settings, manifest)
