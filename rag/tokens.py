"""Bearer tokens for the HTTP service: each has a role (reader or admin); only a hash of it is kept.

Tokens live in `tokens.sqlite3` beside the index, so a team that shares an index shares its tokens, or in the
PostgreSQL database at RAG_DATABASE_URL, so that every replica knows them (rag/people). A
token is 32 random bytes: a plain SHA-256 of something that random cannot be reversed or guessed, so no
slow password hash is needed, and a lookup by hash costs one indexed query per request.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from .config import Settings
from .errors import UserError
from .people import Database, Session

ROLES = ("reader", "admin")
_PREFIX = "rag_"


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """What is known of a token: never the token itself."""

    id: str
    role: str
    name: str
    created: str
    revoked: str | None = None

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    def to_dict(self) -> dict:
        return asdict(self)


class TokenStore:
    def __init__(self, path: Path | None, database: Database | None = None) -> None:
        self.path = path  # the SQLite file; None in a database server
        self.db = database or Database.file(Path(str(path)), _broken(path))

    @classmethod
    def beside(cls, index_dir: Path) -> TokenStore:
        return cls(index_dir / "tokens.sqlite3")

    @classmethod
    def of(cls, settings: Settings) -> TokenStore:
        """The tokens of this install: RAG_DATABASE_URL's when set, else the file beside the index."""
        if settings.database_url is not None:
            return cls(None, Database.server(settings.database_url))
        return cls.beside(settings.index_dir)

    def create(self, role: str, name: str = "") -> tuple[str, TokenRecord]:
        """A new token and its record: the token is shown to the caller once and never stored."""
        if role not in ROLES:
            raise UserError(f"unknown role {role!r}: use reader or admin")
        token = _PREFIX + secrets.token_urlsafe(32)
        record = TokenRecord("tok_" + secrets.token_hex(4), role, name.strip()[:80], _now())
        with self._connect(create=True) as db:
            db.execute("INSERT INTO tokens (id, hash, role, name, created) VALUES (:id, :hash, :role, :name, :created)",
                       id=record.id, hash=_hash(token), role=record.role, name=record.name, created=record.created)
        return token, record

    def tokens(self) -> list[TokenRecord]:
        """Every token made, revoked ones included, oldest first."""
        if not self.db.exists():
            return []
        with self._connect() as db:
            rows = db.execute("SELECT id, role, name, created, revoked FROM tokens ORDER BY created, id").fetchall()
        return [TokenRecord(*row) for row in rows]

    def revoke(self, token_id: str) -> TokenRecord:
        with self._connect() as db:
            changed = db.execute("UPDATE tokens SET revoked = :now WHERE id = :id AND revoked IS NULL",
                                 now=_now(), id=token_id).rowcount
        if not changed:
            raise UserError(f"no active token {token_id!r}: `rag token list` shows the ids")
        return next(t for t in self.tokens() if t.id == token_id)

    def any_made(self) -> bool:
        """Whether a token was ever made (revoked ones count: revoking them all must not reopen the API)."""
        if not self.db.exists():
            return False
        with self._connect() as db:
            return db.execute("SELECT 1 FROM tokens LIMIT 1").first() is not None

    def any_active(self) -> bool:
        if not self.db.exists():
            return False
        with self._connect() as db:
            return db.execute("SELECT 1 FROM tokens WHERE revoked IS NULL LIMIT 1").first() is not None

    def check(self, token: str) -> TokenRecord | None:
        """The record of an active token, or None."""
        if not token.startswith(_PREFIX) or len(token) > 200 or not self.db.exists():
            return None
        with self._connect() as db:
            row = db.execute("SELECT id, role, name, created, revoked FROM tokens WHERE hash = :hash AND "
                             "revoked IS NULL", hash=_hash(token)).first()
        return TokenRecord(*row) if row else None

    @contextlib.contextmanager
    def _connect(self, create: bool = False) -> Iterator[Session]:
        if not create and not self.db.exists():
            raise UserError(f"no tokens made yet in {self.db.where if self.path is None else self.path.parent}: "
                            "run `rag token create --role reader`")
        with self.db.begin(create) as db:
            yield db


def _broken(path: Path | None) -> Callable[[str], UserError]:
    """The store's words for a file it cannot use."""

    def problem(reason: str) -> UserError:
        return UserError(f"cannot use the token file {path} ({reason}): check its permissions and the free disk "
                         "space, or move it away and make new tokens")

    return problem


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
