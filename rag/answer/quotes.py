"""Verbatim quotes that an LLM gives with its citations, `[n: "quote"]`, checked exactly against passage n.

The quote is compared after normalising what a model may change without changing the words: Unicode forms,
case, whitespace, curly quotes and dashes; "..." may stand for words left out. A sentence whose quotes are
all in their passages, and which says no more than they do (its content words, quantities and names are
the quotes', with no negation or opposite word of its own), is supported on the quotes' word. A quote that
is not in its passage is a made-up source: the sentence is removed, however many of its words the passage
holds. Honest quotes that do not carry the sentence leave it to the next check.

While a draft streams, each complete quote marker is replaced by a plain [n] marker and a token (private-use
characters, which no sentence splitter cuts at and which are stripped from the model's own text), so the
sentence splitting, the markers and the renumbering stay as they are for answers without quotes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from .citations import content_words
from .facts import missing_names, missing_quantities, opposite_word

QUOTE = "quote"
_QUOTED = re.compile(r"""\[\s*(\d{1,4})\s*:\s*["“”„](.+?)["“”]\s*\]""", re.S)
# A quote marker begun and not closed, or the start of one at the end of the text so far ("[2", "[2: ").
_OPENING = re.compile(r"""\[\s*\d{1,4}\s*:\s*["“”„]|\[\s*\d{0,4}\s*:?\s*$""")
_TOKEN = re.compile("\ue000(\\d+)\ue001")
_PRIVATE = re.compile("[\ue000\ue001]")
_HELD_AT_MOST = 600  # characters of an unclosed quote held back before it is taken as plain text
_SAME = str.maketrans({"‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'", "“": '"', "”": '"', "„": '"',
                       "‟": '"', "″": '"', "–": "-", "—": "-", "‒": "-", "−": "-", "―": "-", "‐": "-", "‑": "-"})
_GAP = re.compile(r"\s*(?:\.\.\.|…)\s*")
_NEGATION = re.compile(r"\b(?:not|no|never|none|nor|cannot|without)\b|n't\b", re.I)


@dataclass(frozen=True)
class Quote:
    passage: int  # as written: 1-based
    text: str


class QuoteMarkers:
    """The quotes of one draft, taken out of its text as it arrives (`protect`), found again per sentence."""

    def __init__(self) -> None:
        self.found: list[Quote] = []
        self._held = ""

    def protect(self, piece: str, final: bool = False) -> str:
        """The text so far with complete quote markers as `[n]` and a token; an unclosed one is held back
        until it closes (or the draft ends, or it grows past any quote's length: then it is plain text)."""
        text = self._held + _PRIVATE.sub("", piece)
        out, last = [], 0
        for match in _QUOTED.finditer(text):
            out.append(text[last:match.start()])
            out.append(f"[{match.group(1)}]\ue000{len(self.found)}\ue001")
            self.found.append(Quote(int(match.group(1)), match.group(2)))
            last = match.end()
        rest = text[last:]
        opening = _OPENING.search(rest)
        if opening is None or final or len(rest) - opening.start() > _HELD_AT_MOST:
            self._held = ""
            return "".join(out) + rest
        self._held = rest[opening.start():]
        return "".join(out) + rest[:opening.start()]

    def take(self, sentence: str) -> tuple[str, list[Quote]]:
        """The sentence without its tokens, and the quotes they stood for."""
        quotes = [self.found[int(n)] for n in _TOKEN.findall(sentence) if int(n) < len(self.found)]
        return _TOKEN.sub("", sentence), quotes


def unquoted(text: str) -> tuple[str, list[Quote]]:
    """A whole answer's text with its quote markers as plain markers, and its quotes (for `rag verify`)."""
    markers = QuoteMarkers()
    return markers.protect(text, final=True), markers.found


@dataclass(frozen=True)
class QuoteVerdict:
    """What the quotes say of a sentence: `made_up` names a quote not in its passage; `spans` are the quotes'
    (passage, start, end), 0-based; `carries` says whether they carry the whole sentence."""

    spans: tuple[tuple[int, int, int], ...]
    carries: bool
    made_up: Quote | None = None


def judge_quotes(claim: str, quotes: Sequence[Quote], passages: Sequence[str]) -> QuoteVerdict | None:
    """None for a sentence without quotes; else where its quotes are, or the first one that is made up."""
    if not quotes:
        return None
    spans: list[tuple[int, int, int]] = []
    for quote in quotes:
        found = find_verbatim(quote.text, passages[quote.passage - 1]) if 1 <= quote.passage <= len(passages) \
            else None
        if found is None:
            return QuoteVerdict((), False, quote)
        spans.append((quote.passage - 1, *found))
    quoted = " ".join(passages[p][start:end] for p, start, end in spans)
    return QuoteVerdict(tuple(dict.fromkeys(spans)), _carries(claim, quoted))


def _carries(claim: str, quoted: str) -> bool:
    if not content_words(claim) <= content_words(quoted):  # a word of its own is for the next check to judge
        return False
    missing, conflicting = missing_quantities(claim, quoted)
    return not (missing or conflicting or missing_names(claim, quoted) or opposite_word(claim, quoted)
                or len(_NEGATION.findall(claim)) != len(_NEGATION.findall(quoted)))


def find_verbatim(quote: str, passage: str) -> tuple[int, int] | None:
    """The characters of `passage` that `quote` copies (normalised as the module says), or None. Parts
    joined by "..." must come in order; the span runs from the first to the last."""
    parts = [_normal(part)[0] for part in _GAP.split(quote.strip().strip("\"'“”‘’").strip(" .,;:!?"))]
    parts = [part for part in parts if part]
    if not parts:
        return None
    text, starts, ends = _normal(passage)
    start, at = -1, 0
    for part in parts:
        found = text.find(part, at)
        if found < 0:
            return None
        start = found if start < 0 else start
        at = found + len(part)
    return starts[start], ends[at - 1]


def _normal(text: str) -> tuple[str, list[int], list[int]]:
    """Text as compared, and for each of its characters where the original characters it came from start and
    end. A letter is normalised with the combining marks after it ("e" + U+0301 is "é"), and case-folded."""
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    index = 0
    while index < len(text):
        end = index + 1
        while end < len(text) and unicodedata.combining(text[end]):
            end += 1
        for piece in unicodedata.normalize("NFKC", text[index:end]).translate(_SAME).casefold():
            if unicodedata.combining(piece):  # what case folding split off ("İ" folds to "i" and a dot)
                continue
            if piece.isspace():
                if not out or out[-1] == " ":
                    continue
                piece = " "
            out.append(piece)
            starts.append(index)
            ends.append(end)
        index = end
    while out and out[-1] == " ":
        out.pop()
        starts.pop()
        ends.pop()
    return "".join(out), starts, ends
