"""Plain BM25 over this index's own passages (bm25s, standard parameters: k1 1.5, b 0.75, English
stopwords, no stemming), for `rag eval --baseline`: the yardstick that dense retrieval must beat."""

from __future__ import annotations

from collections.abc import Callable

from ..config import Settings
from ..extras import require
from .metrics import Result


def bm25_for(settings: Settings, k: int) -> Callable[[str], list[Result]]:
    require("bm25s", "eval", "the BM25 baseline")
    import bm25s

    from ..index.manifest import read_manifest
    from ..ingest import stored_records

    records = stored_records(settings, read_manifest(settings.index_dir))
    results = [Result(frozenset(s.title for s in r.sources), frozenset(s.path for s in r.sources), r.text)
               for r in records]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([r.text for r in records], stopwords="en", show_progress=False),
                    show_progress=False)

    def search(question: str) -> list[Result]:
        tokens = bm25s.tokenize([question], stopwords="en", show_progress=False)
        if not tokens.vocab:  # nothing but stopwords
            return []
        ids, scores = retriever.retrieve(tokens, k=min(k, len(results)), show_progress=False)
        return [results[int(i)] for i, score in zip(ids[0], scores[0]) if score > 0]

    return search
