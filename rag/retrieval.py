"""Dense retrieval over the FAISS store: cosine scores, every source of each passage."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from .store import FaissStore
from .types import Hit


class QueryEncoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


def dense_search(store: FaissStore, encoder: QueryEncoder, question: str, k: int) -> list[Hit]:
    vector = encoder.encode([question])[0]
    ranked = store.search(vector, k)
    passages = store.passages([i for i, _ in ranked]) if ranked else []
    return [Hit(passage, score) for passage, (_, score) in zip(passages, ranked)]
