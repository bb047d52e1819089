"""Saved conversations and feedback, in one local SQLite file (RAG_CHATS_PATH) shared by the app and `rag chat`.

A turn that failed keeps its question: the failure is stored as an assistant message with `error` set,
so the chat shows it with a retry, and the history handed to the next question leaves it out.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .errors import UserError
from .render import answer_markdown, safe_markdown, source_label

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chats (id TEXT PRIMARY KEY, title TEXT NOT NULL, created TEXT NOT NULL,
                                  updated TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT,
                                     chat_id TEXT NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
                                     role TEXT NOT NULL, content TEXT NOT NULL, answer TEXT, error TEXT,
                                     created TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS messages_by_chat ON messages(chat_id, id);
CREATE TABLE IF NOT EXISTS feedback (message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
                                     rating INTEGER NOT NULL, comment TEXT NOT NULL, settings TEXT NOT NULL,
                                     created TEXT NOT NULL);
"""
NEW_TITLE = "New chat"
_TITLE_CHARS = 80
_COMMENT_CHARS = 2000


@dataclass(frozen=True)
class Chat:
    id: str
    title: str
    created: str
    updated: str


@dataclass(frozen=True)
class Message:
    id: int
    role: str
    content: str
    answer: dict | None = None  # the Answer's JSON contract, for an assistant message that answered
    error: str | None = None  # why the turn failed, for an assistant message that did not
    rating: int | None = None  # +1 or -1 when someone rated it
    comment: str = ""


class ChatStore:
    """Chats, their messages and the feedback on answers. Each call opens its own connection, so the
    app's sessions (threads) and a `rag chat` in a terminal can share the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._ready = False  # the tables exist and the file is in WAL mode (both persist in the file)

    def create(self, title: str = NEW_TITLE) -> Chat:
        now = _now()
        chat = Chat(secrets.token_hex(8), _title(title), now, now)
        with self._db() as db:
            db.execute("INSERT INTO chats VALUES (?, ?, ?, ?)", (chat.id, chat.title, now, now))
        return chat

    def chats(self) -> list[Chat]:
        """Newest activity first."""
        with self._db() as db:
            return [Chat(*row) for row in db.execute("SELECT * FROM chats ORDER BY updated DESC, rowid DESC")]

    def get(self, chat_id: str) -> Chat | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM chats WHERE id = ?", (chat_id,)).fetchone()
        return Chat(*row) if row else None

    def rename(self, chat_id: str, title: str) -> None:
        with self._db() as db:
            db.execute("UPDATE chats SET title = ? WHERE id = ?", (_title(title), chat_id))

    def delete(self, chat_id: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM chats WHERE id = ?", (chat_id,))

    def messages(self, chat_id: str) -> list[Message]:
        with self._db() as db:
            rows = db.execute(
                "SELECT m.id, m.role, m.content, m.answer, m.error, f.rating, COALESCE(f.comment, '') FROM messages m "
                "LEFT JOIN feedback f ON f.message_id = m.id WHERE m.chat_id = ? ORDER BY m.id", (chat_id,))
            return [Message(i, role, content, json.loads(answer) if answer else None, error, rating, comment)
                    for i, role, content, answer, error, rating, comment in rows]

    def history(self, chat_id: str) -> list[tuple[str, str]]:
        """(role, text) of the turns that went through, for the next question's follow-up reading."""
        return [(m.role, m.content) for m in self.messages(chat_id) if m.error is None]

    def add(self, chat_id: str, role: str, content: str, answer: dict | None = None,
            error: str | None = None) -> int:
        """Append a message; a chat still called "New chat" takes its first question as its title."""
        now = _now()
        with self._db() as db:
            cursor = db.execute(
                "INSERT INTO messages (chat_id, role, content, answer, error, created) VALUES (?, ?, ?, ?, ?, ?)",
                (chat_id, role, content, json.dumps(answer) if answer is not None else None, error, now))
            db.execute("UPDATE chats SET updated = ?, title = CASE WHEN title = ? AND ? = 'user' THEN ? ELSE title "
                       "END WHERE id = ?", (now, NEW_TITLE, role, _title(content), chat_id))
            return int(cursor.lastrowid or 0)

    def drop_failure(self, chat_id: str) -> str | None:
        """Remove the chat's last message if it is a failure; return the question to ask again."""
        messages = self.messages(chat_id)
        if len(messages) < 2 or messages[-1].error is None or messages[-2].role != "user":
            return None
        with self._db() as db:
            db.execute("DELETE FROM messages WHERE id = ?", (messages[-1].id,))
        return messages[-2].content

    def rate(self, message_id: int, rating: int, comment: str = "", settings: dict | None = None) -> None:
        """Thumbs up (+1) or down (-1) on an answer, with an optional comment and the settings it ran with."""
        if rating not in (1, -1):
            raise UserError("a rating is 1 (thumbs up) or -1 (thumbs down)")
        with self._db() as db:
            db.execute("INSERT INTO feedback VALUES (?, ?, ?, ?, ?) ON CONFLICT(message_id) DO UPDATE SET "
                       "rating = excluded.rating, comment = excluded.comment, settings = excluded.settings, "
                       "created = excluded.created",
                       (message_id, rating, comment.strip()[:_COMMENT_CHARS], json.dumps(settings or {}), _now()))

    def feedback(self) -> list[dict]:
        """Every rated answer with the question it answered, oldest first."""
        with self._db() as db:
            rows = db.execute(
                "SELECT f.rating, f.comment, f.settings, f.created, m.content, m.answer, "
                "(SELECT q.content FROM messages q WHERE q.chat_id = m.chat_id AND q.id < m.id AND q.role = 'user' "
                "ORDER BY q.id DESC LIMIT 1) FROM feedback f JOIN messages m ON m.id = f.message_id ORDER BY f.created")
            return [{"rating": rating, "comment": comment, "settings": json.loads(settings), "created": created,
                     "question": question or "", "answer": text, "response": json.loads(answer) if answer else None}
                    for rating, comment, settings, created, text, answer, question in rows]

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10)
        except (OSError, sqlite3.Error) as exc:
            raise UserError(f"cannot open the chat store {self.path} ({exc}); set RAG_CHATS_PATH to a writable "
                            "file") from None
        try:
            db.execute("PRAGMA foreign_keys = ON")  # per connection
            if not self._ready:
                db.execute("PRAGMA journal_mode = WAL")
                db.executescript(_SCHEMA)
                self._ready = True
            with db:
                yield db
        except sqlite3.DatabaseError as exc:
            raise UserError(f"the chat store {self.path} cannot be used ({exc}); move it aside to start a new "
                            "one, or set RAG_CHATS_PATH") from None
        finally:
            db.close()


def _title(text: str) -> str:
    title = " ".join(text.split())
    return (title if len(title) <= _TITLE_CHARS else title[:_TITLE_CHARS - 1].rstrip() + "…") or NEW_TITLE


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def chat_markdown(chat: Chat, messages: list[Message], hosts: Sequence[str] = ()) -> str:
    """The chat as a Markdown document: each question, its answer with [n] markers, and under the
    answer its sources (title, section, pages) with the sentences that support it quoted."""
    lines = [f"# {safe_markdown(chat.title)}", "", f"_Exported {_now()} · started {chat.created}_", ""]
    for message in messages:
        if message.role == "user":
            lines += [f"**Question:** {safe_markdown(message.content)}", ""]
        elif message.error is not None:
            lines += [f"**Failed:** {safe_markdown(message.error)}", ""]
        else:
            lines += _answer_lines(message, hosts)
    return "\n".join(lines).rstrip() + "\n"


def _answer_lines(message: Message, hosts: Sequence[str]) -> list[str]:
    answer = message.answer or {}
    citations = answer.get("citations", [])
    lines = [f"**Answer:** {answer_markdown(message.content, [c['text'] for c in citations], hosts)}", ""]
    for citation in citations:
        where = "; ".join(source_label(s) for s in citation["sources"])
        lines.append(f"- [{citation['marker']}] {safe_markdown(where)}")
        lines += [f"  > {safe_markdown(citation['text'][span['start']:span['end']])}" for span in citation["evidence"]]
    return lines + [""] if citations else lines


def feedback_line(row: dict) -> dict:
    """One rated answer as a line `rag eval` reads. A thumbs-up keeps the files it cited as gold; a
    thumbs-down is a candidate regression question: review its gold files and add the expected answers."""
    response = row["response"] or {}
    cited = sorted({s["path"] for c in response.get("citations", []) for s in c.get("sources", [])})
    line = {"question": row["question"], "gold_files": cited, "answers": [],
            "rating": "up" if row["rating"] > 0 else "down", "comment": row["comment"], "answer": row["answer"],
            "abstained": bool(response.get("abstained")), "settings": row["settings"], "rated": row["created"]}
    if row["rating"] < 0:
        line["needs_review"] = "set gold_files to the documents that answer it and answers to the expected facts"
    return line
