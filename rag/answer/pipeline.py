"""One question's run: clean -> rewrite -> retrieve -> draft -> verify -> finish.

The run's state is one small record (`Run`); abstention is decided here and only here, with its reason
recorded on the Answer.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Generator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from ..config import Settings
from ..index.store import VectorStore
from ..retrieval import QueryEncoder, hybrid_search
from ..types import LOW_SCORE, NOTHING_VERIFIED, Answer, Citation, Hit
from .answerers import Answerer, Draft
from .citations import check, strip_links
from .conversation import as_turns, looks_like_follow_up
from .prompts import ABSTAIN_TEXT
from .questions import clean_question


class Loaded(Protocol):
    """What a run reads: the index generation and the query encoder (borrowed for the whole run)."""

    store: VectorStore
    encoder: QueryEncoder


L = TypeVar("L", bound=Loaded)


@dataclass
class Run:
    """One question's state as it moves through the stages."""

    question: str
    notices: list[str]
    started: float = field(default_factory=time.perf_counter)
    standalone: str = ""
    hits: tuple[Hit, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)

    def lap(self, name: str, since: float) -> float:
        now = time.perf_counter()
        self.timings[name] = round((now - since) * 1000, 2)
        return now


def answer(question: str, history: Any, k: int, settings: Settings,
           borrow: Callable[[], AbstractContextManager[L]],
           answerer: Callable[[L], Answerer]) -> Generator[str, None, Answer]:
    """Yield the answer's text as it is written, then return the final, verified Answer.

    `borrow()` lends the loaded index (with `.store` and `.encoder`) for the rest of the run; `answerer(loaded)`
    gives who writes the draft.
    """
    cleaned, notices = clean_question(question, settings.max_question_chars)
    run = Run(cleaned, notices)
    with borrow() as loaded:
        writer = answerer(loaded)
        run.standalone = _standalone(writer, as_turns(history, settings.history_turns), cleaned, notices)
        since = time.perf_counter()
        run.hits = tuple(hybrid_search(loaded.store, loaded.encoder, run.standalone, k, settings))
        since = run.lap("retrieve_ms", since)
        if not run.hits or max(h.dense_score for h in run.hits) < settings.min_score:
            return _abstain(run, writer.name, LOW_SCORE)
        draft = yield from writer.draft(run.question, run.standalone, run.hits, notices)
        run.lap("generate_ms", since)
    final = _finish(run, draft, settings)
    if draft.answerer != "llm":
        yield from re.findall(r"\S+\s*", final.text)  # the text as it is written, like the LLM's
    return final


def _standalone(writer: Answerer, turns: Sequence, question: str, notices: list[str]) -> str:
    if not turns or not looks_like_follow_up(question):
        return question
    return writer.rewrite(turns, question, notices)


def _finish(run: Run, draft: Draft, settings: Settings) -> Answer:
    """Verify the draft's citations; abstain when the answerer declined or nothing survived."""
    if draft.declined:
        return _abstain(run, draft.answerer, draft.declined)
    checked = check(draft.text, [h.passage.text for h in run.hits], settings.citation_min_support)
    if not checked.cited:
        run.notices.append("no sentence of the draft answer was supported by the passages" if draft.text.strip()
                           else "no retrieved sentence answers this")
        return _abstain(run, draft.answerer, NOTHING_VERIFIED, checked.unsupported)
    if checked.unsupported:
        run.notices.append(f"removed {len(checked.unsupported)} sentence(s) no passage supports")
    citations = tuple(Citation(n, run.hits[i]) for n, i in enumerate(checked.cited, 1))
    text, removed = strip_links(checked.text, [c.hit.passage.text for c in citations])
    if removed:
        run.notices.append(f"removed {removed} link(s) or image(s) that no cited passage contains")
    run.lap("total_ms", run.started)
    return Answer(run.question, text, citations, False, draft.answerer, run.standalone,
                  unsupported=tuple(checked.unsupported), notices=tuple(run.notices), timings=run.timings)


def _abstain(run: Run, answerer: str, reason: str, unsupported: Sequence[str] = ()) -> Answer:
    run.lap("total_ms", run.started)
    return Answer(run.question, ABSTAIN_TEXT, (), True, answerer, run.standalone, abstain_reason=reason,
                  near_misses=run.hits[:3], unsupported=tuple(unsupported), notices=tuple(run.notices),
                  timings=run.timings)
