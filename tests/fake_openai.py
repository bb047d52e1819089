"""A small OpenAI-compatible chat-completions server on 127.0.0.1 for the tests.

Replies are scripted, one action per request: a text (streamed as server-sent events when the client
asks for a stream), an HTTP error with headers, a delay, a stream cut off mid-way, a body that is not
JSON, or no reply at all (`hang`). `always(action)` answers every request alike (`always(status(500))`: an
endpoint that is down). Every request is recorded, so tests can read the prompt and the headers the real
client sent, and count them. With `default` (an action, or a callable request -> Action, such as
`scripted_llm`) it answers every request the script does not cover, for as long as it runs (the load
benchmark); `record=False` keeps no requests, so a long run does not grow.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Action:
    kind: str  # reply | status | cut | garbage | hang
    text: str = ""
    status: int = 200
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    pace: float = 0.0  # seconds between streamed pieces


def reply(text: str, delay: float = 0.0, pace: float = 0.0) -> Action:
    return Action("reply", text, delay=delay, pace=pace)


def status(code: int, headers: dict | None = None) -> Action:
    return Action("status", status=code, headers=headers or {})


def cut(text: str) -> Action:
    return Action("cut", text)


def garbage() -> Action:
    return Action("garbage")


def hang() -> Action:
    """Accept the request and never reply (until the server closes)."""
    return Action("hang")


class FakeOpenAI:
    def __init__(self, default=None, record: bool = True) -> None:
        self.script: deque = deque()
        self.requests: list[dict] = []
        self.every: Action | None = None  # answers every request when set, before the script
        self.closing = threading.Event()  # releases hung requests when the server closes
        self.default = default  # the action (or callable) once the script is used up; None: HTTP 500
        self.record = record
        self.served = 0  # requests answered, recorded or not
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def then(self, *actions) -> FakeOpenAI:
        """Queue actions (or callables request -> Action) for the next requests, in order."""
        self.script.extend(actions)
        return self

    def always(self, action: Action | None) -> FakeOpenAI:
        """Answer every request with `action` (None: back to the script)."""
        self.every = action
        return self

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()

    def _next(self, request: dict) -> Action:
        if self.every is not None:
            return self.every
        try:
            action = self.script.popleft()
        except IndexError:  # the script is used up (threads may race for its last action)
            action = self.default if self.default is not None else status(500)
        return action(request) if callable(action) else action

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                headers = {name.lower(): value for name, value in self.headers.items()}
                request = {"path": self.path, "headers": headers, "body": body}
                with fake._lock:
                    fake.served += 1
                if fake.record:
                    fake.requests.append(request)
                action = fake._next(request)
                time.sleep(action.delay)
                if action.kind == "hang":
                    fake.closing.wait()
                    return None
                if action.kind == "status":
                    return self._send(action.status, {"error": {"message": "scripted", "type": "x"}},
                                      action.headers)
                if action.kind == "garbage":
                    return self._raw(200, b"this is not json", "application/json")
                if body.get("stream"):
                    return self._stream(body, action)
                return self._send(200, completion(body, action.text))

            def _send(self, code: int, payload: dict, headers: dict | None = None) -> None:
                self._raw(code, json.dumps(payload).encode(), "application/json", headers)

            def _raw(self, code: int, data: bytes, kind: str, headers: dict | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, body: dict, action: Action) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                pieces = re.findall(r"\S+\s*", action.text)
                if action.kind == "cut":
                    pieces = pieces[: max(1, len(pieces) // 2)]
                for piece in pieces:
                    self._event(chunk(body, {"content": piece}, None))
                    time.sleep(action.pace)
                if action.kind == "cut":
                    self.close_connection = True
                    return
                self._event(chunk(body, {}, "stop"))
                self.wfile.write(b"data: [DONE]\n\n")

            def _event(self, payload: dict) -> None:
                self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
                self.wfile.flush()

        return Handler


def completion(body: dict, text: str) -> dict:
    return {
        "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def chunk(body: dict, delta: dict, finish: str | None) -> dict:
    return {
        "id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0,
        "model": body.get("model", "m"),
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def user_message(request: dict) -> str:
    return next(m["content"] for m in request["body"]["messages"] if m["role"] == "user")


def system_message(request: dict) -> str:
    return next(m["content"] for m in request["body"]["messages"] if m["role"] == "system")


def passages_in(request: dict) -> dict[int, str]:
    """The numbered passages the prompt carries."""
    found = re.findall(r'<passage id="(\d+)"[^>]*>\n(.*?)\n</passage>', user_message(request), re.S)
    return {int(n): text for n, text in found}


def scripted_llm(request: dict) -> Action:
    """A deterministic stand-in for a good model: the passage sentence that shares the most words
    with the question, with its marker and itself as the quote, as the prompt asks; the no-answer phrase
    when nothing shares enough."""
    question = set(re.findall(r"[a-z]{4,}", user_message(request).rsplit("Question:", 1)[-1].lower()))
    best, best_overlap = None, 0
    for n, text in passages_in(request).items():
        for sentence in re.split(r"(?<=[.!?])\s+", text):
            overlap = len(question & set(re.findall(r"[a-z]{4,}", sentence.lower())))
            if overlap > best_overlap:
                said = sentence.rstrip(".")
                best, best_overlap = f'{said} [{n}: "{said}"].', overlap
    return reply(best if best and best_overlap >= 2 else "NOT IN THE CASE STUDIES")
