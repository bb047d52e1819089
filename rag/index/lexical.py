"""BM25 at any size: FTS5 ranks only the query's rarer words; the common ones rescore a bounded pool.

FTS5 computes bm25 for every row a query matches, so a word found in 10% of a million passages costs
about a second however few results are wanted. At each full write the words found in more than
COMMON_DOCS passages are listed with their passage counts (`term_stats`), and again whenever in-place
updates have changed the number of passages by more than REFRESH_SHARE. A query matches its other
words in FTS5 (at most COMMON_DOCS rows each) and adds the common words' share of the same BM25, computed
here, to the passages that ranking found and to the dense search's candidates. Below COMMON_DOCS
passages nothing is listed and FTS5 ranks every word, as it always did.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence

COMMON_DOCS = 2000
REFRESH_SHARE = 0.1  # the passages may change by this share before the common words are listed again
PASSAGES, TOKENS = "\x00passages", "\x00tokens"  # the table's totals, beside the words (no word starts with NUL)
_K1, _B = 1.2, 0.75  # FTS5's bm25() constants
_TOKENIZER = "porter unicode61"  # the records' FTS5 tokenizer: the same words, the same stems
_COLUMNS = ("text", "titles", "sections")


class _Stemmer:
    """FTS5's own tokenizer, through an in-memory table: words and stems exactly as the index has them."""

    def __init__(self) -> None:
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute(f"CREATE VIRTUAL TABLE t USING fts5(text, titles, sections, tokenize = '{_TOKENIZER}')")
        self._db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _holding(self, docs: Iterable[tuple[str, str, str]]) -> Iterator[None]:
        """The table holds these (text, titles, sections) as rows 0, 1, ... while the block runs."""
        with self._lock:
            try:
                self._db.executemany("INSERT INTO t (rowid, text, titles, sections) VALUES (?, ?, ?, ?)",
                                     ((i, *doc) for i, doc in enumerate(docs)))
                yield
            finally:
                self._db.execute("DELETE FROM t")

    def counts(self, docs: Sequence[tuple[str, str, str]], terms: Sequence[str]
               ) -> tuple[list[int], list[tuple[int, str, int, int]]]:
        """Tokens per document, and (document, stem, column, occurrences) of these stems, for the given
        (text, titles, sections): SQLite counts, so no token crosses into Python."""
        marks = ",".join("?" * len(terms))
        with self._holding(docs):
            lengths = [0] * len(docs)
            for doc, tokens in self._db.execute("SELECT doc, count(*) FROM v GROUP BY doc"):
                lengths[doc] = tokens
            hits = [(doc, term, _COLUMNS.index(col), n) for doc, term, col, n in self._db.execute(
                f"SELECT doc, term, col, count(*) FROM v WHERE term IN ({marks}) GROUP BY doc, term, col",
                list(terms))] if terms else []
        return lengths, hits

    def stems(self, words: Sequence[str]) -> dict[str, str]:
        with self._holding((w, "", "") for w in words):
            return {words[doc]: term for doc, term in self._db.execute("SELECT doc, term FROM v")}


_stemmer = _Stemmer()


def write_term_stats(db: sqlite3.Connection) -> None:
    """List the common words and the table's totals (one pass over the index: ~10 s at a million)."""
    db.execute("CREATE TABLE term_stats (term TEXT PRIMARY KEY, docs INTEGER NOT NULL) WITHOUT ROWID")
    db.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, lexical, 'row')")
    tokens = 0
    rows = []
    for term, docs, count in db.execute("SELECT term, doc, cnt FROM temp.vocab"):
        tokens += count
        if docs > COMMON_DOCS:
            rows.append((term, docs))
    db.executemany("INSERT INTO term_stats VALUES (?, ?)", rows)
    passages = db.execute("SELECT count(*) FROM passages").fetchone()[0]
    db.executemany("INSERT INTO term_stats VALUES (?, ?)", [(PASSAGES, passages), (TOKENS, tokens)])
    db.execute("DROP TABLE temp.vocab")


def refresh_term_stats(db: sqlite3.Connection, share: float = REFRESH_SHARE) -> None:
    """List the common words again when the passages grew or shrank by more than `share` since the list was
    made: an index that grows by incremental ingests gets its common words, and their counts stay close."""
    passages = db.execute("SELECT count(*) FROM passages").fetchone()[0]
    counted = db.execute("SELECT docs FROM term_stats WHERE term = ?", (PASSAGES,)).fetchone()
    if counted is not None and abs(passages - counted[0]) <= share * counted[0]:
        return
    db.execute("DROP TABLE term_stats")
    write_term_stats(db)


def split_common(words: Sequence[str], stats: dict[str, int]) -> tuple[list[str], dict[str, int]]:
    """(the words FTS5 should match, {stem: passages} of the common ones)."""
    if len(stats) <= 2:  # the totals alone: no common word
        return list(words), {}
    stems = _stemmer.stems(list(words))
    common = {stems[w]: stats[stems[w]] for w in words if stems.get(w) in stats and stems[w] not in (PASSAGES, TOKENS)}
    return [w for w in words if stems.get(w) not in common], common


def common_scores(docs: dict[int, tuple[str, str, str]], common: dict[str, int], totals: tuple[int, int],
                  weights: tuple[float, float, float]) -> dict[int, float]:
    """The common words' share of FTS5's bm25 (higher better) for each of these passages."""
    passages, tokens = totals
    average = tokens / max(passages, 1)
    ids = list(docs)
    lengths, counts = _stemmer.counts([docs[i] for i in ids], list(common))
    hits: dict[tuple[int, str], float] = {}
    for doc, term, column, n in counts:
        hits[doc, term] = hits.get((doc, term), 0.0) + n * weights[column]
    scores: dict[int, float] = {}
    for (doc, term), frequency in hits.items():
        idf = math.log((passages - common[term] + 0.5) / (common[term] + 0.5))
        idf = idf if idf > 0 else 1e-6
        norm = _K1 * (1 - _B + _B * lengths[doc] / average)
        scores[ids[doc]] = scores.get(ids[doc], 0.0) + idf * frequency * (_K1 + 1) / (frequency + norm)
    return scores


def merge(ranked: Iterable[tuple[int, float]], extra: dict[int, float], n: int) -> list[tuple[int, float]]:
    total = dict(ranked)
    for i, score in extra.items():
        total[i] = total.get(i, 0.0) + score
    return sorted(((i, s) for i, s in total.items() if s > 0), key=lambda hit: -hit[1])[:n]
