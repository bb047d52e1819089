"""Ingest: corpus files -> posts -> passages -> vectors -> a new index generation.

Incremental by content: a passage whose text was already embedded reuses its stored vector, so an
edited file re-embeds only its changed paragraphs and an unchanged corpus writes nothing at all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import logs
from .chunking import CHUNKING_VERSION, chunk_posts, embedding_text, group_duplicates, passage_key
from .config import Settings
from .corpus import LoadResult, display_path, load_paths, under
from .embeddings import (
    Progress,
    SentenceEncoder,
    load_encoder,
    model_window,
    overall_progress,
    prefetch_encoder,
    resolve_model_path,
    token_counter,
)
from .errors import (
    CorpusMissing,
    EmptyCorpus,
    IndexBusy,
    IndexCorrupt,
    IndexMismatch,
    IndexMissing,
    RagError,
    UserError,
)
from .index.files import built_at, ingest_lock, remove_stale_files, user_fixable
from .index.manifest import (
    BuildSpec,
    FileEntry,
    Manifest,
    before_publish,
    file_entry,
    read_manifest,
    verify_file,
    write_manifest,
)
from .index.records import Record, Row, undo_unpublished
from .index.registry import describe_location, location_of, open_store, rebuild_if_due, write_store
from .index.store import Changes, Vectors, VectorStore
from .people import Database, Hold
from .sources import Plan, add_plan, catalogue, remove_plan, scanned_documents, sync_plan
from .types import Chunk, Document, IndexInfo, IngestReport

_WRITER_LOCK = 0x7261675F77726974  # "rag_writ": the database's advisory lock of the index's one writer

if TYPE_CHECKING:
    from .onnx_encoder import OnnxEncoder

log = logging.getLogger(__name__)
QUERY_MODEL_DIR = "onnx"


def build_spec(settings: Settings) -> BuildSpec:
    window = model_window(resolve_model_path(settings.embedding_model))
    return BuildSpec(settings.embedding_model, CHUNKING_VERSION, min(settings.max_passage_tokens, window),
                     settings.embed_context)


def project_dir(settings: Settings) -> Path:
    """The folder that holds the index: file names in the index are relative to it."""
    return Path(os.path.abspath(settings.index_dir)).parent


def recorded_roots(settings: Settings, manifest: Manifest) -> list[Path]:
    return [project_dir(settings) / p for p in manifest.roots]


def _names(settings: Settings, paths: Sequence[Path]) -> list[str]:
    """Display names of the paths, less those inside another one given."""
    names = list(dict.fromkeys(display_path(path, project_dir(settings)) for path in paths))
    return [name for name in names if not any(under(name, other) and name != other for other in names)]


def _indexed_names(settings: Settings, paths: Sequence[Path], indexed: set[str]) -> list[str]:
    """What to remove: a path as `rag sources` lists it is taken as it is, whatever the working folder."""
    names = []
    for path in paths:
        listed = path.as_posix().rstrip("/")
        direct = not path.is_absolute() and any(under(name, listed) for name in indexed)
        names.append(listed if direct else display_path(path, project_dir(settings)))
    return list(dict.fromkeys(names))


def _plan(settings: Settings, current: Manifest | None, reusable: bool, paths: Sequence[Path], sync: bool) -> Plan:
    """What this ingest reads and keeps. A plain ingest re-reads the recorded roots (a new index: the
    corpus folder); given paths are added to them, or with sync replace them. Without a usable previous
    index there is nothing to keep, so an added path is read together with the recorded roots."""
    for path in paths:
        if not path.exists():
            raise CorpusMissing(path)
    roots = (current.roots if current else []) or _names(settings, [settings.corpus_dir])
    excluded = current.excluded if current else []
    if paths and (sync or current is None):  # a new index holds what it is given, not the corpus folder too
        return sync_plan(_names(settings, paths), [])
    if not paths:
        for root in roots:
            if not (project_dir(settings) / root).exists():
                if current and current.roots:
                    raise UserError(f"{root} was indexed but no longer exists: restore it, or `rag remove {root}` "
                                    "to drop its documents from the index")
                raise CorpusMissing(project_dir(settings) / root)
        return sync_plan(roots, excluded)
    plan = add_plan(roots, excluded, _names(settings, paths))
    if reusable:
        return plan
    return sync_plan(plan.roots, plan.excluded)


def changed_files(old: dict[str, str], new: dict[str, str]) -> tuple[list[str], list[str]]:
    """(added or edited, removed) file names between two fingerprint maps."""
    changed = [name for name, fp in new.items() if old.get(name) != fp]
    removed = [name for name in old if name not in new]
    return changed, removed


def _open_previous(settings: Settings, spec: BuildSpec, current: Manifest | None) -> VectorStore | None:
    """The current index if it is intact and built with these settings; else start over.

    It is opened with the backend that wrote it, so switching RAG_STORE reuses its vectors.
    """
    if current is None:
        return None
    try:
        return open_store(settings, spec, store=current.store)
    except (IndexMissing, IndexCorrupt, IndexMismatch):
        return None
    except UserError:
        if current.store == settings.store:
            raise  # e.g. the Milvus server is down: embedding everything again would not help
        return None


def describe_index(settings: Settings) -> IndexInfo:
    """What the index holds, where, and which corpus files changed since it was built."""
    manifest = read_manifest(settings.index_dir)
    roots = [p for p in recorded_roots(settings, manifest) if p.exists()]
    current = load_paths(roots, settings.max_file_bytes, project_dir(settings), parse=False,
                         excluded=manifest.excluded, known=manifest.known_files())
    changed, removed = changed_files(manifest.fingerprints, current.fingerprints)
    # Bytes on local disk: the records and BM25 file (it changes in place), and the vectors' files when local.
    index_bytes = sum(_size(settings.index_dir / name) for name in manifest.files())
    return IndexInfo(
        index_dir=str(settings.index_dir), model=manifest.spec.model, dimension=manifest.dimension,
        posts=manifest.posts, passages=manifest.passages, unique_passages=manifest.unique_passages,
        files=len(manifest.documents) or len(manifest.fingerprints), index_bytes=index_bytes,
        built_at=manifest.built_at, changed_files=tuple(changed + removed), index_type=manifest.index_type,
        store=manifest.store, location=describe_location(settings, manifest),
        pdf_pages={name: doc["pages"] for name, doc in manifest.documents.items() if doc.get("kind") == "pdf"},
    )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def stored_records(settings: Settings, manifest: Manifest) -> list[Record]:
    """Every passage record of the published index, read from the backend that wrote it."""
    store = open_store(settings, build_spec(settings), store=manifest.store)
    try:
        return [row.record for row in store.records.all()]
    finally:
        store.close()


@contextlib.contextmanager
def writer_lock(settings: Settings, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """One writer of the index at a time: the lock file in its folder, and with RAG_DATABASE_URL also the
    database's advisory lock, which holds across machines whatever the shared volume makes of file locks.
    Both are taken in that order by every writer, so two can never hold one each and wait for the other."""
    deadline = time.monotonic() + settings.lock_timeout
    told: list[bool] = []

    def waiting() -> None:  # said once, whichever lock is waited for
        if on_wait is not None and not told:
            told.append(True)
            on_wait()

    with ingest_lock(settings.index_dir, settings.lock_timeout, waiting):
        if settings.database_url is None:
            yield
            return
        database = Database.server(settings.database_url)
        with database.held(_WRITER_LOCK, max(0.0, deadline - time.monotonic()), waiting) as hold:
            if not hold:
                raise IndexBusy(settings.lock_timeout)
            with before_publish(lambda: _still_the_writer(hold, database)):
                yield


def _still_the_writer(hold: Hold, database: Database) -> None:
    """Refuse to publish when the database's lock was lost while writing (PostgreSQL restarted): another
    writer may have taken it since."""
    if not hold.kept():
        raise UserError(f"the index's writer lock in {database.where} was lost while writing (the database "
                        "restarted?): nothing was published; run the ingest again")


def list_documents(settings: Settings) -> list[Document]:
    manifest = read_manifest(settings.index_dir)
    return sorted(catalogue(manifest, None).values(), key=lambda d: d.path)


def migrate(settings: Settings, to: str, on_wait: Callable[[], None] | None = None) -> Manifest:
    """Copy the current index into another backend without re-embedding: same records, ids and vectors."""
    spec = build_spec(settings)
    with user_fixable(settings.index_dir), writer_lock(settings, on_wait):
        current = read_manifest(settings.index_dir)
        if current.store == to and current.store_location == location_of(settings, to):
            raise UserError(f"the index is already in {to} ({current.store_location or settings.index_dir})")
        source = open_store(settings, spec, store=current.store)
        try:
            rows = source.records.all()
            vectors = Vectors(len(rows), current.dimension,
                              lambda start, stop: source.vectors([row.id for row in rows[start:stop]]))
            fields = {name: getattr(current, name) for name in
                      ("posts", "passages", "roots", "excluded", "fingerprints", "file_stats", "documents",
                       "query_model_files", "query_model_unsupported")}
            manifest = write_store(settings.replace(store=to), spec, current.dimension,
                                   Changes(rows, vectors, [], current.next_id), None, store=to, **fields)
        except BaseException:
            _discard_unpublished(settings, current)
            raise
        finally:
            source.close()
        remove_stale_files(settings.index_dir, current.files() | manifest.files())
    return manifest


def run_ingest(
    settings: Settings, paths: Sequence[Path] | None = None, rebuild: bool = False,
    progress: Progress = False, on_wait: Callable[[], None] | None = None, sync: bool = False,
    time_limit: float | None = None,
) -> IngestReport:
    """Add or update the given files and folders and keep the rest (`sync`: mirror exactly them);
    no paths re-reads what the index holds. Only passages whose text changed are embedded. Files not
    read within `time_limit` seconds are skipped, and keep what the index held of them."""
    started = time.perf_counter()
    deadline = time.monotonic() + time_limit if time_limit is not None else None
    spec = build_spec(settings)
    with user_fixable(settings.index_dir), writer_lock(settings, on_wait):
        current = _current_manifest(settings)
        previous = None if rebuild else _open_previous(settings, spec, current)
        try:
            plan = _plan(settings, current, previous is not None, list(paths or []), sync)
            return _apply(settings, spec, plan, current, previous, progress, started, deadline)
        except BaseException:
            _discard_unpublished(settings, current)
            raise
        finally:
            if previous:
                previous.close()


def run_remove(settings: Settings, paths: Sequence[Path], on_wait: Callable[[], None] | None = None) -> IngestReport:
    """Remove these files or folders (and only their passages) from the index; nothing is embedded."""
    started = time.perf_counter()
    spec = build_spec(settings)
    with user_fixable(settings.index_dir), writer_lock(settings, on_wait):
        current = read_manifest(settings.index_dir)
        previous = open_store(settings, spec, store=current.store)
        try:
            indexed = set(current.fingerprints)  # every file the index was built from, read or skipped
            names = _indexed_names(settings, paths, indexed)
            for name in names:
                if not any(under(file, name) for file in indexed):
                    raise UserError(f"{name} is not in the index; `rag sources` lists what is")
            plan = remove_plan(current.roots, current.excluded, names)
            return _apply(settings, spec, plan, current, previous, False, started)
        except BaseException:
            _discard_unpublished(settings, current)
            raise
        finally:
            previous.close()


def _discard_unpublished(settings: Settings, current: Manifest | None) -> None:
    """A failed or interrupted write removes its temp files and unpublished files now: left for the next
    ingest, they kept a full disk full. Whichever generation is published stays, and the one before it."""
    kept = current.files() if current else set()
    with contextlib.suppress(RagError, OSError, sqlite3.Error):  # the write's own error is the one to report
        published = _current_manifest(settings)
        remove_stale_files(settings.index_dir, kept | (published.files() if published else set()))
        if published is not None and (settings.index_dir / published.records_file.name).is_file():
            undo_unpublished(settings.index_dir / published.records_file.name, published.serial)


def _apply(settings: Settings, spec: BuildSpec, plan: Plan, current: Manifest | None,
           previous: VectorStore | None, progress: Progress, started: float,
           deadline: float | None = None) -> IngestReport:
    # The published generation stays until a new one replaces it, even when --rebuild ignores its vectors.
    kept = current.files() if current else set()
    remove_stale_files(settings.index_dir, kept)
    base = project_dir(settings)
    old = previous.manifest if previous else None
    old_fingerprints = old.fingerprints if old else {}
    old_documents = catalogue(old, None) if old else {}
    # Only files that changed are parsed again (and those that were skipped: a newer parser may read them).
    loaded = load_paths([base / name for name in plan.scan], settings.max_file_bytes, base, excluded=plan.excluded,
                        parse=lambda name, fp: old_fingerprints.get(name) != fp or name not in old_documents,
                        known=old.known_files() if old else None, deadline=deadline)
    _keep_late(loaded, old)
    changed, removed = changed_files({n: fp for n, fp in old_fingerprints.items() if plan.in_scope(n)},
                                     loaded.fingerprints)
    same_store = previous is not None and previous.manifest.store == settings.store and \
        previous.manifest.store_location == location_of(settings)
    if old and same_store and not changed and not removed and (old.roots, old.excluded) == (plan.roots, plan.excluded):
        manifest = _repair_query_model(settings, old)
        return _report(loaded, manifest, 0, manifest.unique_passages, [], [], started, wrote=False)
    replaced = set(changed) | set(removed) | set(loaded.read)
    if previous is None and sum(len(post.paragraphs) for post in loaded.posts) > SMALL_INGEST:
        # Everything will be embedded, by sentence-transformers: torch loads while the posts are chunked.
        prefetch_encoder(settings.embedding_model, settings.embed_batch_size)
    documents = {n: d for n, d in old_documents.items() if n not in replaced}
    new_chunks = chunk_posts(loaded.posts, token_counter(resolve_model_path(settings.embedding_model)), spec.max_tokens)
    added, dying, reuse, next_id = diff_records(previous, replaced, new_chunks, settings.embed_context)
    unique = (old.unique_passages if old else 0) + len(added) - len(dying)
    if not unique and not plan.scan:
        raise UserError("that would leave the index empty: keep a document, or `rag ingest --sync PATH` to "
                        "replace them all")
    if not unique:
        raise EmptyCorpus(", ".join(plan.scan or plan.roots), loaded.skipped)
    documents.update(scanned_documents(loaded, new_chunks, old_documents, old_fingerprints, built_at()))
    # The rows hold what is left to write: the posts and chunks would hold ~150 MB more at 1M passages.
    del new_chunks
    loaded.posts.clear()
    fingerprints = {n: fp for n, fp in old_fingerprints.items() if not plan.in_scope(n)}
    fingerprints.update(loaded.fingerprints)
    file_stats = {n: st for n, st in (old.file_stats if old else {}).items() if not plan.in_scope(n)}
    file_stats.update(loaded.stats)
    # The ONNX export depends on the model alone: even a rebuild reuses it while its checksums hold.
    export = current if current and current.spec.model == spec.model else None
    fields = dict(posts=sum(d.posts for d in documents.values()), passages=sum(d.passages for d in documents.values()),
                  roots=plan.roots, excluded=plan.excluded, fingerprints=fingerprints, file_stats=file_stats,
                  documents={n: d.fields() for n, d in sorted(documents.items())}, **_query_model(settings, export))
    changes = Changes(added, Vectors.of(np.zeros((0, 0), np.float32)), dying, next_id)
    if not same_store and previous is not None:  # another backend or place: write every row there
        changes = _everything(previous, changes)
        reuse = {i: row.id for i, row in enumerate(changes.added) if row.id < (old.next_id if old else 0)}
    changes.vectors = _vectors(settings, changes.added, reuse, previous, progress, fields["query_model_files"])
    embedded = len(changes.added) - len(reuse)
    manifest = write_store(settings, spec, changes.vectors.dimension, changes, previous if same_store else None,
                           **fields)
    manifest = rebuild_if_due(settings, spec, manifest)
    remove_stale_files(settings.index_dir, kept | manifest.files())
    return _report(loaded, manifest, embedded, manifest.unique_passages - embedded,
                   changed, removed, started, wrote=True)


def _keep_late(loaded: LoadResult, old: Manifest | None) -> None:
    """A file the reading time did not reach counts as unchanged: the index keeps what it held of it, and
    the next ingest reads it (its recorded size and time no longer match, or it was never recorded)."""
    for name in loaded.late:
        loaded.stats.pop(name, None)
        if old is not None and name in old.fingerprints:
            loaded.fingerprints[name] = old.fingerprints[name]
            if name in old.file_stats:
                loaded.stats[name] = old.file_stats[name]


def diff_records(previous: VectorStore | None, replaced: set[str], chunks: list[Chunk],
                 embed_context: bool) -> tuple[list[Row], list[Row], dict[int, int], int]:
    """What changes when these files' passages are replaced by these chunks: (rows born, rows that die,
    {position in born: id of a dying row with the same vector}, the next free id).

    Only rows with a source in a replaced file, or with the text of a new chunk, are looked at: a passage
    shared with other files keeps those sources, and an unchanged passage keeps its row and id.
    """
    next_id = previous.manifest.next_id if previous else 0
    touched: dict[int, Row] = {}
    if previous is not None:
        touched = {row.id: row for row in previous.records.rows_in_files(replaced)}
        touched.update((row.id, row) for row in previous.records.rows_with_texts(passage_key(c.text) for c in chunks))
    kept = [Chunk(row.record.text, source) for row in sorted(touched.values(), key=lambda r: r.id)
            for source in row.record.sources if source.path not in replaced]
    by_key = {row.record.key: row for row in touched.values()}
    added: list[Row] = []
    unchanged: set[int] = set()
    reuse: dict[int, int] = {}
    for _, text, sources in group_duplicates(kept + chunks):
        record = Record(passage_key(embedding_text(text, sources, embed_context)), text, sources)
        old = by_key.get(record.key)
        if old is not None and old.record == record:
            unchanged.add(old.id)
            continue
        if old is not None:
            reuse[len(added)] = old.id
        added.append(Row(next_id, record))
        next_id += 1
    dying = [row for row in touched.values() if row.id not in unchanged]
    return added, sorted(dying, key=lambda r: r.id), reuse, next_id


def _everything(previous: VectorStore, changes: Changes) -> Changes:
    """The whole index after these changes, for a write into another backend."""
    gone = {row.id for row in changes.removed}
    rows = [row for row in previous.records.all() if row.id not in gone] + changes.added
    return Changes(rows, changes.vectors, [], changes.next_id)


def _vectors(settings: Settings, rows: list[Row], reuse: dict[int, int], previous: VectorStore | None,
             progress: Progress, export: list[FileEntry]) -> Vectors:
    """The rows' vectors in order, made as the writer reads them: those of unchanged texts from the previous
    store, the rest embedded (each batch's texts sorted by length inside the encoder)."""
    todo = len(rows) - len(reuse)
    if todo:
        encoder = _encoder(settings, todo, export)
        dimension = encoder.dimension
    else:
        assert previous is not None  # nothing to embed: every vector is known to it
        dimension = previous.manifest.dimension
    embedded, report = 0, overall_progress(progress, todo)

    def make(start: int, stop: int) -> np.ndarray:
        nonlocal embedded
        out = np.empty((stop - start, dimension), dtype=np.float32)
        fresh = [i for i in range(start, stop) if i not in reuse]
        if fresh:
            texts = [embedding_text(rows[i].record.text, rows[i].record.sources, settings.embed_context)
                     for i in fresh]
            out[np.asarray(fresh) - start] = encoder.encode(texts, _offset(report, embedded, todo))
            embedded += len(fresh)
        again = [i for i in range(start, stop) if i in reuse]
        if again:
            out[np.asarray(again) - start] = previous.vectors([reuse[i] for i in again])  # type: ignore[union-attr]
        return out

    return Vectors(len(rows), dimension, make)


def export_encoder(settings: Settings, export: list[FileEntry]) -> OnnxEncoder:
    """The ONNX export in the index folder, once its files pass their checksums."""
    from .onnx_encoder import OnnxEncoder

    for entry in export:
        verify_file(settings.index_dir, entry)
    model_path = resolve_model_path(settings.embedding_model)
    return OnnxEncoder(Path(settings.index_dir) / QUERY_MODEL_DIR, model_path, model_window(model_path))


class _ExportEncoder:
    """The query path's ONNX export, for a few passages: loading torch would take longer (~10 s) than
    embedding them. Its vectors match sentence-transformers' within 1e-6 cosine distance (tested)."""

    def __init__(self, settings: Settings, export: list[FileEntry]) -> None:
        self.model = export_encoder(settings, export)
        self.dimension = self.model.dimension

    def encode(self, texts: list[str], progress: Progress = False) -> np.ndarray:
        vectors = self.model.encode(texts)
        if callable(progress):
            progress(len(texts), len(texts))
        return vectors


SMALL_INGEST = 256  # passages to embed, at most, for the ONNX export to embed them


def _encoder(settings: Settings, todo: int, export: list[FileEntry]) -> _ExportEncoder | SentenceEncoder:
    if todo <= SMALL_INGEST and export and settings.query_backend == "onnx":
        with contextlib.suppress(RagError):  # a damaged export: sentence-transformers, as the query path does
            return _ExportEncoder(settings, export)
    return load_encoder(resolve_model_path(settings.embedding_model), settings.embed_batch_size)


def _offset(report: Callable[[int, int], None] | None, done: int, total: int) -> Progress:
    """One encode call's progress as part of the whole: the callback hears (done so far, total)."""
    if report is None:
        return False
    return lambda batch_done, _batch_total: report(done + batch_done, total)


def logged(report: IngestReport) -> IngestReport:
    logs.event("ingest", files=report.files, posts=report.posts, passages=report.passages,
               unique_passages=report.unique_passages, embedded=report.embedded, reused=report.reused,
               changed_files=len(report.changed_files), removed_files=len(report.removed_files),
               skipped_files=len(report.skipped), wrote_index=report.wrote_index, seconds=report.seconds)
    return report


def _report(loaded: LoadResult, manifest: Manifest, embedded: int, reused: int,
            changed: list[str], removed: list[str], started: float, wrote: bool) -> IngestReport:
    return IngestReport(
        posts=manifest.posts, passages=manifest.passages, unique_passages=manifest.unique_passages,
        embedded=embedded, reused=reused, files=len(manifest.documents) or len(manifest.fingerprints),
        changed_files=tuple(changed), removed_files=tuple(removed), skipped=tuple(loaded.skipped),
        seconds=round(time.perf_counter() - started, 3), wrote_index=wrote,
        indexed=tuple(loaded.read), warnings=tuple(loaded.warnings),
    )


def _current_manifest(settings: Settings) -> Manifest | None:
    try:
        return read_manifest(settings.index_dir)
    except (IndexMissing, IndexCorrupt):
        return None


def _query_model(settings: Settings, previous: Manifest | None) -> dict:
    """The manifest fields of the ONNX export the query path uses without torch: kept when intact, else
    made anew, so an export that is missing, damaged or was never made comes back with the next ingest.

    A model the exporter cannot handle is not an error: queries then use sentence-transformers.
    """
    if previous and previous.query_model_unsupported:
        return {"query_model_files": [], "query_model_unsupported": True}
    if previous and previous.query_model_files and _intact(settings, previous.query_model_files):
        return {"query_model_files": previous.query_model_files, "query_model_unsupported": False}
    from .onnx_encoder import export_onnx

    try:
        files = export_onnx(resolve_model_path(settings.embedding_model), settings.index_dir / QUERY_MODEL_DIR)
    except OSError as exc:  # a full disk or a read-only folder: worth trying again next time
        log.warning("no ONNX export of %s (%s): queries load sentence-transformers until an ingest makes it",
                    settings.embedding_model, exc)
        return {"query_model_files": [], "query_model_unsupported": False}
    except Exception as exc:  # noqa: BLE001 - any exporter failure means "no fast path", never a failed ingest
        log.warning("no ONNX export of %s (%s): queries will load sentence-transformers",
                    settings.embedding_model, exc)
        return {"query_model_files": [], "query_model_unsupported": True}
    return {"query_model_files": [file_entry(path, settings.index_dir) for path in files],
            "query_model_unsupported": False}


def _intact(settings: Settings, files: list[FileEntry]) -> bool:
    try:
        for entry in files:
            verify_file(settings.index_dir, entry)
    except IndexCorrupt:
        return False
    return True


def _repair_query_model(settings: Settings, manifest: Manifest) -> Manifest:
    """A no-change ingest still makes a missing or damaged export, rewriting only the manifest."""
    fields = _query_model(settings, manifest)
    if fields == {"query_model_files": manifest.query_model_files,
                  "query_model_unsupported": manifest.query_model_unsupported}:
        return manifest
    repaired = dataclasses.replace(manifest, **fields)
    write_manifest(settings.index_dir, repaired)
    return repaired
