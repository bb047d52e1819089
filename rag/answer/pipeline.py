"""One question's run: clean -> rewrite -> retrieve -> draft -> verify -> finish.

The run's state is one small record (`Run`); abstention is decided here and only here, with its reason
recorded on the Answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from .. import logs
from ..config import Settings, trusted_hosts
from ..index.store import VectorStore
from ..retrieval import QueryEncoder, hybrid_search
from ..types import LOW_SCORE, NO_GROUNDED_PASSAGE, NOTHING_VERIFIED, Answer, Citation, Hit, RemovedClaim, SentenceCheck
from .answerers import Answerer, Draft, Restart
from .citations import outside_hosts
from .conversation import FollowUp, as_turns, clarifying_question, follow_up, holds_words, read_as, speaks_of
from .judge import judge_for
from .prompts import abstain_text
from .questions import clean_question
from .verify import AnswerChecker, Check, load_verifier


class Loaded(Protocol):
    """What a run reads (borrowed for the whole run): the index generation, the query encoder and what the
    documents are called (rag.sources.library_name)."""

    store: VectorStore
    encoder: QueryEncoder
    library: str


L = TypeVar("L", bound=Loaded)


@dataclass
class Run:
    """One question's state as it moves through the stages."""

    question: str
    notices: list[str]
    started: float = field(default_factory=time.perf_counter)
    standalone: str = ""
    subject: str = ""  # what a follow-up refers to, from the history ("" for a question that stands alone)
    read_as: str = ""  # the standalone question as a person would write it (Answer.read_as)
    abstain_text: str = ""
    hits: tuple[Hit, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    sentences: tuple[SentenceCheck, ...] = ()  # each judged sentence and the check that decided it

    def lap(self, name: str, since: float) -> float:
        now = time.perf_counter()
        self.timings[name] = round((now - since) * 1000, 2)
        return now


def answer(question: str, history: Any, k: int, settings: Settings,
           borrow: Callable[[], AbstractContextManager[L]],
           answerer: Callable[[L], Answerer]) -> Generator[str, None, Answer]:
    """Yield the answer's verified sentences as they pass, then return the final Answer.

    `borrow()` lends the loaded index (with `.store` and `.encoder`) for the rest of the run;
    `answerer(loaded)` gives who writes the draft. Nothing the draft says is yielded before it is verified.
    """
    cleaned, notices = clean_question(question, settings.max_question_chars)
    with borrow() as loaded:
        run = Run(cleaned, notices, abstain_text=abstain_text(loaded.library))
        writer = answerer(loaded)
        turns = as_turns(history, settings.history_turns)
        leaning = follow_up(turns, cleaned)
        if leaning is not None and not leaning.subject:
            return _clarify(run, writer.name, leaning)
        since = time.perf_counter()
        _read(run, writer, turns, leaning,
              lambda text: tuple(hybrid_search(loaded.store, loaded.encoder, text, k, settings)))
        since = run.lap("retrieve_ms", since)
        if not run.hits or max(h.dense_score for h in run.hits) < settings.min_score:
            return _abstain(run, writer.name, LOW_SCORE)
        if run.subject and not _on_subject(run):
            return _abstain(run, writer.name, NO_GROUNDED_PASSAGE)
        passages = [h.passage.text for h in run.hits]
        checker = AnswerChecker(load_verifier(settings), passages, judge_for(settings, passages, writer.name == "llm"),
                                run.standalone)
        draft = yield from _verified(writer.draft(run.question, run.standalone, run.hits, notices), checker)
        run.lap("answer_ms", since)
    return _finish(run, draft, checker, trusted_hosts(settings))


def _verified(draft: Generator[str, None, Draft], checker: AnswerChecker) -> Generator[str, None, Draft]:
    """Pass the draft through the checker: only sentences that passed come out, each as it passes."""
    while True:
        try:
            piece = next(draft)
        except StopIteration as stop:
            if stop.value.answerer != "llm" or stop.value.declined:  # the fallback's copied sentences, or a
                checker.judge = None  # "not in the documents": nothing for a judge
            yield from _spaced(checker, checker.finish())
            return stop.value
        if isinstance(piece, Restart):
            checker.drop_unfinished()
            continue
        yield from _spaced(checker, checker.feed(piece))


def _spaced(checker: AnswerChecker, sentences: list[str]) -> Generator[str, None, None]:
    yield from checker.spaced(sentences)


def _read(run: Run, writer: Answerer, turns: Sequence, leaning: FollowUp | None,
          search: Callable[[str], tuple[Hit, ...]]) -> None:
    """Set the question to search for, its subject and its hits. A short question with no pointing word
    ("is there a cap?") is read as a follow-up only if, with the subject added, it finds a closer passage
    than alone, and one that holds a word of its own and the subject: "What is PgBouncer?" after a
    question about structured logging finds a logging passage without PgBouncer, so it stands alone."""
    alone: tuple[Hit, ...] = ()
    joined: tuple[Hit, ...] = ()
    if leaning is not None and not leaning.certain:
        alone, joined = search(run.question), search(leaning.rewrite(run.question))
        if not joined or _closest(joined) <= _closest(alone) or not _joins(joined, run.question, leaning.subject):
            leaning = None
    if leaning is None:
        run.standalone, run.hits = run.question, alone or search(run.question)
        return
    run.subject = leaning.subject
    run.standalone = writer.rewrite(turns, run.question, leaning, run.notices)
    ruled = run.standalone == leaning.rewrite(run.question)  # the rule's keywords, not a sentence to show
    run.read_as = read_as(turns, run.question, leaning.reference) if ruled else run.standalone
    run.hits = joined if joined and ruled else search(run.standalone)


def _joins(hits: Sequence[Hit], question: str, subject: str) -> bool:
    """Whether the closest passage holds both a word of the question's own and the subject."""
    return holds_words(hits[0].passage.text, question) and speaks_of(subject, [h.passage.text for h in hits])[0]


def _closest(hits: Sequence[Hit]) -> float:
    return max((h.dense_score for h in hits), default=0.0)


def _on_subject(run: Run) -> bool:
    """Keep the passages that speak of what the follow-up refers to: "how long did that take?" about
    cloud costs must not quote "three months" from a post about something else."""
    keep = speaks_of(run.subject, [h.passage.text for h in run.hits])
    run.hits = tuple(h for h, ok in zip(run.hits, keep) if ok)
    if not run.hits:  # the subject is the rule's keywords ("move structured logging"): the log's, not the user's
        logs.event("follow_up_off_subject", {"subject": run.subject}, passages=len(keep))
        run.notices.append("none of the passages found is about what the earlier question asked")
    return bool(run.hits)


def _clarify(run: Run, answerer: str, leaning: FollowUp) -> Answer:
    """A follow-up with nothing to refer to: ask what it means instead of answering."""
    run.lap("total_ms", run.started)
    return Answer(run.question, clarifying_question(run.question, leaning.reference), (), False, answerer,
                  run.question, notices=_once(run.notices), timings=run.timings, needs_clarification=True,
                  read_as=run.question)


def _finish(run: Run, draft: Draft, checker: AnswerChecker, trusted: Sequence[str] = ()) -> Answer:
    """The verified sentences and their citations; abstain when the answerer declined or nothing passed."""
    removed = tuple(map(_removed, checker.removed))
    if draft.declined:
        return _abstain(run, draft.answerer, draft.declined)
    run.sentences = tuple(checker.checked)
    if checker.judge is not None and checker.judge.failure:
        run.notices.append(checker.judge.failure)
    if draft.answerer == "llm" and checker.checked and not checker.quotes.found:
        logs.event("llm_without_quotes", sentences=len(checker.checked))  # checked as before, sentence by sentence
    if not checker.sentences:
        run.notices.append("no sentence of the draft answer was supported by the passages" if draft.text.strip()
                           else "no retrieved sentence answers this")
        return _abstain(run, draft.answerer, NOTHING_VERIFIED, removed)
    if removed:
        run.notices.append(f"removed {len(removed)} sentence(s) no passage supports")
    outside = outside_hosts(checker.text, trusted)
    if outside:  # the sources hold it, but a planted "reset your password at ..." is held by its source too
        run.notices.append(f"the answer points outside ({', '.join(outside[:3])}), as its source does: check the "
                           "address before you open it")
    if checker.links_removed:
        run.notices.append(f"removed {checker.links_removed} link(s) or image(s) that no cited passage contains")
    citations = tuple(Citation(n, run.hits[i], tuple(checker.evidence.get(i, ())))
                      for n, i in enumerate(checker.cited, 1))
    run.lap("total_ms", run.started)
    return Answer(run.question, checker.text, citations, False, draft.answerer, run.standalone,
                  unsupported=tuple(r.text for r in removed), removed=removed, notices=_once(run.notices),
                  timings=run.timings, read_as=run.read_as or run.standalone, sentences=run.sentences)


def _once(notices: list[str]) -> tuple[str, ...]:
    """The notices in order, each once: two stages that hit the same problem tell it once."""
    return tuple(dict.fromkeys(notices))


def _removed(check: Check) -> RemovedClaim:
    if check.conflict is None:
        return RemovedClaim(check.text, check.verdict, check.reason)
    span = check.conflict
    return RemovedClaim(check.text, check.verdict, check.reason, span.passage + 1, (span.start, span.end))


def _abstain(run: Run, answerer: str, reason: str, removed: Sequence[RemovedClaim] = ()) -> Answer:
    run.lap("total_ms", run.started)
    return Answer(run.question, run.abstain_text, (), True, answerer, run.standalone, abstain_reason=reason,
                  near_misses=run.hits[:3], unsupported=tuple(r.text for r in removed), removed=tuple(removed),
                  notices=_once(run.notices), timings=run.timings, read_as=run.read_as or run.standalone,
                  sentences=run.sentences)
