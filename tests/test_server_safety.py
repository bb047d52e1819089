"""`rag serve` shared by a team: refusals before the body is read, bounded work per request, paths that
never leak, and answers that reach API clients as safe Markdown."""

from __future__ import annotations

import base64
import json
import re
import socket
import time

import httpx
import pytest
from test_server import QUESTION, client, served

from rag import Assistant
from rag.corpus import LATE, OutOfTime, _time_limit
from rag.errors import UserError
from rag.server.api import create_app, piece_markdown
from rag.server.guard import RateLimiter

# The fixtures of test_server (a served copy of the shipped index and its tokens).
from test_server import assistant, index_copy, tokens  # noqa: F401, E402  isort: skip


def raw_request(url: str, head: str) -> str:
    """Send only a request's head (no body byte) and return the status line the server answers with."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(head.encode())
        return connection.recv(4096).decode(errors="replace").split("\r\n", 1)[0]


def test_the_token_and_role_are_checked_before_any_body_byte_is_read(assistant, tokens):  # noqa: F811
    reader, _ = tokens.create("reader")
    with served(create_app(assistant, loopback=True)) as url:
        head = ("POST /v1/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "Content-Length: 95000000\r\n{auth}\r\n")
        assert raw_request(url, head.format(auth="")) == "HTTP/1.1 401 Unauthorized"
        assert raw_request(url, head.format(auth=f"Authorization: Bearer {reader}\r\n")) == "HTTP/1.1 403 Forbidden"


def test_a_chunked_body_over_the_limit_is_413_not_a_parse_error(assistant):  # noqa: F811
    app = create_app(assistant.configured(server_max_body_bytes=2048), loopback=True)
    with served(app) as url:
        chunks = (b'{"question": "' + b"q" * 1000 for _ in range(5))  # a generator: sent chunked, no length
        response = httpx.post(f"{url}/v1/search", content=chunks, headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert "RAG_SERVER_MAX_BODY_BYTES" in response.json()["error"]["message"]


def test_a_chunked_body_within_the_limit_is_read_whole(assistant):  # noqa: F811
    with served(create_app(assistant, loopback=True)) as url:
        parts = iter([b'{"question": "How did they cut ', b'cloud costs?", "k": 2}'])
        response = httpx.post(f"{url}/v1/search", content=parts, headers={"Content-Type": "application/json"})
    assert response.status_code == 200 and len(response.json()["passages"]) == 2


def test_wrong_tokens_are_rate_limited_per_address_even_before_a_right_one(assistant, tokens):  # noqa: F811
    token, _ = tokens.create("reader")
    api = client(assistant, server_failed_token_limit=3)
    wrong = [api.get("/v1/info", headers={"Authorization": "Bearer rag_guess"}).status_code for _ in range(3)]
    assert wrong == [401, 401, 401]
    limited = api.get("/v1/info", headers={"Authorization": f"Bearer {token}"})
    assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 60
    assert "without a valid token" in limited.json()["error"]["message"]


def test_behind_a_local_proxy_the_wrong_token_limit_counts_each_forwarded_client(assistant, tokens):  # noqa: F811
    token, _ = tokens.create("reader")
    with served(create_app(assistant.configured(server_failed_token_limit=2), loopback=True)) as url:
        def get(client: str, auth: str) -> int:
            return httpx.get(f"{url}/v1/sources", headers={"Authorization": f"Bearer {auth}",
                                                           "X-Forwarded-For": client}).status_code
        assert [get("203.0.113.1", "rag_guess") for _ in range(3)] == [401, 401, 429]
        assert get("203.0.113.2", token) == 200  # another client behind the same proxy is not held up


def test_the_local_only_check_reads_the_host_header_strictly(assistant):  # noqa: F811
    api = client(assistant)
    for host in ("localhost:80@evil.example", "evil.example", "localhost.evil.example", "127.0.0.1:8000/x"):
        assert api.get("/v1/info", headers={"Host": host}).status_code == 403, host
    for host in ("localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000"):
        assert api.get("/v1/info", headers={"Host": host}).status_code == 200, host


@pytest.mark.parametrize("name", ["corpus/a\x00b.md", "x" * 5000, "a" * 300 + ".md"])
def test_a_nul_or_over_long_path_is_400_with_one_line(assistant, name):  # noqa: F811
    response = client(assistant).post("/v1/ingest", json={"paths": [name]})
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert "\n" not in message and "corpus folder" in message


def test_no_reply_names_a_server_path(tmp_path):
    settings = {"corpus_dir": tmp_path / "corpus", "index_dir": tmp_path / "deep" / "vectorstore"}
    from rag import Settings

    api = client(Assistant(Settings(**settings)), loopback=False)
    ready = api.get("/readyz")
    assert ready.status_code == 503 and "rag ingest" in ready.json()["reason"]
    assert str(tmp_path) not in ready.text and "RAG_INDEX_DIR" in ready.text
    assert str(tmp_path) not in api.post("/v1/ask", json={"question": QUESTION}).text  # 401


def test_verify_work_is_capped_and_charged_per_sentence(assistant):  # noqa: F811
    api = client(assistant, server_rate_limit=10, server_max_passages=3, server_max_passage_chars=500,
                 server_max_sentences=8)
    passage = "We moved to PgBouncer. Latency fell by half."
    refused = {
        "passages": api.post("/v1/verify", json={"passages": [passage] * 4, "answer": "PgBouncer [1]."}),
        "chars": api.post("/v1/verify", json={"passages": ["x" * 501], "answer": "PgBouncer [1]."}),
        "sentences": api.post("/v1/verify", json={"passages": [passage], "answer": " ".join(
            f"Latency fell by {n} percent." for n in range(9))}),
    }
    for what, response in refused.items():
        assert response.status_code == 413, what
        assert "RAG_SERVER_MAX_" in response.json()["error"]["message"], what
    six = " ".join(["We moved to PgBouncer [1]."] * 6)
    assert api.post("/v1/verify", json={"passages": [passage], "answer": six}).status_code == 200
    # 3 refused requests + 6 sentences = 9 of 10 units: six more sentences would pass the budget.
    again = api.post("/v1/verify", json={"passages": [passage], "answer": six})
    assert again.status_code == 429 and "each verified sentence" in again.json()["error"]["message"]


def test_k_is_capped_for_search_and_ask(assistant):  # noqa: F811
    api = client(assistant, server_max_passages=5)
    for path in ("/v1/search", "/v1/ask"):
        response = api.post(path, json={"question": QUESTION, "k": 6})
        assert response.status_code == 422 and "RAG_SERVER_MAX_PASSAGES" in response.json()["error"]["message"]


def test_an_ingest_request_names_a_bounded_number_of_files(assistant):  # noqa: F811
    data = base64.b64encode(b"# A\n\nSome text.\n").decode()
    files = [{"name": f"n{i}.md", "data": data} for i in range(3)]
    response = client(assistant, server_max_ingest_files=2).post("/v1/ingest", json={"files": files})
    assert response.status_code == 413 and "RAG_SERVER_MAX_INGEST_FILES" in response.json()["error"]["message"]


def test_the_rate_limit_counts_units_and_says_when_to_come_back():
    now = [100.0]
    limiter = RateLimiter(10, clock=lambda: now[0])
    assert limiter.retry_after("a", 6) is None
    now[0] += 30
    assert limiter.retry_after("a", 3) is None
    assert limiter.retry_after("a", 2) == 30  # the first 6 units free up 60 s after they were spent
    assert limiter.waiting("a") is None and limiter.retry_after("a", 1) is None
    assert limiter.waiting("a") == 30
    assert limiter.retry_after("b", 500) is None  # more than a minute's budget: it needs an empty window
    assert limiter.retry_after("b", 1) == 60


def test_a_parse_that_passes_its_deadline_is_stopped_even_if_it_swallows_errors():
    started = time.monotonic()
    with pytest.raises(OutOfTime), _time_limit(started + 0.2):
        while True:
            try:
                time.sleep(0.01)
            except Exception:  # noqa: BLE001 - what a careless parser does
                pass
    assert time.monotonic() - started < 2


@pytest.mark.slow
def test_files_not_read_in_time_are_skipped_and_keep_what_the_index_held(make_settings, docs):
    own = Assistant(make_settings(corpus_dir=docs))
    own.ingest()
    (docs / "kafka.md").write_text("# Moving to Kafka\n\nWe replaced RabbitMQ with Pulsar in the end.\n")
    (docs / "new.md").write_text("# Quokka\n\nThe quokka pooler keeps ninety connections warm.\n")
    report = own.ingest([docs], isolated=True, time_limit=0.000001)
    late = {s.path for s in report.skipped if s.reason == LATE}
    assert {"corpus/kafka.md", "corpus/new.md"} <= late and len(late) == len(report.skipped)
    assert not report.indexed
    assert "replayable event streams" in own.search("why Kafka?", 3).hits[0].passage.text  # the old text stays
    again = own.ingest([docs], isolated=True)
    assert not again.skipped and "Pulsar" in own.search("why Kafka?", 3).hits[0].passage.text


@pytest.mark.slow
def test_an_isolated_ingest_past_twice_its_time_is_stopped_and_changes_nothing(make_settings, docs, monkeypatch):
    monkeypatch.setattr("rag.isolated.STOP_GRACE", 0.05)
    own = Assistant(make_settings(corpus_dir=docs))
    own.ingest()
    before = own.info().to_dict()
    (docs / "new.md").write_text("# Quokka\n\nThe quokka pooler keeps ninety connections warm.\n")
    started = time.monotonic()
    with pytest.raises(UserError, match="was stopped; nothing was changed"):
        own.ingest([docs], isolated=True, time_limit=0.000001)  # killed while the child still starts
    assert time.monotonic() - started < 10
    assert own.info().to_dict()["passages"] == before["passages"]
    assert list(own.ingest([docs], isolated=True).indexed) == ["corpus/new.md"]


HOSTILE = ("The quokka pooler keeps ninety connections warm, see [Click here](javascript:alert(document.cookie)) "
           "and <img src=x onerror=alert(1)> and <script>alert(2)</script> and "
           "![tracker](https://evil.example/pixel.png) for details.")
# Markup that would be live (unescaped): a script link, raw HTML, an image.
LIVE = re.compile(r"(?<!\\)\]\(\s*(javascript|data|vbscript):|(?<!\\)<(img|script)|(?<!\\)!\[", re.I)


@pytest.mark.slow
def test_answers_reach_api_clients_as_safe_markdown(make_settings, tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "pool.md").write_text(f"# The [pooler](javascript:alert(3)) post\n\n{HOSTILE}\n")
    own = Assistant(make_settings(corpus_dir=folder))
    own.ingest()
    question = "What does the quokka pooler keep warm?"
    api = client(own)
    asked = api.post("/v1/ask", json={"question": question, "answerer": "extractive"}).json()
    assert not asked["abstained"] and "quokka" in asked["answer"]
    assert not LIVE.search(asked["answer"]) and "javascript" not in asked["answer"], asked["answer"]
    completion = api.post("/v1/chat/completions", json={"model": "rag-extractive",
                                                        "messages": [{"role": "user", "content": question}]}).json()
    content = completion["choices"][0]["message"]["content"]
    assert "quokka" in content and not LIVE.search(content), content
    assert not LIVE.search(completion["rag"]["answer"])
    with api.stream("POST", "/v1/chat/completions", json={"model": "rag-extractive", "stream": True,
                                                         "messages": [{"role": "user", "content": question}]}) as s:
        chunks = [json.loads(line[6:]) for line in s.iter_lines() if line.startswith("data: {")]
    deltas = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks)
    assert "quokka" in deltas and not LIVE.search(deltas)


def test_streamed_pieces_cannot_complete_a_link_across_a_sentence_break(assistant):  # noqa: F811
    settings = assistant.settings
    pieces = ["See [the guide. ", "It](javascript:alert(1)) helps [1]."]
    joined = "".join(piece_markdown(piece, settings) for piece in pieces)
    assert "\\[the guide" in joined and "\\](javascript" in joined and "[1]" in joined


def test_a_user_made_for_the_app_also_shuts_the_no_token_mode(assistant, tokens):  # noqa: F811
    from rag.users import UserStore

    users = UserStore.beside(assistant.settings.index_dir)
    try:
        users.add("ana", "reader", "a long password")
        assert client(assistant).get("/v1/sources").status_code == 401
        users.remove("ana")
        assert client(assistant).get("/v1/sources").status_code == 401  # removing them all does not reopen it
    finally:
        users.path.unlink(missing_ok=True)
    assert client(assistant).get("/v1/sources").status_code == 200
