"""People who sign in to the chat app by name and password, each a reader or an admin.

Users live in `users.sqlite3` beside the index, like the API's tokens, so a team that shares an index
shares its people (or in the PostgreSQL database at RAG_DATABASE_URL, shared by every replica: rag/people).
Unlike a token, a password is chosen by a person and may be guessed, so only a slow, salted hash of it is
kept: the standard library's scrypt, stored as a self-describing string
(`scrypt$16384$8$1$<salt>$<hash>`) so that stronger parameters later still verify older hashes.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import secrets
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from .config import Settings
from .errors import UserError
from .people import Conflict, Database, Session

ROLES = ("reader", "admin")
NAME_CHARS = 64
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # scrypt hashes any length quickly; the cap only keeps absurd input out of memory
# scrypt's cost: 16 MiB and about 50 ms per hash, which makes each guess at a stolen file that slow too.
_N, _R, _P = 2**14, 8, 1
_SALT_BYTES, _HASH_BYTES = 16, 32
_MAXMEM = 64 * 2**20  # above OpenSSL's 32 MiB default, so a stored hash with up to n=2**15 still verifies


@dataclass(frozen=True, slots=True)
class UserRecord:
    """What is known of a user: never the password nor its hash."""

    name: str
    role: str
    created: str
    changed: str  # when the password was last set: a later change signs out the app's older sessions

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    @property
    def owner(self) -> str:
        """Whose chats are theirs: the name's key, so "Ada" and "ada" are one person."""
        return "user:" + name_key(self.name)

    def to_dict(self) -> dict:
        return asdict(self)


def clean_name(name: str) -> str:
    """The name as stored and shown, or a UserError saying what a name may be."""
    name = unicodedata.normalize("NFC", name).strip()
    if not 1 <= len(name) <= NAME_CHARS or not name.isprintable():
        raise UserError(f"a user name is 1 to {NAME_CHARS} printable characters (no tabs, newlines or control "
                        "characters): choose another")
    return name


def name_key(name: str) -> str:
    """What makes two names the same person: Unicode compatibility forms and case are ignored."""
    return unicodedata.normalize("NFKC", clean_name(name)).casefold()


def check_password(password: str) -> str:
    """The password, or a UserError saying what a password must be."""
    if len(password) < MIN_PASSWORD:
        raise UserError(f"a password needs at least {MIN_PASSWORD} characters: choose a longer one")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"a password is at most {MAX_PASSWORD} characters: choose a shorter one")
    try:
        password.encode()
    except UnicodeEncodeError:  # a lone surrogate, from a broken terminal or pipe: no bytes to hash
        raise UserError("the password is not valid text: type it again") from None
    return password


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)  # binascii.Error is a ValueError


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_HASH_BYTES, maxmem=_MAXMEM)
    return "$".join(["scrypt", str(_N), str(_R), str(_P), _b64(salt), _b64(digest)])


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` is the one `stored` was made from; a malformed hash matches nothing."""
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        cost = int(n), int(r), int(p)
        if scheme != "scrypt" or not _sane(*cost):
            return False
        digest = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=cost[0], r=cost[1], p=cost[2],
                                dklen=len(_unb64(expected)), maxmem=_MAXMEM)
    except ValueError:  # wrong field count, not numbers, bad base64, or parameters scrypt refuses
        return False
    return hmac.compare_digest(digest, _unb64(expected))


def _sane(n: int, r: int, p: int) -> bool:
    """Parameters scrypt can take in bounded memory and time, whatever the file says."""
    return 2 <= n <= 2**20 and 1 <= r <= 32 and 1 <= p <= 16


# Checked for unknown names so they take as long as known ones (one scrypt). Random bytes in the hash's
# shape: no password leads to them, and making them costs nothing, not even on the first check.
_DECOY = "$".join(["scrypt", str(_N), str(_R), str(_P), _b64(secrets.token_bytes(_SALT_BYTES)),
                   _b64(secrets.token_bytes(_HASH_BYTES))])


class UserStore:
    def __init__(self, path: Path | None, database: Database | None = None) -> None:
        self.path = path  # the SQLite file; None in a database server
        self.db = database or Database.file(Path(str(path)), _broken(path), private=True)

    @classmethod
    def beside(cls, index_dir: Path) -> UserStore:
        return cls(Path(index_dir) / "users.sqlite3")

    @classmethod
    def of(cls, settings: Settings) -> UserStore:
        """The users of this install: RAG_DATABASE_URL's when set, else the file beside the index."""
        if settings.database_url is not None:
            return cls(None, Database.server(settings.database_url))
        return cls.beside(settings.index_dir)

    def add(self, name: str, role: str, password: str) -> UserRecord:
        name = clean_name(name)
        if role not in ROLES:
            raise UserError(f"unknown role {role!r}: use reader or admin")
        hashed, now = hash_password(check_password(password)), _now()
        try:
            with self._connect(create=True) as db:
                db.execute("INSERT INTO users (key, name, role, hash, created, changed) VALUES (:key, :name, :role, "
                           ":hash, :now, :now)", key=name_key(name), name=name, role=role, hash=hashed, now=now)
                db.execute("INSERT INTO marks (name, created) VALUES ('user_added', :now) ON CONFLICT (name) DO "
                           "NOTHING", now=now)
        except Conflict:
            raise UserError(f"a user named {name!r} already exists: `rag user passwd` sets a new password, "
                            "`rag user remove` removes them") from None
        return UserRecord(name, role, now, now)

    def users(self) -> list[UserRecord]:
        """Everyone, by name."""
        if not self.db.exists():
            return []
        with self._connect() as db:
            rows = db.execute("SELECT name, role, created, changed FROM users ORDER BY key").fetchall()
        return [UserRecord(*row) for row in rows]

    def get(self, name: str) -> UserRecord | None:
        found = self._row(name_key(name))
        return UserRecord(*found[:4]) if found else None

    def remove(self, name: str) -> UserRecord:
        record = self._existing(name)
        with self._connect() as db:
            db.execute("DELETE FROM users WHERE key = :key", key=name_key(name))
        return record

    def set_password(self, name: str, password: str) -> UserRecord:
        self._existing(name)
        hashed, now = hash_password(check_password(password)), _now()
        with self._connect() as db:
            db.execute("UPDATE users SET hash = :hash, changed = :now WHERE key = :key",
                       hash=hashed, now=now, key=name_key(name))
        return self._existing(name)

    def check(self, name: str, password: str) -> UserRecord | None:
        """The user this name and password sign in as, or None. Every call spends one scrypt, whether the
        name exists or not, so the time taken does not tell which names do."""
        try:
            key: str | None = name_key(name)
        except UserError:  # not a valid name: nobody has it
            key = None
        found = self._row(key) if key is not None and len(password) <= MAX_PASSWORD else None
        stored = found[4] if found else _DECOY
        matches = verify_password(password[:MAX_PASSWORD], stored)
        return UserRecord(*found[:4]) if found and matches else None

    def any_users(self) -> bool:
        if not self.db.exists():
            return False
        with self._connect() as db:
            return db.execute("SELECT 1 FROM users LIMIT 1").first() is not None

    def any_made(self) -> bool:
        """Whether a user was ever added, removed ones included: removing them all must not reopen the API's
        no-token mode. A user file is made with the first user and stays (older files have no mark)."""
        if self.path is not None:
            return self.path.exists()
        with self._connect() as db:
            return db.execute("SELECT 1 FROM marks WHERE name = 'user_added'").first() is not None

    def _row(self, key: str) -> tuple[str, ...] | None:  # name, role, created, changed, hash
        if not self.db.exists():
            return None
        with self._connect() as db:
            row = db.execute("SELECT name, role, created, changed, hash FROM users WHERE key = :key", key=key).first()
        return tuple(row) if row else None

    def _existing(self, name: str) -> UserRecord:
        record = self.get(name)
        if record is None and not self.db.exists():
            raise self._none_yet()
        if record is None:
            raise UserError(f"no user named {clean_name(name)!r}: `rag user list` shows who there is")
        return record

    @contextlib.contextmanager
    def _connect(self, create: bool = False) -> Iterator[Session]:
        if not create and not self.db.exists():
            raise self._none_yet()
        with self.db.begin(create) as db:
            yield db

    def _none_yet(self) -> UserError:
        where = self.db.where if self.path is None else self.path.parent
        return UserError(f"no users added yet in {where}: run `rag user add NAME --role reader`")


def _broken(path: Path | None) -> Callable[[str], UserError]:
    """The store's words for a file it cannot use."""

    def problem(reason: str) -> UserError:
        return UserError(f"cannot use the user file {path} ({reason}): check its permissions and the free "
                         "disk space, or move it away and add the users again")

    return problem


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
