"""The LLM path: a LangChain chain over any OpenAI-compatible chat endpoint.

The only module that imports langchain and openai, and only when an LLM answer is asked for. The key
is read from Settings at that moment and never appears in a message: errors name the variable to fix.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from urllib.parse import urlsplit

from ..config import Settings
from ..errors import RagError, UserError
from ..extras import require
from ..types import Hit, Turn
from .prompts import ANSWER_SYSTEM, ANSWER_USER, CONDENSE_SYSTEM, CONDENSE_USER, PASSAGE


class LLMFailure(RagError):
    """The endpoint did not give a usable answer (down, slow, overloaded, broken reply)."""


class LLMConfigError(UserError):
    """The LLM is not set up right: no key, a refused key, an unknown model."""


def endpoint_name(settings: Settings) -> str:
    """Scheme, host and path of the endpoint: never credentials or query strings."""
    if not settings.openai_base_url:
        return "the OpenAI API"
    url = urlsplit(settings.openai_base_url)
    return f"{url.scheme}://{url.hostname}{f':{url.port}' if url.port else ''}{url.path}"


def chat_model(settings: Settings, streaming: bool = True):
    if settings.openai_api_key is None:
        raise LLMConfigError("the LLM answerer needs OPENAI_API_KEY (and OPENAI_BASE_URL for a server "
                             "other than OpenAI's); set them, or use the extractive answerer")
    ChatOpenAI = require("langchain_openai", "llm", "the LLM answerer").ChatOpenAI
    return ChatOpenAI(
        model=settings.llm_model, api_key=settings.openai_api_key, base_url=settings.openai_base_url,
        temperature=settings.llm_temperature, timeout=settings.llm_timeout,
        max_retries=settings.llm_max_retries, streaming=streaming, use_responses_api=False,
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
    chain = answer_prompt() | chat_model(settings)
    finished = False
    with translate_errors(settings):
        for chunk in chain.stream({"passages": format_passages(hits), "question": question}):
            finished = finished or bool(chunk.response_metadata.get("finish_reason"))
            if chunk.content:
                yield chunk.content if isinstance(chunk.content, str) else str(chunk.content)
    if not finished:
        raise LLMFailure(f"the reply from {endpoint_name(settings)} was cut off before it finished; "
                         "try again, or check the server's logs")


def condense(settings: Settings, history: Sequence[Turn], question: str) -> str:
    """The LLM's standalone rewrite of a follow-up question."""
    from langchain_core.prompts import ChatPromptTemplate

    prompt = ChatPromptTemplate.from_messages([("system", CONDENSE_SYSTEM), ("human", CONDENSE_USER)])
    conversation = "\n".join(f"{t.role}: {t.content}" for t in history)
    with translate_errors(settings):
        reply = (prompt | chat_model(settings, streaming=False)).invoke(
            {"history": conversation, "question": question})
    return " ".join(str(reply.content).split()) or question


@contextlib.contextmanager
def translate_errors(settings: Settings) -> Iterator[None]:
    """Turn openai/httpx exceptions into one clear line that names the fix (and never the key)."""
    try:
        yield
    except RagError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure of the call becomes one clear line
        raise _translate(exc, settings) from None


def _translate(exc: BaseException, settings: Settings) -> RagError:
    import httpx
    import openai

    where = endpoint_name(settings)
    if isinstance(exc, openai.AuthenticationError):
        return LLMConfigError(f"{where} refused the key (401): check OPENAI_API_KEY")
    if isinstance(exc, openai.NotFoundError):
        return LLMConfigError(f"{where} has no model {settings.llm_model!r} (404): set RAG_LLM_MODEL "
                              "or check OPENAI_BASE_URL")
    if isinstance(exc, openai.RateLimitError):
        return LLMFailure(f"{where} is rate-limiting requests (429) after {settings.llm_max_retries} "
                          "retries: wait a little and ask again")
    if isinstance(exc, openai.APITimeoutError):
        return LLMFailure(f"{where} did not answer within {settings.llm_timeout:g}s: check the server "
                          "or raise RAG_LLM_TIMEOUT")
    if isinstance(exc, openai.APIConnectionError):
        return LLMFailure(f"cannot reach {where}: check OPENAI_BASE_URL and that the server is running")
    if isinstance(exc, openai.APIStatusError):
        return LLMFailure(f"{where} failed with HTTP {exc.status_code}: check the server's logs, or ask again")
    if isinstance(exc, (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError)):
        return LLMFailure(f"{where} sent a reply that is not a valid chat completion "
                          f"({type(exc).__name__}); check that it is OpenAI-compatible")
    return LLMFailure(f"the LLM call to {where} failed ({type(exc).__name__})")
