"""Plain-text helpers shared by ingest, retrieval and answering: sentences, normalizing, stopwords."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

_MIN_SENTENCE_WORDS = 4
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")
# Not a sentence's end: the stop after these (case as written; "no." and "st." end sentences too often, "St."
# opens a saint's or a city's name far more often than "Main St." ends one).
_ABBREVIATION = re.compile(
    r"(?:\b(?:et al|[Ff]igs?|[Ee]qs?|[Rr]efs?|vs|approx|cf|resp|ca|Dr|Mr|Mrs|Ms|Prof|Jr|Sr|No|Nos|Vol|pp|Suppl"
    r"|St|Mt|Ft|Gen|Gov|Sen|Rep|Lt|Col|Capt|Sgt|Rev|Jan|Feb|Aug|Sept?|Oct|Nov|Dec)"
    r"|(?<![A-Za-z.])(?:[A-Za-z]\.){1,3}[A-Za-z]"  # "U.S."
    r"|\b[A-Z][a-z]+\s[A-HJKM-UWYZ])\.$")  # "Lyndon B. Johnson"; not "the class P.", "Super Bowl L.", "War I."
_ABBREVIATION_CHARS = 24
_TYPOGRAPHY = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "\u00a0": " "})

STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has
have having he her here hers him his how i if in into is it its itself just me more most my no nor
not now of off on once only or other our ours out over own same she should so some such than that
the their them then there these they this those through to too under until up very was we were what
when where which while who whom why will with would you your yours
""".split())


def normalize(text: str) -> str:
    """What counts as 'the same text': Unicode NFKC, plain quotes and dashes, folded spaces."""
    text = unicodedata.normalize("NFKC", text).translate(_TYPOGRAPHY)
    return " ".join(text.split())


def _sentence_bounds(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each sentence with the space around it. A sentence ends at a full stop before a capital
    or a digit, unless the stop is an abbreviation's ("et al. (2019)", "Fig. 2", "60 vs. 40", "the U.S.
    Army"): papers are full of them."""
    start = 0
    for match in _SENTENCE_END.finditer(text):
        if not _ABBREVIATION.search(text, max(0, match.start() - _ABBREVIATION_CHARS), match.start()):
            yield start, match.start()
            start = match.end()
    yield start, len(text)


def split_sentences(text: str) -> list[str]:
    return [text[a:b].strip() for a, b in _sentence_bounds(text) if text[a:b].strip()]


def sentence_units(text: str) -> list[str]:
    """Sentences, with a very short one ("The difference?") joined to the sentence that completes it."""
    units: list[str] = []
    carry = ""
    for sentence in split_sentences(text):
        sentence = f"{carry} {sentence}".strip()
        carry = sentence if len(sentence.split()) < _MIN_SENTENCE_WORDS else ""
        if not carry:
            units.append(sentence)
    if carry:
        units.append(carry)
    return units


def sentence_spans(text: str, lines: bool = False) -> list[tuple[int, int]]:
    """(start, end) character offsets of the sentence units of `text` (as sentence_units joins them). With
    `lines`, a line break ends a unit too (each item of a written answer's list is a claim of its own), and a
    fenced code block is one unit."""
    spans: list[tuple[int, int]] = []
    if lines:
        for start, end, fenced in _lines(text):
            spans += [(start, end)] if fenced else [(start + a, start + b) for a, b in sentence_spans(text[start:end])]
        return spans
    carry: int | None = None
    for begin, end in _sentence_bounds(text):
        piece = text[begin:end]
        if not piece.strip():
            continue
        begin, end = begin + len(piece) - len(piece.lstrip()), begin + len(piece.rstrip())
        begin = begin if carry is None else carry
        if len(text[begin:end].split()) < _MIN_SENTENCE_WORDS:
            carry = begin
            continue
        carry = None
        spans.append((begin, end))
    if carry is not None:
        spans.append((carry, len(text.rstrip())))
    return spans


def _lines(text: str) -> Iterator[tuple[int, int, bool]]:
    """(start, end, fenced) of each line of `text`, a fenced code block (``` to ```) as one."""
    start, fence = 0, None
    for line in text.split("\n"):
        end = start + len(line)
        if line.lstrip().startswith("```"):
            if fence is not None:
                yield fence, end, True
            fence = start if fence is None else None
        elif fence is None:
            yield start, end, False
        start = end + 1
    if fence is not None:
        yield fence, len(text), True


# DEL, the C1 controls, and the bidi embeddings, overrides and isolates (which reorder what a reader sees).
_OTHER_CONTROLS = r"\x7f-\x9f\u202a-\u202e\u2066-\u2069"
_UNPRINTABLE = re.compile(rf"[\x00-\x1f{_OTHER_CONTROLS}]")
_UNPRINTABLE_BUT_NEWLINE = re.compile(rf"[\x00-\x09\x0b-\x1f{_OTHER_CONTROLS}]")


def printable(text: str, newlines: bool = False) -> str:
    """Text safe to print on a terminal: each control character becomes a visible escape (\\x1b, \\n).

    Corpus text, file names and model output reach a human's terminal; raw, an escape sequence could
    retitle or clear it or write the clipboard (OSC 52), and a newline in a name could forge a line of
    output. `newlines` keeps line breaks, for text the CLI itself lays out on several lines."""
    pattern = _UNPRINTABLE_BUT_NEWLINE if newlines else _UNPRINTABLE
    return pattern.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


def shortened(text: str, limit: int) -> str:
    """The text, cut to at most `limit` characters with an ellipsis when it is longer."""
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"
