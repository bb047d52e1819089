"""The library facade that wires the stages: what the CLI, the app and internal tools call."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .config import Settings
from .corpus import load_paths
from .ingest import build_spec, changed_files, run_ingest
from .manifest import read_manifest
from .questions import clean_question
from .types import IndexInfo, IngestReport, SearchResult


class Assistant:
    """Cited search (and, later, answers) over an ingested corpus.

    The index and the model load on first use and stay loaded for the life of the object.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._store = None
        self._encoder = None

    # ------------------------------------------------------------ index

    def ingest(
        self, paths: Sequence[Path | str] | None = None, rebuild: bool = False, progress: bool = False,
        on_wait: Callable[[], None] | None = None,
    ) -> IngestReport:
        report = run_ingest(self.settings, [Path(p) for p in paths or []], rebuild, progress, on_wait)
        if report.wrote_index:
            self.close()
        return report

    def info(self) -> IndexInfo:
        manifest = read_manifest(self.settings.index_dir)
        roots = [Path(p) for p in manifest.roots]
        current = load_paths([p for p in roots if p.exists()], self.settings.max_file_bytes).fingerprints
        changed, removed = changed_files(manifest.fingerprints, current)
        index_bytes = manifest.index_file.bytes + manifest.records_file.bytes
        return IndexInfo(
            index_dir=str(self.settings.index_dir), model=manifest.spec.model, dimension=manifest.dimension,
            posts=manifest.posts, passages=manifest.passages, unique_passages=manifest.unique_passages,
            files=len(manifest.fingerprints), index_bytes=index_bytes, built_at=manifest.built_at,
            changed_files=tuple(changed + removed),
        )

    # ------------------------------------------------------------ queries

    def search(self, question: str, k: int | None = None) -> SearchResult:
        from .retrieval import dense_search

        question, notices = clean_question(question, self.settings.max_question_chars)
        started = time.perf_counter()
        store, encoder = self._loaded()
        loaded = time.perf_counter()
        hits = dense_search(store, encoder, question, k or self.settings.top_k)
        timings = {"load_ms": _ms(started, loaded), "search_ms": _ms(loaded, time.perf_counter())}
        return SearchResult(question, tuple(hits), tuple(notices), timings)

    def _loaded(self):
        if self._store is None:
            from .embeddings import load_encoder, resolve_model_path
            from .store import FaissStore

            self._store = FaissStore.open(self.settings.index_dir, build_spec(self.settings))
            model_path = resolve_model_path(self.settings.embedding_model)
            self._encoder = load_encoder(model_path, self.settings.embed_batch_size)
        return self._store, self._encoder

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        self._store = None


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 2)
