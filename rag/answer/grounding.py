"""Whether a passage speaks of the particular things a question names.

A near miss reads like an answer: asked for the London office's desks, the closest passage counts the
Berlin office's. Its words and its vector are close, so neither BM25 nor the cosine can tell; what
gives it away is a name the question asks about (London, Redis, `default_pool_size`, API) that the
passage never mentions. So the offline answerer only quotes passages that ground every such name:
spelled the same or as a longer form (Postgres, PostgreSQL), misspelled by one letter in a long proper
name (Bedigo, Bendigo), spelled out (PR, pull request), or a near-synonym by the embedding model (iPhone,
iOS). A sibling of the same kind (London, Berlin) is not close enough, which is the point. A question that
names three things or more is grounded by a passage that speaks of all but one, if that one stands alone
in the question: "Who did Denver beat in the AFC Championship game?" is answered by the passage on the AFC
Championship that calls the team the Broncos, while "the London Office of Acme" is not answered by the
Berlin Office of Acme (a name next to another is part of a longer one, and a sibling differs there).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

import numpy as np

from ..types import Passage

# Cosine between two names' vectors above which one stands for the other (Canadian/Canada 0.78,
# iPhone/iOS 0.78, US/America 0.78), below which they are siblings (London/Berlin 0.60, India/Japan 0.67).
SAME_THING = 0.75
_TOKEN = re.compile(r"\w+(?:[-_.]\w+)*")
_QUOTED = re.compile(r"(?<!\w)['‘\"“][^'‘’\"“”]+['’\"”](?!\w)")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;]\s+)[\"'“‘(\[]*$")  # '"Would a man...' starts a sentence too
_STATUS_CLASS = re.compile(r"^\d[xX]{2}$")  # 5xx: a class of codes, not a name
_CHAT_CAPS = {"ok", "asap", "fyi", "aka", "tldr"}
_CACHED_WORDS = 50_000  # about 75 MB of word vectors for a long-running app
# A name this long may be misspelled by one letter (SQuAD's crowd-written questions: Primier, Bedigo), if the
# passage writes the word with a capital and the same first letter; a shorter one is too often another name
# (GPS, GSP), and a common word is one letter from many names (Slack, stack).
_TYPO_MIN_LENGTH = 5
# Names a question must have for one of them to be missing from a passage that speaks of the others.
_SPARE_ONE_FROM = 3
# A question is a title when this many of its longer words, and this share of them, are capitalised.
_TITLE_WORDS = 4
_TITLE_SHARE = 0.75


def question_names(question: str) -> list[str]:
    """The particular things a question names: identifiers, acronyms, and capitalised words not
    at the start of a sentence. Quoted titles and headings are left to retrieval."""
    text = _QUOTED.sub(lambda m: " " * len(m.group()), question)
    titled = _title_case(text)
    names = []
    for match in _TOKEN.finditer(text):
        word = match.group()
        if _is_name(word, sentence_start=titled or bool(_SENTENCE_START.search(text[: match.start()]))):
            names.append(word)
    return list(dict.fromkeys(names))


def _title_case(text: str) -> bool:
    """A paper's or a headline's title pasted as the question ("Outcome Feedback within Emergency Medicine
    Training Programs?"): there a capital marks every word, not a name; acronyms and identifiers still do."""
    words = re.findall(r"[A-Za-z]{4,}", text)[1:]
    capitalised = sum(w[0].isupper() for w in words)
    return capitalised >= _TITLE_WORDS and capitalised >= _TITLE_SHARE * len(words)


def sparable(question: str) -> set[str]:
    """The names a passage may lack and still be about the question: with three names or more of the question's
    own (not the passages' compounds, "notifications worker"), those that stand alone, not next to another
    capitalised word ("London" of "London Office" is what tells it from the Berlin Office)."""
    names = set(question_names(question))
    if len(names) < _SPARE_ONE_FROM:
        return set()
    tokens = list(_TOKEN.finditer(question))
    joined = [False] * len(tokens)  # a name with another name just a space before or after it
    for i in range(1, len(tokens)):
        if tokens[i - 1].group() in names and tokens[i].group() in names \
                and not question[tokens[i - 1].end():tokens[i].start()].strip():
            joined[i - 1] = joined[i] = True
    return {t.group() for t, part in zip(tokens, joined) if t.group() in names and not part}


def compound_names(question: str, contexts: Sequence[str]) -> list[str]:
    """Words the passages write as one identifier: "notifications worker" is `notifications-worker`."""
    identifiers = {w.lower() for c in contexts for w in _TOKEN.findall(c) if "-" in w or "_" in w}
    words = [w.lower() for w in re.findall(r"\w+", question)]
    return [joined for n in (3, 2) for i in range(len(words) - n + 1)
            for joined in (sep.join(words[i:i + n]) for sep in "-_") if joined in identifiers]


def _is_name(word: str, sentence_start: bool) -> bool:
    if _STATUS_CLASS.match(word) or word.isdigit() or len(word) < 2 or word.lower() in _CHAT_CAPS:
        return False
    mixed = any(any(c.isdigit() for c in part) and any(c.isalpha() for c in part) for part in word.split("-"))
    if "_" in word or mixed:  # default_pool_size, p95, S3; not 14-day
        return True
    if sum(c.isupper() for c in word) >= 2 or (word[0].islower() and any(c.isupper() for c in word)):
        return True
    return word[0].isupper() and not sentence_start


def context_of(passage: Passage) -> str:
    """What a passage says and where: its text, post titles and section headings."""
    places = [part for s in passage.sources for part in (s.title, s.section) if part]
    return " ".join([passage.text, *dict.fromkeys(places)])


class NameMatcher:
    """Grounds question names in passages; word vectors are cached across questions and shared by every
    thread that asks (the cache is read and changed under a lock, and emptied when it is full)."""

    def __init__(self, encoder, max_words: int = _CACHED_WORDS) -> None:
        self._encoder = encoder
        self._max_words = max_words
        self._vectors: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def missing(self, names: Sequence[str], context: str) -> list[str]:
        """The names the context does not speak of."""
        tokens = _TOKEN.findall(context)
        words = [w.lower() for w in tokens]
        vocabulary, proper = set(words), {w.lower() for w in tokens if w[0].isupper()}
        unspelled = [n for n in names if not _spelled(n.lower(), vocabulary) and not _misspelled(n, proper)
                     and not _acronym_of(n, words) and not _spaced(n, words)]
        if not unspelled:
            return []
        candidates = sorted({w for w in words + [p for w in words for p in w.split("-")] if len(w) > 1})
        similarity = self._vectors_of([n.lower() for n in unspelled]) @ self._vectors_of(candidates).T
        return [n for n, row in zip(unspelled, similarity) if row.max() < SAME_THING]

    def _vectors_of(self, words: list[str]) -> np.ndarray:
        with self._lock:
            known = {w: self._vectors[w] for w in words if w in self._vectors}
        new = [w for w in dict.fromkeys(words) if w not in known]
        if new:
            fresh = dict(zip(new, self._encoder.encode(new)))  # outside the lock: other threads go on
            known.update(fresh)
            with self._lock:
                if len(self._vectors) + len(fresh) > self._max_words:
                    self._vectors.clear()
                self._vectors.update(fresh)
        return np.array([known[w] for w in words])


def _spelled(name: str, vocabulary: set[str]) -> bool:
    """The same word, a longer form of it (Postgres: PostgreSQL) or its plural (APIs: API)."""
    if name in vocabulary:
        return True
    return any((len(name) >= 3 and w.startswith(name)) or (len(w) >= 3 and name.startswith(w)
                                                           and len(name) - len(w) <= 2) for w in vocabulary)


def _spaced(name: str, words: Sequence[str]) -> bool:
    """A hyphenated name written with a space ("T-cell": "T cells")."""
    return "-" in name and re.search(rf" {re.escape(name.lower().replace('-', ' '))}s? ",
                                     f" {' '.join(words)} ") is not None


def _misspelled(name: str, proper: set[str]) -> bool:
    """A long name of letters with one letter wrong, missing, extra or swapped, but not the first, of a word
    the passage capitalises (Primier: Premier)."""
    name = name.lower()
    return len(name) >= _TYPO_MIN_LENGTH and name.isalpha() and any(
        w[0] == name[0] and _one_edit(name, w) for w in proper)


def _one_edit(a: str, b: str) -> bool:
    """Whether b is a with one letter changed, added, dropped, or two neighbours swapped."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    start = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    if len(a) == len(b):
        return a[start + 1:] == b[start + 1:] or (
            a[start] == b[start + 1] and a[start + 1] == b[start] and a[start + 2:] == b[start + 2:])
    longer, shorter = (a, b) if len(a) > len(b) else (b, a)
    return longer[start + 1:] == shorter[start:]


def _acronym_of(name: str, words: Sequence[str]) -> bool:
    """PR for "pull request", IdP for "identity provider", SSO for "single sign-on"."""
    initials = "".join(c for c in name if c.isupper()).lower()
    if len(initials) < 2:
        return False
    parts = [p for w in words for p in re.split(r"[-_.]", w) if p]
    return initials in "".join(p[0] for p in parts)
