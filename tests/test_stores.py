"""Both vector-store backends behind one interface: FAISS and Milvus (Milvus Lite in a temporary folder).

The same ingest, incremental update, refusal and search behaviour is checked on each; a Milvus server
is never needed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import loaded

from rag import Assistant, IndexMismatch, Settings
from rag.errors import UserError
from rag.index.manifest import read_manifest

REPO = Path(__file__).resolve().parent.parent
STORES = ["faiss", "milvus"]


@pytest.fixture(params=STORES)
def store_name(request):
    return request.param


def texts(assistant):
    store, _ = loaded(assistant)
    return {p.text: p.titles for p in store.passages([row.id for row in store.records.all()])}


def keys(store) -> set[str]:
    return {row.record.key for row in store.records.all()}


def milvus_keys(settings) -> set[str]:
    """What the Milvus collection itself holds, read around the store (nothing left behind)."""
    from rag.index.milvus import MilvusTarget, _all_keys

    target = MilvusTarget.from_settings(settings)
    with target.connect() as client:
        client.load_collection(target.collection)
        return _all_keys(client, target.collection)


def test_store_describes_its_backend_and_location(make_settings, docs, store_name):
    settings = make_settings(store=store_name)
    assistant = Assistant(settings)
    assistant.ingest()
    store, _ = loaded(assistant)
    assert store.name == store_name and store.count() == 4 == len(keys(store))
    info = assistant.info()
    assert info.store == store_name and read_manifest(settings.index_dir).store == store_name
    if store_name == "milvus":
        assert info.location == f"Milvus Lite {settings.index_dir / 'milvus.db'}, collection rag_passages"
        assert read_manifest(settings.index_dir).index_file is None
    else:
        assert info.location.endswith(".faiss")
    assistant.close()


def test_shared_paragraph_is_one_record_naming_every_post(make_settings, docs, store_name):
    assistant = Assistant(make_settings(store=store_name))
    report = assistant.ingest()
    assert (report.posts, report.passages, report.unique_passages, report.embedded) == (2, 5, 4, 4)
    assert texts(assistant)["Shared lesson: always measure before optimizing."] == ["Edge caching", "Moving to Kafka"]
    assistant.close()


def test_edit_reembeds_only_changed_passages_and_delete_leaves_nothing(make_settings, docs, store_name):
    settings = make_settings(store=store_name)
    assistant = Assistant(settings)
    assistant.ingest()
    assert assistant.ingest().wrote_index is False  # nothing changed, nothing written
    path = docs / "kafka.md"
    path.write_text(path.read_text().replace("four thousand", "six thousand"))
    report = assistant.ingest()
    assert (report.embedded, report.reused, report.changed_files) == (1, 3, ("corpus/kafka.md",))
    assert "The cluster costs six thousand dollars a month." in texts(assistant)
    assert "The cluster costs four thousand dollars a month." not in texts(assistant)

    (docs / "cdn.md").unlink()
    report = assistant.ingest()
    assert report.removed_files == ("corpus/cdn.md",) and report.embedded == 0
    current = texts(assistant)
    assert not any("CDN" in text for text in current)
    assert all(titles == ["Moving to Kafka"] for titles in current.values())
    hits = assistant.search("cache hit rate at the edge", k=10).hits
    assert all(h.passage.sources[0].path == "corpus/kafka.md" for h in hits)
    store, _ = loaded(assistant)
    if store_name == "milvus":
        assert milvus_keys(settings) == keys(store)  # the collection holds exactly the current passages
    assistant.close()


def test_index_built_with_another_model_is_refused(make_settings, docs, store_name, monkeypatch):
    settings = make_settings(store=store_name)
    Assistant(settings).ingest()
    import rag.ingest

    real = rag.ingest.build_spec
    monkeypatch.setattr("rag.resources.build_spec",
                        lambda s: real(s).__class__(**{**real(s).__dict__, "model": "another/model"}))
    with pytest.raises(IndexMismatch, match="rag ingest"):
        Assistant(settings).search("kafka")


def test_milvus_collection_of_another_model_is_refused(make_settings, docs):
    """The collection itself records its model: a manifest that agrees cannot smuggle other vectors in."""
    from rag.index.milvus import _MODEL, MilvusTarget

    settings = make_settings(store="milvus")
    Assistant(settings).ingest()
    target = MilvusTarget.from_settings(settings)
    with target.connect() as client:
        client.alter_collection_properties(target.collection, properties={_MODEL: "another/model"})
    with pytest.raises(IndexMismatch, match="rag ingest"):
        Assistant(settings).search("kafka")
    assert Assistant(settings).ingest(rebuild=True).embedded == 4  # ingest makes the collection anew
    assert Assistant(settings).search("replayable event streams").hits[0].passage.titles == ["Moving to Kafka"]


def test_store_setting_must_match_the_index(make_settings, docs):
    Assistant(make_settings()).ingest()
    with pytest.raises(IndexMismatch, match="RAG_STORE=faiss"):
        Assistant(make_settings(store="milvus")).search("kafka")


def test_lexical_and_dense_rankings_agree_between_backends(make_settings, docs, tmp_path):
    stores = {}
    for name in STORES:
        assistant = Assistant(make_settings(store=name, index_dir=tmp_path / name))
        assistant.ingest()
        stores[name] = loaded(assistant)[0]
    faiss_store, milvus_store = stores["faiss"], stores["milvus"]
    assert faiss_store.lexical(["kafka", "cost"], 10, (1.0, 0.5, 0.5)) == \
        milvus_store.lexical(["kafka", "cost"], 10, (1.0, 0.5, 0.5))
    query = faiss_store.vectors([0])[0]
    dense_f, dense_m = faiss_store.search(query, 4), milvus_store.search(query, 4)
    assert [i for i, _ in dense_f] == [i for i, _ in dense_m]
    np.testing.assert_allclose([s for _, s in dense_f], [s for _, s in dense_m], atol=1e-5)
    np.testing.assert_allclose(faiss_store.vectors([3, 1]), milvus_store.vectors([3, 1]), atol=1e-6)
    milvus_store.close()


def test_switching_the_store_reuses_stored_vectors(make_settings, docs):
    settings = make_settings()
    Assistant(settings).ingest()
    report = Assistant(make_settings(store="milvus")).ingest()
    assert (report.embedded, report.reused, report.wrote_index) == (0, 4, True)
    assert read_manifest(settings.index_dir).store == "milvus"
    report = Assistant(make_settings(store="faiss")).ingest()
    assert (report.embedded, report.wrote_index) == (0, True)


def test_migrate_copies_without_embedding(make_settings, docs, monkeypatch):
    settings = make_settings()
    faiss = Assistant(settings)
    faiss.ingest()
    before = faiss.search("replayable event streams", k=3).to_dict()
    monkeypatch.setattr("rag.ingest.load_encoder", lambda *a: pytest.fail("migrate must not embed"))
    info = faiss.migrate("milvus")
    assert (info.store, info.unique_passages, info.posts) == ("milvus", 4, 2)
    milvus = Assistant(make_settings(store="milvus"))
    after = milvus.search("replayable event streams", k=3).to_dict()
    assert [p["text"] for p in after["passages"]] == [p["text"] for p in before["passages"]]
    assert [p["score"] for p in after["passages"]] == pytest.approx([p["score"] for p in before["passages"]], abs=1e-5)
    assert milvus.ingest().wrote_index is False  # fingerprints came along: up to date
    with pytest.raises(UserError, match="already in milvus"):
        milvus.migrate("milvus")
    milvus.close()


def test_milvus_settings_are_checked_and_the_token_never_shown(make_settings, docs):
    from rag.index.milvus import MilvusTarget

    with pytest.raises(UserError, match="must end in .db"):
        MilvusTarget.from_settings(make_settings(store="milvus", milvus_uri="/tmp/somewhere"))
    target = MilvusTarget.from_settings(make_settings(
        store="milvus", milvus_uri="https://alice:s3cret@db.example:19530", milvus_token="alice:s3cret"))
    assert target.location() == {"uri": "https://db.example:19530", "collection": "rag_passages"}
    assert "s3cret" not in repr(Settings(milvus_token="alice:s3cret"))
    with pytest.raises(ValueError):
        make_settings(milvus_collection="bad-name; drop")


def test_unreachable_milvus_server_is_one_line_naming_no_token(make_settings, docs):
    from rag.errors import StoreUnavailable

    settings = make_settings(store="milvus", milvus_uri="http://127.0.0.1:9", milvus_token="tok-s3cret")
    with pytest.raises(StoreUnavailable) as caught:
        Assistant(settings).ingest()
    assert "127.0.0.1:9" in str(caught.value) and "s3cret" not in str(caught.value)


def test_milvus_lite_in_use_by_another_process_says_so(make_settings, docs):
    settings = make_settings(store="milvus")
    Assistant(settings).ingest()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pymilvus import MilvusClient; "
         f"MilvusClient({str(settings.index_dir / 'milvus.db')!r}); print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(UserError, match="open in another process"):
            Assistant(settings).search("kafka")
    finally:
        holder.kill()
        holder.wait()


@pytest.fixture(scope="session")
def milvus_shipped_index(shipped_index, tmp_path_factory) -> Path:
    """The session's shipped FAISS index copied into Milvus Lite by `migrate` (nothing re-embedded)."""
    target = tmp_path_factory.mktemp("milvus-shipped") / "vectorstore"
    shutil.copytree(shipped_index, target)
    settings = Settings(corpus_dir=REPO / "corpus", index_dir=target)
    Assistant(settings).migrate("milvus")
    return target


def test_milvus_answers_the_same_questions_with_the_same_citations(shipped, milvus_shipped_index):
    milvus = Assistant(Settings(corpus_dir=REPO / "corpus", index_dir=milvus_shipped_index, store="milvus"))
    lines = (REPO / "tests" / "data" / "answer_questions.jsonl").read_text().splitlines()
    questions = [json.loads(line)["question"] for line in lines if line.strip()]
    for question in questions:
        a, b = shipped.ask(question).to_dict(), milvus.ask(question).to_dict()
        assert b["answer"] == a["answer"], question
        assert b["abstained"] == a["abstained"]
        assert [(c["marker"], c["text"], c["titles"]) for c in b["citations"]] == \
            [(c["marker"], c["text"], c["titles"]) for c in a["citations"]], question
        assert [c["score"] for c in b["citations"]] == pytest.approx([c["score"] for c in a["citations"]], abs=1e-5)
    milvus.close()


@pytest.mark.slow
def test_rag_ingest_store_milvus_and_info_from_the_shell(tmp_path, docs):
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path),
           "RAG_MILVUS_TOKEN": "never-shown"}
    rag = [sys.executable, "-m", "rag"]
    done = subprocess.run([*rag, "ingest", "--store", "milvus", "--json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["unique_passages"] == 4
    info = subprocess.run([*rag, "info"], cwd=tmp_path, env={**env, "RAG_STORE": "milvus"},
                          capture_output=True, text=True, timeout=120)
    assert info.returncode == 0, info.stderr
    assert "milvus: Milvus Lite vectorstore/milvus.db, collection rag_passages" in info.stdout
    assert "never-shown" not in info.stdout + info.stderr + done.stdout + done.stderr
    found = subprocess.run([*rag, "search", "replayable event streams", "--json"], cwd=tmp_path,
                           env={**env, "RAG_STORE": "milvus"}, capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["passages"][0]["titles"] == ["Moving to Kafka"]
