"""The Milvus backend (RAG_STORE=milvus): passage vectors in a Milvus collection, through pymilvus.

RAG_MILVUS_URI is a local path ending in .db (Milvus Lite: embedded, in-process, one process at a time)
or a server URI (http://host:19530, a cluster's proxy, or Zilliz Cloud with RAG_MILVUS_TOKEN).

The collection holds one row per unique passage: its key (the hash of the embedded text) as primary
key and its vector. The passage records and the BM25 table stay in the generation's SQLite file in
RAG_INDEX_DIR, exactly as with FAISS, so lexical search and the passages returned are identical.

An ingest updates the collection in place: it upserts the new passages, publishes the new generation
(records + manifest), and only then deletes passages no longer in the corpus. At every moment the
collection holds at least every key of the published generation, and searches drop keys the loaded
generation does not know, so a crash mid-ingest leaves the previous index usable and the next ingest
removes the leftovers.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from pymilvus import DataType, MilvusClient, MilvusException

from ..config import Settings
from ..errors import IndexCorrupt, IndexMismatch, StoreUnavailable, UserError
from .manifest import Manifest
from .records import Records, Row
from .store import IndexOptions, Vectors, VectorStore

_SERVER_SCHEMES = ("http://", "https://", "tcp://", "unix:")
_BATCH = 2000
_TIMEOUT = 30.0
_KEY, _VECTOR = "key", "vector"
_MODEL, _DIMENSION, _KIND = "rag.model", "rag.dimension", "rag.index_type"

# Milvus Lite runs one gRPC server per database folder inside this process. It is shared by every
# client on that folder here and stopped when the last one closes, so the folder's lock is released.
_lite_users: dict[str, int] = {}
_lite_guard = threading.Lock()

# pymilvus logs every failed call with a traceback on its own handler; failures here become one-line errors.
if not os.environ.get("RAG_DEBUG"):
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class MilvusTarget:
    uri: str
    collection: str
    token: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> MilvusTarget:
        uri = settings.milvus_uri or str(Path(settings.index_dir) / "milvus.db")
        if not uri.startswith(_SERVER_SCHEMES) and not uri.endswith(".db"):
            raise UserError(f"RAG_MILVUS_URI={uri!r}: a Milvus Lite path must end in .db, a server URI starts "
                            "with http:// or https://")
        token = settings.milvus_token.get_secret_value() if settings.milvus_token else ""
        return cls(uri, settings.milvus_collection, token)

    @property
    def local(self) -> bool:
        return not self.uri.startswith(_SERVER_SCHEMES)

    @property
    def display_uri(self) -> str:
        """The URI without any user:password in it."""
        if self.local:
            return self.uri
        parts = urlsplit(self.uri)
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    def location(self) -> dict[str, str]:
        return {"uri": self.display_uri, "collection": self.collection}

    def _scrub(self, text: str) -> str:
        return text.replace(self.token, "***") if self.token else text

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """A failed Milvus call becomes one line naming the target (never the token)."""
        try:
            yield
        except MilvusException as exc:
            detail = self._scrub(str(getattr(exc, "message", "") or exc))
            raise StoreUnavailable(f"Milvus at {self.display_uri} failed ({detail}): check that it is running, "
                                   "or run `rag ingest` to rebuild the collection") from None

    @contextlib.contextmanager
    def connect(self) -> Iterator[MilvusClient]:
        client = self.open_client()
        try:
            yield client
        finally:
            self.close_client(client)

    def open_client(self) -> MilvusClient:
        path = str(Path(self.uri).resolve()) if self.local else None
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            with _lite_guard:
                _lite_users[path] = _lite_users.get(path, 0) + 1
        quiet = logging.getLogger("milvus_lite")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL + 1)  # a failed start is reported below, in one line
        try:
            return MilvusClient(uri=path or self.uri, token=self.token, timeout=_TIMEOUT)
        except MilvusException as exc:
            if path:
                self._release(path)
            raise StoreUnavailable(self._unavailable(path, exc)) from None
        finally:
            quiet.setLevel(level)

    def _unavailable(self, path: str | None, exc: MilvusException) -> str:
        if path and _locked_elsewhere(Path(path)):
            return (f"the Milvus Lite database {self.uri} is open in another process (Milvus Lite allows one "
                    "process at a time): stop that process (the app?), or point RAG_MILVUS_URI at a Milvus server")
        detail = self._scrub(str(getattr(exc, "message", "") or exc))
        return (f"cannot open Milvus at {self.display_uri} ({detail}): check RAG_MILVUS_URI and RAG_MILVUS_TOKEN, "
                "and that the server is running")

    def close_client(self, client: MilvusClient) -> None:
        with contextlib.suppress(Exception):
            client.close()
        if self.local:
            self._release(str(Path(self.uri).resolve()))

    @staticmethod
    def _release(path: str) -> None:
        with _lite_guard:
            _lite_users[path] -= 1
            last = _lite_users[path] <= 0
            if last:
                del _lite_users[path]
        if last:
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(path)


def _locked_elsewhere(path: Path) -> bool:
    lock = path / "LOCK"
    if not lock.exists():
        return False
    with lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def _search_params(kind: str, ef_search: int, k: int) -> dict:
    return {"metric_type": "IP", "params": {"ef": max(ef_search, k)} if kind == "hnsw" else {}}


class MilvusStore(VectorStore):
    """A loaded generation whose vectors are in a Milvus collection."""

    name = "milvus"

    def __init__(self, settings: Settings, manifest: Manifest, records: Records, target: MilvusTarget,
                 client: MilvusClient) -> None:
        super().__init__(manifest, records)
        self.target = target
        self.client: MilvusClient | None = client
        self.ef_search = settings.hnsw_ef_search

    def _close_vectors(self) -> None:
        if self.client is not None:
            self.target.close_client(self.client)
            self.client = None

    def _client(self) -> MilvusClient:
        if self.client is None:
            raise StoreUnavailable("the Milvus connection of this index generation is closed")
        return self.client

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        if vector.shape[-1] != self.manifest.dimension:
            raise IndexMismatch(f"query vectors have {vector.shape[-1]} dimensions, "
                                f"the index {self.manifest.dimension}")
        with self.target.errors():
            results = self._client().search(
                self.target.collection, data=[np.asarray(vector, dtype=np.float32).tolist()], limit=k,
                anns_field=_VECTOR, output_fields=[_KEY],
                search_params=_search_params(self.manifest.index_type, self.ef_search, k))
        ids = self._records.ids_of_keys([hit["entity"][_KEY] for hit in results[0]])
        hits = [(ids.get(hit["entity"][_KEY]), float(hit["distance"])) for hit in results[0]]
        return [(i, score) for i, score in hits if i is not None]  # keys of a newer, unpublished write

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        if not len(ids):
            return np.zeros((0, self.manifest.dimension), dtype=np.float32)
        keys = self._records.keys_of(ids)
        with self.target.errors():
            found = fetch_vectors(self._client(), self.target.collection, list(dict.fromkeys(keys)))
        if len(found) != len(set(keys)):
            raise IndexCorrupt(f"{len(set(keys)) - len(found)} passage vectors are missing from Milvus "
                               f"collection {self.target.collection}")
        return np.stack([found[key] for key in keys])


class MilvusBackend:
    name = "milvus"

    @classmethod
    def open(cls, settings: Settings, manifest: Manifest, records: Records) -> MilvusStore:
        target = MilvusTarget.from_settings(settings)
        if manifest.store_location != target.location():
            raise IndexMismatch(f"Milvus location: index is in {manifest.store_location}, settings want "
                                f"{target.location()}")
        client = target.open_client()
        try:
            with target.errors():
                check_collection(client, target, manifest.spec.model, manifest.dimension)
                client.load_collection(target.collection)
            return MilvusStore(settings, manifest, records, target, client)
        except BaseException:
            target.close_client(client)
            raise

    @classmethod
    @contextlib.contextmanager
    def writer(cls, settings: Settings, model: str, dimension: int, kind: str,
               options: IndexOptions) -> Iterator[MilvusWriter]:
        target = MilvusTarget.from_settings(settings)
        with target.connect() as client, target.errors():
            yield MilvusWriter(client, target, model, dimension, kind, options)

    @classmethod
    def location(cls, settings: Settings) -> dict[str, str]:
        return MilvusTarget.from_settings(settings).location()

    @classmethod
    def describe(cls, settings: Settings, manifest: Manifest) -> str:
        uri = manifest.store_location.get("uri", "")
        kind = "Milvus server" if uri.startswith(_SERVER_SCHEMES) else "Milvus Lite"
        return f"{kind} {uri}, collection {manifest.store_location.get('collection')}"

    @classmethod
    def needs_rebuild(cls, manifest: Manifest, options: IndexOptions) -> bool:
        return False  # Milvus deletes rows and maintains its own index segments

    @classmethod
    def rebuild(cls, store: VectorStore, index_dir: Path, generation: str, options: IndexOptions) -> dict:
        raise NotImplementedError("Milvus maintains its own index")


class MilvusWriter:
    """Updates the collection in place: upserts before the generation is published, deletes after."""

    def __init__(self, client: MilvusClient, target: MilvusTarget, model: str, dimension: int, kind: str,
                 options: IndexOptions) -> None:
        self.client, self.target, self.model, self.dimension = client, target, model, dimension
        self.kind, self.options = kind, options
        reusable = _reusable_keys(client, target, model, dimension, kind)
        self._recreate = reusable is None
        self.existing: set[str] = reusable or set()
        self.written: set[str] = set()

    def write(self, generation: str, rows: Sequence[Row], vectors: Vectors, removed: Sequence[int],
              previous: VectorStore | None) -> dict:
        if self._recreate:
            vectors = Vectors.of(vectors.array())  # embed everything before the old collection goes
            if self.client.has_collection(self.target.collection):
                self.client.drop_collection(self.target.collection)
            _create(self.client, self.target, self.model, self.dimension, self.kind, self.options)
        self.written = {row.record.key for row in rows}
        for first, part in vectors.batches():
            for start in range(0, len(part), _BATCH):  # as Python lists, 2000 vectors at a time (~25 MB)
                todo = [{_KEY: row.record.key, _VECTOR: vector.tolist()} for row, vector in
                        zip(rows[first + start:first + start + _BATCH], part[start:start + _BATCH])
                        if row.record.key not in self.existing]
                if todo:
                    self.client.upsert(self.target.collection, todo)
        return {"index_file": None, "segment_files": [], "deleted_file": None, "index_type": self.kind}

    def location(self) -> dict[str, str]:
        return self.target.location()

    def finish(self, stale_keys: set[str] | None) -> None:
        # After publishing: readers of the old generation lose little, and drop keys they do not know.
        stale = sorted((self.existing - self.written) if stale_keys is None else stale_keys)
        for start in range(0, len(stale), _BATCH):
            self.client.delete(self.target.collection, ids=stale[start:start + _BATCH])


def fetch_vectors(client: MilvusClient, collection: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    for start in range(0, len(keys), _BATCH):
        rows = client.get(collection, ids=list(keys[start:start + _BATCH]), output_fields=[_VECTOR])
        found.update((row[_KEY], np.asarray(row[_VECTOR], dtype=np.float32)) for row in rows)
    return found


def check_collection(client: MilvusClient, target: MilvusTarget, model: str, dimension: int) -> dict:
    """The collection's properties, refusing one that is missing or holds another model's vectors."""
    if not client.has_collection(target.collection):
        raise IndexCorrupt(f"Milvus collection {target.collection} is missing at {target.display_uri}")
    properties = client.describe_collection(target.collection).get("properties", {})
    if _MODEL not in properties:
        raise StoreUnavailable(f"Milvus collection {target.collection} at {target.display_uri} was not made by "
                               "rag: set RAG_MILVUS_COLLECTION to another name")
    if properties[_MODEL] != model or properties.get(_DIMENSION) != str(dimension):
        raise IndexMismatch(f"Milvus collection {target.collection} holds {properties.get(_DIMENSION)}-d vectors of "
                            f"{properties[_MODEL]!r}, the index wants {dimension}-d vectors of {model!r}")
    return properties


# ---------------------------------------------------------------- writing


def _reusable_keys(client: MilvusClient, target: MilvusTarget, model: str, dimension: int,
                   kind: str) -> set[str] | None:
    """The keys in the collection when it can be updated in place; None when it must be made anew."""
    if not client.has_collection(target.collection):
        return None
    try:
        properties = check_collection(client, target, model, dimension)
    except IndexMismatch:
        return None
    if properties.get(_KIND) != kind:
        return None
    client.load_collection(target.collection)
    return _all_keys(client, target.collection)


def _all_keys(client: MilvusClient, collection: str) -> set[str]:
    noisy = logging.getLogger("pymilvus.client.iterator.query_iterator")
    level = noisy.level
    noisy.setLevel(logging.ERROR)  # Milvus Lite has no MVCC timestamp to hand out; harmless
    try:
        iterator = client.query_iterator(collection, batch_size=10_000, filter="", output_fields=[_KEY])
        keys: set[str] = set()
        while batch := iterator.next():
            keys.update(row[_KEY] for row in batch)
        iterator.close()
        return keys
    finally:
        noisy.setLevel(level)


def _create(client: MilvusClient, target: MilvusTarget, model: str, dimension: int, kind: str,
            options: IndexOptions) -> None:
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field(_KEY, DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field(_VECTOR, DataType.FLOAT_VECTOR, dim=dimension)
    index = client.prepare_index_params()
    if kind == "hnsw":
        index.add_index(_VECTOR, index_type="HNSW", metric_type="IP",
                        params={"M": options.m, "efConstruction": options.ef_construction})
    else:
        index.add_index(_VECTOR, index_type="FLAT", metric_type="IP")
    client.create_collection(target.collection, schema=schema, index_params=index, consistency_level="Strong")
    client.alter_collection_properties(target.collection, properties={
        _MODEL: model, _DIMENSION: str(dimension), _KIND: kind})
