"""Hybrid retrieval: dense (FAISS or Milvus) and lexical (BM25) candidates scored together, then diversified.

A candidate's score is its cosine to the question plus a share of its BM25 relative to the question's best
BM25 match (a convex combination of scores, not of ranks): a passage that only shares a few words with the
question gains little on one the embedding places close to it. Reciprocal rank fusion gave the first BM25
match as much as the first dense one however weak the match, so documents added beside the case studies
pulled their right passages out of the top 5 (README, "A mixed library").

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


def fuse(cosine: dict[int, float], bm25: dict[int, float], dense_weight: float,
         lexical_weight: float) -> dict[int, float]:
    """(dense_weight * cosine + lexical_weight * BM25 / the best BM25) / the weights' sum, per candidate: 1.0 is a
    passage identical to the question in meaning that is also its best word match."""
    best = max(bm25.values(), default=0.0) or 1.0
    total = dense_weight + lexical_weight
    return {i: (dense_weight * cos + lexical_weight * bm25.get(i, 0.0) / best) / total for i, cos in cosine.items()}


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
    ids = list(dict.fromkeys([i for i, _ in dense] + [i for i, _ in lexical]))
    if not ids:
        return []
    vectors = store.vectors(ids)
    cosine = dict(zip(ids, (vectors @ query).tolist()))
    bm25 = dict(lexical)
    fused = fuse(cosine, bm25, settings.dense_weight, settings.lexical_weight)
    relevance = np.array([fused[i] for i in ids])
    relevance -= min(relevance.min(), 0.0)  # MMR weighs relevance in [0, 1] against cosine redundancy
    order = diversify(relevance / (relevance.max() or 1.0), vectors, k, settings.mmr_lambda)
    chosen = sorted((ids[p] for p in order), key=lambda i: fused[i], reverse=True)  # MMR picks which; relevance orders
    return [Hit(passage, fused[passage.id], cosine[passage.id], bm25.get(passage.id, 0.0))
            for passage in store.passages(chosen)]
