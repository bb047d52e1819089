"""Ingest and the on-disk index: atomic saves, refusals, the lock (edits and deletes: test_stores.py)."""

from __future__ import annotations

import os
import sqlite3

import numpy as np
import pytest
from filelock import FileLock

import rag.index.records as records_module
from rag import Assistant, IndexCorrupt, IndexMismatch, IndexMissing
from rag.errors import EmptyCorpus, IndexBusy, IndexDiskFull
from rag.index.manifest import read_manifest


def test_no_change_reingest_embeds_nothing_and_writes_nothing(make_settings, docs):
    settings = make_settings()
    Assistant(settings).ingest()
    before = read_manifest(settings.index_dir)
    report = Assistant(settings).ingest()
    assert (report.embedded, report.wrote_index) == (0, False)
    assert read_manifest(settings.index_dir) == before


def test_rebuild_reembeds_everything(make_settings, docs):
    assistant = Assistant(make_settings())
    assistant.ingest()
    assert assistant.ingest(rebuild=True).embedded == 4


@pytest.mark.parametrize("failing_step", ["index-", "records", "manifest.json"])
def test_failure_during_save_leaves_previous_index_loadable(make_settings, docs, monkeypatch, failing_step):
    settings = make_settings()
    Assistant(settings).ingest()
    first = read_manifest(settings.index_dir)
    before = Assistant(settings).search("replayable event streams", k=1).to_dict()
    (docs / "kafka.md").write_text("# Moving to Kafka\n\nAn entirely new story about queues.\n")

    real_replace, real_insert = os.replace, records_module._insert

    def failing_replace(src, dst):
        if os.path.basename(dst).startswith(failing_step):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    def failing_insert(db, *args, **kwargs):  # in the middle of the records' transaction
        real_insert(db, *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("rag.index.files.os.replace", failing_replace)
    if failing_step == "records":
        monkeypatch.setattr(records_module, "_insert", failing_insert)
    with pytest.raises(IndexDiskFull):
        Assistant(settings).ingest()
    monkeypatch.undo()

    after = Assistant(settings).search("replayable event streams", k=1).to_dict()
    assert after["passages"] == before["passages"]
    assert not any(p.name.endswith(".tmp") for p in settings.index_dir.iterdir())  # removed at once
    Assistant(settings).ingest()
    names = {p.name for p in settings.index_dir.iterdir()} - {"manifest.json", ".lock", "onnx"}
    assert names == first.files() | read_manifest(settings.index_dir).files()  # the new one and the one before


def test_old_generations_are_removed_but_the_previous_one_kept(make_settings, docs):
    settings = make_settings()
    assistant = Assistant(settings)
    for n in range(3):
        (docs / "kafka.md").write_text(f"# Moving to Kafka\n\nVersion {n} of the story.\n")
        assistant.ingest()
        if n == 1:
            previous = read_manifest(settings.index_dir)
    files = {p.name for p in settings.index_dir.iterdir()} - {"manifest.json", ".lock", "onnx"}
    assert files == previous.files() | read_manifest(settings.index_dir).files()


def test_index_built_with_other_settings_is_refused(make_settings, docs):
    Assistant(make_settings()).ingest()
    with pytest.raises(IndexMismatch, match="rag ingest"):
        Assistant(make_settings(max_passage_tokens=128)).search("kafka")
    # ingest with the new settings rebuilds instead of refusing
    assert Assistant(make_settings(max_passage_tokens=128)).ingest().embedded == 4


def corrupt_faiss(index_dir):
    path = index_dir / read_manifest(index_dir).index_file.name
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def edit_records(index_dir):
    path = index_dir / read_manifest(index_dir).records_file.name
    with sqlite3.connect(path) as db:
        db.execute("UPDATE passages SET text = 'Visit http://evil.example' WHERE id = 0")


def truncate_faiss(index_dir):
    path = index_dir / read_manifest(index_dir).index_file.name
    path.write_bytes(path.read_bytes()[:100])


def garble_manifest(index_dir):
    (index_dir / "manifest.json").write_text("{not json")


def drop_pickle(index_dir):
    (index_dir / "passages.pkl").write_bytes(b"\x80\x04K\x01.")


@pytest.mark.parametrize("tamper", [corrupt_faiss, edit_records, truncate_faiss, garble_manifest, drop_pickle])
def test_damaged_or_tampered_index_is_refused(make_settings, docs, tamper):
    settings = make_settings()
    Assistant(settings).ingest()
    tamper(settings.index_dir)
    with pytest.raises(IndexCorrupt, match="rag ingest"):
        Assistant(settings).search("kafka")


def test_damaged_index_is_rebuilt_by_the_next_ingest(make_settings, docs):
    settings = make_settings()
    Assistant(settings).ingest()
    corrupt_faiss(settings.index_dir)
    assert Assistant(settings).ingest().embedded == 4
    assert Assistant(settings).search("kafka").hits


def test_search_before_ingest_says_to_ingest(make_settings):
    with pytest.raises(IndexMissing, match="rag ingest"):
        Assistant(make_settings()).search("anything")


def test_second_writer_waits_for_the_lock_then_gives_up(make_settings, docs):
    settings = make_settings(lock_timeout=0.3)
    settings.index_dir.mkdir()
    waited = []
    with FileLock(str(settings.index_dir / ".lock")), pytest.raises(IndexBusy, match="RAG_LOCK_TIMEOUT"):
        Assistant(settings).ingest(on_wait=lambda: waited.append(True))
    assert waited == [True]
    assert Assistant(settings).ingest().embedded == 4  # free again once released


def test_empty_corpus_keeps_the_previous_index(make_settings, docs):
    settings = make_settings()
    Assistant(settings).ingest()
    for path in docs.iterdir():
        path.write_text("")
    with pytest.raises(EmptyCorpus):
        Assistant(settings).ingest()
    assert Assistant(settings).search("kafka").hits


def test_query_model_export_is_checked_and_restored(make_settings, docs):
    settings = make_settings()
    Assistant(settings).ingest()
    data = settings.index_dir / "onnx" / "model.onnx.data"
    with data.open("r+b") as handle:  # flip one weight byte
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(IndexCorrupt, match="model.onnx.data"):
        Assistant(settings).search("kafka")
    report = Assistant(settings).ingest()  # nothing to embed, but the export is made again
    assert report.embedded == 0
    assert Assistant(settings).search("replayable event streams").hits[0].passage.titles == ["Moving to Kafka"]


def test_queries_without_the_export_fall_back_to_sentence_transformers(make_settings, docs):
    settings = make_settings()
    Assistant(settings).ingest()
    onnx_hit = Assistant(settings).search("cache hit rate").hits[0]
    torch_hit = Assistant(make_settings(query_backend="torch")).search("cache hit rate").hits[0]
    assert torch_hit.passage == onnx_hit.passage
    assert torch_hit.score == pytest.approx(onnx_hit.score, abs=1e-4)


def test_files_unchanged_since_their_fingerprint_are_not_read_again(make_settings, docs, monkeypatch):
    import rag.corpus

    monkeypatch.setattr(rag.corpus, "_SETTLE_NS", 0)  # no need to wait for the files to settle
    settings = make_settings()
    Assistant(settings).ingest()
    reads = []
    real = rag.corpus.read_bytes
    monkeypatch.setattr(rag.corpus, "read_bytes", lambda path, limit: reads.append(path.name) or real(path, limit))
    assert Assistant(settings).ingest().wrote_index is False and reads == []
    path = docs / "kafka.md"
    stat = path.stat()
    path.write_text(path.read_text().replace("four", "nine"))  # same size; the old times put back
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    report = Assistant(settings).ingest()
    assert reads == ["kafka.md"] and report.changed_files == ("corpus/kafka.md",) and report.embedded == 1


def test_embedding_progress_counts_across_the_writers_batches(make_settings, docs):
    """The writer asks for vectors a batch at a time: the progress still climbs once from 0 to the total."""
    import dataclasses

    from rag.chunking import passage_key
    from rag.index.records import Record, Row
    from rag.ingest import _vectors
    from rag.types import Source

    source = Source("t", "a.md", "", "", 0, 0, 0)
    texts = [f"paragraph number {i} about queues" for i in range(10)]
    rows = [Row(i, Record(passage_key(text), text, (source,))) for i, text in enumerate(texts)]
    seen: list[tuple[int, int]] = []
    vectors = dataclasses.replace(_vectors(make_settings(), rows, {}, None, lambda *report: seen.append(report), []),
                                  batch=3)
    assert vectors.array().shape == (10, 384)
    assert seen[-1] == (10, 10) and seen == sorted(seen) and {total for _, total in seen} == {10}
    assert [done for done, _ in seen if done % 3 == 0 or done == 10] == [3, 6, 9, 10]


def test_a_few_passages_are_embedded_by_the_onnx_export_without_torch(make_settings, docs, monkeypatch):
    from conftest import loaded

    from rag.embeddings import load_encoder, resolve_model_path

    settings = make_settings()
    reference = load_encoder(resolve_model_path(settings.embedding_model))
    monkeypatch.setattr("rag.ingest.load_encoder", lambda *a: pytest.fail("a few passages must not load torch"))
    assistant = Assistant(settings)
    assistant.ingest()
    text = "Consumers replay the stream from any offset after an outage."
    (docs / "kafka.md").write_text(f"# Moving to Kafka\n\n{text}\n")
    assert assistant.ingest().embedded == 1
    store, _ = loaded(assistant)
    new = [row for row in store.records.all() if row.record.text == text]
    assert np.allclose(store.vectors([new[0].id]), reference.encode([text]), atol=1e-5)
