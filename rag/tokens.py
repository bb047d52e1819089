"""Bearer tokens for the HTTP service: each has a role (reader or admin); only a hash of it is kept.

Tokens live in `tokens.sqlite3` beside the index, so a team that shares an index shares its tokens. A
token is 32 random bytes: a plain SHA-256 of something that random cannot be reversed or guessed, so no
slow password hash is needed, and a lookup by hash costs one indexed query per request.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from .errors import UserError

ROLES = ("reader", "admin")
_PREFIX = "rag_"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    created TEXT NOT NULL,
    revoked TEXT
)
"""


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
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def beside(cls, index_dir: Path) -> TokenStore:
        return cls(index_dir / "tokens.sqlite3")

    def create(self, role: str, name: str = "") -> tuple[str, TokenRecord]:
        """A new token and its record: the token is shown to the caller once and never stored."""
        if role not in ROLES:
            raise UserError(f"unknown role {role!r}: use reader or admin")
        token = _PREFIX + secrets.token_urlsafe(32)
        record = TokenRecord("tok_" + secrets.token_hex(4), role, name.strip()[:80], _now())
        with self._connect(create=True) as db:
            db.execute("INSERT INTO tokens (id, hash, role, name, created) VALUES (?, ?, ?, ?, ?)",
                       (record.id, _hash(token), record.role, record.name, record.created))
        return token, record

    def tokens(self) -> list[TokenRecord]:
        """Every token made, revoked ones included, oldest first."""
        if not self.path.exists():
            return []
        with self._connect() as db:
            rows = db.execute("SELECT id, role, name, created, revoked FROM tokens ORDER BY created, id").fetchall()
        return [TokenRecord(*row) for row in rows]

    def revoke(self, token_id: str) -> TokenRecord:
        with self._connect() as db:
            changed = db.execute("UPDATE tokens SET revoked = ? WHERE id = ? AND revoked IS NULL",
                                 (_now(), token_id)).rowcount
        if not changed:
            raise UserError(f"no active token {token_id!r}: `rag token list` shows the ids")
        return next(t for t in self.tokens() if t.id == token_id)

    def any_made(self) -> bool:
        """Whether a token was ever made (revoked ones count: revoking them all must not reopen the API)."""
        if not self.path.exists():
            return False
        with self._connect() as db:
            return db.execute("SELECT 1 FROM tokens LIMIT 1").fetchone() is not None

    def any_active(self) -> bool:
        if not self.path.exists():
            return False
        with self._connect() as db:
            return db.execute("SELECT 1 FROM tokens WHERE revoked IS NULL LIMIT 1").fetchone() is not None

    def check(self, token: str) -> TokenRecord | None:
        """The record of an active token, or None."""
        if not token.startswith(_PREFIX) or len(token) > 200 or not self.path.exists():
            return None
        with self._connect() as db:
            row = db.execute("SELECT id, role, name, created, revoked FROM tokens WHERE hash = ? AND revoked IS NULL",
                             (_hash(token),)).fetchone()
        return TokenRecord(*row) if row else None

    @contextlib.contextmanager
    def _connect(self, create: bool = False) -> Iterator[sqlite3.Connection]:
        if not create and not self.path.exists():
            raise UserError(f"no tokens made yet in {self.path.parent}: run `rag token create --role reader`")
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10)
            try:
                with db:
                    if create:
                        db.execute(_SCHEMA)
                    yield db
            finally:
                db.close()
        except sqlite3.DatabaseError as exc:
            raise UserError(f"cannot use the token file {self.path} ({exc}): check its permissions and the "
                            "free disk space, or move it away and make new tokens") from None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
