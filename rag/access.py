"""Who may use the chat app, and as what: the sign-in rules, free of Streamlit so they test alone.

A reader asks questions and reads the sources and the saved chats; an admin may also re-ingest, upload and
remove documents.
The app served on loopback with nothing configured is one local user, an admin, with no sign-in.
Anything else (served on another address, or a password or OIDC configured) asks for a sign-in first.
"""

from __future__ import annotations

import hmac
import importlib.util
import ipaddress
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .config import Secret, Settings

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

    @property
    def refused(self) -> bool:
        return not (self.open or self.password or self.oidc)


@dataclass(frozen=True)
class Visitor:
    """Whoever uses a session: their role, how they signed in ('local' is loopback with no sign-in), and
    a name to show (an OIDC e-mail; never a password)."""

    role: Role
    via: Literal["local", "password", "oidc"]
    name: str = ""


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


def gate(settings: Settings, address: str | None, oidc_configured: bool) -> Gate:
    has_password = _configured(settings.app_password) or _configured(settings.app_admin_password)
    if not has_password and not oidc_configured:
        return Gate(open=is_loopback(address), password=False, oidc=False)
    # Configured sign-in applies on loopback too: a reverse proxy on this host makes loopback reachable.
    return Gate(open=False, password=has_password, oidc=oidc_configured)


def refusal(address: str | None) -> str:
    where = address or "all interfaces"
    return (f"The app is served on {where} with no sign-in: set RAG_APP_PASSWORD (and RAG_APP_ADMIN_PASSWORD), "
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
    with _WRONG_PASSWORD:
        time.sleep(WRONG_PASSWORD_DELAY)
    return None


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
