"""Incremental index writes without a model: stable ids, deletions filtered (flat and HNSW), readers of the
previous generation, the rebuild past RAG_INDEX_REBUILD_SHARE, and kill -9 during writes at 100k passages."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from conftest import REPO

from rag import Settings
from rag.chunking import passage_key
from rag.index.faiss import MAX_DELTAS
from rag.index.files import remove_stale_files
from rag.index.manifest import BuildSpec, read_manifest
from rag.index.records import Record, Row
from rag.index.registry import open_store, rebuild_if_due, write_store
from rag.index.store import Changes, Vectors
from rag.types import Source

SPEC = BuildSpec("test-model", 1, 256)
DIM = 32


def rows(start: int, count: int, tag: str = "") -> list[Row]:
    return [Row(i, Record(passage_key(f"passage {i}{tag}"), f"passage {i}{tag}",
                          (Source(f"post {i % 50}", f"corpus/{i % 50}.md"),))) for i in range(start, start + count)]


def rows_of(ids) -> list[Row]:
    return [row for i in sorted(ids) for row in rows(i, 1)]


def vectors_for(ids, dim: int = DIM) -> np.ndarray:
    """A fixed unit vector per id, so any generation can be checked against it."""
    out = np.array([np.random.default_rng(int(i)).standard_normal(dim) for i in ids], np.float32).reshape(-1, dim)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def settings_for(index_dir, **options) -> Settings:
    return Settings(index_dir=index_dir, **options)


def write_full(settings: Settings, count: int) -> None:
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    write_store(settings, SPEC, DIM, Changes(rows(0, count), Vectors.of(vectors_for(range(count))), [], count), None,
                posts=50, passages=count)


def edit(settings: Settings, add: int, remove: list[int]) -> None:
    """One incremental generation: `add` new passages, and these ids removed; then a rebuild if it is due."""
    store = open_store(settings, SPEC)
    try:
        start = store.manifest.next_id
        gone = rows_of(store.records.live_ids(remove))
        changes = Changes(rows(start, add), Vectors.of(vectors_for(range(start, start + add))), gone, start + add)
        manifest = write_store(settings, SPEC, DIM, changes, store, posts=50, passages=0)
    finally:
        store.close()
    rebuild_if_due(settings, SPEC, manifest)


def check(settings: Settings) -> set[int]:
    """The published generation is whole: its records, vectors and manifest agree. Returns the live ids."""
    store = open_store(settings, SPEC)
    try:
        live = {row.id for row in store.records.all()}
        assert set(store.live_ids().tolist()) == live and len(live) == store.count()
        sample = sorted(live)[:: max(1, len(live) // 20)]
        assert np.allclose(store.vectors(sample), vectors_for(sample), atol=1e-6)
        for i in sample[:5]:
            hits = store.search(vectors_for([i])[0], 5)
            assert hits[0][0] == i and all(h in live for h, _ in hits)
        return live
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_edits_keep_ids_and_removed_passages_are_never_found(tmp_path, kind):
    settings = settings_for(tmp_path, index_type=kind, index_rebuild_share=0.9)
    write_full(settings, 400)
    for step in range(MAX_DELTAS + 3):
        edit(settings, add=5, remove=[step * 7, step * 7 + 1])
        manifest = read_manifest(tmp_path)
        assert len(manifest.segment_files) <= MAX_DELTAS and manifest.index_type == kind
        live = check(settings)
        assert step * 7 not in live and 0 < len(live) == 400 + 5 * (step + 1) - 2 * (step + 1)
    store = open_store(settings, SPEC)
    try:
        removed = vectors_for([7])[0]  # its nearest stored vector was itself: now it must not come back
        assert 7 not in [i for i, _ in store.search(removed, 50)]
        assert store.passages([10])[0].text == "passage 10"  # ids never move
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_a_full_write_reads_the_vectors_one_batch_at_a_time(tmp_path, kind):
    """The index is the only holder of every vector: the writer asks for them a batch at a time, in order."""
    settings = settings_for(tmp_path, index_type=kind)
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    asked: list[tuple[int, int]] = []
    source = vectors_for(range(1000))
    vectors = Vectors(1000, DIM, lambda start, stop: asked.append((start, stop)) or source[start:stop], batch=128)
    write_store(settings, SPEC, DIM, Changes(rows(0, 1000), vectors, [], 1000), None, posts=50, passages=1000)
    assert asked == [(start, min(start + 128, 1000)) for start in range(0, 1000, 128)]
    assert len(check(settings)) == 1000


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_threads_searching_at_once_never_see_a_deleted_passage(tmp_path, kind):
    """FAISS's ID map rewrites the search parameters during a search: each search must have its own."""
    from concurrent.futures import ThreadPoolExecutor

    settings = settings_for(tmp_path, index_type=kind, index_rebuild_share=0.9)
    write_full(settings, 2000)
    edit(settings, add=10, remove=list(range(0, 2000, 3)))
    store = open_store(settings, SPEC)
    try:
        queries = vectors_for(range(0, 2000, 7))
        expected = [store.search(query, 10) for query in queries]
        with ThreadPoolExecutor(8) as pool:
            for _ in range(5):
                found = list(pool.map(lambda query: store.search(query, 10), queries))
                assert found == expected
        assert not any(i % 3 == 0 and i < 2000 for hits in expected for i, _ in hits)
    finally:
        store.close()


def test_a_reader_keeps_its_generation_while_a_writer_publishes_the_next(tmp_path):
    settings = settings_for(tmp_path, index_rebuild_share=0.9)
    write_full(settings, 100)
    reader = open_store(settings, SPEC)
    try:
        edit(settings, add=3, remove=[1, 2])
        assert reader.passages([1])[0].text == "passage 1"  # died in the next generation, alive in this one
        assert reader.records.live_ids([1, 100]) == {1}  # and the next generation's rows are not its own
        assert 1 in [i for i, _ in reader.search(vectors_for([1])[0], 3)]
    finally:
        reader.close()
    assert 1 not in check(settings)


def test_the_index_is_rebuilt_once_the_deleted_share_passes_the_setting(tmp_path):
    settings = settings_for(tmp_path, index_rebuild_share=0.1)
    write_full(settings, 100)
    edit(settings, add=0, remove=list(range(5)))
    assert read_manifest(tmp_path).deleted_file is not None  # 5% deleted: filtered, not rebuilt
    edit(settings, add=2, remove=list(range(5, 11)))
    manifest = read_manifest(tmp_path)
    assert manifest.deleted_file is None and manifest.segment_files == []  # 11% deleted: one new base
    assert check(settings) == set(range(11, 102))


KILLED_WRITER = """
import sys
sys.path.insert(0, {tests!r})
from test_scale import edit, settings_for
settings = settings_for({index_dir!r}, index_rebuild_share=0.02)
step = 0
while True:
    step += 1
    edit(settings, add=300, remove=[step * 997 % 100000 + n for n in range(300)])
"""


@pytest.mark.slow
def test_kill_minus_9_during_incremental_writes_at_100k_leaves_a_loadable_index(tmp_path):
    settings = settings_for(tmp_path / "index", index_rebuild_share=0.02)
    write_full(settings, 100_000)
    script = textwrap.dedent(KILLED_WRITER).format(tests=str(REPO / "tests"), index_dir=str(settings.index_dir))
    rng, generations = random.Random(20), set()
    for _ in range(12):
        writer = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO)},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(2.0, 10.0))  # a few generations in, and anywhere inside the next one
        writer.send_signal(signal.SIGKILL)
        _, err = writer.communicate()
        assert writer.returncode == -signal.SIGKILL, err.decode()[-2000:]
        check(settings)
        generations.add(read_manifest(settings.index_dir).generation)
    assert len(generations) > 4  # the writers did publish between the kills
    # The next ingest cleans up what the kills left: it writes a generation, then (as rag.ingest does) drops
    # every file that neither the generation before nor its own names (the killed writers' temp files).
    before = read_manifest(settings.index_dir).files()
    edit(settings, add=1, remove=[])
    remove_stale_files(settings.index_dir, before | read_manifest(settings.index_dir).files())
    names = {p.name for p in settings.index_dir.iterdir()} - {"manifest.json", ".lock"}
    assert not [n for n in names if n.endswith((".tmp", "-journal"))]


def test_a_manifest_left_half_written_by_a_killed_writer_is_cleared_by_the_next(tmp_path):
    settings = settings_for(tmp_path / "index")
    write_full(settings, 50)
    stale = settings.index_dir / "manifest.json.20260101T000000-deadbeef.tmp"
    stale.write_text("{half")  # what kill -9 leaves between writing it and renaming it
    edit(settings, add=1, remove=[])
    assert not stale.exists() and check(settings)


WORDS = "kafka queue cluster cost month team migration latency cache database replica shard backup".split()


def test_common_words_rescore_with_the_same_bm25_that_fts5_computes(tmp_path, monkeypatch):
    import sqlite3

    import rag.index.lexical as lexical
    from rag.index.records import Records, create_records

    monkeypatch.setattr(lexical, "COMMON_DOCS", 40)  # words in more than 40 of these 200 passages are common
    rng = random.Random(5)
    texts = [" ".join(rng.choices(WORDS[:4], k=rng.randint(3, 30)) + rng.choices(WORDS[4:], k=rng.randint(0, 2)))
             for _ in range(200)]
    written = [Row(i, Record(passage_key(text), text, (Source(f"post {i % 9} {WORDS[i % 13]}", "a.md", "s"),)))
               for i, text in enumerate(texts)]
    create_records(tmp_path / "p.sqlite", written, 1)
    records = Records(tmp_path / "p.sqlite", 1, False)
    weights = (1.0, 0.5, 0.25)
    try:
        stats = records._term_stats()
        assert "kafka" in stats and "shard" not in stats  # the first four are in nearly every passage
        for query in (["kafka", "shard"], ["cluster", "cost"], ["backup", "replica", "team"]):
            found = records.lexical(query, 200, weights, candidates=range(200))
            with sqlite3.connect(tmp_path / "p.sqlite") as db:
                expected = [(i, -s) for i, s in db.execute(
                    "SELECT rowid, bm25(lexical, ?, ?, ?) AS r FROM lexical WHERE lexical MATCH ? ORDER BY r",
                    (*weights, " OR ".join(query)))]
            assert dict(found) == pytest.approx(dict(expected), rel=1e-9)
        assert records.lexical(["cluster", "cost"], 5, weights) == []  # common words alone rank no pool
    finally:
        records.close()


def test_an_index_grown_in_place_lists_its_new_common_words(tmp_path, monkeypatch):
    import rag.index.lexical as lexical
    from rag.index.records import Records, create_records, update_records

    monkeypatch.setattr(lexical, "COMMON_DOCS", 10)

    def rows_saying(word: str, start: int, count: int) -> list[Row]:
        texts = [f"{word} passage {i}" for i in range(start, start + count)]
        return [Row(i, Record(passage_key(t), t, (Source("t", "a.md"),))) for i, t in zip(range(start, start + count),
                                                                                        texts)]

    path = tmp_path / "p.sqlite"
    create_records(path, rows_saying("kafka", 0, 30), 1)
    update_records(path, 1, rows_saying("shard", 30, 2), [])  # 32 passages: within 10% of 30, no recount
    update_records(path, 2, rows_saying("shard", 32, 20), [])  # 52: the common words are listed again
    records = Records(path, 3, False)
    try:
        stats = records._term_stats()
        assert stats["shard"] == 22 and stats["kafka"] == 30 and stats[lexical.PASSAGES] == 52
    finally:
        records.close()
