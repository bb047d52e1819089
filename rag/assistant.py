"""The library facade that wires the stages: what the CLI, the app and internal tools call."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .config import Settings
from .corpus import load_paths
from .ingest import QUERY_MODEL_DIR, build_spec, changed_files, project_dir, recorded_roots, run_ingest
from .manifest import read_manifest, verify_file
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
        roots = [p for p in recorded_roots(self.settings, manifest) if p.exists()]
        current = load_paths(roots, self.settings.max_file_bytes, project_dir(self.settings), parse=False)
        changed, removed = changed_files(manifest.fingerprints, current.fingerprints)
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
            from .store import FaissStore

            store = FaissStore.open(self.settings.index_dir, build_spec(self.settings))
            self._encoder = self._query_encoder(store.manifest)
            self._store = store
        return self._store, self._encoder

    def _query_encoder(self, manifest):
        """The ONNX export made at ingest (no torch: a fast cold start), else sentence-transformers."""
        from .embeddings import model_window, resolve_model_path

        model_path = resolve_model_path(self.settings.embedding_model)
        if manifest.query_model_files and self.settings.query_backend == "onnx":
            from .onnx_encoder import OnnxEncoder

            for entry in manifest.query_model_files:
                verify_file(self.settings.index_dir, entry)
            return OnnxEncoder(self.settings.index_dir / QUERY_MODEL_DIR, model_path, model_window(model_path))
        from .embeddings import load_encoder

        return load_encoder(model_path, self.settings.embed_batch_size)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        self._store = None


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 2)
