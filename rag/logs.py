"""Structured logging: events as fields, JSON lines with `--log-json`.

Events carry counts and timings only; passage and question text appear only when asked for
(`--log-text`). Secrets never reach a record: events are built from explicit fields, never from
settings or exception objects.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Generator

from .text import printable
from .types import Answer

log = logging.getLogger("rag")
_INCLUDE_TEXT = False


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
                 "level": record.levelname.lower(), "event": record.getMessage()}
        entry.update(getattr(record, "fields", {}))
        return json.dumps(entry, ensure_ascii=False, default=str)


class PlainLines(logging.Formatter):
    """`rag: level: message` for a human; messages can hold file names and corpus text, so they are
    made printable (no escape sequences, no forged lines)."""

    def __init__(self) -> None:
        super().__init__("rag: %(levelname)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))


def setup(json_lines: bool, include_text: bool = False) -> None:
    """JSON lines of every event at INFO on stderr, or plain warnings only."""
    global _INCLUDE_TEXT
    _INCLUDE_TEXT = include_text
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines() if json_lines else PlainLines())
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO if json_lines else logging.WARNING)
    log.propagate = False


def event(name: str, text: dict | None = None, **fields) -> None:
    """Log one event; `text` holds user or corpus text, included only when text logging is on."""
    if log.isEnabledFor(logging.INFO):
        if _INCLUDE_TEXT and text:
            fields.update(text)
        log.info(name, extra={"fields": fields})


def answered(run: Generator[str, None, Answer]) -> Generator[str, None, Answer]:
    """Pass a streamed answer through, and log it once it is finished."""
    answer = yield from run
    event("ask", {"question": answer.question, "answer": answer.text}, answerer=answer.answerer,
          abstained=answer.abstained, abstain_reason=answer.abstain_reason, citations=len(answer.citations),
          unsupported=len(answer.unsupported), notices=len(answer.notices), **answer.timings)
    return answer
