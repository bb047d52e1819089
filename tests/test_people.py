"""People's state behind one versioned store (rag/people): the token store's contract on SQLite and PostgreSQL,
the schema's version and migrations, `rag db upgrade`, and the one-line failures of a database that is wrong,
refuses us, or goes away mid-request (503, then the next request works)."""

from __future__ import annotations

import threading

import pytest
from conftest import SHIPPED_CORPUS
from postgres import PASSWORD

from rag import Assistant, Settings, logs
from rag.cli import main
from rag.errors import UserError
from rag.people import Database, DatabaseUnavailable, SchemaTooNew, database, schema
from rag.tokens import TokenStore
from rag.users import UserStore


def settings_for(tmp_path, url: str | None, **values) -> Settings:
    return Settings(_env_file=None, index_dir=tmp_path / "vectorstore", chats_path=tmp_path / "chats.sqlite3",
                    database_url=url, **values)


@pytest.fixture
def tokens(tmp_path, people_url) -> TokenStore:
    return TokenStore.of(settings_for(tmp_path, people_url))


def test_tokens_are_made_checked_listed_and_revoked_and_revoking_all_keeps_them_made(tokens):
    assert not tokens.any_made() and not tokens.any_active() and tokens.tokens() == []
    assert tokens.check("rag_" + "x" * 43) is None
    reader, record = tokens.create("reader", "  ci  ")
    admin, _ = tokens.create("admin")
    assert tokens.check(reader) == record and record.name == "ci" and tokens.check(admin).admin
    assert tokens.check(reader + "x") is None and tokens.check("not-a-token") is None
    assert {t.role for t in tokens.tokens()} == {"reader", "admin"}
    revoked = tokens.revoke(record.id)
    assert revoked.revoked and tokens.check(reader) is None
    with pytest.raises(UserError, match="no active token"):
        tokens.revoke(record.id)
    tokens.revoke(next(t.id for t in tokens.tokens() if t.revoked is None))
    assert tokens.any_made() and not tokens.any_active()  # revoking all never reopens the no-token mode
    with pytest.raises(UserError, match="unknown role"):
        tokens.create("owner")


def test_removing_every_user_keeps_the_mark_that_one_was_made(tmp_path, people_url):
    users = UserStore.of(settings_for(tmp_path, people_url))
    assert not users.any_made()
    users.add("ada", "reader", "correct horse battery")
    users.remove("ada")
    assert users.any_made() and not users.any_users()


def test_the_api_refuses_a_revoked_token_from_either_store(shipped_index, tmp_path, people_url):
    import shutil

    from fastapi.testclient import TestClient

    from rag.server.api import create_app

    shutil.copytree(shipped_index, tmp_path / "vectorstore")  # a token file may be made beside it
    settings = settings_for(tmp_path, people_url, corpus_dir=SHIPPED_CORPUS)
    tokens = TokenStore.of(settings)
    token, record = tokens.create("reader")
    api = TestClient(create_app(Assistant(settings), loopback=True), base_url="http://localhost")
    assert api.get("/v1/info").status_code == 401  # a token was made: no more no-token mode
    assert api.get("/v1/info", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    tokens.revoke(record.id)  # as `rag token revoke` on another machine would
    assert api.get("/v1/info", headers={"Authorization": f"Bearer {token}"}).status_code == 401


# ---------------------------------------------------------------- the schema's version


def test_a_new_database_is_at_the_codes_version_and_rag_db_upgrade_says_so(tmp_path, people_url, monkeypatch,
                                                                             capsys):
    monkeypatch.chdir(tmp_path)  # the default index folder and chat file are here
    TokenStore.of(settings_for(tmp_path, people_url)).create("admin")
    assert main(["db", "upgrade"]) == 0
    out = capsys.readouterr().out
    assert f"schema version {schema.VERSION}, already current" in out
    if people_url is None:  # each file that exists, and the ones not made yet said so
        assert "tokens.sqlite3" in out and "users.sqlite3: not made yet" in out
    else:
        assert PASSWORD not in out and "rag:***@" in out and out.count("\n") == 1


def test_a_database_newer_than_the_code_is_refused_in_one_line(tmp_path, people_url, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    tokens = TokenStore.of(settings_for(tmp_path, people_url))
    tokens.create("admin")
    with tokens.db.begin() as db:
        db.execute("INSERT INTO schema_version (version, applied) VALUES (:v, 'later')", v=schema.VERSION + 1)
    if people_url is not None:
        database.forget(people_url)  # what a process started now would find
    with pytest.raises(SchemaTooNew, match=f"schema version {schema.VERSION + 1}, newer than this rag's"):
        TokenStore.of(settings_for(tmp_path, people_url)).tokens()
    assert main(["db", "upgrade"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "newer than this rag's" in err and PASSWORD not in err


def test_an_old_token_file_is_adopted_in_place_with_its_tokens(tmp_path):
    import sqlite3

    path = tmp_path / "tokens.sqlite3"
    with sqlite3.connect(path) as db:  # the file the code before versions made
        db.execute("CREATE TABLE tokens (id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, role TEXT NOT NULL, "
                   "name TEXT NOT NULL, created TEXT NOT NULL, revoked TEXT)")
        db.execute("INSERT INTO tokens VALUES ('tok_1', 'h', 'admin', 'ops', '2025-01-01T00:00:00+00:00', NULL)")
    store = TokenStore(path)
    assert [t.id for t in store.tokens()] == ["tok_1"] and store.any_active()
    with sqlite3.connect(path) as db:
        versions = db.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    assert versions == [(n,) for n in range(1, schema.VERSION + 1)]


def test_two_processes_upgrading_at_once_migrate_once(postgres_url):
    """The advisory lock: every starting replica upgrades, one at a time, and the second finds nothing to do."""
    from rag.config import Secret

    results: list[tuple[int, int]] = []
    first, second = Database(None, Secret(postgres_url), UserError), Database(None, Secret(postgres_url), UserError)
    threads = [threading.Thread(target=lambda d=d: results.append(d.upgrade())) for d in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == [(0, schema.VERSION), (schema.VERSION, schema.VERSION)]
    for each in (first, second):
        each.engine().dispose()


# ---------------------------------------------------------------- a database that is wrong or goes away


@pytest.mark.parametrize("wrong", ["password", "database", "port"])
def test_a_wrong_url_refused_password_or_missing_database_is_one_line_at_start_up(
        postgres_cluster, postgres_url, monkeypatch, capsys, tmp_path, wrong):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    url = {"password": postgres_cluster.url(postgres_url.rsplit("/", 1)[1], "wrong-SENTINEL"),
           "database": postgres_cluster.url("nosuchdatabase"),
           "port": postgres_url.replace(f":{postgres_cluster.port}/", f":{closed}/")}[wrong]
    monkeypatch.setenv("RAG_DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    try:
        for command in (["db", "upgrade"], ["serve", "--port", "1"], ["token", "list"]):
            assert main(command) == 2, command
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "RAG_DATABASE_URL" in err, err
            assert PASSWORD not in err and "SENTINEL" not in err and "Traceback" not in err
    finally:
        logs.setup(False)  # `rag serve` logs JSON to this test's captured stderr, closed after it


@pytest.mark.parametrize("url", ["mysql://rag:SENTINEL@db/rag", "postgresql://rag:SENTINEL@db:notaport/rag"])
def test_a_url_that_is_not_postgresql_is_refused_by_the_settings_without_repeating_it(url, monkeypatch, capsys):
    monkeypatch.setenv("RAG_DATABASE_URL", url)
    assert main(["db", "upgrade"]) == 2
    err = capsys.readouterr().err
    assert "RAG_DATABASE_URL" in err and "SENTINEL" not in err and err.count("\n") == 1


def test_the_url_is_a_secret_in_reprs_and_dumps(postgres_url):
    settings = Settings(_env_file=None, database_url=postgres_url)
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings.as_dict())
    assert PASSWORD not in Database.server(settings.database_url).where


def test_postgresql_going_away_mid_use_is_503_and_the_next_request_after_its_restart_works(
        postgres_cluster, postgres_url, shipped_index):
    from fastapi.testclient import TestClient

    from rag.server.api import create_app

    settings = Settings(_env_file=None, corpus_dir=SHIPPED_CORPUS, index_dir=shipped_index, database_url=postgres_url)
    token, _ = TokenStore.of(settings).create("reader")
    api = TestClient(create_app(Assistant(settings), loopback=True), base_url="http://localhost")
    signed = {"Authorization": f"Bearer {token}"}
    assert api.get("/v1/info", headers=signed).status_code == 200  # the pool holds a connection now
    postgres_cluster.stop()
    try:
        with pytest.raises(DatabaseUnavailable, match="RAG_DATABASE_URL") as gone:
            TokenStore.of(settings).check(token)
        assert PASSWORD not in str(gone.value) and "\n" not in str(gone.value)
        refused = api.get("/v1/info", headers=signed)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
        assert "try again" in refused.json()["error"]["message"] and "127.0.0.1" not in refused.text
    finally:
        postgres_cluster.start()
    assert api.get("/v1/info", headers=signed).status_code == 200  # no restart of the service
