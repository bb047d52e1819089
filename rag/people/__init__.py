"""People's state: users, tokens, chats, messages and feedback, in SQLite by default or in PostgreSQL when
RAG_DATABASE_URL is set, so that replicas share it.

Built on SQLAlchemy Core (not its ORM), with psycopg 3 as the PostgreSQL driver. Core rather than psycopg
alone because one set of table definitions (people/schema.py) then creates the same schema in both engines,
its dialects smooth what differs (autoincrement ids, types, DDL with IF NOT EXISTS), the stores' SQL stays
one text with :named parameters for both, and its pool checks a connection before use (pre-ping), which is
how replicas survive a PostgreSQL restart. psycopg's own pool would serve PostgreSQL only and leave SQLite
with a second copy of every statement and table.

Without RAG_DATABASE_URL nothing moves: tokens.sqlite3 and users.sqlite3 beside the index and the chat file
at RAG_CHATS_PATH stay where they are, each a versioned database of its own (holding the whole schema, and
using its store's tables), so existing installs keep their data and are migrated in place.

With a server, replicas also share the rate-limit budgets (budgets.py) and the index's one-writer lock
(`Database.held`, an advisory lock, taken by rag/ingest.py's writer_lock).
"""

from __future__ import annotations

from .database import VARIABLE, Conflict, Database, DatabaseUnavailable, Hold, SchemaTooNew, Session, shown

__all__ = ["VARIABLE", "Conflict", "Database", "DatabaseUnavailable", "Hold", "SchemaTooNew", "Session", "shown"]
