"""The HTTP service: the CLI's JSON contracts over REST, one loaded index shared by every request.

Handlers are plain functions: FastAPI runs them on its thread pool, where the assistant's blocking
search and answer calls belong. Reads borrow the current index generation, so an ingest (run in a child
process, one at a time) never blocks them.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.exceptions import HTTPException

from .. import logs
from ..answer.llm import endpoint_state
from ..answer.stream import AnswerStream
from ..assistant import Assistant
from ..errors import EmptyQuestion, RagError
from ..ingest import list_documents
from ..tokens import TokenStore
from ..types import Answer
from ..uploads import save_upload
from .guard import ApiError, BodyLimit, Caller, RateLimiter, error_body, status_of
from .metrics import Metrics
from .schemas import (
    AskRequest,
    AskResponse,
    ErrorResponse,
    InfoResponse,
    IngestRequest,
    IngestResponse,
    SearchRequest,
    SearchResponse,
    SourcesResponse,
    VerifyRequest,
    VerifyResponse,
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 409, 413, 422, 429, 503)}

_LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


@dataclass
class Service:
    """What every request shares: the assistant (and its loaded index), the tokens, limits and counters."""

    assistant: Assistant
    loopback: bool
    tokens: TokenStore
    limiter: RateLimiter
    metrics: Metrics = field(default_factory=Metrics)
    ingesting: threading.Lock = field(default_factory=threading.Lock)
    ingest_started: float = 0.0

    def open_access(self) -> bool:
        """No token needed: served on loopback only, and nobody has ever made a token (a fresh install).
        Once one was made, revoking them all shuts the API rather than opening it."""
        return self.loopback and not self.tokens.any_made()


def service_of(request: Request) -> Service:
    return request.app.state.service


def caller(request: Request) -> Caller:
    """The token's holder (401 without a valid one, unless access is open), counted against its limit."""
    service = service_of(request)
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else ""
    if service.open_access():  # any token, or none: clients such as openai's insist on sending one
        if request.url.hostname not in _LOCAL_NAMES:  # a web page that rebound its own name to 127.0.0.1
            raise ApiError(403, "this local-only service answers requests to localhost or 127.0.0.1 only")
        if "x-forwarded-for" in request.headers or "forwarded" in request.headers:
            raise ApiError(401, "behind a proxy every request needs a token: make one with `rag token create`",
                           {"WWW-Authenticate": "Bearer"})
        who = Caller("local", "admin")
    else:
        record = service.tokens.check(token) if token else None
        if record is None:
            raise ApiError(401, "a valid token is needed: send the header `Authorization: Bearer <token>` with a "
                           "token made by `rag token create`", {"WWW-Authenticate": "Bearer"})
        who = Caller(record.id, record.role)
    request.state.caller = who
    wait = service.limiter.retry_after(who.id if who.id != "local" else f"client:{_client(request)}")
    if wait is not None:
        service.metrics.add("rag_rate_limited_total")
        raise ApiError(429, f"more than {service.limiter.per_minute} requests a minute with this token: wait "
                       f"{wait} s (RAG_SERVER_RATE_LIMIT)", {"Retry-After": str(wait)})
    return who


def admin(who: Annotated[Caller, Depends(caller)]) -> Caller:
    if not who.admin:
        raise ApiError(403, "this needs an admin token: ask an admin, or make one with "
                       "`rag token create --role admin`")
    return who


Reader = Annotated[Caller, Depends(caller)]
Admin = Annotated[Caller, Depends(admin)]
router = APIRouter(responses=_ERRORS)


@router.get("/healthz", tags=["service"], summary="The process is up")
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", tags=["service"], summary="The index is loaded and questions can be answered")
def readyz(request: Request) -> JSONResponse:
    service = service_of(request)
    llm = {"state": _llm_state(service)["state"]}
    try:
        service.assistant.load()
    except RagError as exc:
        return JSONResponse({"ready": False, "reason": str(exc), "llm": llm}, status_code=503)
    return JSONResponse({"ready": True, "llm": llm})


@router.get("/v1/info", tags=["index"], summary="What the index holds", response_model=InfoResponse)
def info(request: Request, who: Reader) -> dict:
    service = service_of(request)
    return {**service.assistant.info().to_dict(), "llm": _llm_state(service)}


@router.get("/v1/sources", tags=["index"], summary="The indexed documents", response_model=SourcesResponse)
def sources(request: Request, who: Reader) -> dict:
    return {"sources": [{"id": d.path, **d.to_dict()} for d in service_of(request).assistant.sources()]}


@router.post("/v1/search", tags=["answers"], summary="The passages that best match a question",
             response_model=SearchResponse)
def search(body: SearchRequest, request: Request, who: Reader) -> dict:
    service = service_of(request)
    _check_question(service, body.question)
    return service.assistant.search(body.question, body.k).to_dict()


@router.post("/v1/ask", tags=["answers"], summary="A short answer with verified [n] citations",
             response_model=AskResponse,
             responses={200: {"content": {"text/event-stream": {"description": "With `stream: true`."}}}})
def ask(body: AskRequest, request: Request, who: Reader) -> Any:
    service = service_of(request)
    _check_question(service, body.question)
    stream = service.assistant.stream(body.question, history=history_of(body.history), k=body.k,
                                      answerer=body.answerer)
    if not body.stream:
        return _answered(request, stream.answer).to_dict()
    pieces = iter(stream)
    first = next(pieces, None)  # the first sentence, or the whole run: its errors still get their status
    return StreamingResponse(_events(request, stream, first, pieces), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.post("/v1/verify", tags=["answers"], summary="Check an answer written elsewhere against its passages",
             response_model=VerifyResponse)
def verify(body: VerifyRequest, request: Request, who: Reader) -> dict:
    if not body.answer.strip():
        raise ApiError(400, "the answer is empty: send the text to check in `answer`")
    return service_of(request).assistant.verify(body.answer, body.passages).to_dict()


def ingest(body: IngestRequest, request: Request, who: Admin) -> dict:
    service = service_of(request)
    settings = service.assistant.settings
    with _one_ingest(service):
        paths = [_inside_corpus(settings.corpus_dir, p) for p in body.paths]
        paths += [save_upload(settings.uploads, f.name, _decoded(f.name, f.data), settings.max_file_bytes)
                  for f in body.files]
        report = service.assistant.configured(lock_timeout=0).ingest(paths, rebuild=body.rebuild, sync=body.sync,
                                                                     isolated=True)
    return report.to_dict()


@router.delete("/v1/sources/{source_id:path}", tags=["index"], summary="Remove a document (admin)",
               response_model=IngestResponse)
def remove_source(source_id: str, request: Request, who: Admin) -> dict:
    service = service_of(request)
    if source_id not in {d.path for d in list_documents(service.assistant.settings)}:
        raise ApiError(404, f"no indexed document {source_id!r}: GET /v1/sources lists their ids")
    with _one_ingest(service):
        report = service.assistant.configured(lock_timeout=0).remove([Path(source_id)], isolated=True)
    return report.to_dict()


@router.get("/metrics", tags=["service"], summary="Counters in the Prometheus text format",
            response_class=PlainTextResponse)
def metrics(request: Request, who: Reader) -> str:
    service = service_of(request)
    state = _llm_state(service)["state"]
    return service.metrics.render({"rag_llm_breaker_open": float(state == "open"),
                                   "rag_ingest_running": float(service.ingesting.locked())})


def history_of(turns: list) -> list[tuple[str, str]]:
    return [(t.role, t.content) if hasattr(t, "role") else (t[0], t[1]) for t in turns]


def _check_question(service: Service, question: str) -> None:
    limit = service.assistant.settings.max_question_chars
    if not question.strip():
        raise EmptyQuestion()
    if len(question) > limit:
        raise ApiError(413, f"the question is {len(question):,} characters, more than the {limit:,} allowed "
                       "(RAG_MAX_QUESTION_CHARS): ask a shorter one")


def _answered(request: Request, answer: Answer) -> Answer:
    """Note what the answer was for the request's log line and the counters."""
    removed = len(answer.removed)
    request.state.answer = {"answerer": answer.answerer, "abstained": answer.abstained,
                            "citations": len(answer.citations), "removed": removed}
    counters = service_of(request).metrics
    counters.add("rag_answers_total", answerer=answer.answerer, abstained=str(answer.abstained).lower())
    counters.add("rag_citations_total", len(answer.citations))
    counters.add("rag_claims_removed_total", removed)
    return answer


def _events(request: Request, stream: AnswerStream, first: str | None, rest: Iterator[str]) -> Iterator[str]:
    """Server-sent events: each verified sentence, then the answer (or one error event)."""
    try:
        if first is not None:
            yield sse("sentence", {"text": first.strip()})
        for piece in rest:
            yield sse("sentence", {"text": piece.strip()})
        yield sse("answer", _answered(request, stream.answer).to_dict())
    except RagError as exc:
        yield sse("error", error_body(status_of(exc), str(exc)))
    except Exception as exc:  # noqa: BLE001 - the stream is under way: end it with one error event
        logs.log.error("stream failed (%s)", type(exc).__name__)
        yield sse("error", error_body(500, "the answer failed part-way; ask again"))


def sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


class _one_ingest:
    """One ingest or removal at a time in this server (409 for the next); other processes are kept out by
    the index lock, which answers 409 too."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def __enter__(self) -> None:
        if not self.service.ingesting.acquire(blocking=False):
            running = time.monotonic() - self.service.ingest_started
            raise ApiError(409, f"an ingest has been running for {running:.0f} s: wait for it to finish, then "
                           "send this again")
        self.service.ingest_started = time.monotonic()

    def __exit__(self, kind, *exc) -> None:
        self.service.metrics.add("rag_ingests_total", outcome="ok" if kind is None else "failed")
        self.service.ingesting.release()


def _inside_corpus(corpus_dir: Path, name: str) -> Path:
    """A path the caller named, only if it lies in the corpus folder (relative names are taken from it)."""
    root = corpus_dir.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        raise ApiError(403, f"{name!r} is outside the corpus folder: the service ingests only files under "
                       "RAG_CORPUS_DIR (or send them in `files`)")
    if not path.exists():
        raise ApiError(404, f"{name!r} is not in the corpus folder: GET /v1/sources lists what is indexed")
    return path


def _decoded(name: str, data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"the data of {name!r} is not base64: encode the file's bytes") from None


def _llm_state(service: Service) -> dict:
    return endpoint_state(service.assistant.settings)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def create_app(assistant: Assistant, loopback: bool = True) -> FastAPI:
    """The service over this assistant; `loopback` says it is served on 127.0.0.1 only."""
    settings = assistant.settings
    app = FastAPI(title="rag", summary=f"Cited answers from {settings.collection or 'your documents'}", version="1")
    app.state.service = Service(assistant, loopback, TokenStore.beside(settings.index_dir),
                                RateLimiter(settings.server_rate_limit))
    app.include_router(router)
    # Uploads come base64-encoded in the body, so this one route takes larger bodies.
    app.add_api_route("/v1/ingest", ingest, methods=["POST"], tags=["index"], summary="Add or update documents "
                      "(admin)", response_model=IngestResponse, responses=_ERRORS)
    app.add_middleware(BodyLimit, limit=settings.server_max_body_bytes,
                       larger={"/v1/ingest": settings.server_max_upload_bytes})
    from .openai_compat import router as compat

    app.include_router(compat)
    _handle_errors(app)
    return app


def _handle_errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def refused(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, str(exc), exc.headers)

    @app.exception_handler(RagError)
    async def failed(request: Request, exc: RagError) -> JSONResponse:
        return _error(status_of(exc), str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        not_json = "json" not in request.headers.get("content-type", "")
        if not_json or any(p.get("type") == "json_invalid" for p in problems):
            return _error(400, "the body is not valid JSON: send a JSON object with the header "
                          "Content-Type: application/json")
        where = "; ".join(f"{'.'.join(str(part) for part in p['loc'][1:]) or 'body'}: {p['msg']}"
                          for p in problems[:5])
        return _error(422, f"invalid request ({where}): see /docs for the fields")

    @app.exception_handler(HTTPException)
    async def http(request: Request, exc: HTTPException) -> JSONResponse:
        messages = {404: f"no such route {request.url.path}: see /docs for the routes",
                    405: f"{request.method} is not allowed on {request.url.path}: see /docs"}
        return _error(exc.status_code, messages.get(exc.status_code, str(exc.detail)), exc.headers)

    @app.middleware("http")
    async def observe(request: Request, call_next):
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as exc:  # noqa: BLE001 - never a traceback to the caller: one line, logged
            logs.log.error("request failed (%s)", type(exc).__name__)
            response = _error(500, "the service failed on this request; see its log, and try again")
        _record(request, response.status_code, time.perf_counter() - started)
        return response


def _record(request: Request, status: int, seconds: float) -> None:
    route = request.scope.get("route")
    path = getattr(route, "path", "unmatched")
    counters = service_of(request).metrics
    counters.add("rag_requests_total", route=path, status=status)
    counters.add("rag_request_seconds_total", seconds, route=path)
    who = getattr(request.state, "caller", None)
    logs.event("request", method=request.method, route=path, status=status, ms=round(seconds * 1000, 2),
               token=who.id if who else None, **getattr(request.state, "answer", {}))


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message), status_code=status, headers=dict(headers or {}))
