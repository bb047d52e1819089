"""The claim verifier's model: a cross-encoder that reads (claim, evidence) together, run with onnxruntime.

RAG_VERIFIER_MODEL names the cross-encoder: a folder holding an ONNX export (model.onnx, tokenizer.json,
meta.json), or a sentence-transformers/Hugging Face cross-encoder (a local folder or a Hub name), which is
exported to ONNX once, next to the index, by rag.answer.crossencoder_export. Labels are read from the
model (supported/entailment, unsupported/neutral, contradicted/contradiction): an NLI model works as it is.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import UserError, VerifierUnavailable

MODEL_FILE, META_FILE, TOKENIZER_FILE = "model.onnx", "meta.json", "tokenizer.json"
SUPPORTED, UNSUPPORTED, CONTRADICTED = 0, 1, 2
_LABELS = {"supported": SUPPORTED, "entailment": SUPPORTED, "entails": SUPPORTED,
           "unsupported": UNSUPPORTED, "neutral": UNSUPPORTED, "not_entailment": UNSUPPORTED,
           "contradicted": CONTRADICTED, "contradiction": CONTRADICTED}
_BATCH = 32


class CrossEncoder:
    """Probabilities (supported, unsupported, contradicted) for (claim, evidence) pairs."""

    def __init__(self, folder: Path, threads: int = 2) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        meta = json.loads((folder / META_FILE).read_text())
        self.columns = [_label(name) for name in meta["labels"]]
        self.threshold = float(meta.get("threshold", 0.5))
        self._tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=int(meta.get("max_length", 128)))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}

    def scores(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        out = np.zeros((len(pairs), 3), dtype=np.float32)
        if not pairs:
            return out
        encodings = self._tokenizer.encode_batch(list(pairs))
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")  # little padding per batch
        for start in range(0, len(order), _BATCH):
            rows = order[start:start + _BATCH]
            width = max(len(encodings[i].ids) for i in rows)
            feed = {name: np.zeros((len(rows), width), dtype=np.int64)
                    for name in ("input_ids", "attention_mask", "token_type_ids")}
            for row, i in enumerate(rows):
                n = len(encodings[i].ids)
                feed["input_ids"][row, :n] = encodings[i].ids
                feed["attention_mask"][row, :n] = 1
                feed["token_type_ids"][row, :n] = encodings[i].type_ids
            logits = self._session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
            out[rows] = self._probabilities(logits)
        return out

    def _probabilities(self, logits: np.ndarray) -> np.ndarray:
        if logits.shape[1] == 1:  # a single relevance logit: supported or not
            p = 1 / (1 + np.exp(-logits[:, 0]))
            return np.stack([p, 1 - p, np.zeros_like(p)], axis=1)
        z = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = z / z.sum(axis=1, keepdims=True)
        mapped = np.zeros((len(probs), 3), dtype=np.float32)
        for column, target in enumerate(self.columns):
            mapped[:, target] += probs[:, column]
        return mapped


def _label(name: str) -> int:
    try:
        return _LABELS[name.strip().lower()]
    except KeyError:
        raise UserError(f"the verifier model has a label {name!r}; expected supported/unsupported/contradicted "
                        "or entailment/neutral/contradiction: set RAG_VERIFIER_MODEL to such a model") from None


@functools.lru_cache(maxsize=4)
def load_cross_encoder(spec: str, export_dir: Path) -> CrossEncoder:
    """An ONNX export folder, or a cross-encoder exported to ONNX in `export_dir` on first use (torch is
    needed for that one step, never for answering)."""
    folder = Path(spec).expanduser()
    if (folder / MODEL_FILE).is_file() and (folder / META_FILE).is_file():
        return CrossEncoder(folder)
    target = export_dir / hashlib.sha256(spec.encode()).hexdigest()[:16]
    if not (target / META_FILE).is_file():
        from .crossencoder_export import export_cross_encoder

        export_cross_encoder(_model_folder(spec), target)
    return CrossEncoder(target)


def _model_folder(spec: str) -> Path:
    folder = Path(spec).expanduser()
    if (folder / "config.json").is_file():
        return folder
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(spec))
    except Exception as exc:  # noqa: BLE001 - any failure to find the model is the same message
        raise VerifierUnavailable(spec, f"not an ONNX export, a model folder or a reachable Hub model ({exc})"
                                  ) from None
