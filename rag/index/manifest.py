"""The index manifest (plain JSON, no pickle) and the checksums of the files it names.

The manifest is written last and names the generation of files it belongs to, so replacing it is
the one atomic step that switches readers from the old index to the new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path

from ..errors import IndexCorrupt, IndexMismatch, IndexMissing, IndexNotAFolder
from .files import MANIFEST_NAME, not_a_folder, publish

# What must hold before a manifest is published, set by the writer's lock (rag.ingest.writer_lock).
_BEFORE_PUBLISH: ContextVar[Callable[[], None] | None] = ContextVar("before_publish", default=None)

FORMAT_VERSION = 3  # 2: FTS5 lexical table beside the passage records; 3: stable ids, updated in place


@dataclass(frozen=True)
class BuildSpec:
    """What an index must have been built with to be usable by the current settings."""

    model: str
    chunking_version: int
    max_tokens: int
    embed_context: bool = False
    format_version: int = FORMAT_VERSION

    def differences(self, other: BuildSpec) -> list[str]:
        return [
            f"{name}: index has {getattr(other, name)!r}, settings want {getattr(self, name)!r}"
            for name in ("format_version", "model", "chunking_version", "max_tokens", "embed_context")
            if getattr(self, name) != getattr(other, name)
        ]


@dataclass(frozen=True)
class FileEntry:
    """A file of the index. Its checksum is verified in full when its size or modification time differ
    from those recorded when it was written: a file changed since then is read only if it still matches."""

    name: str
    sha256: str
    bytes: int
    mtime_ns: int = 0


@dataclass(frozen=True)
class Manifest:
    spec: BuildSpec
    dimension: int
    generation: str
    built_at: str
    index_file: FileEntry | None  # the FAISS base segment; None when the vectors live in Milvus
    records_file: FileEntry  # the SQLite records, updated in place: no checksum (each row carries its own)
    posts: int
    passages: int
    unique_passages: int
    roots: list[str] = field(default_factory=list)
    fingerprints: dict[str, str] = field(default_factory=dict)
    # Each file's size, times and inode when its fingerprint was taken: unchanged, it is not read again.
    file_stats: dict[str, list[int]] = field(default_factory=dict)
    # The torch-free export of the model for queries; empty when it could not be made.
    query_model_files: list[FileEntry] = field(default_factory=list)
    # The exporter cannot handle this model: ingests stop trying (a full disk is no such case).
    query_model_unsupported: bool = False
    # The vector index kind ("flat" or "hnsw"); manifests written before index types existed held a flat index.
    index_type: str = "flat"
    # Which backend holds the vectors ("faiss" or "milvus") and, for Milvus, where: the URI as configured
    # (credentials never written) and the collection. Manifests written before backends existed are FAISS.
    store: str = "faiss"
    store_location: dict[str, str] = field(default_factory=dict)
    # Paths under the roots that were removed from the index: a re-scan of the roots leaves them out.
    excluded: list[str] = field(default_factory=list)
    # Each indexed file: {kind, pages, posts, passages, added, updated} (see rag.types.Document).
    documents: dict[str, dict] = field(default_factory=dict)
    # The records' generation number (rows born after it are not yet published) and the next passage id.
    serial: int = 1
    next_id: int = 0
    # FAISS: the delta segments after the base, and the ids of passages deleted since the base was built.
    segment_files: list[FileEntry] = field(default_factory=list)
    deleted_file: FileEntry | None = None

    def known_files(self) -> dict[str, tuple[str, list[int]]]:
        """{file: (fingerprint, stat)} for the files whose stat was recorded."""
        return {name: (self.fingerprints[name], stat) for name, stat in self.file_stats.items()
                if name in self.fingerprints}

    def files(self) -> set[str]:
        """The names of the files of this generation in the index folder (besides the query model)."""
        entries = [self.index_file, self.records_file, self.deleted_file, *self.segment_files]
        return {entry.name for entry in entries if entry is not None}

    def to_json(self) -> str:
        # What asdict gives, without its deep copy of every document's entry (3 s at 8,000 files).
        return json.dumps(_plain(self), default=_plain, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        try:
            data = json.loads(text)
            data["spec"] = BuildSpec(**data["spec"])
            data["index_file"] = FileEntry(**data["index_file"]) if data["index_file"] is not None else None
            data["records_file"] = FileEntry(**data["records_file"])
            data["query_model_files"] = [FileEntry(**f) for f in data.get("query_model_files", [])]
            data["segment_files"] = [FileEntry(**f) for f in data.get("segment_files", [])]
            data["deleted_file"] = FileEntry(**data["deleted_file"]) if data.get("deleted_file") else None
            known = {f.name for f in fields(cls)}  # fields of older formats (index_params) are ignored
            return cls(**{name: value for name, value in data.items() if name in known})
        except (ValueError, TypeError, KeyError) as exc:
            raise IndexCorrupt(f"unreadable {MANIFEST_NAME}: {type(exc).__name__}") from exc

    def check_spec(self, expected: BuildSpec) -> None:
        problems = expected.differences(self.spec)
        if problems:
            raise IndexMismatch("; ".join(problems))

    def check_store(self, wanted: str) -> None:
        if self.store != wanted:
            raise IndexMismatch(f"store: index is in {self.store}, settings want {wanted}; set RAG_STORE={self.store}, "
                                f"or `rag migrate --to {wanted}` to copy it without re-embedding")


def read_manifest(index_dir: Path) -> Manifest:
    path = index_dir / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise IndexMissing(index_dir) from None
    except NotADirectoryError:  # not damage: `rag ingest --rebuild` could not write there either
        raise IndexNotAFolder(not_a_folder(index_dir) or index_dir) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexCorrupt(f"cannot read {MANIFEST_NAME}: {exc}") from exc
    return Manifest.from_json(text)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_entry(path: Path, index_dir: Path | None = None) -> FileEntry:
    name = path.relative_to(index_dir).as_posix() if index_dir else path.name
    stat = path.stat()
    return FileEntry(name, sha256_file(path), stat.st_size, stat.st_mtime_ns)


def records_entry(path: Path) -> FileEntry:
    """The records file changes in place: named, never checksummed as a whole."""
    return FileEntry(path.name, "", 0)


def verify_file(index_dir: Path, entry: FileEntry) -> Path:
    """The file's path, once it is known to hold what was written (a full checksum if it may have changed)."""
    path = index_dir / entry.name
    try:
        stat = path.stat()
    except OSError:
        raise IndexCorrupt(f"{entry.name} is missing") from None
    if not entry.sha256:
        return path
    if stat.st_size != entry.bytes:
        raise IndexCorrupt(f"{entry.name} does not match its checksum")
    if (stat.st_mtime_ns != entry.mtime_ns or not entry.mtime_ns) and sha256_file(path) != entry.sha256:
        raise IndexCorrupt(f"{entry.name} does not match its checksum")
    return path


@contextlib.contextmanager
def before_publish(check: Callable[[], None]) -> Iterator[None]:
    """Run `check` before each manifest this thread publishes in the block (it raises to stop the publish):
    the writer's lock, still held."""
    token = _BEFORE_PUBLISH.set(check)
    try:
        yield
    finally:
        _BEFORE_PUBLISH.reset(token)


def write_manifest(index_dir: Path, manifest: Manifest) -> None:
    check = _BEFORE_PUBLISH.get()
    if check is not None:
        check()
    tmp = index_dir / f"{MANIFEST_NAME}.{manifest.generation}.tmp"
    tmp.write_text(manifest.to_json(), encoding="utf-8")
    publish(tmp, index_dir / MANIFEST_NAME)
    # A writer killed while writing its manifest left one under its own generation's name; the ingest lock
    # is held, so any other is stale: the next publisher clears it, whichever code path wrote the generation.
    for stale in index_dir.glob(f"{MANIFEST_NAME}.*.tmp"):
        stale.unlink(missing_ok=True)


def _plain(value: object) -> dict:
    """A dataclass's fields as a dict, its nested values left to json (which calls this again for them)."""
    if not is_dataclass(value) or isinstance(value, type):
        raise TypeError(f"{type(value).__name__} is not JSON serializable")
    return {f.name: getattr(value, f.name) for f in fields(value)}
