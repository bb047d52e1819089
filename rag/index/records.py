"""The passage records and the BM25 table: one SQLite file beside the manifest, whatever backend holds the
vectors, so the passages a search returns and the lexical ranking are the same bytes for all.

The file is updated in place, so an edit costs what it changes, and it still serves every generation a
reader may hold: a row is born in one generation and may die in a later one, and a reader sees the rows
alive in the generation its manifest names (`serial`). A writer's rows are invisible until the manifest
that names their generation is published; rows of a killed writer are removed by the next one.

Rows never change once written (a passage whose sources change is a new row), and each row's key is the
hash of the text the model embedded, so every row a question reads is checked against its key.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..chunking import embedding_text, passage_key
from ..errors import IndexCorrupt, RagError, RecordsBusy
from ..types import Passage, Source
from . import lexical
from .files import publish

_SCHEMA = (
    "CREATE TABLE passages (id INTEGER PRIMARY KEY, key TEXT NOT NULL, text_key TEXT, text TEXT NOT NULL, "
    "sources TEXT NOT NULL, titles TEXT NOT NULL, sections TEXT NOT NULL, born INTEGER NOT NULL, died INTEGER)",
    "CREATE TABLE placements (path TEXT NOT NULL, id INTEGER NOT NULL)",
    # BM25 over text, post titles and sections; the words are stored once, in passages.
    "CREATE VIRTUAL TABLE lexical USING fts5(text, titles, sections, content='passages', content_rowid='id', "
    "tokenize = 'porter unicode61')",
)
_BORN_INDEX = "CREATE INDEX IF NOT EXISTS passages_born ON passages(born)"  # undoing reads only the undone rows
_INDEXES = (
    "CREATE INDEX passages_key ON passages(key)",
    "CREATE INDEX passages_text_key ON passages(text_key) WHERE text_key IS NOT NULL",
    "CREATE INDEX passages_died ON passages(died) WHERE died IS NOT NULL",
    _BORN_INDEX,
    "CREATE INDEX placements_path ON placements(path)",
)
_LIVE = "born <= :serial AND (died IS NULL OR died > :serial)"
_BUSY_TIMEOUT_S = 30.0
# An in-place update keeps its changes in memory up to this size: spilling them to the file would take the
# exclusive lock, and every reader would wait for the commit (rollback journal, as the file-size check wants).
_WRITE_CACHE_KIB = 512 * 1024


@dataclass(frozen=True)
class Record:
    """A passage as written: its key (a hash of the embedded text), text and sources."""

    key: str
    text: str
    sources: tuple[Source, ...]


@dataclass(frozen=True)
class Row:
    """A stored record and its passage id (the id its vector has)."""

    id: int
    record: Record


def _connect(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise IndexCorrupt(f"{path.name} is missing")
    return sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None)


class Records:
    """The rows alive in one generation, read-only. Shared by every thread that holds the generation:
    one statement at a time, and never after close."""

    def __init__(self, path: Path, serial: int, embed_context: bool) -> None:
        self.path = path
        self._serial = serial
        self._embed_context = embed_context
        # Read-write so that a reader can roll back what a killed writer left half done; it only reads.
        self._db: sqlite3.Connection | None = _connect(path)
        self._lock = threading.Lock()
        self._stats: dict[str, int] | None = None
        try:
            self._db.execute("PRAGMA query_only=1")
            with self._transaction():  # the header and the size of one state of the file, not of two
                (page_size,), (pages,) = self._rows("PRAGMA page_size")[0], self._rows("PRAGMA page_count")[0]
                size = path.stat().st_size
            if page_size * pages != size:  # cut short or padded: not what SQLite wrote
                raise IndexCorrupt(f"{path.name} is {size} bytes, its header says {page_size * pages}")
        except BaseException:
            self.close()
            raise

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._rows("BEGIN")
        try:
            self._rows("SELECT 1 FROM passages LIMIT 1")  # takes the shared lock: no writer commits meanwhile
            yield
        finally:
            self._rows("COMMIT")

    def _rows(self, sql: str, params: dict[str, Any] | Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            if self._db is None:
                raise RagError("the index generation was closed while a question still read it (a bug: report it)")
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                    raise RecordsBusy(_BUSY_TIMEOUT_S) from exc
                raise IndexCorrupt(f"{self.path.name} is damaged ({exc})") from exc

    def lexical(self, terms: Sequence[str], n: int, weights: tuple[float, float, float],
                candidates: Sequence[int] = ()) -> list[tuple[int, float]]:
        """BM25 matches for any of the terms, best first, as (id, score) with higher better. The common
        words only rescore what the others found and the candidates (see rag.index.lexical)."""
        if not terms:
            return []
        stats = self._term_stats()
        words, common = lexical.split_common(terms, stats) if stats else (list(terms), {})
        ranked = self._matches(words, n, weights) if words else []
        if not common:
            return ranked
        pool = list(dict.fromkeys([i for i, _ in ranked] + [int(i) for i in candidates]))
        rows = self._rows(f"SELECT id, text, titles, sections FROM passages WHERE id IN ({','.join(map(str, pool))}) "
                          f"AND {_LIVE}", {"serial": self._serial}) if pool else []
        totals = (stats[lexical.PASSAGES], stats[lexical.TOKENS])
        extra = lexical.common_scores({i: (text, titles, sections) for i, text, titles, sections in rows}, common,
                                      totals, weights)
        return lexical.merge(ranked, extra, n)

    def _matches(self, words: Sequence[str], n: int, weights: tuple[float, float, float]) -> list[tuple[int, float]]:
        query = " OR ".join('"' + t.replace('"', '""') + '"' for t in words)
        limit = n
        while True:  # rows of other generations are rare: filter them out, and look further if needed
            rows = self._rows("SELECT rowid, bm25(lexical, ?, ?, ?) AS rank FROM lexical WHERE lexical MATCH ? "
                              "ORDER BY rank LIMIT ?", (*weights, query, limit))
            live = self.live_ids([int(i) for i, _ in rows])
            found = [(int(i), -float(rank)) for i, rank in rows if i in live]
            if len(found) >= n or len(rows) < limit:
                return found[:n]
            limit *= 4

    def _term_stats(self) -> dict[str, int]:
        if self._stats is None:
            try:
                self._stats = dict(self._rows("SELECT term, docs FROM term_stats"))
            except IndexCorrupt:  # no such table: a records file without common words listed
                self._stats = {}
        return self._stats

    def live_ids(self, ids: Sequence[int]) -> set[int]:
        if not ids:
            return set()
        rows = self._rows(f"SELECT id FROM passages WHERE id IN ({','.join(map(str, map(int, ids)))}) AND "
                          f"{_LIVE}", {"serial": self._serial})
        return {int(i) for i, in rows}

    def passages(self, ids: Sequence[int]) -> list[Passage]:
        if not ids:
            return []
        rows = self._rows(f"SELECT id, key, text, sources FROM passages WHERE id IN "
                          f"({','.join(map(str, map(int, ids)))})")
        found = {row[0]: self._checked(*row) for row in rows}
        if len(found) != len(set(ids)):
            raise IndexCorrupt("passage records are missing")
        return [found[i] for i in ids]

    def _checked(self, passage_id: int, key: str, text: str, sources_json: str) -> Passage:
        passage = _passage(passage_id, text, sources_json)
        if passage_key(embedding_text(text, passage.sources, self._embed_context)) != key:
            raise IndexCorrupt(f"passage {passage_id} does not match its checksum")
        return passage

    def rows_in_files(self, paths: Iterable[str]) -> list[Row]:
        """The live rows with a source in any of these files."""
        names = list(dict.fromkeys(paths))
        found: dict[int, Row] = {}
        for start in range(0, len(names), 500):
            part = names[start:start + 500]
            marks = ",".join("?" * len(part))
            sql = (f"SELECT id, key, text, sources FROM passages WHERE id IN "
                   f"(SELECT id FROM placements WHERE path IN ({marks})) AND born <= ? AND (died IS NULL OR died > ?)")
            for row in self._rows(sql, (*part, self._serial, self._serial)):
                found[row[0]] = _row(*row)
        return sorted(found.values(), key=lambda r: r.id)

    def rows_with_texts(self, text_keys: Iterable[str]) -> list[Row]:
        """The live rows whose text hashes to one of these keys (the same paragraph elsewhere)."""
        keys = list(dict.fromkeys(text_keys))
        found: dict[int, Row] = {}
        column = "text_key" if self._embed_context else "key"
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            sql = (f"SELECT id, key, text, sources FROM passages WHERE {column} IN ({','.join('?' * len(part))}) "
                   "AND born <= ? AND (died IS NULL OR died > ?)")
            for row in self._rows(sql, (*part, self._serial, self._serial)):
                found[row[0]] = _row(*row)
        return sorted(found.values(), key=lambda r: r.id)

    def ids_of_keys(self, keys: Sequence[str]) -> dict[str, int]:
        """The live passage id of each of these keys that has one."""
        if not keys:
            return {}
        rows = self._rows(f"SELECT key, id FROM passages WHERE key IN ({','.join('?' * len(keys))}) AND "
                          "born <= ? AND (died IS NULL OR died > ?)", (*keys, self._serial, self._serial))
        return {key: int(i) for key, i in rows}

    def keys_of(self, ids: Sequence[int]) -> list[str]:
        rows = dict(self._rows(f"SELECT id, key FROM passages WHERE id IN ({','.join(map(str, map(int, ids)))})"))
        if len(rows) != len(set(ids)):
            raise IndexCorrupt("passage records are missing")
        return [rows[i] for i in ids]

    def all(self) -> list[Row]:
        """Every live row in id order (migrations copy these)."""
        rows = self._rows(f"SELECT id, key, text, sources FROM passages WHERE {_LIVE} ORDER BY id",
                          {"serial": self._serial})
        return [_row(*row) for row in rows]

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
            self._db = None


def _passage(passage_id: int, text: str, sources_json: str) -> Passage:
    try:
        sources = tuple(Source(**s) for s in json.loads(sources_json))
    except (ValueError, TypeError) as exc:
        raise IndexCorrupt("a passage record is malformed") from exc
    return Passage(passage_id, text, sources)


def _row(passage_id: int, key: str, text: str, sources_json: str) -> Row:
    passage = _passage(passage_id, text, sources_json)
    return Row(passage_id, Record(key, text, passage.sources))


def _values(row: Row, text_key: str | None, serial: int) -> tuple:
    record = row.record
    return (row.id, record.key, text_key, record.text,
            json.dumps([s.to_dict() for s in record.sources], ensure_ascii=False),
            " ; ".join(dict.fromkeys(s.title for s in record.sources)),
            " ; ".join(dict.fromkeys(s.section for s in record.sources if s.section)), serial)


def _text_key(record: Record) -> str | None:
    """The hash of the text alone, when the key also covers the context the model read."""
    key = passage_key(record.text)
    return None if key == record.key else key


def create_records(path: Path, rows: Sequence[Row], serial: int) -> None:
    """A new records file holding exactly these rows, born in this generation."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    db = sqlite3.connect(tmp, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=OFF")  # a killed write leaves an unpublished temp file, removed later
        db.execute("BEGIN")
        for statement in _SCHEMA:
            db.execute(statement)
        _insert(db, rows, serial, fts=False)
        db.execute("INSERT INTO lexical(lexical) VALUES ('rebuild')")
        lexical.write_term_stats(db)
        for statement in _INDEXES:
            db.execute(statement)
        db.execute("COMMIT")
    finally:
        db.close()
    publish(tmp, path)


def _insert(db: sqlite3.Connection, rows: Sequence[Row], serial: int, fts: bool) -> None:
    db.executemany("INSERT INTO passages VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                   (_values(row, _text_key(row.record), serial) for row in rows))
    db.executemany("INSERT INTO placements VALUES (?, ?)",
                   ((path, row.id) for row in rows for path in dict.fromkeys(s.path for s in row.record.sources)))
    if fts:
        db.executemany("INSERT INTO lexical (rowid, text, titles, sections) SELECT id, text, titles, sections "
                       "FROM passages WHERE id = ?", ((row.id,) for row in rows))


def update_records(path: Path, published: int, added: Sequence[Row], removed: Sequence[int]) -> None:
    """Write generation published + 1 in place, in one transaction: what a killed writer left is undone,
    rows no reader can see any more are dropped, then the new rows are born and the removed ones die."""
    serial = published + 1
    db = _connect(path)
    try:
        db.execute("PRAGMA synchronous=FULL")
        db.execute(f"PRAGMA cache_size=-{_WRITE_CACHE_KIB}")
        db.execute("BEGIN IMMEDIATE")
        db.execute(_BORN_INDEX)  # a file written before it existed gets it now, once
        _undo(db, published)
        _drop(db, "died <= ?", (published - 1,))
        _insert(db, added, serial, fts=True)
        for start in range(0, len(removed), 500):
            part = ",".join(map(str, map(int, removed[start:start + 500])))
            db.execute(f"UPDATE passages SET died = ? WHERE id IN ({part})", (serial,))
        lexical.refresh_term_stats(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    finally:
        db.close()


def undo_unpublished(path: Path, published: int) -> None:
    """Take back the rows of a write that was never published (what the next write would do first)."""
    db = _connect(path)
    try:
        db.execute("BEGIN IMMEDIATE")
        _undo(db, published)
        db.execute("COMMIT")
    finally:
        db.close()


def _undo(db: sqlite3.Connection, published: int) -> None:
    _drop(db, "born > ?", (published,))
    db.execute("UPDATE passages SET died = NULL WHERE died > ?", (published,))


def _drop(db: sqlite3.Connection, where: str, params: tuple) -> None:
    ids = [i for i, in db.execute(f"SELECT id FROM passages WHERE {where}", params)]
    for start in range(0, len(ids), 500):
        part = ",".join(map(str, ids[start:start + 500]))
        db.execute(f"INSERT INTO lexical (lexical, rowid, text, titles, sections) SELECT 'delete', id, text, titles, "
                   f"sections FROM passages WHERE id IN ({part})")
        db.execute(f"DELETE FROM placements WHERE id IN ({part})")
        db.execute(f"DELETE FROM passages WHERE id IN ({part})")
