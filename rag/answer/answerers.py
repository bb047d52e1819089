"""Who writes the draft answer: the extractive answerer (offline), an LLM, or the LLM with the
extractive answerer to fall back on. The pipeline talks to the `Answerer` interface only."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from .. import logs
from ..config import Settings
from ..errors import RagError
from ..retrieval import QueryEncoder
from ..types import LLM_DECLINED, NO_GROUNDED_PASSAGE, Hit, Turn
from .conversation import FollowUp, usable_rewrite
from .extractive import extractive_draft
from .grounding import NameMatcher, compound_names, context_of, question_names, sparable
from .llm import LLMSkipped
from .prompts import NO_ANSWER
from .reader import ReadingModel


@dataclass(frozen=True)
class Draft:
    """An answerer's draft: sentences with [n] markers, or the reason it declined (an abstain reason)."""

    text: str
    answerer: str
    declined: str | None = None


class Restart(str):
    """Yielded by a draft between a failed answerer's text and its replacement's: the failed draft's unfinished
    sentence is dropped, never joined to the first sentence of the next."""


RESTART = Restart()


class Answerer(Protocol):
    name: str

    def rewrite(self, history: Sequence[Turn], question: str, leaning: FollowUp, notices: list[str]) -> str:
        """The follow-up `question` as a standalone question (`leaning` says what it refers to)."""

    def draft(self, asked: str, standalone: str, hits: Sequence[Hit],
              notices: list[str]) -> Generator[str, None, Draft]:
        """Yield the draft's text as it is written; return the Draft."""


class ExtractiveAnswerer:
    """Quotes the retrieved sentences that best answer the question, only from passages that speak of
    everything the question names (the grounding gate: a near miss about Berlin does not answer London)."""

    name = "extractive"

    def __init__(self, encoder: QueryEncoder, matcher: NameMatcher, max_sentences: int,
                 reader: ReadingModel | None = None, threshold: float | None = None) -> None:
        self.encoder, self.matcher, self.max_sentences = encoder, matcher, max_sentences
        self.reader, self.threshold = reader, threshold

    def rewrite(self, history: Sequence[Turn], question: str, leaning: FollowUp, notices: list[str]) -> str:
        return leaning.rewrite(question)

    def draft(self, asked: str, standalone: str, hits: Sequence[Hit],
              notices: list[str]) -> Generator[str, None, Draft]:
        contexts = [context_of(h.passage) for h in hits]
        names = list(dict.fromkeys(question_names(asked) + compound_names(asked, contexts)))
        missing = [self.matcher.missing(names, context) for context in contexts] if names else []
        spare = sparable(asked)
        quotable = [not m or (len(m) == 1 and m[0] in spare) for m in missing] if missing else None
        if quotable is not None and not any(quotable):
            nowhere = [n for n in names if all(n in m for m in missing)]
            notices.append("none of the passages found mentions " + ", ".join(nowhere) if nowhere else
                           "no passage found mentions " + " and ".join(names) + " together")
            return Draft("", self.name, NO_GROUNDED_PASSAGE)
        text, declined = extractive_draft([asked, standalone], hits, self.encoder, self.max_sentences, quotable,
                                          self.reader, self.threshold)
        if declined:
            notices.append("no retrieved sentence answers this")
        yield text  # whole: it is quoted, not written
        return Draft(text, self.name, declined)


class LLMAnswerer:
    """A LangChain chain over any OpenAI-compatible endpoint (rag.answer.llm), streamed as it writes."""

    name = "llm"

    def __init__(self, settings: Settings) -> None:
        from .llm import chat_model

        chat_model(settings)  # fails now, with what to set, when the endpoint is not configured
        self.settings = settings

    def rewrite(self, history: Sequence[Turn], question: str, leaning: FollowUp, notices: list[str]) -> str:
        from .llm import condense

        rewritten = condense(self.settings, history, question)
        if usable_rewrite(rewritten, leaning.subject):
            return rewritten
        # How the follow-up was read is the answer's read_as; why the rule read it is for the log.
        logs.event("follow_up_rule", {"rewrite": rewritten, "subject": leaning.subject},
                   reason="the LLM's rewrite was not a question about the subject")
        return leaning.rewrite(question)

    def draft(self, asked: str, standalone: str, hits: Sequence[Hit],
              notices: list[str]) -> Generator[str, None, Draft]:
        from .llm import stream_answer

        pieces: list[str] = []
        for piece in stream_answer(self.settings, standalone, clipped(hits, self.settings.llm_max_passage_chars)):
            pieces.append(piece)
            yield piece
        text = "".join(pieces)
        return Draft(text, self.name, LLM_DECLINED if NO_ANSWER.lower() in text.lower() else None)


def clipped(hits: Sequence[Hit], limit: int) -> list[Hit]:
    """The hits with each passage cut to `limit` characters: what one passage may put in a prompt.

    Verification still reads the whole passage; cutting only bounds the prompt's size and cost."""
    return [h if len(h.passage.text) <= limit else replace(h, passage=replace(h.passage, text=h.passage.text[:limit]))
            for h in hits]


class Fallback:
    """The primary answerer, and the secondary one when the primary fails (RAG_LLM_FALLBACK). One per turn.

    Notices, so that a down LLM is told once, not on every turn nor several times in one: the first
    failure of a turn is told and the primary is not tried again in that turn (after a failed rewrite the
    draft is the secondary's at once); a skip (the endpoint's breaker is open, so no call was made) is told
    only on a conversation's first turn, because the turn that opened the breaker already said for how long
    it is skipped. The answerer's label says it on every turn: "extractive (LLM skipped)".
    """

    def __init__(self, primary: Answerer, secondary: Answerer, first_turn: bool = True) -> None:
        self.primary, self.secondary, self.first_turn = primary, secondary, first_turn
        self.name = primary.name
        self.failure = ""  # "failed" or "skipped" once the primary failed in this turn

    def rewrite(self, history: Sequence[Turn], question: str, leaning: FollowUp, notices: list[str]) -> str:
        if not self.failure:
            try:
                return self.primary.rewrite(history, question, leaning, notices)
            except RagError as exc:
                self._failed(exc, notices)
                logs.event("follow_up_rule", reason=f"the {self._primary} {self.failure}")
        return self.secondary.rewrite(history, question, leaning, notices)

    def draft(self, asked: str, standalone: str, hits: Sequence[Hit],
              notices: list[str]) -> Generator[str, None, Draft]:
        if not self.failure:
            try:
                return (yield from self.primary.draft(asked, standalone, hits, notices))
            except RagError as exc:
                self._failed(exc, notices)
                yield RESTART
        draft = yield from self.secondary.draft(asked, standalone, hits, notices)
        return Draft(draft.text, f"{draft.answerer} ({self._primary} {self.failure})", draft.declined)

    def _failed(self, exc: RagError, notices: list[str]) -> None:
        skipped = isinstance(exc, LLMSkipped)
        self.failure = "skipped" if skipped else "failed"
        if skipped and not self.first_turn:
            return
        how = f"this answer is {self.secondary.name}"
        notices.append(f"{how}: {exc}" if skipped else f"the {self._primary} failed, so {how}: {exc}")

    @property
    def _primary(self) -> str:
        return self.primary.name.upper() if self.primary.name == "llm" else self.primary.name
