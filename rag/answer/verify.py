"""Claim verification: each answer sentence is checked against the passages it cites (and, failing
those, the other retrieved passages), down to the sentence(s) that support it.

A cross-encoder reads claim and evidence together (rag.answer.crossencoder); the claim's quantities and
names must also be stated by that evidence (rag.answer.facts). Each claim ends supported (with its
evidence spans and the passages it cites), unsupported ("no source says this") or contradicted (with
the conflicting span).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..config import Settings
from ..text import STOPWORDS, sentence_spans, shortened
from ..types import SentenceCheck, Verification
from .citations import answer_units, content_words, strip_links, strip_markers, support, without_links
from .claims import checkable, introduces, list_item
from .crossencoder import CONTRADICTED, SUPPORTED
from .facts import flipped_negation, missing_names, missing_quantities, opposite_word, statement_sentence
from .judge import JUDGE, Claim, Judge, Ruling
from .quotes import QUOTE, QuoteMarkers, judge_quotes
from .reader import reading_model

SUPPORTED_VERDICT, UNSUPPORTED_VERDICT, CONTRADICTED_VERDICT = "supported", "unsupported", "contradicted"
_SHOWN_QUOTE = 80  # characters of a quote a removal's reason shows
OVERLAP, READER = "overlap", "reader"
ABOUT_THE_SOURCES = "says only what the sources hold or lack"
_CANDIDATES = 3  # evidence windows scored per round: the best two sentences and the two together
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Span:
    """Characters start..end of retrieved passage `passage` (0-based)."""

    passage: int
    start: int
    end: int

    def to_dict(self, marker_base: int = 1) -> dict:
        return {"passage": self.passage + marker_base, "start": self.start, "end": self.end}


@dataclass(frozen=True)
class Check:
    """One claim's verdict. `citations` are the 0-based passages that support it."""

    text: str
    verdict: str
    score: float  # P(supported) of the best evidence
    citations: tuple[int, ...] = ()
    evidence: tuple[Span, ...] = ()
    conflict: Span | None = None
    reason: str = ""
    check: str = ""  # which check decided: quote, model, overlap

    @property
    def supported(self) -> bool:
        return self.verdict == SUPPORTED_VERDICT


@dataclass
class _Sentence:
    passage: int
    start: int
    end: int
    words: set[str] = field(default_factory=set)


class ClaimVerifier(Protocol):
    name: str  # the check it is, as each verdict records it

    def check(self, claim: str, passages: Sequence[str], cited: Sequence[int] = (), question: str = "") -> Check:
        """Verify `claim` against the cited passages (0-based), then against all of them; `question`, the one
        the answer was written for, is read by the verifiers that use it (a detector; the model's rule, whose
        word coverage counts the question's words as held)."""


def load_verifier(settings: Settings) -> ClaimVerifier:
    """RAG_VERIFIER_MODEL: `reader` (the reading model, unless RAG_READER_MODEL is `overlap`), `overlap`
    (shared words), a token-classification hallucination detector (rag.answer.detector), else another
    cross-encoder (rag.answer.crossencoder). RAG_VERIFIER=overlap forces shared words."""
    if settings.verifier == OVERLAP:
        return OverlapVerifier()
    if settings.verifier_model == READER:
        model = reading_model(settings)
        return OverlapVerifier() if model is None else Verifier(model, settings.verifier_threshold)
    if settings.verifier_model == OVERLAP:
        return OverlapVerifier()
    from .detector import DetectorVerifier, is_detector

    if is_detector(settings.verifier_model):
        return DetectorVerifier(settings.verifier_model)
    from .crossencoder import load_cross_encoder

    encoder = load_cross_encoder(settings.verifier_model, Path(settings.index_dir) / "verifier")
    return Verifier(encoder, settings.verifier_threshold)


class OverlapVerifier:
    """A claim is supported by a passage that holds at least half of its content words and states its
    quantities; a passage stating other quantities of the same unit, the opposite word in the supporting
    sentence (lowest for highest, worse for better) or the claim's statement with "not" added or dropped
    contradicts it. Blind to paraphrase: the cross-encoder `Verifier` reads claim and evidence together."""

    name = OVERLAP

    def __init__(self, min_support: float = 0.5) -> None:
        self.min_support = min_support

    def check(self, claim: str, passages: Sequence[str], cited: Sequence[int] = (), question: str = "") -> Check:
        claim = checkable(claim)  # without its lead-in or list number; "" for a list's header or "In short:"
        if not content_words(claim):
            return Check(claim, SUPPORTED_VERDICT, 1.0, tuple(cited))
        shares = [support(claim, passage) for passage in passages]
        closest = sorted(range(len(passages)), key=lambda i: -shares[i])[:1]
        found = [i for i in cited if shares[i] >= self.min_support] or [
            i for i in closest if shares[i] >= self.min_support]
        conflict = None
        for i in dict.fromkeys([*cited, *closest]):  # the passages the claim is about
            missing, conflicting = missing_quantities(claim, passages[i])
            if conflicting and conflict is None:
                conflict = Span(i, conflicting[0].start, conflicting[0].end)
            if missing:
                found = [j for j in found if j != i]
        reversal = _reversal(claim, passages, _sentences(passages, {*cited, *closest})) if conflict is None else None
        if reversal is not None:
            return reversal
        evidence = tuple(_best_span(claim, passages, i) for i in found)
        for span in evidence:  # "lowest-ROI" where the sentence says "highest-ROI"
            opposite = opposite_word(claim, passages[span.passage][span.start:span.end])
            if opposite and conflict is None:
                conflict = Span(span.passage, span.start + opposite.start(), span.start + opposite.end())
        if found and conflict is None:
            return Check(claim, SUPPORTED_VERDICT, max(shares[i] for i in found), tuple(found), evidence)
        if conflict is not None:
            quoted = passages[conflict.passage][conflict.start:conflict.end]
            return Check(claim, CONTRADICTED_VERDICT, 0.0, conflict=conflict, reason=f"contradicts: '{quoted}'")
        return Check(claim, UNSUPPORTED_VERDICT, max(shares, default=0.0), reason="no source says this")


def _best_span(claim: str, passages: Sequence[str], passage: int) -> Span:
    text = passages[passage]
    sentences = [_Sentence(passage, start, end, _words(text[start:end])) for start, end in sentence_spans(text)]
    best = _candidates(claim, sentences)[0][0] if sentences else _Sentence(passage, 0, len(text))
    return Span(passage, best.start, best.end)


class ScoringModel(Protocol):
    """(supported, unsupported, contradicted) per (claim, evidence) pair, and the model's own threshold."""

    threshold: float

    def scores(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray: ...


class Verifier:
    """Checks claims against passages with a cross-encoder and the claims' facts."""

    name = "model"

    def __init__(self, model: ScoringModel, threshold: float | None = None) -> None:
        self.model = model
        self.threshold = model.threshold if threshold is None else threshold

    def check(self, claim: str, passages: Sequence[str], cited: Sequence[int] = (), question: str = "") -> Check:
        """Verify `claim` against the cited passages (0-based), then against all of them. A lead-in ("Based
        on the passages, ...") is not judged; a sentence that only says what the sources lack is kept uncited."""
        claim = checkable(claim)
        if not claim:
            return Check(claim, SUPPORTED_VERDICT, 1.0, reason=ABOUT_THE_SOURCES)
        sentences = _sentences(passages)
        first = [s for s in sentences if s.passage in cited] if cited else sentences
        rest = [s for s in sentences if s.passage not in cited] if cited else []
        best: Check | None = None
        for group in (first, rest):
            found = self._check_in(claim, passages, group, question)
            if found is not None and (best is None or _rank(found) > _rank(best)):
                best = found
            if best is not None and best.supported:
                break
        return best or Check(claim, UNSUPPORTED_VERDICT, 0.0, reason="no source says this")

    def _check_in(self, claim: str, passages: Sequence[str], sentences: list[_Sentence],
                  question: str = "") -> Check | None:
        windows = _candidates(claim, sentences)
        if not windows:
            return None
        reversal = _reversal(claim, passages, sentences)
        if reversal is not None:  # the claim's own statement the other way round: no window can support it
            return reversal
        # The question's words are the asker's, not the answer's invention ("You may not be toned despite exercising
        # every day because ..."): they count as held.
        coverage = max(support(claim, f"{passages[i]} {question}") for i in {s.passage for s in sentences})
        closest = self._scored(claim, passages, windows[:1], coverage)
        if closest[0].supported:  # the closest sentence alone states it: no other window can change the verdict
            return closest[0]
        return max(closest + self._scored(claim, passages, windows[1:], coverage), key=_rank)

    def _scored(self, claim: str, passages: Sequence[str], windows: list[list[_Sentence]],
                coverage: float) -> list[Check]:
        if not windows:
            return []
        texts = [window_text(passages, window) for window in windows]
        probabilities = self.model.scores([(claim, text) for text in texts])
        scores = probabilities[:, SUPPORTED]
        combine = getattr(self.model, "combine", None)
        if combine is not None:  # the model's calibrated rule: its P with the claim's words the passages hold
            scores = combine(scores, coverage)
        return [self._verdict(claim, window, text, p, float(score), passages)
                for window, text, p, score in zip(windows, texts, probabilities, scores)]

    def _verdict(self, claim: str, window: list[_Sentence], text: str, p, score: float,
                 passages: Sequence[str]) -> Check:
        spans = tuple(Span(s.passage, s.start, s.end) for s in window)
        cited = tuple(dict.fromkeys(s.passage for s in window))
        sources = " ".join(passages[i] for i in cited)
        missing, conflicting = missing_quantities(claim, text)
        if missing:  # stated elsewhere in the same passage: the window's sentences were picked by words alone
            missing = missing_quantities(claim, sources)[0]
        names = missing_names(claim, sources)
        opposite = opposite_word(claim, text)  # "lowest-ROI" where the evidence says "highest-ROI"
        if score >= self.threshold and not missing and not names and not opposite:
            return Check(claim, SUPPORTED_VERDICT, score, cited, spans)
        if opposite and not conflicting:
            conflict = _conflict_span(window, text, [Span(window[0].passage, opposite.start(), opposite.end())])
            quoted = passages[conflict.passage][conflict.start:conflict.end]
            return Check(claim, CONTRADICTED_VERDICT, min(score, 0.5), conflict=conflict,
                         reason=f"contradicts: '{quoted}'")
        if conflicting or float(p[CONTRADICTED]) > max(score, 1 - score - float(p[CONTRADICTED])):
            conflict = _conflict_span(window, text, conflicting) if conflicting else spans[0]
            quoted = passages[conflict.passage][conflict.start:conflict.end]
            return Check(claim, CONTRADICTED_VERDICT, min(score, 0.5), conflict=conflict,
                         reason=f"contradicts: '{quoted}'")
        return Check(claim, UNSUPPORTED_VERDICT, score, reason="no source says this" if not names else
                     "no source names " + ", ".join(names))


def _reversal(claim: str, passages: Sequence[str], sentences: list[_Sentence]) -> Check | None:
    """A contradiction when the sentence that makes the claim's statement says it the other way round: with "not"
    added or dropped, or with the opposite word ("eliminated" for "caused"). The conflict is that sentence's "not"
    or word (the sentence, where the claim has the negation)."""
    texts = [passages[s.passage][s.start:s.end] for s in sentences]
    found = statement_sentence(claim, texts)
    if found is None:
        return None
    sentence, text = sentences[found], texts[found]
    flipped, negation = flipped_negation(claim, text)
    where = negation if flipped else opposite_word(claim, text)
    if not flipped and where is None:
        return None
    start, end = (sentence.start + where.start(), sentence.start + where.end()) if where else (
        sentence.start, sentence.end)
    quoted = shortened(passages[sentence.passage][start:end], _SHOWN_QUOTE)
    return Check(claim, CONTRADICTED_VERDICT, 0.0, conflict=Span(sentence.passage, start, end),
                 reason=f"contradicts: '{quoted}'")


def _rank(check: Check) -> tuple[int, float]:
    order = {SUPPORTED_VERDICT: 2, CONTRADICTED_VERDICT: 1, UNSUPPORTED_VERDICT: 0}
    return order[check.verdict], check.score


def _sentences(passages: Sequence[str], only: set[int] | None = None) -> list[_Sentence]:
    """The passages' sentences (of those in `only`, if given)."""
    return [_Sentence(i, start, end, _words(text[start:end]))
            for i, text in enumerate(passages) if only is None or i in only for start, end in sentence_spans(text)]


def _words(text: str) -> set[str]:
    return {w[:6] for w in _WORD.findall(text.lower()) if w not in STOPWORDS}


def _candidates(claim: str, sentences: list[_Sentence]) -> list[list[_Sentence]]:
    """The two sentences sharing the most (rarest) words with the claim, and the two together (in
    passage order), for a claim that needs both."""
    if not sentences:
        return []
    wanted = _words(claim)
    frequency: dict[str, int] = {}
    for sentence in sentences:
        for word in sentence.words:
            frequency[word] = frequency.get(word, 0) + 1
    weight = {w: math.log(1 + len(sentences) / (1 + frequency.get(w, 0))) for w in wanted}
    # Summed in word order: a set's order changes with the hash seed, and float sums with their order (near-ties).
    ranked = sorted(range(len(sentences)), key=lambda i: -sum(weight[w] for w in sorted(wanted & sentences[i].words)))
    top = [sentences[i] for i in ranked[:2]]
    windows = [[s] for s in top]
    if len(top) == 2:
        pair = sorted(top, key=lambda s: (s.passage, s.start))
        windows.append(pair)
    return windows[:_CANDIDATES]


def window_text(passages: Sequence[str], window: list[_Sentence]) -> str:
    """What the model reads as a window's evidence: its sentences, each from its own passage."""
    return " ".join(passages[s.passage][s.start:s.end] for s in window)


def _conflict_span(window: list[_Sentence], text: str, conflicting) -> Span:
    """The conflicting quantity's characters in its passage (the window's text joins its sentences)."""
    offset = 0
    quantity = conflicting[0]
    for sentence in window:
        length = sentence.end - sentence.start
        if quantity.start < offset + length:
            start = sentence.start + quantity.start - offset
            return Span(sentence.passage, start, start + quantity.end - quantity.start)
        offset += length + 1
    return Span(window[0].passage, window[0].start, window[0].end)


class AnswerChecker:
    """Verifies a draft sentence by sentence as it arrives: `feed` and `finish` return only sentences
    that passed, with markers renumbered 1, 2, ... in order of first use and pointing at the passages
    that support them. Removed claims are kept, with their reasons, in `removed`."""

    def __init__(self, verifier: ClaimVerifier, passages: Sequence[str], judge: Judge | None = None,
                 question: str = "") -> None:
        self.verifier = verifier
        self.question = question
        self.passages = list(passages)
        self.judge = judge
        # Sentences waiting for the judge, in order: once one waits, the ones after it wait too (to be shown
        # in order), though only those the judge wants are sent to it.
        self._waiting: list[tuple[str, Check, tuple[int, ...], str]] = []
        self.cited: list[int] = []  # 0-based passages in marker order: marker n is cited[n-1]
        self.sentences: list[str] = []  # what passed, as shown
        self._gaps: list[str] = []  # what stands before each of them: a space, or the draft's line break
        self.evidence: dict[int, list[tuple[int, int]]] = {}  # per passage, the spans that support the answer
        self.removed: list[Check] = []
        self.links_removed = 0
        self.checked: list[SentenceCheck] = []  # every sentence judged, kept or removed, in order
        self.quotes = QuoteMarkers()
        self._pending = ""
        self._layout = _Layout()

    def feed(self, piece: str) -> list[str]:
        self._pending += self.quotes.protect(piece)
        units = answer_units(self._pending)
        # The last sentence may still grow; one that opens with "[" is a marker still arriving.
        if len(units) < 2 or units[-1][0].lstrip().startswith("["):
            return []
        start = self._pending.rfind(units[-1][0])  # the raw rest, with the space before it: it tells a new line
        self._pending = self._pending[len(self._pending[:start].rstrip()):] if start >= 0 else (
            units[-1][0] + self._pending[len(self._pending.rstrip()):])
        return [text for sentence, gap in units[:-1] for text in self._take(sentence, gap)]

    def drop_unfinished(self) -> None:
        """Forget the sentence still arriving (its writer failed mid-sentence): it is not shown, nor checked."""
        self._pending = ""
        self.quotes.protect("", final=True)

    def finish(self) -> list[str]:
        units, self._pending = answer_units(self._pending + self.quotes.protect("", final=True)), ""
        shown = [text for sentence, gap in units for text in self._take(sentence, gap)]
        finals = _after_judge([(check, cited) for _, check, cited, _ in self._waiting], self.judge)
        for (claim, _, _, gap), check in zip(self._waiting, finals):
            shown += self._settle(claim, check, gap)
        self._waiting = []
        return shown + [text for (claim, check), gap in self._layout.finish() for text in self._show(claim, check, gap)]

    def spaced(self, shown: Sequence[str]) -> list[str]:
        """`shown` (what feed or finish just gave) as pieces of the answer's text: each with the space or the
        draft's line break before it, the answer's first sentence with nothing."""
        first = len(self.sentences) - len(shown)
        return [sentence if i == 0 else self._gaps[i] + sentence for i, sentence in enumerate(shown, first)]

    def _take(self, sentence: str, gap: str = " ") -> list[str]:
        """The sentence as shown once it passed ([] when removed, or while it waits for the judge)."""
        claim, check, cited = _checked(sentence, self.passages, self.verifier, self.quotes, self.question)
        if check is None:
            return []
        if self._waiting or (self.judge is not None and self.judge.wants(check.check, check.verdict, check.score)):
            self._waiting.append((claim, check, cited, gap))
            return []
        return self._settle(claim, check, gap)

    def _settle(self, claim: str, check: Check, gap: str = " ") -> list[str]:
        if not check.supported:
            self.removed.append(check)
            self.checked.append(_record(check.text, check))
        return [text for (shown, passed), before in self._layout.shown((claim, check), claim, check.supported, gap)
                for text in self._show(shown, passed, before)]

    def _show(self, claim: str, check: Check, gap: str) -> list[str]:
        for span in check.evidence:
            spans = self.evidence.setdefault(span.passage, [])
            if (span.start, span.end) not in spans:
                spans.append((span.start, span.end))
        for passage in check.citations:
            if passage not in self.cited:
                self.cited.append(passage)
        text, removed = strip_links(claim, [self.passages[p] for p in check.citations])
        self.links_removed += removed
        self.sentences.append(_marked(text, sorted(self.cited.index(p) + 1 for p in check.citations)))
        self._gaps.append(gap)
        self.checked.append(_record(self.sentences[-1], check, self.cited.index))
        return [self.sentences[-1]]

    @property
    def text(self) -> str:
        return "".join(self.spaced(self.sentences))


def verify_answer(answer: str, passages: Sequence[str], verifier: ClaimVerifier,
                  judge: Judge | None = None, question: str = "") -> Verification:
    """Check every sentence of `answer` (markers [n] name passages, 1-based; an unmarked sentence may be
    supported by any passage), asking the judge, once, about those the local checks are not sure of. The
    supported answer keeps the sentences that passed, each marked with the passages that support it."""
    quotes = QuoteMarkers()
    judged: list[tuple[str, str, Check, tuple[int, ...], str]] = []  # as shown, the claim, its check, passages, gap
    for sentence, gap in answer_units(quotes.protect(answer, final=True)):
        claim, check, cited = _checked(sentence, passages, verifier, quotes, question)
        if check is not None:
            judged.append((quotes.take(sentence)[0], claim, check, cited, gap))
    finals = _after_judge([(check, cited) for _, _, check, cited, _ in judged], judge)
    layout, shown = _Layout(), []
    for i, ((_, claim, _, _, gap), check) in enumerate(zip(judged, finals)):
        shown += layout.shown(i, claim, check.supported, gap)
    shown += layout.finish()
    dropped = {i for i, check in enumerate(finals) if check.supported} - {i for i, _ in shown}
    checked = tuple(_record(judged[i][0], check) for i, check in enumerate(finals) if i not in dropped)
    kept = [gap + _marked(judged[i][1], tuple(p + 1 for p in finals[i].citations)) for i, gap in shown]
    notices = (judge.failure,) if judge is not None and judge.failure else ()
    return Verification(checked, "".join(kept).lstrip(), notices)


def _wider(gap: str, other: str) -> str:
    """Of two breaks before a sentence (" ", "\n", "\n\n"), the one that separates more: a sentence after a removed
    one keeps the blank line that stood before the removed one."""
    return max(gap, other, key=lambda text: text.count("\n"))


class _Layout:
    """Which judged sentences an answer shows, in order, and the break before each. A list's header or a heading
    waits for what it introduces: it is shown before the next sentence that passes, and dropped when all that
    followed it was removed up to a sentence outside its list (or the answer's end)."""

    def __init__(self) -> None:
        self.held: list[tuple[Any, str]] = []  # headers waiting, with the break before each
        self.emptied = False  # a sentence under the held headers was removed
        self.carried = ""  # the widest break before the sentences removed since the last one shown

    def shown(self, item: Any, claim: str, supported: bool, gap: str) -> list[tuple[Any, str]]:
        """What to show now (items and the break before each) once `claim` (known to the caller as `item`) is
        judged."""
        if supported and introduces(claim):
            if self.emptied:  # the headers before it introduced nothing that is left
                self.held, self.emptied = [], False
            self.held.append((item, gap))
            return []
        if not supported:
            self.emptied = self.emptied or bool(self.held)
            self.carried = _wider(self.carried, gap)
            return []
        held = self._release(continues=list_item(claim))
        gap, self.carried = _wider(gap, self.carried), ""
        return [*held, (item, gap)]

    def finish(self) -> list[tuple[Any, str]]:
        """The headers still held at the answer's end, unless what followed them was removed."""
        return self._release(continues=False)

    def _release(self, continues: bool) -> list[tuple[Any, str]]:
        shown = self.held if continues or not self.emptied else []
        self.held, self.emptied = [], False
        return shown


def _after_judge(checks: Sequence[tuple[Check, tuple[int, ...]]], judge: Judge | None) -> list[Check]:
    """Each local check (with the passages its sentence cites), or the judge's ruling on it for those the judge
    wants: one request for them all, none without a judge."""
    if judge is None:
        return [check for check, _ in checks]
    asked = [i for i, (check, _) in enumerate(checks) if judge.wants(check.check, check.verdict, check.score)]
    rulings = dict(zip(asked, judge.rule([Claim(checks[i][0].text, checks[i][1]) for i in asked])))
    return [ruled(check, rulings.get(i)) for i, (check, _) in enumerate(checks)]


def ruled(check: Check, ruling: Ruling | None) -> Check:
    """The judge's verdict on a sentence, or the local one where the judge gave none that counts."""
    if ruling is None:
        return check
    span = Span(*ruling.span) if ruling.span is not None else None
    if ruling.verdict == SUPPORTED_VERDICT and span is not None:
        return Check(check.text, SUPPORTED_VERDICT, 1.0, (span.passage,), (span,), check=JUDGE)
    if ruling.verdict == CONTRADICTED_VERDICT and span is not None:
        return Check(check.text, CONTRADICTED_VERDICT, 0.0, conflict=span, check=JUDGE,
                     reason=f"contradicts: '{shortened(ruling.quote, _SHOWN_QUOTE)}' (the LLM judge)")
    return Check(check.text, UNSUPPORTED_VERDICT, 0.0, check=JUDGE, reason="no source says this (the LLM judge)")


def _checked(sentence: str, passages: Sequence[str], verifier: ClaimVerifier, quotes: QuoteMarkers,
             question: str = "") -> tuple[str, Check | None, tuple[int, ...]]:
    """The sentence without its markers, its verdict (None for a sentence with nothing to check) and the
    0-based passages it cites. Its quotes decide first when they are sure (rag.answer.quotes); then the
    verifier, trying the marked passages first. Links and images are not part of what is judged."""
    sentence, quoted = quotes.take(sentence)
    claim, wanted = strip_markers(sentence, len(passages))
    cited = tuple(n - 1 for n in wanted)
    judged = without_links(claim)
    if not judged:
        return claim, None, cited
    said = checkable(judged)
    verdict = judge_quotes(said, quoted, passages) if said else None
    if verdict is not None and verdict.made_up is not None:
        made_up = verdict.made_up
        return claim, Check(judged, UNSUPPORTED_VERDICT, 0.0, check=QUOTE, reason=f"its quote is not in passage "
                            f"{made_up.passage}: \"{shortened(made_up.text, _SHOWN_QUOTE)}\""), cited
    spans = tuple(Span(*span) for span in verdict.spans) if verdict is not None else ()
    if verdict is not None and verdict.carries:
        return claim, Check(judged, SUPPORTED_VERDICT, 1.0, tuple(dict.fromkeys(s.passage for s in spans)), spans,
                            check=QUOTE), cited
    check = verifier.check(judged, passages, list(cited), question=question)
    if check.supported and spans:  # honest quotes the sentence goes beyond: still shown in their source
        cited = tuple(dict.fromkeys([*check.citations, *(span.passage for span in spans)]))
        check = dataclasses.replace(check, citations=cited, evidence=tuple(dict.fromkeys([*check.evidence, *spans])))
    return claim, dataclasses.replace(check, check=check.check or verifier.name), cited


def _record(text: str, check: Check, number: Callable[[int], int] = lambda passage: passage) -> SentenceCheck:
    """A judged sentence as the answer reports it; `number` turns a 0-based passage into its marker less 1."""
    return SentenceCheck(text, check.verdict, check.score, tuple(number(p) + 1 for p in check.citations),
                         tuple((number(s.passage) + 1, s.start, s.end) for s in check.evidence), check.reason,
                         check.check)


def _marked(text: str, markers: Sequence[int]) -> str:
    """The sentence with its [n, m] marker before its closing punctuation (none without markers)."""
    marker = " [" + ", ".join(map(str, markers)) + "]" if markers else ""
    body, end = (text[:-1], text[-1]) if text[-1:] in ".!?" else (text, "")
    return f"{body}{marker}{end}"
