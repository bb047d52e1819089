"""Who may call the service, how often, and the one error shape every refusal and failure takes."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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

TYPES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "not_allowed",
         409: "conflict", 413: "too_large", 422: "invalid", 429: "rate_limited", 500: "internal",
         503: "unavailable"}
# The index or a model the service needs is not there: the operator fixes it, the caller can only wait.
_UNAVAILABLE = (IndexMissing, IndexCorrupt, IndexMismatch, StoreUnavailable, ModelUnavailable, VerifierUnavailable)


class ApiError(Exception):
    """A refusal with its HTTP status and one line that says what to do."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def error_body(status: int, message: str) -> dict:
    return {"error": {"message": message, "type": TYPES.get(status, "error"), "status": status}}


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

    @property
    def admin(self) -> bool:
        return self.role == "admin"


class RateLimiter:
    """At most `per_minute` requests per caller in any 60 seconds (a sliding window)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> int | None:
        """Record a request; None when it may go ahead, else the whole seconds to wait."""
        if not self.per_minute:
            return None
        now = self._clock()
        with self._lock:
            seen = self._seen.setdefault(key, deque())
            while seen and seen[0] <= now - 60:
                seen.popleft()
            if len(seen) >= self.per_minute:
                return max(1, math.ceil(seen[0] + 60 - now))
            seen.append(now)
            return None


class BodyLimit:
    """Refuse a body over the limit: at once when its Content-Length says so, else as soon as the bytes read
    pass it (a chunked upload). Some routes (uploads) may take larger bodies."""

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
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > limit:
            return await JSONResponse(error_body(413, str(refusal)), 413)(scope, receive, send)
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise refusal
            return message

        await self.app(scope, counted, send)
