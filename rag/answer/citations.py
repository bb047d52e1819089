"""Citation markers and the text around them (pure functions): find and parse [n] markers, split a draft
into sentences that carry their markers, content words and their overlap, links a passage does not hold.

A draft answer (from the LLM or the extractive answerer) marks each sentence with [n] pointing at the
n-th retrieved passage; rag.answer.verify checks each sentence and renumbers what it keeps.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..text import STOPWORDS, sentence_spans

MARKER = re.compile(r"\[\s*\d+(?:\s*(?:,|-|–)\s*\d+)*\s*\]")
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
# A marker run that opens a sentence; each marker may carry the token a quote left (rag.answer.quotes).
_LEADING_MARKERS = re.compile(r"^(?:\s*\[\s*\d+(?:\s*(?:,|-|–)\s*\d+)*\s*\](?:\ue000\d+\ue001)?)+")
_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")


def parse_marker(marker: str, limit: int) -> list[int]:
    """Numbers in '[1]', '[1, 3]', '[1-2]' that fall in 1..limit (the rest point at no passage)."""
    numbers: list[int] = []
    for part in re.split(r"\s*,\s*", marker.strip("[] \t")):
        bounds = [int(x) for x in re.split(r"\s*[-–]\s*", part)]
        numbers.extend(range(max(bounds[0], 1), min(bounds[-1], limit) + 1))  # clamped: [1-999] costs nothing
    return list(dict.fromkeys(numbers))


def find_markers(text: str) -> list[re.Match]:
    """Markers outside code spans: "[0]" inside `code` or a fenced block is not a citation."""
    code = [m.span() for m in _CODE.finditer(text)]
    return [m for m in MARKER.finditer(text) if not any(a <= m.start() < b for a, b in code)]


def content_words(text: str) -> set[str]:
    """Lower-cased words minus stopwords, cut to 6 letters so 'optimizing' meets 'optimization'."""
    return {w[:6] for w in _WORD.findall(MARKER.sub(" ", text.lower())) if w not in STOPWORDS}


def support(sentence: str, passage: str) -> float:
    """Share of the sentence's content words that the passage contains (1.0 for a sentence with none)."""
    words = content_words(sentence)
    return len(words & content_words(passage)) / len(words) if words else 1.0


def sentences_with_markers(draft: str) -> list[str]:
    """Sentences, with a marker run that opens a sentence ("... costs. [1] Then ...") given back to the one before."""
    return [sentence for sentence, _ in answer_units(draft)]


def answer_units(draft: str) -> list[tuple[str, str]]:
    """The sentences of a written answer (each line, a list's item, is one at least), each with what stood before
    it: "\n\n" after a blank line, "\n" after a line break, else " ". A marker run that opens a sentence
    ("... costs. [1] Then ...") is given back to the one before."""
    units: list[tuple[str, str]] = []
    end = 0
    for start, stop in sentence_spans(draft, lines=True):
        sentence, gap = draft[start:stop], draft[end:start]
        end = stop
        lead = _LEADING_MARKERS.match(sentence)
        if lead and units:
            units[-1] = (f"{units[-1][0]} {lead.group(0).strip()}", units[-1][1])
            sentence = sentence[lead.end():].strip()
        if sentence:
            units.append((sentence, "\n\n" if gap.count("\n") > 1 else "\n" if "\n" in gap else " "))
    return units


def strip_markers(sentence: str, limit: int) -> tuple[str, list[int]]:
    wanted: list[int] = []
    for match in find_markers(sentence):
        numbers = parse_marker(match.group(0), limit)
        wanted.extend(n for n in numbers if n not in wanted)
    claim = sentence
    for match in reversed(find_markers(sentence)):
        claim = claim[:match.start()] + claim[match.end():]
    claim = re.sub(r"\s+([.,;:!?])", r"\1", " ".join(claim.split()))
    return claim, wanted


_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]*)[^)]*\)")
_WEB = r"(?i:\b(?:https?://|ftp://|www\.))[^\s<>()\[\]\"']+"
# An e-mail address is a pointer too: a renderer turns it into a mailto: link.
_EMAIL = r"(?i:\b(?:mailto:)?[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,})\b"
ADDRESS = _WEB + "|" + _EMAIL
_URL = re.compile(ADDRESS)


def without_links(text: str) -> str:
    """The words of a sentence with its images and URLs taken out (a link's text stays): what a claim says."""
    text = _MD_LINK.sub(lambda m: m.group(1), _IMAGE.sub("", text))
    return " ".join(_URL.sub("", text).split())


def host_of(address: str) -> str:
    """The host an address points to: "evil.example" for http://evil.example/x and for a@evil.example."""
    address = address.rstrip(".,;:!?").lower()
    if "@" in address and "://" not in address:
        return address.rsplit("@", 1)[1]
    rest = address.split("://", 1)[-1]
    return rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rsplit("@", 1)[-1].split(":", 1)[0]


def trusted(host: str, hosts: Sequence[str]) -> bool:
    """Whether the host is one of the allow-listed hosts or a subdomain of one."""
    return any(host == h or host.endswith("." + h) for h in hosts)


def outside_hosts(text: str, hosts: Sequence[str]) -> list[str]:
    """Hosts the text's links and addresses point to that are not allow-listed, in order of appearance."""
    found = [host_of(m.group(2)) for m in _MD_LINK.finditer(text)] + [host_of(m.group(0)) for m in _URL.finditer(text)]
    return list(dict.fromkeys(h for h in found if h and not trusted(h, hosts)))


def strip_links(text: str, sources: Sequence[str]) -> tuple[str, int]:
    """Remove images, and links and URLs that no cited passage contains: an answer must not carry a
    pointer its sources do not (a planted "visit http://..." or a tracking image). Returns the text
    and how many were removed."""
    allowed = " ".join(sources)
    removed = 0

    def link(match: re.Match) -> str:
        nonlocal removed
        if match.group(2) and match.group(2) in allowed:
            return match.group(0)
        removed += 1
        return match.group(1)

    def url(match: re.Match) -> str:
        nonlocal removed
        if match.group(0).rstrip(".,;:!?") in allowed:
            return match.group(0)
        removed += 1
        return "(link removed)"

    text, images = _IMAGE.subn("", text)
    removed += images
    text = _MD_LINK.sub(link, text)
    text = _URL.sub(url, text)
    return " ".join(text.split()), removed
