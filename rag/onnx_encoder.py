"""ONNX export of the sentence-embedding model and a torch-free encoder for the query path.

Why: importing sentence-transformers costs ~5 s and ~410 MiB per process, while numpy + onnxruntime +
tokenizers answer a query in a fraction of that (README, "Performance"). So the model is
exported once at ingest time, where torch is loaded anyway, and `rag ask` only needs `OnnxEncoder`.

The exported graph does the whole sentence-transformers pipeline of all-MiniLM-L6-v2 (BERT, mean pooling
over the attention mask, L2 normalisation), so its output is directly comparable with the torch vectors.

Only `export_onnx` imports torch/transformers, and only inside the function: importing this module must
stay cheap.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

MODEL_FILE = "model.onnx"
OPSET = 17
BATCH_SIZE = 32
_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


# --------------------------------------------------------------------------------------------- export


def export_onnx(model_path: Path, out_dir: Path) -> list[Path]:
    """Export the BERT model at `model_path` to `out_dir/model.onnx` (+ `model.onnx.data`).

    The folder is built next to `out_dir` and renamed into place, so a kill mid-export leaves either
    the previous folder or none, never a half-written one. Returns the files written.
    """
    model_path, out_dir = Path(model_path), Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        _export_into(model_path, tmp_dir)
        _make_readable(tmp_dir)
        _swap_into_place(tmp_dir, out_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return sorted(p for p in out_dir.iterdir() if p.is_file())


def _export_into(model_path: Path, work_dir: Path) -> None:
    """Trace to a raw ONNX file, fuse attention with onnxruntime's BERT optimizer, save with external data."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is a local folder; never reach the network
    import logging
    import warnings

    with warnings.catch_warnings():
        # Tracer/deprecation warnings from torch.onnx and transformers are noise for a known-good model.
        warnings.simplefilter("ignore")
        import torch
        import transformers
        from onnxruntime.transformers.optimizer import optimize_model

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)

        bert = transformers.AutoModel.from_pretrained(str(model_path), attn_implementation="eager")
        bert.eval()
        raw_path = work_dir / "raw.onnx"
        _trace(torch, _pooled_module(torch, bert), raw_path)

        config = bert.config
        fused = optimize_model(
            str(raw_path),
            model_type="bert",
            num_heads=config.num_attention_heads,
            hidden_size=config.hidden_size,
        )
        raw_path.unlink()
        # Weights in one external-data sidecar (model.onnx.data): loads 2.7x faster than one protobuf.
        fused.save_model_to_file(
            str(work_dir / MODEL_FILE), use_external_data_format=True, all_tensors_to_one_file=True
        )


def _pooled_module(torch, bert):  # noqa: ANN001, ANN202 - torch types are deliberately not imported at module level
    """Wrap BERT so the graph returns what sentence-transformers returns: mean-pooled, L2-normalised."""

    class MeanPooledNormalised(torch.nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001, ANN202
            hidden = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            # Same clamps as sentence-transformers' Pooling (1e-9) and Normalize (F.normalize, 1e-12).
            summed = (hidden * mask).sum(dim=1)
            mean = summed / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    return MeanPooledNormalised().eval()


def _trace(torch, module, path: Path) -> None:  # noqa: ANN001
    """TorchScript-based export (dynamo=False): it works without onnxscript and the optimizer can fuse it."""
    dummy = torch.ones((2, 8), dtype=torch.int64)
    dynamic = {0: "batch", 1: "sequence"}
    with torch.no_grad():
        torch.onnx.export(
            module,
            (dummy, dummy, torch.zeros_like(dummy)),
            str(path),
            input_names=list(_INPUT_NAMES),
            output_names=["sentence_embedding"],
            dynamic_axes={**{name: dynamic for name in _INPUT_NAMES}, "sentence_embedding": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def _make_readable(folder: Path) -> None:
    """mkdtemp (and onnx's external-data writer) create owner-only modes; an export is shared, read-only data."""
    folder.chmod(0o755)
    for path in folder.iterdir():
        path.chmod(0o644)


def _swap_into_place(tmp_dir: Path, out_dir: Path) -> None:
    """Rename the finished folder to `out_dir`, moving any previous export aside first."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
    os.replace(tmp_dir, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# -------------------------------------------------------------------------------------------- encoder


class OnnxEncoder:
    """Sentence embeddings from the exported graph, with numpy + onnxruntime + tokenizers only."""

    def __init__(self, onnx_dir: Path, model_path: Path, max_length: int = 256) -> None:
        self._tokenizer = _load_tokenizer(Path(model_path) / "tokenizer.json", max_length)
        self._pad_id = _pad_id(self._tokenizer)
        self._session = _load_session(Path(onnx_dir) / MODEL_FILE)
        self._input_names = {i.name for i in self._session.get_inputs()}
        self.dimension: int = self._output_dimension()

    def encode(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 vectors, shape [len(texts), dimension], in the order of `texts`."""
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        # Sorting by length keeps each batch's padding (and so its wasted compute) small.
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        for start in range(0, len(order), BATCH_SIZE):
            rows = order[start : start + BATCH_SIZE]
            out[rows] = self._run([encodings[i] for i in rows])
        return out

    def _run(self, batch: list[Encoding]) -> np.ndarray:
        """One forward pass over a batch padded to its own longest text (never to a fixed length)."""
        width = max(len(e.ids) for e in batch)
        ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        types = np.zeros((len(batch), width), dtype=np.int64)
        for row, enc in enumerate(batch):
            n = len(enc.ids)
            ids[row, :n], mask[row, :n], types[row, :n] = enc.ids, enc.attention_mask, enc.type_ids
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return self._session.run(None, {k: v for k, v in feed.items() if k in self._input_names})[0]

    def _output_dimension(self) -> int:
        dim = self._session.get_outputs()[0].shape[-1]
        return dim if isinstance(dim, int) else int(self._run([self._tokenizer.encode("")]).shape[1])


def _load_tokenizer(path: Path, max_length: int) -> Tokenizer:
    """The bundled tokenizer.json truncates *and pads* to 128; sentence-transformers uses 256, no padding."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.no_padding()  # `_run` pads each batch to its longest text itself
    return tokenizer


def _pad_id(tokenizer: Tokenizer) -> int:
    pad = tokenizer.token_to_id("[PAD]")
    return 0 if pad is None else pad


def _load_session(model_file: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = _thread_count()
    options.inter_op_num_threads = 1  # one BERT graph: parallelism is inside the matmuls
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(model_file), sess_options=options, providers=["CPUExecutionProvider"])


def _thread_count() -> int:
    """The CPUs this process may use (cgroup/affinity aware), capped: beyond ~8 threads BERT-small gains nothing."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(available, 8))
