"""ONNX export of the sentence-embedding model and a torch-free encoder for the query path.

Why: importing sentence-transformers costs ~5 s and ~410 MiB per process, while numpy + onnxruntime +
tokenizers answer a query in a fraction of that (README, "Performance"). So the model is
exported once at ingest time, where torch is loaded anyway, and `rag ask` only needs `OnnxEncoder`.

The exported graph does the whole sentence-transformers pipeline of all-MiniLM-L6-v2 (BERT, mean pooling
over the attention mask, L2 normalisation), so its output is directly comparable with the torch vectors.

Only the exporter imports torch/transformers, in a child process that `export_onnx` starts: importing this
module stays cheap, and the ingest that asks for an export does not keep torch and the traced graph (~1.2 GB
at the export's peak) in its own memory, which the index build needs at a million passages.

Memory: the word-embedding table (30522 x 384 floats, 45 MiB of the 86 MiB of weights) is only ever indexed
by token id, so the encoder reads the rows a text needs from the data file into an initially untouched
buffer instead of letting onnxruntime map the file. A mapped file comes into a process in whole page-cache
folios, up to 2 MiB each on this kernel (Linux 6.18, ext4) when the file was read back into the cache, so
one question made up to ~16 MiB of the table resident and an extractive answer ~30 MiB (a cold `rag ask`
peaked at 157-184 MiB depending on the cache); read row by row it is a few KiB (`LazyRows`).
"""

from __future__ import annotations

import mmap
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
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
        _export_in_child(model_path, tmp_dir)
        _make_readable(tmp_dir)
        _swap_into_place(tmp_dir, out_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return sorted(p for p in out_dir.iterdir() if p.is_file())


_OS_ERROR = 3  # the child's exit code for a failure worth another try later (a full disk, no memory, ...)
_EXPORT_TIMEOUT_S = 1800  # ~20 s here: anything near this is stuck, and it holds the ingest lock


def _export_in_child(model_path: Path, work_dir: Path) -> None:
    """`_export_into` in a fresh Python: an OSError there (or a killed child) is an OSError here, anything
    else a RuntimeError, each with the child's last line of stderr."""
    try:
        done = subprocess.run([sys.executable, "-m", "rag.onnx_encoder", str(model_path), str(work_dir)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              errors="replace", timeout=_EXPORT_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise OSError(f"the ONNX exporter took more than {_EXPORT_TIMEOUT_S} s") from exc
    if done.returncode == 0:
        return
    said = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
    if done.returncode == _OS_ERROR or done.returncode < 0:
        raise OSError(f"the ONNX exporter failed: {said}")
    raise RuntimeError(f"the ONNX exporter failed: {said}")


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
        model_file = Path(onnx_dir) / MODEL_FILE
        self._rows = LazyRows.open(model_file)
        self._session = _load_session(model_file, self._rows)
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
        if self._rows is not None:
            self._rows.load(ids)
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


def _load_session(model_file: Path, rows: LazyRows | None = None) -> ort.InferenceSession:
    """The arena, memory patterns, prepacking and full graph optimization stay on: switching any of them
    off changed the peak RSS of a cold `rag ask` by less than 1 MiB (the prepacked weights, ~41 MiB, are
    the session's memory, and are needed in some form)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = _thread_count()
    options.inter_op_num_threads = 1  # one BERT graph: parallelism is inside the matmuls
    options.log_severity_level = 3  # errors only
    if rows is not None:
        options.add_initializer(rows.name, rows.value)  # used in place, not copied (the session never maps it)
    return ort.InferenceSession(str(model_file), sess_options=options, providers=["CPUExecutionProvider"])


def _thread_count() -> int:
    """The CPUs this process may use (cgroup/affinity aware), capped: beyond ~8 threads BERT-small gains nothing."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(available, 8))


# ------------------------------------------------------------------------------- the embedding table


class LazyRows:
    """An initializer that the graph only indexes by `input_ids` (the word embeddings), given to onnxruntime
    as a buffer of untouched (so not resident) pages; `load(ids)` reads the rows of these ids from the
    external-data file before a run that needs them. Rows are only ever added, with the bytes the file
    holds, so a run never sees a row change, and threads may encode at once."""

    def __init__(self, table: ExternalTable, data_file: Path) -> None:
        self.name = table.name
        rows, cols = table.shape
        self._row_bytes = cols * 4
        self._offset = table.offset
        self._buffer = _zero_pages(rows * self._row_bytes)
        if hasattr(mmap, "MADV_NOHUGEPAGE"):  # with THP "always", a write would make 2 MiB resident
            self._buffer.madvise(mmap.MADV_NOHUGEPAGE)
        self.table = np.frombuffer(self._buffer, dtype=np.float32).reshape(rows, cols)
        self.value = ort.OrtValue.ortvalue_from_numpy(self.table)  # shares the buffer
        self._loaded = np.zeros(rows, dtype=bool)
        self._path = data_file
        # Held open: rows still come from this export after an ingest swaps in a new folder.
        self._fd = os.open(data_file, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        weakref.finalize(self, os.close, self._fd)
        self._lock = threading.Lock()

    @classmethod
    def open(cls, model_file: Path) -> LazyRows | None:
        """For the export's word embeddings; None (the session maps the file as before) for a graph or a
        data file this does not recognise."""
        try:
            if model_file.stat().st_size > _MAX_GRAPH_BYTES:  # weights inside the protobuf: nothing external
                return None
            table = find_token_table(model_file.read_bytes())
        except (OSError, ValueError, IndexError):
            return None
        if table is None or Path(table.location).name != table.location:
            return None
        data_file = model_file.with_name(table.location)
        try:
            size = data_file.stat().st_size
        except OSError:
            return None
        if table.offset + table.length > size:
            return None
        return cls(table, data_file)

    def load(self, ids: np.ndarray) -> None:
        """Make sure the rows of these token ids hold their values."""
        if ids.size and int(ids.max()) >= len(self._loaded):
            raise ValueError(f"token id {int(ids.max())} is outside the {len(self._loaded)}-row embedding table")
        missing = ids[~self._loaded[ids]]  # (not np.unique: it imports numpy.ma, 2 MiB)
        if not missing.size:
            return
        with self._lock:
            for token in sorted(set(missing.tolist())):  # in file order
                if not self._loaded[token]:
                    self._read(token)
                    self._loaded[token] = True

    def _read(self, token: int) -> None:
        row = memoryview(self.table[token]).cast("B")
        offset = self._offset + token * self._row_bytes
        if hasattr(os, "preadv"):  # one system call, straight into the row
            read = os.preadv(self._fd, [row], offset)
        else:  # (called with the lock held)
            os.lseek(self._fd, offset, os.SEEK_SET)
            data = os.read(self._fd, self._row_bytes)
            row[: len(data)] = data
            read = len(data)
        if read != self._row_bytes:
            raise OSError(f"{self._path} ends inside its embedding table")

    def resident_rows(self) -> int:
        return int(self._loaded.sum())


def _zero_pages(size: int) -> mmap.mmap:
    """Private anonymous memory: no page is resident until it is written (numpy's own allocation would
    ask for huge pages at this size, making 2 MiB resident per row written)."""
    private = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)
    return mmap.mmap(-1, size, flags=private) if private else mmap.mmap(-1, size)


@dataclass(frozen=True)
class ExternalTable:
    name: str
    shape: tuple[int, int]
    location: str  # the external-data file, relative to the model file
    offset: int
    length: int


_MAX_GRAPH_BYTES = 16 << 20  # an export's graph without its weights is ~22 KB
_FLOAT = 1  # TensorProto.FLOAT
_EXTERNAL = 1  # TensorProto.EXTERNAL
# Ops whose input at this position is a table read only at the rows named by their `input_ids` input.
_INDEXED_BY_IDS = {"EmbedLayerNormalization": (2, 0), "Gather": (0, 1)}  # op: (table input, ids input)


def find_token_table(model: bytes) -> ExternalTable | None:
    """The float32 2-D initializer, stored as external data, that every node using it only indexes with the
    `input_ids` graph input (or a cast of it); None when there is none. Reads the few ModelProto fields it
    needs itself: importing the `onnx` package would cost a query process ~11 MiB."""
    graph = next((_bytes(value) for field, value in _fields(model) if field == 7), None)
    if graph is None:
        return None
    uses: dict[str, list[bool]] = {}
    tensors: dict[str, ExternalTable] = {}
    graph_inputs: set[str] = set()
    ids = {"input_ids"}  # and its casts (the fused graph reads it as int32): nodes come in topological order
    for field, value in _fields(graph):
        if field == 1:  # NodeProto
            op, inputs, outputs = "", [], []
            for node_field, node_value in _fields(_bytes(value)):
                if node_field == 1:
                    inputs.append(_text(node_value))
                elif node_field == 2:
                    outputs.append(_text(node_value))
                elif node_field == 4:
                    op = _text(node_value)
                elif node_field == 5 and any(f in (6, 11) for f, _ in _fields(_bytes(node_value))):
                    return None  # a subgraph attribute (If, Loop, Scan): its uses are not counted here
            if op == "Cast" and inputs and inputs[0] in ids:
                ids.update(outputs[:1])
            table_at, ids_at = _INDEXED_BY_IDS.get(op, (-1, -1))
            for position, name in enumerate(inputs):
                indexed = position == table_at and ids_at < len(inputs) and inputs[ids_at] in ids
                uses.setdefault(name, []).append(indexed)
        elif field == 5:  # TensorProto
            tensor = _external_tensor(_bytes(value))
            if tensor is not None:
                tensors[tensor.name] = tensor
        elif field == 11:  # ValueInfoProto of a graph input
            graph_inputs |= {_text(v) for f, v in _fields(_bytes(value)) if f == 1}
    if "input_ids" not in graph_inputs:
        return None
    candidates = [t for name, t in tensors.items() if uses.get(name) and all(uses[name])]
    return max(candidates, key=lambda t: t.length, default=None)


def _external_tensor(tensor: memoryview) -> ExternalTable | None:
    dims: list[int] = []
    name, data_type, location = "", 0, 0
    external: dict[str, str] = {}
    for field, value in _fields(tensor):
        if field == 1:
            dims += [value] if isinstance(value, int) else list(_packed_varints(value))
        elif field == 2:
            data_type = _int(value)
        elif field == 8:
            name = _text(value)
        elif field == 13:
            entry = {f: _text(v) for f, v in _fields(_bytes(value))}
            external[entry.get(1, "")] = entry.get(2, "")
        elif field == 14:
            location = _int(value)
    if location != _EXTERNAL or data_type != _FLOAT or len(dims) != 2 or "location" not in external:
        return None
    offset, length = int(external.get("offset", 0)), int(external.get("length", -1))
    if min(dims) <= 0 or offset < 0 or length != dims[0] * dims[1] * 4:
        return None
    return ExternalTable(name, (dims[0], dims[1]), external["location"], offset, length)


def _fields(message: bytes | memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, value) of a protobuf message: ints for varints, bytes for the rest."""
    data = memoryview(message)
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        wire = key & 7
        value: int | memoryview
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = data[pos : pos + size], pos + size
        else:
            raise ValueError(f"protobuf wire type {wire}")
        if pos > len(data):
            raise ValueError("truncated protobuf")
        yield key >> 3, value


def _bytes(value: int | memoryview) -> memoryview:
    if isinstance(value, int):
        raise ValueError("a protobuf varint where bytes belong")
    return value


def _text(value: int | memoryview) -> str:
    return bytes(_bytes(value)).decode()


def _int(value: int | memoryview) -> int:
    if not isinstance(value, int):
        raise ValueError("protobuf bytes where a varint belongs")
    return value


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _packed_varints(data: memoryview) -> Iterator[int]:
    pos = 0
    while pos < len(data):
        value, pos = _varint(data, pos)
        yield value


def _export_main(argv: list[str]) -> int:
    """The child's side of `export_onnx`: export_into(model folder, work folder)."""
    try:
        _export_into(Path(argv[0]), Path(argv[1]))
    except (OSError, MemoryError, ImportError) as exc:  # the machine or the installation, not the model
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return _OS_ERROR
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides what it means
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_export_main(sys.argv[1:]))
