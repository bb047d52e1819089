"""The reader: a cross-encoder that reads a question and a sentence together and says whether the
sentence answers it. Three uses: rerank retrieved passages, pick the sentence an extractive answer
quotes, and abstain when no retrieved sentence answers (a passage about the topic that lacks the fact).

RAG_READER_MODEL: "bundled" (a MiniLM-L6 fine-tuned here on SQuAD train questions, shipped in
rag/models/reader and checked against its SHA-256 on load; see scripts/reader/), "none", or a folder or
Hub name of your own cross-encoder with one relevance logit (exported to ONNX on first use).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..config import Settings
from ..errors import UserError
from ..text import sentence_units
from .crossencoder import META_FILE, MODEL_FILE, CrossEncoder, load_cross_encoder

BUNDLED = "bundled"
NONE = "none"
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "models" / "reader"
BUNDLED_SHA256 = ""


class Reader:
    """P(the text answers the question), read as a sentence after the one before it."""

    def __init__(self, model: CrossEncoder) -> None:
        self.model = model
        self.threshold = model.threshold

    def sentence_scores(self, question: str, sentences: Sequence[str]) -> np.ndarray:
        return self.model.scores([(question, s) for s in sentences])[:, 0]

    def passage_scores(self, question: str, passages: Sequence[str]) -> np.ndarray:
        """Each passage's best sentence (with its predecessor): passages longer than the model's window
        are read whole, not cut after their first sentences."""
        windows, owner = [], []
        for index, text in enumerate(passages):
            units = sentence_units(text) or [text]
            for order, sentence in enumerate(units):
                windows.append(sentence if order == 0 else f"{units[order - 1]} {sentence}")
                owner.append(index)
        scores = self.sentence_scores(question, windows)
        best = np.zeros(len(passages), dtype=np.float32)
        np.maximum.at(best, np.array(owner, dtype=np.int64), scores)
        return best


def load_reader(settings: Settings) -> Reader | None:
    """The configured reader, or None when RAG_READER_MODEL is "none"."""
    spec = settings.reader_model.strip()
    if spec.lower() == NONE:
        return None
    if spec.lower() == BUNDLED:
        return Reader(_bundled())
    return Reader(load_cross_encoder(spec, Path(settings.index_dir) / "reader"))


@functools.lru_cache(maxsize=1)
def _bundled() -> CrossEncoder:
    model = BUNDLED_DIR / MODEL_FILE
    if not model.is_file() or not (BUNDLED_DIR / META_FILE).is_file():
        raise UserError(f"the bundled reader model is missing from {BUNDLED_DIR}: reinstall rag, or set "
                        "RAG_READER_MODEL=none")
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    if digest != BUNDLED_SHA256:
        raise UserError(f"the bundled reader model {model} is damaged (SHA-256 {digest[:12]}..., expected "
                        f"{BUNDLED_SHA256[:12]}...): reinstall rag, or set RAG_READER_MODEL=none")
    return CrossEncoder(BUNDLED_DIR)
