"""`rag serve`: the REST contracts, errors, tokens and roles, limits, streaming, and the OpenAI protocol
spoken to the real `openai` client and LangChain's ChatOpenAI over real HTTP."""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import threading
import time

import httpx
import pytest
from conftest import SHIPPED_CORPUS

from rag import Assistant, Settings
from rag.server.api import create_app
from rag.tokens import TokenStore

QUESTION = "How did they cut cloud costs?"


@pytest.fixture(scope="module")
def index_copy(shipped_index, tmp_path_factory):
    """A copy of the shipped index that these tests may hold tokens beside."""
    target = tmp_path_factory.mktemp("served") / "vectorstore"
    shutil.copytree(shipped_index, target)
    return target


@pytest.fixture(scope="module")
def assistant(index_copy):
    shared = Assistant(Settings(corpus_dir=SHIPPED_CORPUS, index_dir=index_copy))
    shared.load()
    return shared


@pytest.fixture
def tokens(index_copy):
    store = TokenStore.beside(index_copy)
    yield store
    store.path.unlink(missing_ok=True)


def client(assistant, loopback=True, **settings):
    from fastapi.testclient import TestClient

    return TestClient(create_app(assistant.configured(**settings) if settings else assistant, loopback),
                      base_url="http://localhost")


@contextlib.contextmanager
def served(app):
    """The app on a real uvicorn server on a free port of 127.0.0.1."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def without_timings(data: dict) -> dict:
    return {key: value for key, value in data.items() if key != "timings"}


def test_search_ask_verify_and_sources_return_the_cli_contracts(assistant):
    api = client(assistant)
    searched = api.post("/v1/search", json={"question": QUESTION, "k": 3}).json()
    assert without_timings(searched) == without_timings(assistant.search(QUESTION, 3).to_dict())
    asked = api.post("/v1/ask", json={"question": QUESTION}).json()
    assert without_timings(asked) == without_timings(assistant.ask(QUESTION).to_dict())
    assert asked["citations"] and "[1]" in asked["answer"]
    passages = [p["text"] for p in searched["passages"]]
    claim = {"passages": passages, "answer": "Right-sizing instances cut costs [1]. The team moved to Mars [2]."}
    assert api.post("/v1/verify", json=claim).json() == assistant.verify(claim["answer"], passages).to_dict()
    listed = api.get("/v1/sources").json()["sources"]
    assert [{k: v for k, v in d.items() if k != "id"} for d in listed] == [d.to_dict() for d in assistant.sources()]
    assert all(d["id"] == d["path"] for d in listed)
    info = api.get("/v1/info").json()
    assert info["passages"] == assistant.info().passages and "state" in info["llm"]


def test_a_follow_up_is_read_with_its_history(assistant):
    history = [{"role": "user", "content": QUESTION}, ["assistant", "By right-sizing instances [1]."]]
    asked = client(assistant).post("/v1/ask", json={"question": "why?", "history": history}).json()
    assert asked["standalone_question"] != "why?" and "cloud" in asked["standalone_question"]


def test_the_openapi_document_describes_every_route_and_its_bodies(assistant):
    document = client(assistant).get("/openapi.json").json()
    for path in ("/v1/search", "/v1/ask", "/v1/verify", "/v1/sources", "/v1/sources/{source_id}", "/v1/ingest",
                 "/v1/info", "/healthz", "/readyz", "/metrics", "/v1/chat/completions", "/v1/models"):
        assert path in document["paths"], path
    schemas = document["components"]["schemas"]
    assert {"AskRequest", "AskResponse", "SearchResponse", "ErrorResponse", "IngestRequest"} <= set(schemas)
    assert "401" in document["paths"]["/v1/ask"]["post"]["responses"]


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("post", "/v1/ask", {"question": "   "}, 400),
    ("post", "/v1/ask", b"{not json", 400),
    ("post", "/v1/search", {"k": 3}, 422),
    ("post", "/v1/search", {"question": "q", "k": 0}, 422),
    ("post", "/v1/search", {"question": "q", "extra": 1}, 422),
    ("post", "/v1/ask", {"question": "x" * 2001}, 413),
    ("post", "/v1/verify", {"passages": [], "answer": "a"}, 422),
    ("get", "/v1/nowhere", None, 404),
    ("delete", "/v1/sources/corpus/nothing.md", None, 404),
    ("put", "/v1/ask", None, 405),
    ("post", "/v1/chat/completions", {"model": "gpt-5", "messages": [{"role": "user", "content": "q"}]}, 404),
    ("post", "/v1/chat/completions", {"model": "rag", "messages": [{"role": "assistant", "content": "q"}]}, 400),
])
def test_every_mistake_gets_its_status_and_one_line_in_one_shape(assistant, method, path, body, status):
    api = client(assistant)
    if isinstance(body, bytes):
        response = api.request(method, path, content=body, headers={"Content-Type": "application/json"})
    else:
        response = api.request(method, path, json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["status"] == status and error["type"] and "\n" not in error["message"]
    assert "Traceback" not in response.text and "site-packages" not in response.text


def test_a_body_over_the_limit_is_refused_with_413(assistant):
    response = client(assistant, server_max_body_bytes=2048).post("/v1/search", json={"question": "q" * 3000})
    assert response.status_code == 413
    assert "RAG_SERVER_MAX_BODY_BYTES" in response.json()["error"]["message"]


def test_a_missing_index_is_503_on_reads_and_on_readyz(tmp_path):
    empty = Assistant(Settings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "none"))
    api = client(empty)
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 503 and "rag ingest" in ready.json()["reason"]
    asked = api.post("/v1/ask", json={"question": QUESTION})
    assert asked.status_code == 503 and "rag ingest" in asked.json()["error"]["message"]


def test_tokens_roles_and_revocation(assistant, tokens):
    api = client(assistant)
    assert api.get("/v1/info").status_code == 200  # local, and no token made: open
    reader, reader_record = tokens.create("reader", "ci")
    admin, _ = tokens.create("admin")
    refused = api.get("/v1/info")
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
    assert api.get("/v1/info", headers={"Authorization": "Bearer rag_wrong"}).status_code == 401
    as_reader = {"Authorization": f"Bearer {reader}"}
    assert api.post("/v1/search", json={"question": QUESTION}, headers=as_reader).status_code == 200
    forbidden = api.post("/v1/ingest", json={}, headers=as_reader)
    assert forbidden.status_code == 403 and "admin" in forbidden.json()["error"]["message"]
    assert api.delete("/v1/sources/corpus/x.md", headers=as_reader).status_code == 403
    assert api.delete("/v1/sources/corpus/x.md", headers={"Authorization": f"Bearer {admin}"}).status_code == 404
    tokens.revoke(reader_record.id)
    assert api.get("/v1/info", headers=as_reader).status_code == 401
    assert api.get("/healthz").status_code == 200  # probes need no token
    # Revoking every token shuts the API: it never falls back to the fresh install's no-token mode.
    tokens.revoke(next(t.id for t in tokens.tokens() if t.revoked is None))
    assert api.get("/v1/info").status_code == 401
    assert api.post("/v1/ask", json={"question": QUESTION}).status_code == 401


def test_served_beyond_loopback_every_request_needs_a_token_even_with_none_made(assistant):
    api = client(assistant, loopback=False)
    assert api.post("/v1/ask", json={"question": QUESTION}).status_code == 401


def test_a_local_only_service_refuses_other_host_names(assistant):
    from fastapi.testclient import TestClient

    rebound = TestClient(create_app(assistant), base_url="http://attacker.example")
    assert rebound.get("/v1/info").status_code == 403
    proxied = client(assistant).get("/v1/info", headers={"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status_code == 401 and "proxy" in proxied.json()["error"]["message"]


def test_requests_over_the_rate_limit_get_429_with_retry_after(assistant):
    api = client(assistant, server_rate_limit=3)
    statuses = [api.get("/v1/sources").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = api.get("/v1/sources")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60 and "RAG_SERVER_RATE_LIMIT" in limited.text


def test_the_streamed_answer_is_the_verified_sentences_then_the_answer(assistant):
    with client(assistant).stream("POST", "/v1/ask", json={"question": QUESTION, "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(response.iter_lines())
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "answer" and set(kinds[:-1]) == {"sentence"} and len(kinds) >= 2
    answer = events[-1][1]
    assert " ".join(data["text"] for kind, data in events[:-1]) == answer["answer"]
    assert answer["citations"]


def test_metrics_count_requests_and_answers(assistant):
    api = client(assistant)
    api.post("/v1/ask", json={"question": QUESTION})
    api.get("/v1/nowhere")
    text = api.get("/metrics").text
    assert 'rag_requests_total{route="/v1/ask",status="200"} 1' in text
    assert 'rag_requests_total{route="unmatched",status="404"} 1' in text
    assert 'rag_answers_total{abstained="false",answerer="extractive"} 1' in text
    assert "# TYPE rag_llm_breaker_open gauge" in text


def test_each_request_is_one_json_log_line_without_the_token(assistant, tokens, capsys):
    from rag import logs

    token, record = tokens.create("reader")
    logs.setup(True)
    try:
        client(assistant).post("/v1/ask", json={"question": QUESTION}, headers={"Authorization": f"Bearer {token}"})
    finally:
        logs.setup(False)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    request = next(line for line in lines if line["event"] == "request")
    assert request["route"] == "/v1/ask" and request["status"] == 200 and request["token"] == record.id
    assert request["answerer"] == "extractive" and request["citations"] >= 1 and "removed" in request
    assert token not in json.dumps(lines)


def test_the_openai_client_gets_the_verified_answer_streamed_and_not(assistant, tokens):
    import openai

    token, _ = tokens.create("reader")
    with served(create_app(assistant, loopback=True)) as url:
        ai = openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0)
        assert [m.id for m in ai.models.list()] == ["rag", "rag-extractive", "rag-llm"]
        whole = ai.chat.completions.create(model="rag", messages=[{"role": "system", "content": "be brief"},
                                                                  {"role": "user", "content": QUESTION}])
        content = whole.choices[0].message.content
        assert "[1]" in content and "\n\nSources:\n[1] " in content
        citations = whole.model_extra["citations"]
        assert citations[0]["marker"] == 1 and citations[0]["sources"][0]["title"] in content
        pieces = list(ai.chat.completions.create(model="rag", messages=[{"role": "user", "content": QUESTION}],
                                                 stream=True))
        assert "".join(p.choices[0].delta.content or "" for p in pieces) == content
        assert pieces[-1].choices[0].finish_reason == "stop" and pieces[-1].model_extra["citations"] == citations
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="rag_wrong", max_retries=0).models.list()


def test_langchain_chat_openai_can_use_the_assistant_as_a_model(assistant):
    from langchain_openai import ChatOpenAI

    with served(create_app(assistant, loopback=True)) as url:
        model = ChatOpenAI(model="rag-extractive", base_url=f"{url}/v1", api_key="unused-locally", max_retries=0)
        reply = model.invoke([("human", QUESTION)])
        follow = model.invoke([("human", QUESTION), ("ai", reply.content), ("human", "why?")])
    assert "[1]" in reply.content and "Sources:" in reply.content
    assert follow.content and "Sources:" not in follow.content.split("\n\nSources:\n")[0]


def test_an_abstention_streams_as_one_piece_with_no_sources(assistant):
    import openai

    with served(create_app(assistant, loopback=True)) as url:
        ai = openai.OpenAI(base_url=f"{url}/v1", api_key="local", max_retries=0)
        question = [{"role": "user", "content": "What is the capital of Australia?"}]
        pieces = list(ai.chat.completions.create(model="rag", messages=question, stream=True))
    text = "".join(p.choices[0].delta.content or "" for p in pieces)
    assert text == "The case studies don't cover this." and pieces[-1].model_extra["rag"]["abstained"]


def test_rag_token_commands_print_the_token_once_and_store_only_its_hash(tmp_path, capsys, monkeypatch):
    from rag.cli import main

    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "vs"))
    assert main(["token", "create", "--role", "admin", "--name", "ops", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["token"].startswith("rag_") and made["role"] == "admin" and made["name"] == "ops"
    assert made["token"].encode() not in (tmp_path / "vs" / "tokens.sqlite3").read_bytes()
    assert main(["token", "list"]) == 0
    listed = capsys.readouterr().out
    assert made["id"] in listed and made["token"] not in listed and "active" in listed
    assert main(["token", "revoke", made["id"]]) == 0
    assert main(["token", "revoke", made["id"]]) == 2
    assert "no active token" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:
        main(["token", "create", "--role", "owner"])
    assert refused.value.code == 2


def parse_sse(lines) -> list[tuple[str, dict]]:
    events, kind = [], "message"
    for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            events.append((kind, json.loads(line[6:])))
    return events


@pytest.mark.slow
def test_reads_go_on_during_an_ingest_one_ingest_at_a_time_and_admins_upload_and_remove(make_settings, corpus):
    own = Assistant(make_settings(corpus_dir=corpus, server_rate_limit=0))
    own.ingest()
    before = generation(own)
    upload = base64.b64encode(b"# Quokka pooler\n\nThe quokka pooler keeps ninety connections warm.\n").decode()
    seen: list[tuple[int, list[tuple[int, str]]]] = []
    done = threading.Event()
    with served(create_app(own, loopback=True)) as url:

        def read() -> None:
            with httpx.Client(base_url=url, timeout=60) as http:
                while not done.is_set():
                    response = http.post("/v1/search", json={"question": "quokka pooler connections", "k": 5})
                    passages = response.json().get("passages", []) if response.status_code == 200 else []
                    seen.append((response.status_code, [(p["id"], p["text"]) for p in passages]))

        readers = [threading.Thread(target=read) for _ in range(4)]
        for thread in readers:
            thread.start()
        with httpx.Client(base_url=url, timeout=300) as http:
            first = threading.Thread(target=lambda: seen.append(
                (http.post("/v1/ingest", json={"files": [{"name": "../quokka.md", "data": upload}]}).status_code, [])))
            first.start()
            while not own_ingesting(first, url):
                time.sleep(0.05)
            busy = http.post("/v1/ingest", json={})
            first.join(300)
            done.set()
            for thread in readers:
                thread.join(60)
            after = generation(own)
            (uploaded,) = [d["id"] for d in http.get("/v1/sources").json()["sources"] if "quokka" in d["id"]]
            removed = http.delete(f"/v1/sources/{uploaded}")
    assert busy.status_code == 409 and "wait for it to finish" in busy.json()["error"]["message"]
    assert {status for status, _ in seen} == {200}, "a read failed during the ingest"
    # Uploads land beside the index, outside the corpus (and the source tree), under a safe name.
    uploads = own.settings.uploads
    assert (uploads / "quokka.md").is_file() and not (corpus / "quokka.md").exists()
    assert not (uploads.parent / "quokka.md").exists() and uploads != corpus
    mixed = [pairs for _, pairs in seen if pairs and not (set(pairs) <= before or set(pairs) <= after)]
    assert not mixed, "a search answered from two generations at once"
    assert any(set(pairs) <= after and "quokka" in pairs[0][1] for _, pairs in seen if pairs)
    assert removed.status_code == 200 and removed.json()["removed_files"] == [uploaded]
    assert uploaded == "uploads/quokka.md"
    assert "quokka" not in own.search("quokka pooler", k=1).hits[0].passage.text


def generation(assistant) -> set[tuple[int, str]]:
    """Every (id, text) of the generation the assistant reads now."""
    with assistant._index.borrow() as resources:
        store = resources.store
        return {(p.id, p.text) for p in store.passages(range(store.count()))}


def own_ingesting(thread: threading.Thread, url: str) -> bool:
    """Whether the first ingest holds the server's ingest slot (or is already over)."""
    text = httpx.get(f"{url}/metrics").text
    return "rag_ingest_running 1" in text or not thread.is_alive()


@pytest.mark.slow
def test_rag_serve_with_no_token_listens_on_loopback_only_and_stops_cleanly(index_copy, tmp_path):
    import os
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "RAG_INDEX_DIR": str(index_copy), "RAG_CORPUS_DIR": str(SHIPPED_CORPUS)}
    command = [sys.executable, "-m", "rag", "serve", "--host", "0.0.0.0", "--port", str(port)]
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert server.stderr is not None
        said = [server.stderr.readline(), server.stderr.readline()]
        assert "serving on 127.0.0.1 only, not 0.0.0.0" in said[0] and "rag token create" in said[0]
        assert f"http://127.0.0.1:{port}" in said[1]
        assert wait_for(f"http://127.0.0.1:{port}/healthz") == {"status": "ok"}
        again = subprocess.run(command[:-1] + [str(port)], env=env, capture_output=True, text=True, cwd=tmp_path,
                               timeout=120)
        assert again.returncode == 2 and "pick another with --port" in again.stderr
        assert "Traceback" not in again.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        _, rest = server.communicate(timeout=60)
    # uvicorn shuts down gracefully, then re-raises the signal so the exit status says what stopped it
    assert server.returncode in (0, -signal.SIGTERM) and "Traceback" not in rest and "Error" not in rest


def wait_for(url: str, seconds: float = 60) -> dict:
    """The JSON at url once the server there listens."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return httpx.get(url, timeout=10).json()
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_the_start_line_tells_the_truth_about_tokens(tmp_path):
    from rag.server import _access_mode

    store = TokenStore(tmp_path / "tokens.sqlite3")
    assert _access_mode(store, loopback=True) == "local only: no token needed until one (or a user) is made"
    assert _access_mode(store, loopback=False).startswith("tokens required, and none made yet")
    _, record = store.create("admin")
    assert _access_mode(store, loopback=True) == "tokens required"
    store.revoke(record.id)
    assert _access_mode(store, loopback=True).startswith("every token is revoked: requests are refused")
