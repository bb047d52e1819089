"""One store's database: a SQLite file (the embedded default) or the PostgreSQL server at RAG_DATABASE_URL.

Each call of `begin()` is one transaction. The schema is brought to this code's version on first use, under
a lock that keeps two processes from migrating at once: SQLite's write lock (BEGIN IMMEDIATE), PostgreSQL's
advisory lock. A database newer than the code is refused in one line. Errors come out as the package's own:
Conflict for a duplicate key, the store's UserError for a broken file, DatabaseUnavailable for a server
that cannot be reached (the service answers 503), and never with the URL's password.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..config import Secret
from ..errors import UserError
from ..extras import require

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

VARIABLE = "RAG_DATABASE_URL"
_LOCK_KEY = 0x7261675F70656F70  # "rag_peop": the advisory lock of schema upgrades, one per database
_RECHECK = 30.0  # seconds: a replica notices within this that another one upgraded the schema past its code
_servers: dict[str, Database] = {}  # one engine (and its pool) per URL in this process
_servers_lock = threading.Lock()


class Conflict(Exception):
    """A row that breaks a unique key; the store says what that means to the user."""


class DatabaseUnavailable(UserError):
    """The database server cannot be reached or refused us: fixable by whoever runs it (exit 2; HTTP 503)."""


class SchemaTooNew(UserError):
    def __init__(self, where: str, found: int, known: int) -> None:
        super().__init__(f"{where} has schema version {found}, newer than this rag's {known}: upgrade rag on this "
                         "machine (every replica runs the same version), or use another database")


class Session:
    """A transaction's connection, taking SQL with :named parameters (the same text for both engines)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def execute(self, sql: str, **params: Any) -> Any:  # a CursorResult: rows, rowcount, scalar()
        from sqlalchemy import text

        return self._connection.execute(text(sql), params)


class Database:
    """Use `file()` or `server()`; a store holds one and opens a transaction per call."""

    def __init__(self, path: Path | None, url: Secret | None, problem: Callable[[str], UserError],
                 private: bool = False, wal: bool = False) -> None:
        self.path, self._url, self._problem = path, url, problem
        self._private, self._wal = private, wal
        self._engine: Engine | None = None
        self._making = threading.Lock()  # two threads' first calls make one engine (one pool), not two
        self._checked: float | None = None  # when the schema was last found current: not checked per call

    @classmethod
    def file(cls, path: Path, problem: Callable[[str], UserError], private: bool = False,
             wal: bool = False) -> Database:
        """A SQLite file; `private`: made readable by its owner only; `wal`: readers never wait for a writer."""
        return cls(Path(path), None, problem, private, wal)

    @classmethod
    def server(cls, url: Secret) -> Database:
        """The PostgreSQL database at `url`, shared by every store of this process (one pool)."""
        with _servers_lock:
            if url.get_secret_value() not in _servers:
                _servers[url.get_secret_value()] = cls(None, url, _unavailable(url))
            return _servers[url.get_secret_value()]

    @property
    def where(self) -> str:
        """The database in words, for messages: a file's path, or the URL without its password."""
        return str(self.path) if self.path is not None else f"the database at {VARIABLE} ({shown(self._url)})"

    def exists(self) -> bool:
        """Whether there is anything to read: a SQLite file is made by the first write only."""
        return self.path is None or self.path.exists()

    @contextlib.contextmanager
    def begin(self, create: bool = False) -> Iterator[Session]:
        """One transaction, committed when the block ends; `create`: make the SQLite file when missing."""
        with self._errors():
            if self.path is not None and not self.path.exists():
                self._checked = None  # moved away since: the new file needs its tables
                if create:
                    self._make_file()
            if self._checked is None or time.monotonic() - self._checked > _RECHECK:
                self._check()
            with self.engine().connect() as connection, connection.begin():
                yield Session(connection)

    def upgrade(self) -> tuple[int, int]:
        """Bring the schema to this code's version under the lock; (version found, version now)."""
        from . import schema

        with self._errors():
            if self.path is not None:
                self._make_file()
            with self.engine().connect() as connection:
                connection.execution_options(sqlite_begin="BEGIN IMMEDIATE")  # the write lock, taken first
                with connection.begin():
                    if self.path is None:
                        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")
                    found = schema.applied(connection)
                    if found > schema.VERSION:
                        raise SchemaTooNew(self.where, found, schema.VERSION)
                    schema.migrate(connection, found)
        self._checked = time.monotonic()
        return found, schema.VERSION

    @contextlib.contextmanager
    def held(self, key: int, timeout: float, on_wait: Callable[[], None] | None = None) -> Iterator[Hold]:
        """A PostgreSQL advisory lock held for the block, on a connection of its own: across machines, one
        holder at a time. The Hold is false when the lock was not had within `timeout` seconds. The server
        frees it when the holder's connection ends, so a writer that was killed never leaves it taken; and
        so does a server restart, which `Hold.kept()` tells."""
        with contextlib.ExitStack() as stack:
            with self._errors():  # the block's own errors are not the database's
                connection = stack.enter_context(self.engine().connect())
                had = _take(connection, key, timeout, on_wait)
            try:
                yield Hold(had, connection)
            finally:
                if had:
                    try:
                        connection.exec_driver_sql(f"SELECT pg_advisory_unlock({int(key)})")
                        connection.commit()
                    except Exception:  # noqa: BLE001 - lost with its connection, which must not go back to the pool
                        connection.invalidate()

    def engine(self) -> Engine:
        with self._making:
            if self._engine is None and self.path is not None:
                self._engine = _file_engine(self.path, self._wal)
            elif self._engine is None:
                self._engine = _server_engine(self._url)
            return self._engine

    def _check(self) -> None:
        """Upgrade an older schema; refuse a newer one. Most calls find it current and take no lock."""
        from . import schema

        with self.engine().connect() as connection:
            found = schema.applied(connection)
        if found > schema.VERSION:
            raise SchemaTooNew(self.where, found, schema.VERSION)
        if found < schema.VERSION:
            self.upgrade()
        self._checked = time.monotonic()

    def _make_file(self) -> None:
        assert self.path is not None  # noqa: S101 - only files are made
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._private and not self.path.exists():  # SQLite's journals copy the file's mode
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        from sqlalchemy import exc

        try:
            yield
        except exc.IntegrityError:
            raise Conflict() from None
        except (exc.SQLAlchemyError, OSError) as error:
            raise self._problem(_reason(error, self._url)) from None


class Hold:
    """An advisory lock taken (or not: false) on its own connection."""

    def __init__(self, had: bool, connection: Connection) -> None:
        self.had = had
        self._connection = connection

    def __bool__(self) -> bool:
        return self.had

    def kept(self) -> bool:
        """Whether it is still held: its connection still answers (a server restart ends the session and
        every lock it held)."""
        try:
            self._connection.exec_driver_sql("SELECT 1")
            self._connection.commit()
        except Exception:  # noqa: BLE001 - any failure of the lock's own connection means the lock is gone
            return False
        return self.had


def _take(connection: Connection, key: int, timeout: float, on_wait: Callable[[], None] | None) -> bool:
    """Try for the session's advisory lock until `timeout`, telling `on_wait` once when it has to wait."""
    deadline = time.monotonic() + timeout
    waited = False
    while True:
        had = bool(connection.exec_driver_sql(f"SELECT pg_try_advisory_lock({int(key)})").scalar())
        connection.commit()  # no transaction stays open while the lock is held or awaited
        if had or time.monotonic() >= deadline:
            return had
        if not waited and on_wait is not None:
            on_wait()
        waited = True
        time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))


def forget(url: str) -> None:
    """Close the pool of the database at `url` and drop it from this process (a test's database, dropped next)."""
    with _servers_lock:
        found = _servers.pop(url, None)
    if found is not None and found._engine is not None:
        found._engine.dispose()


def _file_engine(path: Path, wal: bool) -> Engine:
    """A SQLite file with no pool: each transaction opens its own connection, as the stores always did, so a
    file moved aside is never held open. Python's sqlite3 is left no transaction of its own: the `begin`
    event starts each one (BEGIN, or BEGIN IMMEDIATE to take the write lock at once)."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.pool import NullPool

    engine = create_engine("sqlite://", creator=lambda: sqlite3.connect(path, timeout=10), poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def connected(connection: sqlite3.Connection, _record: object) -> None:
        connection.isolation_level = None
        connection.execute("PRAGMA foreign_keys = ON")  # per connection: messages and feedback cascade
        if wal:
            connection.execute("PRAGMA journal_mode = WAL")  # kept in the file; a no-op once set

    @event.listens_for(engine, "begin")
    def began(connection: Connection) -> None:
        connection.exec_driver_sql(connection.get_execution_options().get("sqlite_begin", "BEGIN"))

    return engine


def _server_engine(url: Secret | None) -> Engine:
    """PostgreSQL through psycopg 3, with a pool whose connections are tested before use: after a restart of
    the server the next request gets a fresh connection instead of the dead one."""
    assert url is not None  # noqa: S101 - a Database is a file or a server
    require("psycopg", "postgres", VARIABLE)
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url.get_secret_value()).set(drivername="postgresql+psycopg")
    except (ArgumentError, ValueError):  # its message holds the URL, password included: not shown
        raise UserError(f"{VARIABLE} is not a database URL: write it as "
                        "postgresql://USER:PASSWORD@HOST:5432/DATABASE") from None
    return create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=10, pool_timeout=10,
                         hide_parameters=True, connect_args={"connect_timeout": 5})


def shown(url: Secret | None) -> str:
    """The URL without its password, for messages and logs."""
    raw = url.get_secret_value() if url is not None else ""
    try:
        parts = urlsplit(raw)
        user = f"{parts.username}:***@" if parts.password else (f"{parts.username}@" if parts.username else "")
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "not a valid URL"
    return f"{parts.scheme}://{user}{parts.hostname or ''}{port}{parts.path}"


def _reason(error: BaseException, url: Secret | None) -> str:
    """The driver's own first line (not SQLAlchemy's, which adds the statement), with no password in it."""
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()
    line = reason[0].strip() if reason else type(error).__name__
    password = urlsplit(url.get_secret_value()).password if url is not None else None
    return line.replace(password, "***") if password else line


def _unavailable(url: Secret) -> Callable[[str], UserError]:
    def problem(reason: str) -> UserError:
        return DatabaseUnavailable(f"the database at {VARIABLE} ({shown(url)}) cannot be used ({reason}): check "
                                   "the URL, that PostgreSQL is running and accepts this user and password, and "
                                   "that the database exists; then try again")

    return problem
