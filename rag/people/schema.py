"""The people's tables, written once for SQLite and PostgreSQL, and the migrations that bring a database to them.

VERSION is the schema this code reads and writes. A database records the versions applied to it in
`schema_version`; each migration runs once, in order, inside the upgrade's transaction (DDL is transactional
in both engines, so a failed step leaves the database as it was).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    inspect,
    text,
)

VERSION = 2
_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite's AUTOINCREMENT needs INTEGER PRIMARY KEY exactly

metadata = MetaData()
versions = Table(
    "schema_version", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied", Text, nullable=False),
)
tokens = Table(
    "tokens", metadata,
    Column("id", Text, primary_key=True),
    Column("hash", Text, nullable=False, unique=True),
    Column("role", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("created", Text, nullable=False),
    Column("revoked", Text),
)
users = Table(
    "users", metadata,
    Column("key", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("hash", Text, nullable=False),
    Column("created", Text, nullable=False),
    Column("changed", Text, nullable=False),
)
# Facts that outlive the rows they are about: "user_added" stays when every user is removed, so removing them
# all shuts the API's no-token mode instead of reopening it (a SQLite user file says so by existing).
marks = Table(
    "marks", metadata,
    Column("name", Text, primary_key=True),
    Column("created", Text, nullable=False),
)
# `seq` orders chats updated in the same second, newest first, as SQLite's rowid did: PostgreSQL has no rowid.
chats = Table(
    "chats", metadata,
    Column("id", Text, primary_key=True),
    Column("title", Text, nullable=False),
    Column("created", Text, nullable=False),
    Column("updated", Text, nullable=False),
    Column("owner", Text, nullable=False, server_default="local"),
    Column("seq", Integer),
    Index("chats_by_owner", "owner", "updated"),
    Index("chats_by_seq", "seq"),
)
messages = Table(
    "messages", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("chat_id", Text, ForeignKey("chats.id", ondelete="CASCADE"), nullable=False),
    Column("role", Text, nullable=False),
    Column("content", Text, nullable=False),
    Column("answer", Text),
    Column("error", Text),
    Column("created", Text, nullable=False),
    Index("messages_by_chat", "chat_id", "id"),
    sqlite_autoincrement=True,  # ids never reused: feedback rows point at them
)
feedback = Table(
    "feedback", metadata,
    Column("message_id", _ID, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True,
           autoincrement=False),
    Column("rating", Integer, nullable=False),
    Column("comment", Text, nullable=False),
    Column("settings", Text, nullable=False),
    Column("created", Text, nullable=False),
)
# Work spent per caller (a token, or a client address for wrong tokens) in buckets of a few seconds, so that
# every replica counts against one budget (rag/people/budgets.py). Rows older than the window are deleted.
spent = Table(
    "spent", metadata,
    Column("key", Text, primary_key=True),
    Column("bucket", BigInteger, primary_key=True, autoincrement=False),
    Column("units", Integer, nullable=False),
    Index("spent_by_bucket", "bucket"),
)
PEOPLE = (tokens, users, marks, chats, messages, feedback)


def applied(db: Connection) -> int:
    """The newest version applied to this database; 0 for one never upgraded (empty, or a file from before
    versions: its tables are adopted by migration 1)."""
    if not inspect(db).has_table(versions.name):
        return 0
    return int(db.execute(text("SELECT COALESCE(MAX(version), 0) FROM schema_version")).scalar_one())


def migrate(db: Connection, found: int) -> None:
    """Apply every migration after `found`, in order, recording each (the caller holds the lock)."""
    versions.create(db, checkfirst=True)
    for number, step in enumerate(_MIGRATIONS[found:], start=found + 1):
        step(db)
        db.execute(versions.insert().values(version=number, applied=datetime.now(UTC).isoformat(timespec="seconds")))


def _v1_tables(db: Connection) -> None:
    """The tables, and what the files made before versions lack: a chats table from before owners (its chats
    were the one local user's, so they stay LOCAL's) and the seq that replaces rowid, taken from it."""
    metadata.create_all(db, tables=list(PEOPLE), checkfirst=True)
    columns = {column["name"] for column in inspect(db).get_columns("chats")}
    if "owner" not in columns:
        db.execute(text("ALTER TABLE chats ADD COLUMN owner TEXT NOT NULL DEFAULT 'local'"))
    if "seq" not in columns:
        db.execute(text("ALTER TABLE chats ADD COLUMN seq INTEGER"))
        db.execute(text("UPDATE chats SET seq = rowid"))  # only SQLite files predate the column
    for index in chats.indexes:
        index.create(db, checkfirst=True)


def _v2_spent(db: Connection) -> None:
    """The shared rate-limit counters."""
    spent.create(db, checkfirst=True)


_MIGRATIONS: list[Callable[[Connection], None]] = [_v1_tables, _v2_spent]
assert len(_MIGRATIONS) == VERSION  # noqa: S101 - a migration added without raising VERSION is a bug
