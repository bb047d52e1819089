"""The offline answerer: the retrieved sentences that best answer the question, each with its marker.

Every sentence is quoted from a passage, so every citation is supported by construction; the answer
goes through the same citation check as an LLM draft all the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .chunking import split_sentences
from .retrieval import QueryEncoder
from .types import Hit

# A sentence must come this close to the best one to join it: keeps answers short and on topic.
_MARGIN = 0.12
_PER_PASSAGE = 2


def extractive_draft(question: str, hits: Sequence[Hit], encoder: QueryEncoder, max_sentences: int) -> str:
    candidates = [(rank, order, sentence)
                  for rank, hit in enumerate(hits)
                  for order, sentence in enumerate(split_sentences(hit.passage.text))]
    if not candidates:
        return ""
    vectors = encoder.encode([question] + [sentence for _, _, sentence in candidates])
    # The sentence's own similarity, plus its passage's: a sentence reads best in a passage that fits.
    scores = vectors[1:] @ vectors[0] + 0.5 * np.array([hits[rank].score for rank, _, _ in candidates])
    best = float(scores.max())
    chosen: list[tuple[int, int, str]] = []
    for index in np.argsort(-scores, kind="stable"):
        rank, order, sentence = candidates[index]
        if scores[index] < best - _MARGIN or len(chosen) == max_sentences:
            break
        if sum(1 for r, _, _ in chosen if r == rank) < _PER_PASSAGE:
            chosen.append((rank, order, sentence))
    return " ".join(f"{sentence} [{rank + 1}]" for rank, _, sentence in sorted(chosen))
