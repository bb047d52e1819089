"""Index types: flat below the threshold, HNSW above it, recorded in the manifest, reloadable (no model)."""

from __future__ import annotations

import dataclasses
import json

import faiss
import numpy as np
import pytest

from rag import Assistant, IndexCorrupt, Settings
from rag.chunking import passage_key
from rag.index.faiss import build_index
from rag.index.manifest import BuildSpec, Manifest, read_manifest
from rag.index.records import Record, Row
from rag.index.registry import open_store, write_store
from rag.index.store import Changes, IndexOptions, Vectors
from rag.types import Source

SPEC = BuildSpec("test-model", 1, 256)
DIM = 64


def unit_vectors(count: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def rows(count: int) -> list[Row]:
    sources = [(Source(f"post {i}", f"corpus/{i}.md"),) for i in range(7)]
    return [Row(i, Record(passage_key(f"passage {i}"), f"passage {i}", sources[i % 7])) for i in range(count)]


def write(index_dir, count: int, seed: int = 0, **options) -> np.ndarray:
    """A generation of `count` random vectors written as an ingest writes it, with these index settings."""
    vectors = unit_vectors(count, seed)
    index_dir.mkdir(parents=True, exist_ok=True)
    changes = Changes(rows(count), Vectors.of(vectors), [], count)
    write_store(Settings(index_dir=index_dir, **options), SPEC, DIM, changes, None, posts=7, passages=count)
    return vectors


def graph(store) -> faiss.IndexHNSWFlat:
    return store.segments[0].inner


def load(index_dir, **options):
    return open_store(Settings(index_dir=index_dir, **options), SPEC)


def recall_at_10(index: faiss.Index, exact: faiss.Index, queries: np.ndarray) -> float:
    _, found = index.search(queries, 10)
    _, truth = exact.search(queries, 10)
    return float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)]))


def test_hnsw_finds_nearly_what_exact_search_finds():
    vectors, queries = unit_vectors(5000), unit_vectors(200, seed=1)
    options = IndexOptions()
    ids = np.arange(len(vectors))
    flat = build_index(vectors, ids, DIM, "flat", options)
    hnsw = build_index(vectors, ids, DIM, "hnsw", options)
    inner = faiss.downcast_index(hnsw.index)
    assert isinstance(inner, faiss.IndexHNSWFlat) and inner.hnsw.efSearch == options.ef_search
    assert recall_at_10(flat, flat, queries) == 1.0
    assert recall_at_10(hnsw, flat, queries) >= 0.9
    # Inner product on unit vectors: the scores are the cosines, as with the flat index.
    scores, ids = hnsw.search(queries[:1], 3)
    assert np.allclose(scores[0], vectors[ids[0]] @ queries[0], atol=1e-5)


def test_auto_chooses_by_size_and_the_manifest_records_it(tmp_path):
    write(tmp_path / "small", 99, hnsw_threshold=100)
    write(tmp_path / "large", 100, hnsw_threshold=100, hnsw_m=16, hnsw_ef_construction=40)
    assert read_manifest(tmp_path / "small").index_type == "flat"
    assert read_manifest(tmp_path / "large").index_type == "hnsw"
    store = load(tmp_path / "large")
    assert (graph(store).hnsw.efConstruction, graph(store).hnsw.nb_neighbors(1)) == (40, 16)  # built as configured
    store.close()


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_the_setting_overrides_the_size_rule(tmp_path, monkeypatch, kind):
    monkeypatch.setenv("RAG_INDEX_TYPE", kind)
    monkeypatch.setenv("RAG_HNSW_THRESHOLD", "1" if kind == "flat" else "1000000")
    write(tmp_path, 50)  # the environment's settings decide, as in an ingest
    assert read_manifest(tmp_path).index_type == kind
    assert IndexOptions.from_settings(Settings()).choose(10**9) == kind


def test_default_threshold_keeps_small_corpora_exact():
    assert Settings().index_type == "auto"
    options = IndexOptions.from_settings(Settings())
    assert options.choose(Settings().hnsw_threshold - 1) == "flat"
    assert options.choose(Settings().hnsw_threshold) == "hnsw"


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_reload_through_faiss_store(tmp_path, monkeypatch, kind):
    vectors = write(tmp_path, 600, index_type=kind, hnsw_ef_search=40)
    store = load(tmp_path, hnsw_ef_search=77)
    try:
        assert store.manifest.index_type == kind
        if kind == "hnsw":
            assert graph(store).hnsw.efSearch == 77  # applied at load
        hits = store.search(vectors[5], 10)
        assert hits[0][0] == 5 and hits[0][1] == pytest.approx(1.0, abs=1e-5)
        assert np.allclose(store.vectors([5, 0, 599]), vectors[[5, 0, 599]])
        assert [p.text for p in store.passages([3, 1])] == ["passage 3", "passage 1"]
    finally:
        store.close()
    if kind == "hnsw":
        store = load(tmp_path, hnsw_ef_search=200)
        assert graph(store).hnsw.efSearch == 200
        store.close()


def test_a_manifest_naming_another_index_type_is_refused(tmp_path):
    write(tmp_path, 50, index_type="hnsw")
    path = tmp_path / "manifest.json"
    manifest = Manifest.from_json(path.read_text())
    path.write_text(dataclasses.replace(manifest, index_type="flat").to_json())
    with pytest.raises(IndexCorrupt, match="hnsw index"):
        load(tmp_path)


def test_manifests_from_before_index_types_read_as_flat(tmp_path):
    write(tmp_path, 20, index_type="flat")
    data = json.loads((tmp_path / "manifest.json").read_text())
    del data["index_type"]
    data["index_params"] = {}  # a field of older manifests, ignored
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    store = load(tmp_path)
    assert store.manifest.index_type == "flat" and store.segments[0].index.ntotal == 20
    store.close()


def test_incremental_ingest_and_search_on_an_hnsw_index(make_settings, tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "kafka.md").write_text("# Moving to Kafka\n\nWe replaced RabbitMQ with Kafka for replayable streams.\n\n"
                                     "The cluster costs four thousand dollars a month.\n")
    (folder / "cdn.md").write_text("# Edge caching\n\nA CDN raised the cache hit rate to 94 percent.\n")
    settings = make_settings(index_type="hnsw")
    assistant = Assistant(settings)
    assistant.ingest()
    assert read_manifest(settings.index_dir).index_type == "hnsw"
    (folder / "kafka.md").write_text((folder / "kafka.md").read_text().replace("four", "six"))
    report = assistant.ingest()
    assert (report.embedded, report.reused) == (1, 2)
    hits = assistant.search("how much does the Kafka cluster cost?", k=2).hits
    assert hits[0].passage.text == "The cluster costs six thousand dollars a month."
