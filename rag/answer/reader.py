"""The reading model: THE one place that scores (question, sentence) and (claim, evidence) pairs with the
shipped cross-encoder. One model, two tasks, told apart by a marker at the start of the first segment:
the extractive answer, answerability, follow-ups and verification all call it.

The pair formats below are a contract with the training script (scripts/reader/pairs.py builds its pairs
with these same functions): change them only together with a retrained model.

RAG_READER_MODEL: `bundled` (the model shipped in rag/models/reader, checked against its SHA-256 on load),
another ONNX export folder (model.onnx, tokenizer.json, meta.json), or a sentence-transformers cross-encoder
(a folder or a Hub name, exported to ONNX once, next to the index). A model whose meta.json has no
"markers" gets the pairs without them: any relevance or NLI cross-encoder works as it is.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..config import Settings
from ..errors import ReaderUnavailable, VerifierUnavailable
from .crossencoder import META_FILE, MODEL_FILE, SUPPORTED, CrossEncoder, load_cross_encoder

READ_MARKER, VERIFY_MARKER = "question:", "claim:"
MAX_LENGTH = 128  # word pieces per pair: a question or claim and one to three sentences
BUNDLED, OVERLAP = "bundled", "overlap"
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "models" / "reader"
# The shipped files' SHA-256: a flipped byte is refused, never read as a different model.
BUNDLED_SHA256 = {
    "meta.json": "e654c305182d322a6929c9dbddaf5d3dd5e0f444c18c2683d33a5e50bcb737d1",
    "model.onnx": "6bc2bc18e12d941acd2d6369117a90b77ef5b773e0f243a21b4edb7cff60711e",
    "tokenizer.json": "2fc687b11de0bc1b3d8348f92e3b49ef1089a621506c7661fbf3248fcd54947e",
}


def read_pair(question: str, sentence: str, context: str = "") -> tuple[str, str]:
    """Does `sentence` answer `question`? `context` (title, section, the sentence before) resolves pronouns;
    it comes after the sentence so that truncation cuts it first."""
    second = f"{sentence} | {context}" if context.strip() else sentence
    return f"{READ_MARKER} {question.strip()}", second.strip()


def verify_pair(claim: str, evidence: str) -> tuple[str, str]:
    """Does `evidence` support `claim`?"""
    return f"{VERIFY_MARKER} {claim.strip()}", evidence.strip()


class ReadingModel:
    """P(answers) for question/sentence pairs and P(supported) for claim/evidence pairs, from one model.

    `scores` and `threshold` make it a verifier model as rag.answer.verify expects."""

    def __init__(self, encoder: CrossEncoder, meta: dict) -> None:
        self.encoder = encoder
        self.markers = bool(meta.get("markers"))
        self.threshold = float(meta.get("verify_threshold", meta.get("threshold", 0.5)))
        self.answer_threshold = float(meta.get("answer_threshold", 0.5))
        self.rule = meta.get("combine")  # {"logit", "coverage", "bias", "veto"}: fitted with the threshold

    def combine(self, supported: np.ndarray, coverage: float) -> np.ndarray:
        """P(supported) as the calibrated rule reads it: the model's logit and the share of the claim's
        content words that the passages hold (a claim of words no passage has is rarely supported), and 0
        where the model is sure on its own (below the veto: a contradiction that reuses the words)."""
        if not self.rule:
            return supported
        p = np.clip(supported, 1e-4, 1 - 1e-4)
        z = self.rule["logit"] * np.log(p / (1 - p)) + self.rule["coverage"] * coverage + self.rule["bias"]
        return np.where(supported < self.rule.get("veto", 0.0), 0.0, 1 / (1 + np.exp(-z)))

    def answers(self, question: str, sentences: Sequence[tuple[str, str]]) -> np.ndarray:
        """P(the sentence answers the question) for each (sentence, context)."""
        pairs = [read_pair(question, s, c) if self.markers else (question, s) for s, c in sentences]
        return self.encoder.scores(pairs)[:, SUPPORTED]

    def scores(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """(supported, unsupported, contradicted) for (claim, evidence) pairs."""
        return self.encoder.scores([verify_pair(c, e) for c, e in pairs] if self.markers else list(pairs))


def reading_model(settings: Settings) -> ReadingModel | None:
    """The reading model the settings name; None when RAG_READER_MODEL is `overlap` (no model)."""
    if settings.reader_model == OVERLAP:
        return None
    return load_reader(settings.reader_model, Path(settings.index_dir) / "reader")


@functools.lru_cache(maxsize=4)
def load_reader(spec: str, export_dir: Path) -> ReadingModel:
    """The reading model `spec` names, loaded once per process and shared by every session and request."""
    if spec == BUNDLED:
        folder = BUNDLED_DIR
        _check_files(folder, BUNDLED_SHA256, spec)
    else:
        folder = Path(spec).expanduser()
    if (folder / MODEL_FILE).is_file() and (folder / META_FILE).is_file():
        meta = json.loads((folder / META_FILE).read_text())
        _check_files(folder, meta.get("sha256", {}), spec)
        return ReadingModel(CrossEncoder(folder), meta)
    if spec == BUNDLED:
        raise ReaderUnavailable(spec, f"{folder} holds no model: the package is incomplete")
    try:
        encoder = load_cross_encoder(spec, export_dir)
    except VerifierUnavailable as exc:  # the exporter's message names the verifier's setting, not this one
        raise ReaderUnavailable(spec, exc.reason) from None
    return ReadingModel(encoder, {"threshold": encoder.threshold})


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:  # read in chunks: the weights never sit in memory twice
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _check_files(folder: Path, expected: dict[str, str], spec: str) -> None:
    for name, digest in expected.items():
        path = folder / name
        if not path.is_file():
            raise ReaderUnavailable(spec, f"{name} is missing from {folder}")
        if digest and _sha256(path) != digest:
            raise ReaderUnavailable(spec, f"{name} in {folder} fails its SHA-256 check: the file is damaged")
