"""Paragraph-aware chunking and duplicate grouping (pure functions).

A passage is one paragraph of one post. A paragraph longer than the model's window (or the hard
length cap) is split at sentence boundaries (at word boundaries for a single over-long sentence, and
mid-word for a run with no whitespace), so the dense vector sees all of its text. Identical
paragraphs across posts become one passage with several sources.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

from .text import normalize, split_sentences
from .types import Chunk, Post, Source

TokenCounter = Callable[[str], int]

CHUNKING_VERSION = 1
CHARS_PER_TOKEN = 8


def passage_key(text: str) -> str:
    return hashlib.sha256(normalize(text).encode()).hexdigest()[:32]


def max_chars(max_tokens: int) -> int:
    """The hard length cap of a passage. Prose runs 4-5 characters a word piece, so it binds only on
    text the token count misses: a run with no whitespace is one unknown word piece however long."""
    return max_tokens * CHARS_PER_TOKEN


def _pack(pieces: list[str], count_tokens: TokenCounter, max_tokens: int) -> list[str]:
    """Greedily join pieces with spaces while the joined text fits max_tokens and the length cap."""
    parts: list[str] = []
    for piece in pieces:
        candidate = f"{parts[-1]} {piece}" if parts else piece
        # The length check first: tokenizing a multi-megabyte run takes seconds.
        if parts and len(candidate) <= max_chars(max_tokens) and count_tokens(candidate) <= max_tokens:
            parts[-1] = candidate
        else:
            parts.append(piece)
    return parts


def _fits(text: str, count_tokens: TokenCounter, max_tokens: int) -> bool:
    return len(text) <= max_chars(max_tokens) and count_tokens(text) <= max_tokens


def split_long(text: str, count_tokens: TokenCounter, max_tokens: int) -> list[str]:
    """Split text into pieces of at most max_tokens and max_chars(max_tokens), at sentence boundaries
    where possible, else at spaces, else (a run with no whitespace) mid-word."""
    if _fits(text, count_tokens, max_tokens):
        return [text]
    pieces: list[str] = []
    for sentence in split_sentences(text):
        if _fits(sentence, count_tokens, max_tokens):
            pieces.append(sentence)
        else:
            pieces.extend(_pack(sentence.split(), count_tokens, max_tokens))
    # Only a single over-long word can be left over a limit: cut it, never to be joined again.
    return [cut for piece in _pack(pieces, count_tokens, max_tokens) for cut in _cut(piece, count_tokens, max_tokens)]


def _cut(text: str, count_tokens: TokenCounter, max_tokens: int) -> list[str]:
    """Consecutive slices of text within both limits: a slice of the length cap, and where that is still
    too many word pieces, slices as long as the window has room for (no word piece is under one character)."""
    if _fits(text, count_tokens, max_tokens):
        return [text]
    room = max(1, max_tokens - count_tokens(""))  # the model's own tokens ([CLS], [SEP]) take part of the window
    slices = []
    for coarse in _slices(text, max_chars(max_tokens)):
        slices += [coarse] if count_tokens(coarse) <= max_tokens else _slices(coarse, room)
    return slices


def _slices(text: str, size: int) -> list[str]:
    """text in pieces of at most size characters, cut at the last space before the limit when there is one."""
    pieces = []
    while len(text) > size:
        cut = text.rfind(" ", 1, size + 1)
        cut = cut if cut > 0 else size
        pieces.append(text[:cut])
        text = text[cut:].lstrip(" ")
    return pieces + ([text] if text else [])


def chunk_posts(posts: Iterable[Post], count_tokens: TokenCounter, max_tokens: int) -> list[Chunk]:
    chunks = []
    for post in posts:
        position = 0
        for paragraph in post.paragraphs:
            start = 0
            for piece in split_long(paragraph.text, count_tokens, max_tokens):
                # Pieces are the paragraph's words in order, so each one's pages follow from where it starts.
                start = max(paragraph.text.find(piece.split(" ", 1)[0], start), start)
                end = start + len(piece) - 1
                source = Source(post.title, post.path, paragraph.section, post.category, position,
                                paragraph.page_at(start), paragraph.page_at(end))
                chunks.append(Chunk(piece, source))
                position += 1
                start = end + 1
    return chunks


def group_duplicates(chunks: Iterable[Chunk]) -> list[tuple[str, str, tuple[Source, ...]]]:
    """(key, text, sources) per unique passage, in order of first appearance."""
    groups: dict[str, tuple[str, dict[Source, None]]] = {}  # a dict keeps the sources in order, unique
    for chunk in chunks:
        key = passage_key(chunk.text)
        text, sources = groups.setdefault(key, (chunk.text, {}))
        sources.setdefault(chunk.source)
    return [(key, text, tuple(sources)) for key, (text, sources) in groups.items()]


def embedding_text(text: str, sources: tuple[Source, ...], with_context: bool) -> str:
    """What the dense model reads for a passage: optionally its posts' titles and sections first, so a
    paragraph that never names its subject ("The migration took two weeks.") still carries it."""
    if not with_context:
        return text
    titles = list(dict.fromkeys(s.title for s in sources))
    sections = list(dict.fromkeys(s.section for s in sources if s.section))
    context = "; ".join(titles) + (f" ({'; '.join(sections)})" if sections else "")
    return f"{context}\n{text}"
