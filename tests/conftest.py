"""Shared fixtures. The embedding model loads once per test session (rag.embeddings caches it)."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
SHIPPED_CORPUS = REPO / "corpus"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Each test runs in its own folder with no RAG_* variables or .env from the developer."""
    for name in list(os.environ):
        if name.startswith("RAG_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def make_settings(tmp_path):
    from rag import Settings

    def make(**overrides):
        values = {"corpus_dir": tmp_path / "corpus", "index_dir": tmp_path / "vectorstore"}
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def corpus(tmp_path) -> Path:
    """A private copy of the shipped case studies that a test may edit."""
    target = tmp_path / "corpus"
    shutil.copytree(SHIPPED_CORPUS, target)
    return target


@pytest.fixture
def docs(tmp_path) -> Path:
    """Two small posts that share one paragraph."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "kafka.md").write_text(
        "# Moving to Kafka\n\nWe replaced RabbitMQ with Kafka to get replayable event streams.\n\n"
        "## Cost\n\nThe cluster costs four thousand dollars a month.\n\n"
        "Shared lesson: always measure before optimizing.\n")
    (folder / "cdn.md").write_text(
        "# Edge caching\n\nA CDN in front of the API raised the cache hit rate to 94 percent.\n\n"
        "Shared lesson: always measure before optimizing.\n")
    return folder


@pytest.fixture(scope="session")
def shipped_index(tmp_path_factory) -> Path:
    """The shipped corpus, ingested once for the read-only tests."""
    from rag import Assistant, Settings

    root = tmp_path_factory.mktemp("shipped")  # ingested with the real ONNX export
    settings = Settings(corpus_dir=SHIPPED_CORPUS, index_dir=root / "vectorstore")
    Assistant(settings).ingest()
    return root / "vectorstore"


@pytest.fixture(autouse=True)
def reuse_onnx_export(request, monkeypatch):
    """Ingests in tests copy the session's one real ONNX export instead of exporting again (~3 s each).

    The export itself runs for real once, when the shipped index is built.
    """
    exported = request.getfixturevalue("shipped_index") / "onnx"

    def copy_export(model_path, out_dir):
        shutil.rmtree(out_dir, ignore_errors=True)
        shutil.copytree(exported, out_dir)
        return sorted(out_dir.iterdir())

    monkeypatch.setattr("rag.onnx_encoder.export_onnx", copy_export)


@pytest.fixture
def shipped(shipped_index):
    from rag import Assistant, Settings

    return Assistant(Settings(corpus_dir=SHIPPED_CORPUS, index_dir=shipped_index))


def loaded(assistant):
    """The assistant's loaded index generation and query encoder (loading them if needed)."""
    with assistant._index.borrow() as resources:
        return resources.store, resources.encoder


# ---------------------------------------------------------------- people's state on SQLite and PostgreSQL


@pytest.fixture(scope="session")
def postgres_cluster():
    """A throw-away PostgreSQL cluster for the session (tests/postgres.py), started when a test first needs it.
    Where PostgreSQL is not installed a developer's run skips those tests; CI's fails (.ci/run installs it)."""
    from postgres import Cluster, binaries

    found = binaries()
    if found is None:
        message = "PostgreSQL is not installed (initdb not found): apt-get install postgresql"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    cluster = Cluster(found)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(RuntimeError):
            cluster.stop()
        cluster.remove()


@pytest.fixture
def postgres_url(postgres_cluster):
    """A fresh, empty database in the session's cluster: its URL, the password in it."""
    from rag.people import database

    name = postgres_cluster.create_database()
    url = postgres_cluster.url(name)
    yield url
    database.forget(url)  # its pool's connections, before the database goes
    postgres_cluster.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def people_url(request, monkeypatch) -> str | None:
    """Each store test runs on both backends: None for the SQLite files, else a fresh PostgreSQL database's
    URL, which is also RAG_DATABASE_URL for the commands a test runs."""
    if request.param == "sqlite":
        return None
    url = request.getfixturevalue("postgres_url")
    monkeypatch.setenv("RAG_DATABASE_URL", url)
    return url


# ---------------------------------------------------------------- an OpenAI-compatible endpoint


@pytest.fixture
def fresh_breakers():
    """The LLM breakers are process-wide: a test that uses this starts (and leaves) every endpoint closed."""
    from rag.answer import breaker

    breaker.reset()
    yield
    breaker.reset()


@pytest.fixture
def fake():
    """The fake OpenAI-compatible server (tests/fake_openai.py), for as long as the test runs."""
    from fake_openai import FakeOpenAI

    with FakeOpenAI() as server:
        yield server
