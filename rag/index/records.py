"""A generation's passage records and BM25 table: one SQLite file beside the manifest, whatever backend
holds the vectors, so the passages a search returns and the lexical ranking are the same bytes for all."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import IndexCorrupt, RagError
from ..types import Passage, Source
from .files import publish


@dataclass(frozen=True)
class Record:
    """A passage as written: its key (a hash of the embedded text), text and sources."""

    key: str
    text: str
    sources: tuple[Source, ...]


class Records:
    """The (already checksummed) records file, read-only. Shared by every thread that holds the
    generation: one statement at a time, and never after close."""

    def __init__(self, path: Path) -> None:
        self._db: sqlite3.Connection | None = sqlite3.connect(
            f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False)
        self._lock = threading.Lock()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            if self._db is None:
                raise RagError("the index generation was closed while a question still read it (a bug: report it)")
            return self._db.execute(sql, params).fetchall()

    def lexical(self, terms: Sequence[str], n: int, weights: tuple[float, float, float]) -> list[tuple[int, float]]:
        """BM25 matches for any of the terms, best first, as (id, score) with higher better."""
        if not terms:
            return []
        query = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        rows = self._rows("SELECT rowid, bm25(lexical, ?, ?, ?) AS rank FROM lexical WHERE lexical MATCH ? "
                          "ORDER BY rank LIMIT ?", (*weights, query, n))
        return [(int(i), -float(rank)) for i, rank in rows]

    def passages(self, ids: Sequence[int]) -> list[Passage]:
        marks = ",".join("?" * len(ids))
        rows = self._rows(f"SELECT id, text, sources FROM passages WHERE id IN ({marks})", list(ids))
        found = {row[0]: row for row in rows}
        if len(found) != len(set(ids)):
            raise IndexCorrupt("passage records are missing")
        return [_passage(*found[i]) for i in ids]

    def keys(self) -> list[str]:
        """Every passage key, at the position of its id (ids are 0..n-1 in a generation)."""
        return [key for _, key in self._rows("SELECT id, key FROM passages ORDER BY id")]

    def all(self) -> list[Record]:
        """Every record in id order, as an ingest would write it again (migrations copy these)."""
        rows = self._rows("SELECT id, key, text, sources FROM passages ORDER BY id")
        return [Record(key, text, _passage(i, text, sources).sources) for i, key, text, sources in rows]

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


def write_records(path: Path, records: Sequence[Record]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    db = sqlite3.connect(tmp)
    try:
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("CREATE TABLE passages (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, "
                   "text TEXT NOT NULL, sources TEXT NOT NULL)")
        # BM25 over text, post titles and sections: SQLite's FTS5, saved and checksummed with the records.
        db.execute("CREATE VIRTUAL TABLE lexical USING fts5(text, titles, sections, "
                   "tokenize = 'porter unicode61')")
        db.executemany(
            "INSERT INTO passages VALUES (?, ?, ?, ?)",
            ((i, r.key, r.text, json.dumps([s.to_dict() for s in r.sources], ensure_ascii=False))
             for i, r in enumerate(records)),
        )
        db.executemany(
            "INSERT INTO lexical (rowid, text, titles, sections) VALUES (?, ?, ?, ?)",
            ((i, r.text, " ; ".join(dict.fromkeys(s.title for s in r.sources)),
              " ; ".join(dict.fromkeys(s.section for s in r.sources if s.section)))
             for i, r in enumerate(records)),
        )
        db.commit()
    finally:
        db.close()
    publish(tmp, path)
