"""Hybrid retrieval: dense (FAISS or Milvus) and lexical (BM25) rankings fused by reciprocal rank, then diversified.

Each hit keeps its dense cosine similarity next to the fused score: the fused score orders results,
the cosine is what abstention and the answerers compare with thresholds, since it means the same for
every question.
"""

from __future__ import annotations

import re
from typing import Protocol

import numpy as np

from .config import Settings
from .index.store import VectorStore
from .text import STOPWORDS
from .types import Hit

# BM25 weights of the lexical table's columns: passage text, post titles, section headings.
_COLUMN_WEIGHTS = (1.0, 0.5, 0.5)


class QueryEncoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


def lexical_terms(question: str) -> list[str]:
    words = re.findall(r"\w+", question.lower())
    return list(dict.fromkeys(w for w in words if w not in STOPWORDS and (len(w) > 1 or w.isdigit())))


def fuse(rankings: list[tuple[list[int], float]], rrf_k: int) -> dict[int, float]:
    """Reciprocal rank fusion, scaled so a passage first in every ranking scores 1.0."""
    total = sum(weight for _, weight in rankings) / (rrf_k + 1) or 1.0
    fused: dict[int, float] = {}
    for ids, weight in rankings:
        for rank, passage_id in enumerate(ids, 1):
            fused[passage_id] = fused.get(passage_id, 0.0) + weight / (rrf_k + rank) / total
    return fused


def diversify(relevance: np.ndarray, vectors: np.ndarray, k: int, mmr_lambda: float) -> list[int]:
    """Maximal marginal relevance: positions of the k picks, each relevant and unlike those before it."""
    picked: list[int] = []
    closest = np.full(len(relevance), -np.inf)
    for _ in range(min(k, len(relevance))):
        redundancy = np.where(np.isfinite(closest), closest, 0.0)
        gain = mmr_lambda * relevance - (1 - mmr_lambda) * redundancy
        gain[picked] = -np.inf
        best = int(np.argmax(gain))
        picked.append(best)
        closest = np.maximum(closest, vectors @ vectors[best])
    return picked


def hybrid_search(store: VectorStore, encoder: QueryEncoder, question: str, k: int, settings: Settings) -> list[Hit]:
    query = encoder.encode([question])[0]
    fetch = max(settings.fetch_k, k)
    dense = store.search(query, fetch)
    lexical = store.lexical(lexical_terms(question), fetch, _COLUMN_WEIGHTS,
                            [i for i, _ in dense]) if settings.lexical_weight else []
    fused = fuse([([i for i, _ in dense], settings.dense_weight),
                  ([i for i, _ in lexical], settings.lexical_weight)], settings.rrf_k)
    ids = sorted(fused, key=lambda i: fused[i], reverse=True)
    if not ids:
        return []
    vectors = store.vectors(ids)
    relevance = np.array([fused[i] for i in ids])
    order = diversify(relevance / (relevance.max() or 1.0), vectors, k, settings.mmr_lambda)  # all 0: a 0 weight
    chosen = sorted((ids[p] for p in order), key=lambda i: fused[i], reverse=True)  # MMR picks which; relevance orders
    bm25 = dict(lexical)
    cosine = dict(zip(ids, (vectors @ query).tolist()))
    return [Hit(passage, fused[passage.id], cosine[passage.id], bm25.get(passage.id, 0.0))
            for passage in store.passages(chosen)]
