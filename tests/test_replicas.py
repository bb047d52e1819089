"""Replicas that share one PostgreSQL database (issue 31): rate-limit budgets counted in the database, one
writer of the index across machines (an advisory lock), a schema upgraded by another replica noticed while
running, and two real `rag serve` processes that share tokens, budgets and revocations."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from conftest import SHIPPED_CORPUS

from rag import Settings
from rag.config import Secret
from rag.errors import IndexBusy, UserError
from rag.ingest import _WRITER_LOCK, run_ingest, writer_lock
from rag.people import Database, SchemaTooNew, database, schema
from rag.people.budgets import BUCKET, WINDOW, SharedLimiter
from rag.tokens import TokenStore


def replica_db(url: str) -> Database:
    """A Database of its own, as another process would have (Database.server shares one per process)."""
    return Database(None, Secret(url), UserError)


def test_two_replicas_spend_one_budget_and_it_frees_a_minute_later(postgres_url):
    now = [1_000_000.0]
    first, second = (SharedLimiter(replica_db(postgres_url), 5, clock=lambda: now[0]) for _ in range(2))
    assert [first.retry_after("tok_a") for _ in range(3)] == [None] * 3
    assert second.retry_after("tok_a", 2) is None
    wait = second.retry_after("tok_a")
    assert wait is not None and WINDOW <= wait <= WINDOW + BUCKET and first.waiting("tok_a") == wait
    assert first.retry_after("tok_b") is None  # another caller has a budget of its own
    assert first.retry_after("tok_a", 50) == wait  # more than a minute's budget waits for an empty window
    now[0] += wait
    assert second.waiting("tok_a") is None and second.retry_after("tok_a", 5) is None
    assert first.retry_after("tok_a") is not None


def test_concurrent_spending_on_two_replicas_never_passes_the_budget(postgres_url):
    limiters = [SharedLimiter(replica_db(postgres_url), 10) for _ in range(2)]
    admitted: list[bool] = []

    def spend(limiter: SharedLimiter) -> None:
        for _ in range(8):
            admitted.append(limiter.retry_after("tok_busy") is None)

    threads = [threading.Thread(target=spend, args=(limiter,)) for limiter in limiters for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(admitted) == 32 and admitted.count(True) == 10


def test_expired_buckets_are_deleted(postgres_url):
    db = replica_db(postgres_url)
    now = [2_000_000.0]
    limiter = SharedLimiter(db, 100, clock=lambda: now[0])
    for key in ("a", "b", "c"):
        limiter.retry_after(key)
    now[0] += WINDOW + 2 * BUCKET
    limiter.retry_after("d")  # a sweep: the others' buckets are past the window
    with db.begin() as session:
        assert [row[0] for row in session.execute("SELECT key FROM spent").fetchall()] == ["d"]


def test_a_version_1_database_gains_the_budgets_table(people_url, tmp_path):
    from sqlalchemy import inspect

    db = replica_db(people_url) if people_url else Database.file(tmp_path / "old.sqlite3", UserError)
    if people_url is None:
        db._make_file()
    with db.engine().connect() as connection, connection.begin():  # what version 1 of the code left
        schema.versions.create(connection)
        schema._v1_tables(connection)
        connection.execute(schema.versions.insert().values(version=1, applied="then"))
    assert db.upgrade() == (1, schema.VERSION)
    with db.engine().connect() as connection:
        assert inspect(connection).has_table("spent")


def test_a_schema_upgraded_by_another_replica_is_noticed_while_running(postgres_url, monkeypatch):
    running = replica_db(postgres_url)
    with running.begin() as db:
        db.execute("SELECT 1")
    with replica_db(postgres_url).begin() as db:  # a replica with newer code upgraded it
        db.execute("INSERT INTO schema_version (version, applied) VALUES (:v, 'later')", v=schema.VERSION + 1)
    monkeypatch.setattr(database, "_RECHECK", 0.0)
    with pytest.raises(SchemaTooNew, match="every replica runs the same version"), running.begin():
        pass


# ---------------------------------------------------------------- one writer across machines


def writer_settings(tmp_path, url: str, name: str) -> Settings:
    """A writer on its own machine: an index folder of its own, so only the database can keep it out."""
    return Settings(_env_file=None, corpus_dir=SHIPPED_CORPUS, index_dir=tmp_path / name, database_url=url,
                    lock_timeout=1.0)


def test_a_second_writer_on_another_machine_waits_for_the_database_lock(tmp_path, postgres_url):
    other = replica_db(postgres_url)
    waited: list[bool] = []
    with other.held(_WRITER_LOCK, timeout=1) as had:
        assert had
        with pytest.raises(IndexBusy), writer_lock(writer_settings(tmp_path, postgres_url, "b"),
                                                   lambda: waited.append(True)):
            pass
    assert waited == [True]
    # Free once the other let go, and then held by this writer.
    with writer_lock(writer_settings(tmp_path, postgres_url, "b")), other.held(_WRITER_LOCK, timeout=0) as had:
        assert not had


def test_a_writer_whose_database_lock_was_lost_publishes_nothing(tmp_path, postgres_cluster, postgres_url,
                                                               monkeypatch):
    import rag.ingest
    from rag.index.manifest import read_manifest

    settings = writer_settings(tmp_path, postgres_url, "a")
    before = run_ingest(settings) and read_manifest(settings.index_dir)
    (tmp_path / "more.md").write_text("# More\n\nA paragraph that the second ingest adds to the index.\n")
    reading = rag.ingest.load_paths

    def restart_then_read(*args, **kwargs):  # PostgreSQL restarts while the writer holds its lock
        postgres_cluster.stop()
        postgres_cluster.start()
        return reading(*args, **kwargs)

    monkeypatch.setattr(rag.ingest, "load_paths", restart_then_read)
    with pytest.raises(UserError, match="writer lock .* was lost while writing"):
        run_ingest(settings, [tmp_path / "more.md"])
    assert read_manifest(settings.index_dir).generation == before.generation  # nothing published
    monkeypatch.setattr(rag.ingest, "load_paths", reading)
    assert run_ingest(settings, [tmp_path / "more.md"]).passages > before.passages


HOLDER = """
import sys, time
from rag.config import Secret
from rag.errors import UserError
from rag.people import Database
with Database(None, Secret(sys.argv[1]), UserError).held(int(sys.argv[2]), timeout=5) as had:
    print("held" if had else "not held", flush=True)
    time.sleep(600)
"""


@pytest.mark.slow
def test_a_writer_killed_while_holding_the_lock_does_not_keep_the_index_locked(tmp_path, postgres_url):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, postgres_url, str(_WRITER_LOCK)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        settings = writer_settings(tmp_path, postgres_url, "a")
        with pytest.raises(IndexBusy):
            run_ingest(settings)
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
        report = run_ingest(settings.replace(lock_timeout=10.0))  # the server noticed the connection end
        assert report.passages > 0
    finally:
        holder.kill()


# ---------------------------------------------------------------- two real replicas


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_replica(index_dir, url: str, port: int, cwd, **variables: str) -> subprocess.Popen:
    env = {**os.environ, "RAG_INDEX_DIR": str(index_dir), "RAG_CORPUS_DIR": str(SHIPPED_CORPUS),
           "RAG_DATABASE_URL": url, **variables}
    return subprocess.Popen([sys.executable, "-m", "rag", "serve", "--port", str(port)], env=env, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_ready(base: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=10).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{base} never became ready")
        time.sleep(0.2)


@pytest.mark.slow
def test_two_replicas_share_tokens_budgets_and_revocations(shipped_index, tmp_path, postgres_url):
    settings = Settings(_env_file=None, corpus_dir=SHIPPED_CORPUS, index_dir=shipped_index, database_url=postgres_url)
    tokens = TokenStore.of(settings)
    token, _ = tokens.create("reader")
    ports = [free_port(), free_port()]
    replicas = [start_replica(shipped_index, postgres_url, port, tmp_path, RAG_SERVER_RATE_LIMIT="6",
                              RAG_SERVER_FAILED_TOKEN_LIMIT="4") for port in ports]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for base in bases:
            wait_ready(base)
        other, other_record = tokens.create("reader")
        assert httpx.get(f"{bases[1]}/v1/info", headers={"Authorization": f"Bearer {other}"}).status_code == 200
        tokens.revoke(other_record.id)  # `rag token revoke` anywhere: refused everywhere at once
        for base in bases:
            assert httpx.get(f"{base}/v1/info", headers={"Authorization": f"Bearer {other}"}).status_code == 401

        signed = {"Authorization": f"Bearer {token}"}
        codes = [httpx.get(f"{bases[i % 2]}/v1/info", headers=signed, timeout=30).status_code for i in range(7)]
        assert codes == [200] * 6 + [429]  # six units in all, not six on each
        refused = httpx.get(f"{bases[0]}/v1/info", headers=signed, timeout=30)
        assert refused.status_code == 429 and 0 < int(refused.headers["Retry-After"]) <= WINDOW + BUCKET

        wrong = {"Authorization": "Bearer rag_" + "x" * 43}  # the revoked token's two refusals were tries 1-2
        codes = [httpx.get(f"{bases[i % 2]}/v1/info", headers=wrong, timeout=30).status_code for i in range(3)]
        assert codes == [401, 401, 429]  # a guesser gets four tries in all, not four per replica

    finally:
        for replica in replicas:
            replica.send_signal(signal.SIGTERM)
        for replica in replicas:
            _, err = replica.communicate(timeout=60)
            assert "Traceback" not in err, err
