"""Who may use the chat app, and as what: the sign-in rules, free of Streamlit so they test alone.

A reader asks questions and reads the sources and the saved chats; an admin may also re-ingest, upload and
remove documents.
The app served on loopback with nothing configured is one local user, an admin, with no sign-in.
Anything else (served on another address, a password, OIDC or a named user configured) asks for a
sign-in first.

Each visitor has an owner key, and chats belong to it (rag/chats.py): a named user's is their name, an
OIDC user's their e-mail, and the shared password's is its browser session's, since a password many
people share says nothing of which of them is typing.
"""

from __future__ import annotations

import hmac
import importlib.util
import ipaddress
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .chats import LOCAL as LOCAL_OWNER
from .config import Secret, Settings
from .users import UserRecord, UserStore

Role = Literal["reader", "admin"]

# Each wrong password holds this lock for WRONG_PASSWORD_DELAY seconds: guesses from every session together
# go at most one a second, while a right password never waits for the lock.
WRONG_PASSWORD_DELAY = 1.0
_WRONG_PASSWORD = threading.Lock()


@dataclass(frozen=True)
class Gate:
    """What the app asks before anything else: nothing (`open`), a password, an OIDC sign-in, or neither
    possible (`refused`: served beyond loopback with no way to sign in)."""

    open: bool
    password: bool
    oidc: bool
    users: bool = False  # named users exist: the password form asks for a name too

    @property
    def refused(self) -> bool:
        return not (self.open or self.password or self.oidc)


@dataclass(frozen=True)
class Visitor:
    """Whoever uses a session: their role, how they signed in ('local' is loopback with no sign-in,
    'password' the shared password, 'user' a name and password), a name to show (a user's name or an
    OIDC e-mail; never a password), and the owner key their chats are kept under."""

    role: Role
    via: Literal["local", "password", "user", "oidc"]
    name: str = ""
    owner: str = LOCAL_OWNER
    password_set: str = ""  # for a named user: when their password was set, so a change signs this out

    @property
    def shared(self) -> bool:
        """Signed in with the shared password: nobody in particular, so chats last for this session."""
        return self.via == "password"


LOCAL = Visitor("admin", "local")


def user_visitor(record: UserRecord) -> Visitor:
    return Visitor("admin" if record.admin else "reader", "user", record.name, record.owner, record.changed)


def session_visitor(role: Role) -> Visitor:
    """A shared-password sign-in: its owner key is new, so its chats are this browser session's alone."""
    return Visitor(role, "password", owner="session:" + secrets.token_urlsafe(16))


def oidc_visitor(user: Mapping[str, Any], settings: Settings) -> Visitor:
    email = str(user.get("email") or "").strip()
    return Visitor(oidc_role(user, settings), "oidc", email, oidc_owner(user))


def oidc_owner(user: Mapping[str, Any]) -> str:
    """An OIDC user's owner key: their e-mail, lower-cased; or, when the provider says the e-mail is
    unverified (anyone may have typed it), the provider's subject id, which no one else can claim."""
    email = str(user.get("email") or "").strip().lower()
    if email and user.get("email_verified", True) is not False:
        return "oidc:" + email
    return f"oidc-subject:{user.get('iss') or ''}:{user.get('sub') or ''}"


def is_loopback(address: str | None) -> bool:
    """Whether Streamlit's server.address keeps the app on this machine; unset or empty means all interfaces."""
    if not address:
        return False
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def gate(settings: Settings, address: str | None, oidc_configured: bool, users: bool = False,
         proxied: bool = False) -> Gate:
    """`users`: whether any named user exists (`rag user add`); `proxied`: whether the visitor came through a
    reverse proxy (see `proxied`), which is no local user even when the app is on loopback."""
    has_password = users or shared_password(settings)
    if not has_password and not oidc_configured:
        return Gate(open=is_loopback(address) and not proxied, password=False, oidc=False)
    # Configured sign-in applies on loopback too: a reverse proxy on this host makes loopback reachable.
    return Gate(open=False, password=has_password, oidc=oidc_configured, users=users)


def shared_password(settings: Settings) -> bool:
    return _configured(settings.app_password) or _configured(settings.app_admin_password)


def proxied(headers: Mapping[str, str]) -> bool:
    """Whether a request came through a reverse proxy (it names the client it forwards for). A proxy on this
    host reaches the app on loopback for everyone it serves, so they must not be taken for the local user,
    as `rag serve` answers a proxied request without a token with 401."""
    names = {name.lower() for name in headers}
    return "x-forwarded-for" in names or "forwarded" in names


def refusal(address: str | None, through_proxy: bool = False) -> str:
    where = "reached through a reverse proxy" if through_proxy else f"served on {address or 'all interfaces'}"
    return (f"The app is {where} with no sign-in: set RAG_APP_PASSWORD (and RAG_APP_ADMIN_PASSWORD), "
            "or configure OIDC in .streamlit/secrets.toml [auth], then restart it.")


def password_role(given: str, settings: Settings) -> Role | None:
    """The role a password signs in as, or None (after a short wait, to slow guessing)."""
    given_bytes = given.encode()
    # Both are compared every time, so the time taken does not tell which password exists.
    admin = _matches(given_bytes, settings.app_admin_password)
    reader = _matches(given_bytes, settings.app_password)
    if admin:
        return "admin"
    if reader:
        return "reader"
    _wrong_guess()
    return None


def password_visitor(name: str, password: str, settings: Settings, users: UserStore) -> Visitor | None:
    """Who the sign-in form's name and password are, or None (after the wrong-guess wait). A name signs in
    as that user only; no name, with the shared password."""
    if name.strip():
        record = users.check(name, password)
        if record is not None:
            return user_visitor(record)
    elif shared_password(settings):
        role = password_role(password, settings)  # waits itself when wrong
        return session_visitor(role) if role is not None else None
    _wrong_guess()
    return None


def still_signed_in(visitor: Visitor, users: UserStore) -> bool:
    """Whether a session's sign-in still holds: a named user removed, or whose password was changed,
    since they signed in is signed out (`rag user remove` and `passwd` take effect at the next click)."""
    if visitor.via != "user":
        return True
    record = users.get(visitor.name)
    return record is not None and user_visitor(record) == visitor


def _wrong_guess() -> None:
    with _WRONG_PASSWORD:
        time.sleep(WRONG_PASSWORD_DELAY)


def _configured(secret: Secret | None) -> bool:
    return secret is not None and secret.get_secret_value() != ""  # an empty password is no password


def _matches(given: bytes, secret: Secret | None) -> bool:
    expected = secret.get_secret_value().encode() if secret is not None else b""
    return expected != b"" and hmac.compare_digest(given, expected)


def admins(settings: Settings) -> frozenset[str]:
    """The admins' e-mail addresses from RAG_APP_ADMINS, lower-cased."""
    return frozenset(part.strip().lower() for part in (settings.app_admins or "").split(",") if part.strip())


def oidc_role(user: Mapping[str, Any], settings: Settings) -> Role:
    """The role of a user signed in with OIDC (their identity token's claims): admin when their e-mail is
    listed and the provider has not said it is unverified, reader otherwise."""
    email = str(user.get("email") or "").strip().lower()
    verified = user.get("email_verified", True) is not False
    return "admin" if email and verified and email in admins(settings) else "reader"


def oidc_providers(auth: Mapping[str, Any]) -> list[str | None]:
    """The providers of secrets.toml's [auth]: its named sub-tables ([auth.google]...), or None for the
    one provider written in [auth] itself."""
    named = [name for name, value in auth.items() if isinstance(value, Mapping)]
    return list(named) or [None]


def authlib_installed() -> bool:
    """st.login needs Authlib (pip install "streamlit[auth]")."""
    return importlib.util.find_spec("authlib") is not None
