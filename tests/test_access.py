"""The app's sign-in rules (rag/access.py), without Streamlit: addresses, gates, passwords, admins."""

from __future__ import annotations

import json
import time

import pytest

from rag import access
from rag.config import Settings

READER, ADMIN = "reader-pw-SENTINEL", "admin-pw-SENTINEL"


@pytest.fixture(autouse=True)
def no_wait(monkeypatch):
    monkeypatch.setattr(access, "WRONG_PASSWORD_DELAY", 0.0)


def settings(**values) -> Settings:
    return Settings(_env_file=None, **values)


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_addresses(address):
    assert access.is_loopback(address)


@pytest.mark.parametrize("address", [None, "", "0.0.0.0", "::", "192.168.1.20", "example.com"])
def test_other_addresses_are_not_loopback(address):
    assert not access.is_loopback(address)


def test_loopback_with_nothing_configured_is_open():
    assert access.gate(settings(), "127.0.0.1", oidc_configured=False).open


@pytest.mark.parametrize("address", [None, "0.0.0.0"])
def test_opened_up_with_nothing_configured_is_refused_saying_what_to_set(address):
    gate = access.gate(settings(), address, oidc_configured=False)
    assert gate.refused and not gate.open
    message = access.refusal(address)
    assert "RAG_APP_PASSWORD" in message and "[auth]" in message and "\n" not in message


def test_through_a_proxy_with_nothing_configured_is_refused_on_loopback_too():
    """nginx on the same host reaches a loopback app for everyone it serves: none of them is the local user."""
    assert access.proxied({"X-Forwarded-For": "203.0.113.7"}) and access.proxied({"forwarded": "for=203.0.113.7"})
    assert not access.proxied({"Host": "localhost:8501"})
    gate = access.gate(settings(), "127.0.0.1", oidc_configured=False, proxied=True)
    assert gate.refused and not gate.open
    assert access.refusal("127.0.0.1", through_proxy=True).startswith("The app is reached through a reverse proxy")
    gate = access.gate(settings(app_password=READER), "127.0.0.1", oidc_configured=False, proxied=True)
    assert gate.password and not gate.refused


def test_an_empty_password_is_no_password():
    assert access.gate(settings(app_password=""), "0.0.0.0", oidc_configured=False).refused


@pytest.mark.parametrize("address", ["0.0.0.0", "127.0.0.1"])
def test_a_configured_sign_in_applies_on_any_address(address):
    """On loopback too: a reverse proxy on the same host would otherwise open the app to everyone."""
    gate = access.gate(settings(app_admin_password=ADMIN), address, oidc_configured=False)
    assert (gate.open, gate.password, gate.oidc, gate.refused) == (False, True, False, False)
    gate = access.gate(settings(), address, oidc_configured=True)
    assert (gate.open, gate.password, gate.oidc) == (False, False, True)


def test_passwords_give_their_roles():
    both = settings(app_password=READER, app_admin_password=ADMIN)
    assert access.password_role(READER, both) == "reader"
    assert access.password_role(ADMIN, both) == "admin"
    assert access.password_role("", both) is None
    assert access.password_role(READER + " ", both) is None
    assert access.password_role(READER, settings(app_admin_password=ADMIN)) is None
    assert access.password_role("", settings(app_password="")) is None  # an empty one never matches


def test_a_wrong_password_waits(monkeypatch):
    monkeypatch.setattr(access, "WRONG_PASSWORD_DELAY", 0.2)
    configured = settings(app_password=READER)
    started = time.monotonic()
    assert access.password_role("guess", configured) is None
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    assert access.password_role(READER, configured) == "reader"
    assert time.monotonic() - started < 0.2


def test_passwords_are_never_shown():
    configured = settings(app_password=READER, app_admin_password=ADMIN)
    shown = repr(configured) + str(configured) + json.dumps(configured.as_dict())
    assert READER not in shown and ADMIN not in shown


def test_oidc_admins_are_the_listed_verified_emails():
    configured = settings(app_admins=" Ada@Example.com, grace@example.com ,")
    assert access.admins(configured) == {"ada@example.com", "grace@example.com"}
    assert access.oidc_role({"is_logged_in": True, "email": "ada@example.com"}, configured) == "admin"
    assert access.oidc_role({"email": "ADA@example.com", "email_verified": True}, configured) == "admin"
    assert access.oidc_role({"email": "ada@example.com", "email_verified": False}, configured) == "reader"
    assert access.oidc_role({"email": "eve@example.com"}, configured) == "reader"
    assert access.oidc_role({}, configured) == "reader"
    assert access.oidc_role({"email": "ada@example.com"}, settings()) == "reader"


def test_oidc_providers_are_the_named_tables_or_the_default():
    assert access.oidc_providers({"redirect_uri": "x", "cookie_secret": "y", "client_id": "z"}) == [None]
    assert access.oidc_providers({"redirect_uri": "x", "google": {"client_id": "a"},
                                  "microsoft": {"client_id": "b"}}) == ["google", "microsoft"]
