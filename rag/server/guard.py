"""Who may call the service, how much work they may ask for, and the one error shape every refusal and
failure takes.

The caller is decided from the request's headers alone, before a byte of its body is read (`Gatekeeper`):
an anonymous 95 MB upload is refused at its first line, not after it has filled the server's memory.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import logs
from ..errors import (
    EmptyQuestion,
    IndexBusy,
    IndexCorrupt,
    IndexMismatch,
    IndexMissing,
    ModelUnavailable,
    RagError,
    StoreUnavailable,
    UserError,
    VerifierUnavailable,
)
from ..people import DatabaseUnavailable
from ..people.budgets import Budget, seconds_to_free
from ..tokens import TokenStore
from ..users import UserStore

TYPES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "not_allowed",
         409: "conflict", 413: "too_large", 422: "invalid", 429: "rate_limited", 500: "internal",
         503: "unavailable"}
# The index or a model the service needs is not there: the operator fixes it, the caller can only wait.
# DatabaseUnavailable: PostgreSQL restarting or gone; the request may be retried.
_UNAVAILABLE = (IndexMissing, IndexCorrupt, IndexMismatch, StoreUnavailable, ModelUnavailable, VerifierUnavailable,
                DatabaseUnavailable)
# Probes and the API's own description need no token.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
# A Host header is a name or a bracketed IPv6 address and an optional port, nothing else
# ("localhost:80@evil.example" is not one).
_HOST = re.compile(r"(?P<name>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::[0-9]{1,5})?")
_KEEP_KEYS = 10_000  # callers remembered before the idle ones are forgotten


class ApiError(Exception):
    """A refusal with its HTTP status and one line that says what to do."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(error_body(self.status, str(self)), self.status, headers=self.headers)


def error_body(status: int, message: str) -> dict:
    return {"error": {"message": message, "type": TYPES.get(status, "error"), "status": status}}


def database_down(exc: DatabaseUnavailable) -> ApiError:
    """503 for a database that went away (PostgreSQL restarting): the details, which name its host, go to the
    log; the caller is told to retry."""
    logs.log.error("%s", exc)
    return ApiError(503, "the service's database cannot be reached just now: try again in a few seconds",
                    {"Retry-After": "5"})


def status_of(exc: RagError) -> int:
    """The HTTP status for one of the assistant's own errors."""
    if isinstance(exc, IndexBusy):
        return 409
    if isinstance(exc, _UNAVAILABLE):
        return 503
    if isinstance(exc, (EmptyQuestion, UserError)):
        return 400
    return 503  # a failure of something the service depends on (an LLM endpoint that is down, say)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made a request: a token's id and role, or the local user when no token is needed."""

    id: str
    role: str
    client: str = "unknown"

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    @property
    def key(self) -> str:
        """What the rate limit counts against: the token, or the address of a local caller."""
        return self.id if self.id != "local" else f"client:{self.client}"


class RateLimiter(Budget):
    """A Budget counted in this process, over any 60 seconds (a sliding window). A request costs one unit;
    one that asks for more work (a verify of 50 sentences) costs what that many small ones would."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(per_minute, clock)
        self._spent: dict[str, deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()

    def _counted(self, key: str, cost: int, spend: bool, now: float) -> int | None:
        with self._lock:
            spent = self._recent(key, now)
            wait = seconds_to_free([(at + 60, units) for at, units in spent], cost - self.per_minute, now)
            if wait is None and spend and cost:
                spent.append((now, cost))
            return wait

    def _recent(self, key: str, now: float) -> deque[tuple[float, int]]:
        if key not in self._spent and len(self._spent) >= _KEEP_KEYS:  # many addresses: forget the idle ones
            self._spent = {k: v for k, v in self._spent.items() if v and v[-1][0] > now - 60}
        spent = self._spent.setdefault(key, deque())
        while spent and spent[0][0] <= now - 60:
            spent.popleft()
        return spent


@dataclass
class Door:
    """The service's access rules: tokens, the no-token mode of a fresh install, roles and budgets."""

    tokens: TokenStore
    users: UserStore
    loopback: bool
    limiter: Budget  # work per caller
    failures: Budget  # missing or wrong tokens per client address

    shut: bool = False  # a token or a user was made: that never changes, so it is not asked again

    def open_access(self) -> bool:
        """No token needed: served on loopback only, and nobody has ever made a token or a user (a fresh
        install). Once one was made, revoking or removing them all shuts the API rather than opening it."""
        if not self.loopback or self.shut:
            return False
        self.shut = self.tokens.any_made() or self.users.any_made()
        return not self.shut

    def admit(self, headers: Headers, client: str, method: str, path: str) -> Caller:
        """The caller of a request, from its headers alone, charged one unit; ApiError when refused."""
        who = self._local(headers, client) if self.open_access() else self._token_holder(headers, client)
        if is_admin_route(method, path) and not who.admin:
            raise ApiError(403, "this needs an admin token: ask an admin, or make one with "
                           "`rag token create --role admin`")
        self.charge(who, 1)
        return who

    def charge(self, who: Caller, units: int) -> None:
        """Count work against the caller's budget (429 when it would pass it)."""
        wait = self.limiter.retry_after(who.key, units)
        if wait is not None:
            raise ApiError(429, f"more than {self.limiter.per_minute} units of work a minute with this token (a "
                           f"request is one, each verified sentence one): wait {wait} s (RAG_SERVER_RATE_LIMIT)",
                           {"Retry-After": str(wait)})

    @staticmethod
    def _local(headers: Headers, client: str) -> Caller:
        if not is_local_host(headers.get("host", "")):  # a web page that rebound its own name to 127.0.0.1
            raise ApiError(403, "this local-only service answers requests to localhost or 127.0.0.1 only")
        if "x-forwarded-for" in headers or "forwarded" in headers:
            raise ApiError(401, "behind a proxy every request needs a token: make one with `rag token create`",
                           {"WWW-Authenticate": "Bearer"})
        return Caller("local", "admin", client)

    def _token_holder(self, headers: Headers, client: str) -> Caller:
        wait = self.failures.waiting(client)
        if wait is not None:
            raise ApiError(429, f"too many requests without a valid token from this address: wait {wait} s, then "
                           "send `Authorization: Bearer <token>` with a token made by `rag token create`",
                           {"Retry-After": str(wait)})
        header = headers.get("authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        record = self.tokens.check(token) if token else None
        if record is None:
            self.failures.retry_after(client)
            raise ApiError(401, "a valid token is needed: send the header `Authorization: Bearer <token>` with a "
                           "token made by `rag token create`", {"WWW-Authenticate": "Bearer"})
        return Caller(record.id, record.role, client)


def is_local_host(host: str) -> bool:
    match = _HOST.fullmatch(host.strip())
    return match is not None and match["name"].lower() in LOCAL_NAMES


def is_admin_route(method: str, path: str) -> bool:
    return (method == "POST" and path == "/v1/ingest") or (method == "DELETE" and path.startswith("/v1/sources/"))


class Gatekeeper:
    """Admit or refuse each request from its headers, before the body is read; the caller it admits is
    `request.state.caller` for the handlers."""

    def __init__(self, app: ASGIApp, door: Door, refused: Callable[[], None]) -> None:
        self.app = app
        self.door = door
        self.refused = refused  # counts a 429

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            return await self.app(scope, receive, send)
        client = scope["client"][0] if scope.get("client") else "unknown"
        try:  # a token lookup is a SQLite query: off the event loop
            who = await run_in_threadpool(self.door.admit, Headers(scope=scope), client, scope["method"],
                                          scope["path"])
        except ApiError as exc:
            if exc.status == 429:
                self.refused()
            return await exc.response()(scope, receive, send)
        except DatabaseUnavailable as exc:
            return await database_down(exc).response()(scope, receive, send)
        scope.setdefault("state", {})["caller"] = who
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse a body over the limit with 413: at once when its Content-Length says so, else (a chunked
    body) as soon as the bytes read pass it. Some routes (uploads) may take larger bodies."""

    def __init__(self, app: ASGIApp, limit: int, larger: dict[str, int]) -> None:
        self.app = app
        self.limit = limit
        self.larger = larger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.larger.get(scope["path"], self.limit)
        refusal = ApiError(413, f"the body is larger than {limit:,} bytes: send less (RAG_SERVER_MAX_BODY_BYTES, "
                           "or RAG_SERVER_MAX_UPLOAD_BYTES for uploads)")
        length = Headers(scope=scope).get("content-length")
        if length is not None:  # the server holds the client to it
            if not length.isdigit() or int(length) > limit:
                return await refusal.response()(scope, receive, send)
            return await self.app(scope, receive, send)
        # No length: read it here, up to the limit, so that a refusal is a 413 and not a parse error.
        messages: list[Message] = []
        seen = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > limit:
                return await refusal.response()(scope, receive, send)
            if not message.get("more_body", False):
                break

        async def replayed() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replayed, send)
