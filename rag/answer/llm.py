"""The LLM path: a LangChain chain over any OpenAI-compatible chat endpoint.

The only module that imports langchain and openai, and only when an LLM answer is asked for. The key
is read from Settings at that moment and never appears in a message: errors name the variable to fix.

One LLM call (a follow-up's rewrite, or an answer) has one deadline, RAG_LLM_TIMEOUT, that its retries
share: the client's own retries are off and `_call` retries with what time is left. The endpoint's
circuit breaker (rag.answer.breaker) skips it for a while after repeated failures.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TypeVar
from urllib.parse import urlsplit

from ..config import Settings
from ..errors import RagError, UserError
from ..extras import require
from ..types import Hit, Turn
from . import breaker
from .prompts import ANSWER_SYSTEM, ANSWER_USER, CONDENSE_SYSTEM, CONDENSE_USER, PASSAGE

T = TypeVar("T")
_MIN_TRY = 0.25  # seconds: a retry with less time than this left is not worth making


class LLMFailure(RagError):
    """The endpoint did not give a usable answer (down, slow, overloaded, broken reply)."""


class LLMSkipped(LLMFailure):
    """The endpoint's breaker is open: no request was made."""


class LLMConfigError(UserError):
    """The LLM is not set up right: no key, a refused key, an unknown model."""


class _Expired(Exception):
    """The call's deadline passed while waiting for the endpoint."""


def endpoint_url(settings: Settings) -> str:
    """Scheme, host, port and path of the endpoint: never credentials or query strings."""
    url = urlsplit(settings.openai_base_url or "https://api.openai.com/v1")
    return f"{url.scheme}://{url.hostname}{f':{url.port}' if url.port else ''}{url.path}"


def endpoint_name(settings: Settings) -> str:
    return endpoint_url(settings) if settings.openai_base_url else "the OpenAI API"


def endpoint_state(settings: Settings) -> dict:
    """The endpoint as data, for `rag info`, a readiness probe or a sidebar: endpoint (no credentials),
    model, state ("closed", "open", "half_open" or "not_configured"), failures (failed requests in a row),
    retry_in_s (seconds until an open breaker lets a trial through; None when closed) and last_error.
    The state is this process's: it only knows the endpoint from the calls it made."""
    where = {"endpoint": endpoint_url(settings), "model": settings.llm_model}
    if settings.openai_api_key is None:
        return {**where, "state": "not_configured", "failures": 0, "retry_in_s": None, "last_error": None}
    return {**where, **breaker.snapshot(_key(settings), settings.llm_breaker_cooldown)}


def describe_state(state: dict) -> str:
    """The endpoint's state (`endpoint_state`) in words a person uses: "working", "failing: skipped for
    another 42 s after 3 failed requests in a row (last error: ...)", "failing: trying again with the
    next question ..." or "not configured ...". The last error is its first clause (what went wrong, not
    the advice), and like every message here it names no key. Never a breaker's "closed" or "open": the
    JSON `state` keeps those for programs."""
    name, failures = state["state"], state.get("failures") or 0
    last = _brief(state.get("last_error"))
    error = f" (last error: {last})" if last else ""
    in_a_row = f" after {failures} failed request{'' if failures == 1 else 's'} in a row" if failures else ""
    if name == "not_configured":
        return "not configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for a server other than OpenAI's)"
    if name == "open":
        return f"failing: skipped for another {state['retry_in_s'] or 0:.0f} s{in_a_row}{error}"
    if name == "half_open":
        return f"failing: trying again with the next question{in_a_row}{error}"
    if failures:  # fewer than RAG_LLM_BREAKER_FAILURES: still tried with every question
        requests = "request" if failures == 1 else f"{failures} requests"
        return f"failing: the last {requests} failed; still tried with each question{error}"
    if state.get("last_error"):  # it answered, with a refusal: a setting to fix (a key, a model)
        return f"reachable, but not usable as set up: {state['last_error']}"
    return "working"


def _brief(error: str | None) -> str:
    """A failure's message without its advice and timings: "http://x/v1 failed with HTTP 500"."""
    if not error:
        return ""
    what = re.sub(r" \(waited [^)]*\)", "", error.split(": ", 1)[0].split("; ", 1)[0])
    return what if len(what) <= 160 else what[:157].rstrip() + "..."


def _key(settings: Settings) -> breaker.Key:
    return endpoint_url(settings), settings.llm_model


def chat_model(settings: Settings, streaming: bool = True):
    if settings.openai_api_key is None:
        raise LLMConfigError("the LLM answerer needs OPENAI_API_KEY (and OPENAI_BASE_URL for a server "
                             "other than OpenAI's); set them, or use the extractive answerer")
    ChatOpenAI = require("langchain_openai", "llm", "the LLM answerer").ChatOpenAI
    return ChatOpenAI(
        model=settings.llm_model, api_key=settings.openai_api_key.get_secret_value(), base_url=settings.openai_base_url,
        temperature=settings.llm_temperature, timeout=settings.llm_timeout,  # each try binds what is left
        max_retries=0, streaming=streaming, use_responses_api=False,  # _call retries, within the deadline
    )


def format_passages(hits: Sequence[Hit]) -> str:
    return "\n\n".join(
        PASSAGE.format(marker=n, titles="; ".join(h.passage.titles).replace('"', "'"),
                       text=h.passage.text.replace("</passage>", "</ passage>"))
        for n, h in enumerate(hits, 1)
    )


def answer_prompt():
    from langchain_core.prompts import ChatPromptTemplate

    return ChatPromptTemplate.from_messages([("system", ANSWER_SYSTEM), ("human", ANSWER_USER)])



def stream_answer(settings: Settings, question: str, hits: Sequence[Hit]) -> Iterator[str]:
    """Yield the answer's text as it arrives; raise LLMFailure if the stream breaks off."""
    model, inputs = chat_model(settings), {"passages": format_passages(hits), "question": question}

    def attempt(timeout: float) -> Iterator[str]:
        finished = False
        for chunk in (answer_prompt() | model.bind(timeout=timeout)).stream(inputs):
            finished = finished or bool(chunk.response_metadata.get("finish_reason"))
            if chunk.content:
                yield chunk.content if isinstance(chunk.content, str) else str(chunk.content)
        if not finished:
            raise LLMFailure(f"the reply from {endpoint_name(settings)} was cut off before it finished; "
                             "try again, or check the server's logs")

    return _call(settings, attempt)


def condense(settings: Settings, history: Sequence[Turn], question: str) -> str:
    """The LLM's standalone rewrite of a follow-up question."""
    from langchain_core.prompts import ChatPromptTemplate

    prompt = ChatPromptTemplate.from_messages([("system", CONDENSE_SYSTEM), ("human", CONDENSE_USER)])
    model = chat_model(settings, streaming=False)
    inputs = {"history": "\n".join(f"{t.role}: {t.content}" for t in history), "question": question}

    def attempt(timeout: float) -> Iterator[str]:
        yield str((prompt | model.bind(timeout=timeout)).invoke(inputs).content)

    (reply,) = _call(settings, attempt)  # read to the end, so that the success is recorded
    return " ".join(reply.split()) or question


def complete(settings: Settings, system: str, user: str) -> str:
    """One reply to a system and a user message, whole (the judge's), within the deadline and the breaker.
    Messages, not a prompt template: the texts carry JSON braces that a template would read as variables."""
    from langchain_core.messages import HumanMessage, SystemMessage

    model = chat_model(settings, streaming=False)

    def attempt(timeout: float) -> Iterator[str]:
        reply = model.bind(timeout=timeout).invoke([SystemMessage(system), HumanMessage(user)]).content
        yield reply if isinstance(reply, str) else str(reply)

    (reply,) = _call(settings, attempt)
    return reply


@dataclass
class _Clock:
    """One LLM call's deadline, shared by its tries."""

    timeout: float
    started: float = field(default_factory=time.monotonic)
    tries: int = 0

    def left(self) -> float:
        return self.started + self.timeout - time.monotonic()

    def tried(self) -> str:
        """How long it waited, over how many tries: measured, for the failure's message."""
        return f"{time.monotonic() - self.started:.1f} s over {self.tries} {'try' if self.tries == 1 else 'tries'}"


def _call(settings: Settings, attempt: Callable[[float], Iterator[T]]) -> Iterator[T]:
    """What `attempt(timeout)` yields, within one deadline for every try (RAG_LLM_TIMEOUT) and past the
    endpoint's breaker. Only a try that failed before yielding anything is retried: a retry after text
    was shown would repeat it."""
    key, clock = _key(settings), _Clock(settings.llm_timeout)
    while True:
        _admit(settings, key)
        clock.tries += 1
        shown = False
        try:
            for item in _until(clock, attempt(clock.left())):
                shown = True
                yield item
        except Exception as exc:  # noqa: BLE001 - every failure of a try is sorted by _after_failure
            time.sleep(_after_failure(exc, settings, key, clock, retry=not shown))
        else:
            breaker.succeeded(key)
            return


def _admit(settings: Settings, key: breaker.Key) -> None:
    wait = breaker.admit(key, settings.llm_breaker_cooldown, trial_lease=settings.llm_timeout + 1)
    if wait is not None:
        failures = breaker.snapshot(key, settings.llm_breaker_cooldown)["failures"]
        raise LLMSkipped(f"{endpoint_name(settings)} is skipped for another {wait:.0f} s after {failures} failed "
                         "requests in a row (RAG_LLM_BREAKER_COOLDOWN)")


def _after_failure(exc: Exception, settings: Settings, key: breaker.Key, clock: _Clock, retry: bool) -> float:
    """Record a failed try; return the seconds to wait before the next one, or raise the failure."""
    error = _translate(exc, settings, clock)
    if isinstance(error, LLMConfigError):
        # The endpoint answered: it is up, and a wrong setting is better reported each time than skipped.
        breaker.succeeded(key, str(error))
        raise error from None
    if breaker.failed(key, str(error), settings.llm_breaker_failures):
        raise LLMFailure(f"{error}; the LLM is skipped for the next {settings.llm_breaker_cooldown:g} s") from None
    wait = _retry_wait(exc, clock, settings) if retry else None
    if wait is None:
        raise error from None
    return wait


def _retry_wait(exc: Exception, clock: _Clock, settings: Settings) -> float | None:
    """Seconds to wait before retrying, or None: not retryable, out of retries, or out of time."""
    import openai

    backoff = min(0.25 * 2 ** (clock.tries - 1), 2.0)  # short: the deadline, not patience, is the limit
    if clock.tries > settings.llm_max_retries:
        return None
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code == 429:
            wait = _retry_after(exc.response.headers)
            backoff = backoff if wait is None else wait
        elif exc.status_code != 408 and exc.status_code < 500:
            return None
    elif not isinstance(exc, openai.APIConnectionError):
        return None
    return backoff if backoff + _MIN_TRY <= clock.left() else None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks to wait (Retry-After-Ms, or Retry-After as seconds or an HTTP date)."""
    try:
        return float(headers["retry-after-ms"]) / 1000
    except (KeyError, ValueError):
        pass
    value = headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _until(clock: _Clock, items: Iterator[T]) -> Iterator[T]:
    """`items` as they arrive, never past the deadline: a thread reads them, so a reply that stalls or
    trickles cannot hold the caller (the thread ends at its request's own timeout, the time left)."""
    box: queue.Queue = queue.Queue()
    stop = threading.Event()
    threading.Thread(target=_read, args=(items, box, stop), daemon=True).start()
    try:
        while True:
            if clock.left() <= 0:
                raise _Expired
            try:
                kind, value = box.get(timeout=clock.left())
            except queue.Empty:
                raise _Expired from None
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()


def _read(items: Iterator, box: queue.Queue, stop: threading.Event) -> None:
    try:
        for item in items:
            box.put(("item", item))
            if stop.is_set():  # the caller gave up: close the reply rather than read it to the end
                break
        box.put(("end", None))
    except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
        box.put(("error", exc))
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


def _translate(exc: BaseException, settings: Settings, clock: _Clock) -> RagError:
    """One clear line that names the fix (and never the key) for a failed try."""
    import httpx
    import openai

    if isinstance(exc, RagError):
        return exc
    where = endpoint_name(settings)
    tried = f" (waited {clock.tried()})" if clock.tries > 1 else ""
    if isinstance(exc, openai.AuthenticationError):
        return LLMConfigError(f"{where} refused the key (401): check OPENAI_API_KEY")
    if isinstance(exc, openai.NotFoundError):
        return LLMConfigError(f"{where} has no model {settings.llm_model!r} (404): set RAG_LLM_MODEL "
                              "or check OPENAI_BASE_URL")
    if isinstance(exc, openai.RateLimitError):
        return LLMFailure(f"{where} is rate-limiting requests (429){tried}: wait a little and ask again")
    if isinstance(exc, (_Expired, openai.APITimeoutError)):
        return LLMFailure(f"{where} did not answer within {settings.llm_timeout:g} s (waited {clock.tried()}): "
                          "check the server or raise RAG_LLM_TIMEOUT")
    if isinstance(exc, openai.APIConnectionError):
        return LLMFailure(f"cannot reach {where}{tried}: check OPENAI_BASE_URL and that the server is running")
    if isinstance(exc, openai.APIStatusError):
        return LLMFailure(f"{where} failed with HTTP {exc.status_code}{tried}: check the server's logs, or ask again")
    if isinstance(exc, (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError)):
        return LLMFailure(f"{where} sent a reply that is not a valid chat completion "
                          f"({type(exc).__name__}); check that it is OpenAI-compatible")
    return LLMFailure(f"the LLM call to {where} failed ({type(exc).__name__})")
