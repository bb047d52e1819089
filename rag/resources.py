"""What questions read, loaded once and lent out: the index generation, the query encoder and the
extractive answerer's name matcher (whose word vectors are cached across questions)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from .answer.grounding import NameMatcher
from .config import Settings
from .index.files import MANIFEST_NAME
from .index.manifest import FileEntry, Manifest
from .index.registry import open_store
from .index.store import VectorStore
from .ingest import build_spec, export_encoder
from .retrieval import QueryEncoder
from .sources import CASE_STUDIES, library_name


@dataclass
class Loaded:
    store: VectorStore
    encoder: QueryEncoder
    matcher: NameMatcher
    library: str = CASE_STUDIES  # what answers call the documents (sources.library_name)

    def close(self) -> None:
        self.store.close()


class Loader:
    """Opens the current generation; keeps the query encoder (and its matcher) while its files are the same,
    so a re-ingest that leaves the model alone does not reload it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._encoder: tuple[tuple[FileEntry, ...], QueryEncoder, NameMatcher] | None = None

    def stamp(self) -> object:
        """What identifies the published generation: the manifest file's identity (publishing replaces it)."""
        try:
            stat = (Path(self.settings.index_dir) / MANIFEST_NAME).stat()
        except OSError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def __call__(self) -> Loaded:
        store = open_store(self.settings, build_spec(self.settings))
        try:
            encoder, matcher = self._encoder_for(store.manifest)
        except BaseException:
            store.close()
            raise
        return Loaded(store, encoder, matcher, library_name(self.settings.collection, store.manifest.documents))

    def _encoder_for(self, manifest: Manifest) -> tuple[QueryEncoder, NameMatcher]:
        files = tuple(manifest.query_model_files)
        with self._lock:
            if self._encoder is None or self._encoder[0] != files:
                encoder = query_encoder(self.settings, manifest)
                self._encoder = (files, encoder, NameMatcher(encoder))
            return self._encoder[1], self._encoder[2]


def query_encoder(settings: Settings, manifest: Manifest) -> QueryEncoder:
    """The ONNX export made at ingest (no torch: a fast cold start), else sentence-transformers."""
    if manifest.query_model_files and settings.query_backend == "onnx":
        return export_encoder(settings, manifest.query_model_files)
    from .embeddings import load_encoder, resolve_model_path

    return load_encoder(resolve_model_path(settings.embedding_model), settings.embed_batch_size)
