"""Saved conversations and feedback, in one local SQLite file (RAG_CHATS_PATH) shared by the app and `rag chat`,
or in the PostgreSQL database at RAG_DATABASE_URL, shared by every replica (rag/people).

A turn that failed keeps its question: the failure is stored as an assistant message with `error` set,
so the chat shows it with a retry, and the history handed to the next question leaves it out.
Each chat belongs to one owner (see ChatStore) and is no one else's to see or change.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path

from .config import Settings
from .errors import UserError
from .people import Database, Session
from .render import answer_markdown, safe_markdown, source_label
from .text import shortened

_CHAT = "SELECT id, title, created, updated FROM chats"
LOCAL = "local"  # the owner of `rag chat`'s chats and of the app's on loopback with no sign-in
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
    """Chats, their messages and the feedback on answers. Each call is its own transaction, so the app's
    sessions (threads), a `rag chat` in a terminal and other replicas can share the store.

    Every chat has an owner (a person, a browser session, or LOCAL), and every method that touches a chat
    or a message takes the owner asking: to anyone else the chat does not exist, admins included. Only
    feedback(), the export behind `rag feedback export`, reads everyone's."""

    def __init__(self, path: Path | None, database: Database | None = None) -> None:
        self.path = path  # the SQLite file; None in a database server
        self.db = database or Database.file(Path(str(path)), _broken(path), wal=True)

    @classmethod
    def of(cls, settings: Settings) -> ChatStore:
        """The chats of this install: RAG_DATABASE_URL's when set, else the file at RAG_CHATS_PATH."""
        if settings.database_url is not None:
            return cls(None, Database.server(settings.database_url))
        return cls(settings.chats_path)

    def create(self, owner: str, title: str = NEW_TITLE) -> Chat:
        now = _now()
        chat = Chat(secrets.token_hex(8), _title(title), now, now)
        with self._db() as db:
            db.execute("INSERT INTO chats (id, title, created, updated, owner, seq) VALUES (:id, :title, :now, :now, "
                       ":owner, (SELECT COALESCE(MAX(seq), 0) + 1 FROM chats))",
                       id=chat.id, title=chat.title, now=now, owner=_owner(owner))
        return chat

    def chats(self, owner: str) -> list[Chat]:
        """The owner's chats, newest activity first."""
        with self._db() as db:
            rows = db.execute(f"{_CHAT} WHERE owner = :owner ORDER BY updated DESC, seq DESC", owner=owner)
            return [Chat(*row) for row in rows]

    def get(self, owner: str, chat_id: str) -> Chat | None:
        with self._db() as db:
            row = db.execute(f"{_CHAT} WHERE id = :id AND owner = :owner", id=chat_id, owner=owner).first()
        return Chat(*row) if row else None

    def rename(self, owner: str, chat_id: str, title: str) -> None:
        with self._db() as db:
            db.execute("UPDATE chats SET title = :title WHERE id = :id AND owner = :owner",
                       title=_title(title), id=chat_id, owner=owner)

    def delete(self, owner: str, chat_id: str) -> None:
        """The chat, its messages and their feedback (the foreign keys cascade)."""
        with self._db() as db:
            db.execute("DELETE FROM chats WHERE id = :id AND owner = :owner", id=chat_id, owner=owner)

    def messages(self, owner: str, chat_id: str) -> list[Message]:
        with self._db() as db:
            rows = db.execute(
                "SELECT m.id, m.role, m.content, m.answer, m.error, f.rating, COALESCE(f.comment, '') FROM messages m "
                "JOIN chats c ON c.id = m.chat_id LEFT JOIN feedback f ON f.message_id = m.id "
                "WHERE m.chat_id = :chat AND c.owner = :owner ORDER BY m.id", chat=chat_id, owner=owner)
            return [Message(i, role, content, json.loads(answer) if answer else None, error, rating, comment)
                    for i, role, content, answer, error, rating, comment in rows]

    def history(self, owner: str, chat_id: str) -> list[tuple[str, str]]:
        """(role, text) of the turns that went through, for the next question's follow-up reading."""
        return [(m.role, m.content) for m in self.messages(owner, chat_id) if m.error is None]

    def add(self, owner: str, chat_id: str, role: str, content: str, answer: dict | None = None,
            error: str | None = None) -> int:
        """Append a message; a chat still called "New chat" takes its first question as its title."""
        now = _now()
        with self._db() as db:
            added = db.execute(
                "INSERT INTO messages (chat_id, role, content, answer, error, created) "
                "SELECT id, :role, :content, :answer, :error, :now FROM chats WHERE id = :chat AND owner = :owner "
                "RETURNING id", role=role, content=content, answer=json.dumps(answer) if answer is not None else None,
                error=error, now=now, chat=chat_id, owner=owner).scalar()
            if added is None:
                raise UserError(f"no chat {chat_id}: it was deleted, or is not yours; start a new one")
            titled = _title(content) if role == "user" else None  # only a question names a chat
            db.execute("UPDATE chats SET updated = :now, title = CASE WHEN title = :new THEN COALESCE(:titled, title) "
                       "ELSE title END WHERE id = :chat", now=now, new=NEW_TITLE, titled=titled, chat=chat_id)
            return int(added)

    def drop_failure(self, owner: str, chat_id: str) -> str | None:
        """Remove the chat's last message if it is a failure; return the question to ask again."""
        messages = self.messages(owner, chat_id)
        if len(messages) < 2 or messages[-1].error is None or messages[-2].role != "user":
            return None
        with self._db() as db:
            db.execute("DELETE FROM messages WHERE id = :id", id=messages[-1].id)
        return messages[-2].content

    def rate(self, owner: str, message_id: int, rating: int, comment: str = "",
             settings: dict | None = None) -> bool:
        """Thumbs up (+1) or down (-1) on an answer, with an optional comment and the settings it ran with.
        False, storing nothing, when the owner has no such answer (deleted meanwhile, or someone else's)."""
        if rating not in (1, -1):
            raise UserError("a rating is 1 (thumbs up) or -1 (thumbs down)")
        with self._db() as db:
            cursor = db.execute(
                "INSERT INTO feedback (message_id, rating, comment, settings, created) "
                "SELECT m.id, :rating, :comment, :settings, :now FROM messages m JOIN chats c ON c.id = m.chat_id "
                "WHERE m.id = :id AND m.role = 'assistant' AND c.owner = :owner "
                "ON CONFLICT (message_id) DO UPDATE SET rating = excluded.rating, comment = excluded.comment, "
                "settings = excluded.settings, created = excluded.created",
                rating=rating, comment=comment.strip()[:_COMMENT_CHARS], settings=json.dumps(settings or {}),
                now=_now(), id=message_id, owner=owner)
            return cursor.rowcount > 0

    def feedback(self) -> list[dict]:
        """Every rated answer, whoever rated it, with the question it answered, oldest first: the export
        that `rag eval` learns from (the CLI, which whoever holds the store may run anyway)."""
        with self._db() as db:
            rows = db.execute(
                "SELECT f.rating, f.comment, f.settings, f.created, m.content, m.answer, "
                "(SELECT q.content FROM messages q WHERE q.chat_id = m.chat_id AND q.id < m.id AND q.role = 'user' "
                "ORDER BY q.id DESC LIMIT 1) FROM feedback f JOIN messages m ON m.id = f.message_id "
                "ORDER BY f.created, f.message_id")
            return [{"rating": rating, "comment": comment, "settings": json.loads(settings), "created": created,
                     "question": question or "", "answer": text, "response": json.loads(answer) if answer else None}
                    for rating, comment, settings, created, text, answer, question in rows]

    @contextlib.contextmanager
    def _db(self) -> Iterator[Session]:
        with self.db.begin(create=True) as db:
            yield db


def _broken(path: Path | None) -> Callable[[str], UserError]:
    """The store's words for a file it cannot use (unwritable, or not a database)."""

    def problem(reason: str) -> UserError:
        return UserError(f"the chat store {path} cannot be used ({reason}): set RAG_CHATS_PATH to a writable file, "
                         "or move it aside to start a new one")

    return problem


def _owner(owner: str) -> str:
    if not owner:  # an empty owner would be a chat nobody can find again: a bug, never a person
        raise ValueError("a chat needs an owner")
    return owner


def _title(text: str) -> str:
    title = " ".join(text.split())
    return shortened(title, _TITLE_CHARS) or NEW_TITLE


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def chat_labels(chats: Sequence[Chat], zone: tzinfo | None = None, now: datetime | None = None) -> list[str]:
    """What the chats list shows for each chat: its title, and when two or more of the list share a title,
    when each was started too ("How did they cut cloud costs? · 5 Dec 14:02"), so they can be told apart.
    The start, not the last activity: a label that moved with every question would be harder to find."""
    shared = _repeated(c.title for c in chats)
    labels: list[str] = []
    for seconds in (False, True):  # to the second only where the minutes are the same as well
        labels = [f"{c.title} · {started(c, zone, now, seconds)}" if _same(c.title) in shared else c.title
                  for c in chats]
        if not _repeated(labels):
            return labels
    return _numbered(labels)


def _repeated(labels: Iterable[str]) -> set[str]:
    return {label for label, count in Counter(_same(label) for label in labels).items() if count > 1}


def _numbered(labels: list[str]) -> list[str]:
    """Labels still alike (chats started in the same second) numbered from the oldest activity: (1), (2)..."""
    alike, seen = _repeated(labels), Counter[str]()
    numbered = []
    for label in reversed(labels):
        seen[_same(label)] += 1
        numbered.append(f"{label} ({seen[_same(label)]})" if _same(label) in alike else label)
    return numbered[::-1]


def started(chat: Chat, zone: tzinfo | None = None, now: datetime | None = None, seconds: bool = False) -> str:
    """When the chat was started, short: "5 Dec 14:02", with the year when it is not this year's, in
    `zone` (the reader's, where known; else the server's)."""
    when = datetime.fromisoformat(chat.created).astimezone(zone)
    year = "" if when.year == (now or datetime.now(UTC)).astimezone(zone).year else f" {when.year}"
    return f"{when.day} {when:%b}{year} " + when.strftime("%H:%M:%S" if seconds else "%H:%M")


def _same(title: str) -> str:
    return title.casefold()


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
