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
from ..answer.citations import sentences_with_markers
from ..answer.judge import judge_for
from ..answer.llm import endpoint_state
from ..answer.stream import AnswerStream
from ..assistant import Assistant
from ..config import Settings, trusted_hosts
from ..errors import EmptyQuestion, RagError
from ..ingest import list_documents
from ..people import Database, DatabaseUnavailable
from ..people.budgets import Budget, SharedLimiter
from ..render import answer_markdown
from ..tokens import TokenStore
from ..types import Answer
from ..uploads import save_upload
from ..users import UserStore
from .guard import (
    ApiError,
    BodyLimit,
    Caller,
    Door,
    Gatekeeper,
    RateLimiter,
    database_down,
    error_body,
    status_of,
)
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

_LONGEST_PATH = 1024
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 409, 413, 422, 429, 503)}


@dataclass
class Service:
    """What every request shares: the assistant (and its loaded index), the access rules, the counters."""

    assistant: Assistant
    door: Door
    metrics: Metrics = field(default_factory=Metrics)
    ingesting: threading.Lock = field(default_factory=threading.Lock)
    ingest_started: float = 0.0


def service_of(request: Request) -> Service:
    return request.app.state.service


def caller(request: Request) -> Caller:
    """Who the Gatekeeper admitted (it read only the headers, before any of the body)."""
    return request.state.caller


def admin(who: Annotated[Caller, Depends(caller)]) -> Caller:
    if not who.admin:  # the Gatekeeper refused it already; this keeps the rule beside the routes too
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
    except RagError as exc:  # a probe needs no token: its reason names no server path
        reason = without_paths(str(exc), service.assistant.settings)
        return JSONResponse({"ready": False, "reason": reason, "llm": llm}, status_code=503)
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
    _check_question(service, body.question, body.k)
    return service.assistant.search(body.question, body.k).to_dict()


@router.post("/v1/ask", tags=["answers"], summary="A short answer with verified [n] citations",
             response_model=AskResponse,
             responses={200: {"content": {"text/event-stream": {"description": "With `stream: true`."}}}})
def ask(body: AskRequest, request: Request, who: Reader) -> Any:
    service = service_of(request)
    _check_question(service, body.question, body.k)
    stream = service.assistant.stream(body.question, history=history_of(body.history), k=body.k,
                                      answerer=body.answerer)
    if not body.stream:
        return public_answer(_answered(request, stream.answer), service.assistant.settings)
    pieces = iter(stream)
    first = next(pieces, None)  # the first sentence, or the whole run: its errors still get their status
    return StreamingResponse(_events(request, stream, first, pieces), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.post("/v1/verify", tags=["answers"], summary="Check an answer written elsewhere against its passages",
             response_model=VerifyResponse)
def verify(body: VerifyRequest, request: Request, who: Reader) -> dict:
    if not body.answer.strip():
        raise ApiError(400, "the answer is empty: send the text to check in `answer`")
    service = service_of(request)
    settings = service.assistant.settings
    sentences = _verify_work(settings, body)
    # The LLM judge (RAG_VERIFIER) is a paid request carrying the passages: a unit per 10,000 characters sent.
    judged = 1 + sum(map(len, body.passages)) // 10_000 if judge_for(settings, body.passages) else 0
    service.door.charge(who, sentences - 1 + judged)  # the Gatekeeper charged one already
    return service.assistant.verify(body.answer, body.passages, body.question).to_dict()


def ingest(body: IngestRequest, request: Request, who: Admin) -> dict:
    service = service_of(request)
    settings = service.assistant.settings
    if len(body.paths) + len(body.files) > settings.server_max_ingest_files:
        raise ApiError(413, f"{len(body.paths) + len(body.files)} paths and files in one request, more than the "
                       f"{settings.server_max_ingest_files} allowed (RAG_SERVER_MAX_INGEST_FILES): send them in parts")
    with _one_ingest(service):
        paths = [_inside_corpus(settings.corpus_dir, p) for p in body.paths]
        paths += [save_upload(settings.uploads, f.name, _decoded(f.name, f.data), settings.max_file_bytes)
                  for f in body.files]
        report = service.assistant.configured(lock_timeout=0).ingest(
            paths, rebuild=body.rebuild, sync=body.sync, isolated=True, time_limit=settings.server_ingest_seconds)
    return report.to_dict()


@router.delete("/v1/sources/{source_id:path}", tags=["index"], summary="Remove a document (admin)",
               response_model=IngestResponse)
def remove_source(source_id: str, request: Request, who: Admin) -> dict:
    service = service_of(request)
    if source_id not in {d.path for d in list_documents(service.assistant.settings)}:
        raise ApiError(404, f"no indexed document {source_id!r}: GET /v1/sources lists their ids")
    with _one_ingest(service):
        report = service.assistant.configured(lock_timeout=0).remove(
            [Path(source_id)], isolated=True, time_limit=service.assistant.settings.server_ingest_seconds)
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


def _check_question(service: Service, question: str, k: int | None = None) -> None:
    settings = service.assistant.settings
    limit = settings.max_question_chars
    if not question.strip():
        raise EmptyQuestion()
    if len(question) > limit:
        raise ApiError(413, f"the question is {len(question):,} characters, more than the {limit:,} allowed "
                       "(RAG_MAX_QUESTION_CHARS): ask a shorter one")
    if k is not None and k > settings.server_max_passages:
        raise ApiError(422, f"k is {k}, more than the {settings.server_max_passages} passages a request may read "
                       "(RAG_SERVER_MAX_PASSAGES): ask for fewer")


def _verify_work(settings: Settings, body: VerifyRequest) -> int:
    """The sentences to check, within the caps that bound a verify's work; 413 beyond them."""
    most_passages, most_chars = settings.server_max_passages, settings.server_max_passage_chars
    if len(body.passages) > most_passages:
        raise ApiError(413, f"{len(body.passages)} passages, more than the {most_passages} allowed "
                       "(RAG_SERVER_MAX_PASSAGES): send the ones the answer cites")
    longest = max(len(text) for text in [*body.passages, body.answer])
    if longest > most_chars:
        raise ApiError(413, f"a passage or the answer is {longest:,} characters, more than the {most_chars:,} "
                       "allowed (RAG_SERVER_MAX_PASSAGE_CHARS): send shorter ones")
    sentences = len(sentences_with_markers(body.answer))
    if sentences > settings.server_max_sentences:
        raise ApiError(413, f"the answer has {sentences} sentences, more than the {settings.server_max_sentences} "
                       "allowed (RAG_SERVER_MAX_SENTENCES): check it in parts")
    return max(sentences, 1)


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


def public_answer(answer: Answer, settings: Settings) -> dict:
    """The answer's JSON, with `answer` as the Markdown the app shows: see `safe_answer`."""
    return {**answer.to_dict(), "answer": safe_answer(answer, settings)}


def safe_answer(answer: Answer, settings: Settings) -> str:
    """Safe to render as Markdown: no raw HTML, image or script link; links only to addresses a cited
    passage holds, with a warning in the text for a host outside RAG_TRUSTED_LINK_HOSTS."""
    return answer_markdown(answer.text, [c.hit.passage.text for c in answer.citations], trusted_hosts(settings))


def piece_markdown(piece: str, settings: Settings) -> str:
    """A streamed sentence, rendered before its citations are settled: as `safe_answer` with no link kept,
    and a bracket left open or closed within it escaped, so that pieces joined by the client cannot
    complete a link across a sentence break ("[Click. Here](javascript:...)")."""
    text = answer_markdown(piece, [], trusted_hosts(settings))
    unpaired = _unpaired_brackets(text)
    return "".join("\\" + char if at in unpaired else char for at, char in enumerate(text))


def _unpaired_brackets(text: str) -> set[int]:
    opened: list[int] = []
    unpaired: set[int] = set()
    for at, char in enumerate(text):
        if at and text[at - 1] == "\\":
            continue
        if char == "[":
            opened.append(at)
        elif char == "]":
            if opened:
                opened.pop()
            else:
                unpaired.add(at)
    return unpaired | set(opened)


def _events(request: Request, stream: AnswerStream, first: str | None, rest: Iterator[str]) -> Iterator[str]:
    """Server-sent events: each verified sentence, then the answer (or one error event)."""
    settings = service_of(request).assistant.settings
    try:
        for piece in ([first] if first is not None else []):
            yield sse("sentence", {"text": piece_markdown(piece.strip(), settings)})
        for piece in rest:
            yield sse("sentence", {"text": piece_markdown(piece.strip(), settings)})
        yield sse("answer", public_answer(_answered(request, stream.answer), settings))
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
    if "\x00" in name or len(name) > _LONGEST_PATH:
        raise ApiError(400, f"a path holds a NUL character or is longer than {_LONGEST_PATH} characters: name a "
                       "file under the corpus folder")
    root = corpus_dir.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        raise ApiError(403, f"{name!r} is outside the corpus folder: the service ingests only files under "
                       "RAG_CORPUS_DIR (or send them in `files`)")
    try:
        found = path.exists()
    except OSError:  # a name the file system cannot hold ("File name too long")
        raise ApiError(400, "a path is not a name this server's file system can hold: name a file under the "
                       "corpus folder") from None
    if not found:
        raise ApiError(404, f"{name!r} is not in the corpus folder: GET /v1/sources lists what is indexed")
    return path


def without_paths(message: str, settings: Settings) -> str:
    """The message with the server's own folders named by their settings instead: callers never learn
    where the service keeps its files."""
    folders = {settings.index_dir: "the index folder (RAG_INDEX_DIR)", settings.uploads: "the upload folder "
               "(RAG_UPLOAD_DIR)", settings.corpus_dir: "the corpus folder (RAG_CORPUS_DIR)",
               settings.chats_path: "the chat store (RAG_CHATS_PATH)", Path.cwd(): "the server's folder",
               Path.home(): "the server's home folder"}
    named = {str(folder.resolve()): name for folder, name in folders.items() if folder.resolve() != Path("/")}
    for path in sorted(named, key=len, reverse=True):  # the deepest first: a folder inside another
        message = message.replace(path, named[path])
    return message


def _decoded(name: str, data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"the data of {name!r} is not base64: encode the file's bytes") from None


def _llm_state(service: Service) -> dict:
    return endpoint_state(service.assistant.settings)


def limiters(settings: Settings) -> tuple[Budget, Budget]:
    """Work per caller and wrong tokens per address: counted in the database when replicas share one."""
    if settings.database_url is None:
        return RateLimiter(settings.server_rate_limit), RateLimiter(settings.server_failed_token_limit)
    database = Database.server(settings.database_url)
    return (SharedLimiter(database, settings.server_rate_limit),
            SharedLimiter(database, settings.server_failed_token_limit))


def create_app(assistant: Assistant, loopback: bool = True) -> FastAPI:
    """The service over this assistant; `loopback` says it is served on 127.0.0.1 only."""
    settings = assistant.settings
    app = FastAPI(title="rag", summary=f"Cited answers from {settings.collection or 'your documents'}", version="1")
    door = Door(TokenStore.of(settings), UserStore.of(settings), loopback, *limiters(settings))
    app.state.service = service = Service(assistant, door)
    app.include_router(router)
    # Uploads come base64-encoded in the body, so this one route takes larger bodies.
    app.add_api_route("/v1/ingest", ingest, methods=["POST"], tags=["index"], summary="Add or update documents "
                      "(admin)", response_model=IngestResponse, responses=_ERRORS)
    app.add_middleware(BodyLimit, limit=settings.server_max_body_bytes,
                       larger={"/v1/ingest": settings.server_max_upload_bytes})
    # Added after BodyLimit, so it runs before it: who is calling is settled before any body byte is read.
    app.add_middleware(Gatekeeper, door=door, refused=lambda: service.metrics.add("rag_rate_limited_total"))
    from .openai_compat import router as compat

    app.include_router(compat)
    _handle_errors(app)
    return app


def _handle_errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def refused(request: Request, exc: ApiError) -> JSONResponse:
        if exc.status == 429:  # work charged by a handler (the Gatekeeper counts its own)
            service_of(request).metrics.add("rag_rate_limited_total")
        return _error(exc.status, str(exc), exc.headers)

    @app.exception_handler(RagError)
    async def failed(request: Request, exc: RagError) -> JSONResponse:
        if isinstance(exc, DatabaseUnavailable):
            return database_down(exc).response()
        return _error(status_of(exc), without_paths(str(exc), service_of(request).assistant.settings))

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
