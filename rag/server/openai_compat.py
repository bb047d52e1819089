"""The assistant as an OpenAI-compatible "model": `POST /v1/chat/completions` and `GET /v1/models`.

The reply's content is the verified answer with its [n] markers and a sources list after it; the
citations also come as data in the extra field `citations` (and the whole answer in `rag`), which the
official client keeps in `model_extra`. The last user message is the question, earlier user and
assistant messages its history; system messages are ignored (the assistant's own rules apply).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from .. import logs
from ..config import Settings
from ..errors import RagError
from ..render import safe_markdown, source_label
from ..types import Answer
from .api import ApiError, Reader, _answered, _check_question, piece_markdown, public_answer, safe_answer, service_of
from .guard import error_body, status_of

MODELS = {"rag": None, "rag-extractive": "extractive", "rag-llm": "llm"}
_SOURCES = "\n\nSources:\n"
router = APIRouter(tags=["openai"])


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str = ""


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None


class ChatRequest(BaseModel):
    """The fields that matter here; others (temperature, max_tokens, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(description="rag (RAG_ANSWERER), rag-extractive or rag-llm.")
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    stream: bool = False


@router.get("/v1/models", summary="The assistant's answerers, as models")
def models(who: Reader) -> dict:
    return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "rag"}
                                       for name in MODELS]}


@router.post("/v1/chat/completions", summary="An answer in the OpenAI chat-completions format")
def chat_completions(body: ChatRequest, request: Request, who: Reader) -> Any:
    if body.model not in MODELS:
        raise ApiError(404, f"no model {body.model!r}: use one of {', '.join(MODELS)} (GET /v1/models)")
    question, history = _conversation(body.messages)
    service = service_of(request)
    _check_question(service, question)
    stream = service.assistant.stream(question, history=history, answerer=MODELS[body.model])
    reply = _Reply(body.model, service.assistant.settings)
    if not body.stream:
        return reply.completion(_answered(request, stream.answer))
    pieces = iter(stream)
    first = next(pieces, None)  # errors before the first sentence still get their HTTP status
    return StreamingResponse(reply.chunks(request, stream, first, pieces), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _conversation(messages: list[ChatMessage]) -> tuple[str, list[tuple[str, str]]]:
    turns: list[tuple[str, str]] = [(m.role, _text(m)) for m in messages if m.role in ("user", "assistant")]
    if not turns or turns[-1][0] != "user":
        raise ApiError(400, "the last message must be the user's question")
    history = [(role, text.split(_SOURCES, 1)[0]) for role, text in turns[:-1]]  # our own sources lists out
    return turns[-1][1], history


def _text(message: ChatMessage) -> str:
    if isinstance(message.content, list):
        return " ".join(part.text for part in message.content if part.type == "text")
    return message.content or ""


def sources_list(answer: Answer) -> str:
    """Titles and sections come from the documents: escaped, so none can link or embed."""
    lines = [f"[{c.marker}] " + safe_markdown("; ".join(dict.fromkeys(source_label(s.to_dict())
                                                                     for s in c.hit.passage.sources)))
             for c in answer.citations]
    return _SOURCES + "\n".join(lines) if lines else ""


class _Reply:
    def __init__(self, model: str, settings: Settings) -> None:
        self.id = "chatcmpl-" + secrets.token_hex(12)
        self.model = model
        self.settings = settings
        self.created = int(time.time())

    def completion(self, answer: Answer) -> dict:
        message = {"role": "assistant", "content": safe_answer(answer, self.settings) + sources_list(answer)}
        return {**self._head("chat.completion"),
                "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}, **self._extra(answer)}

    def chunks(self, request: Request, stream, first: str | None, rest: Iterator[str]) -> Iterator[str]:
        """The verified sentences as they pass, then the sources list and a last chunk with the citations."""
        sent = ""
        try:
            yield self._chunk({"role": "assistant", "content": ""})
            for piece in ([first] if first is not None else []):
                sent += piece
                yield self._chunk({"content": piece_markdown(piece, self.settings)})
            for piece in rest:
                sent += piece
                yield self._chunk({"content": piece_markdown(piece, self.settings)})
            answer = _answered(request, stream.answer)
            # An abstention or a question back is not streamed sentence by sentence: send it whole.
            tail = safe_answer(answer, self.settings) if not sent.strip() else ""
            yield self._chunk({"content": tail + sources_list(answer)})
            yield self._chunk({}, "stop", self._extra(answer))
        except RagError as exc:
            yield _data(error_body(status_of(exc), str(exc)))
        except Exception as exc:  # noqa: BLE001 - the stream is under way: end it with one error
            logs.log.error("stream failed (%s)", type(exc).__name__)
            yield _data(error_body(500, "the answer failed part-way; ask again"))
        yield "data: [DONE]\n\n"

    def _chunk(self, delta: dict, finish: str | None = None, extra: dict | None = None) -> str:
        return _data({**self._head("chat.completion.chunk"),
                      "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
                      **(extra or {})})

    def _extra(self, answer: Answer) -> dict:
        data = public_answer(answer, self.settings)
        return {"citations": data["citations"], "rag": data}

    def _head(self, kind: str) -> dict:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}




def _data(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"
