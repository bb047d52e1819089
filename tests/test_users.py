"""People who sign in by name and password (rag/users.py), `rag user`, and how a sign-in becomes an owner."""

from __future__ import annotations

import getpass
import io
import json
import stat
import subprocess
import sys

import pytest

from rag import access, users
from rag.cli import main
from rag.config import Settings
from rag.errors import UserError
from rag.users import UserStore

PASSWORD, OTHER = "correct horse SENTINEL", "battery staple SENTINEL"


@pytest.fixture
def store(tmp_path, people_url) -> UserStore:
    """The user file beside the index, or a PostgreSQL database (each test runs on both)."""
    return UserStore.of(Settings(_env_file=None, index_dir=tmp_path / "vectorstore", database_url=people_url))


@pytest.fixture
def file_store(tmp_path) -> UserStore:
    return UserStore.beside(tmp_path / "vectorstore")


def stored_hashes(store: UserStore) -> list[str]:
    with store.db.begin() as db:
        return [row[0] for row in db.execute("SELECT hash FROM users ORDER BY key")]


@pytest.fixture
def scrypt_calls(monkeypatch) -> list[int]:
    """Counts the scrypt hashes computed."""
    calls: list[int] = []
    real = users.hashlib.scrypt

    def counted(*args, **kwargs):
        calls.append(kwargs["n"])
        return real(*args, **kwargs)

    monkeypatch.setattr(users.hashlib, "scrypt", counted)
    return calls


def test_users_are_added_listed_checked_given_new_passwords_and_removed(store):
    assert not store.any_users() and store.users() == [] and store.check("ada", PASSWORD) is None
    ada = store.add("  Ada Lovelace ", "admin", PASSWORD)
    store.add("bob", "reader", OTHER)
    assert (store.path is None or store.path.name == "users.sqlite3") and store.any_users()
    assert (ada.name, ada.role, ada.admin, ada.owner) == ("Ada Lovelace", "admin", True, "user:ada lovelace")
    assert [u.to_dict() for u in store.users()] == [ada.to_dict(), store.get("BOB").to_dict()]
    assert set(ada.to_dict()) == {"name", "role", "created", "changed"}  # never the hash
    assert store.check("ada lovelace", PASSWORD) == ada  # the name in any case
    assert store.check("Ada Lovelace", OTHER) is None and store.check("bob", PASSWORD) is None
    store.set_password("ADA LOVELACE", OTHER)
    assert store.check("Ada Lovelace", PASSWORD) is None and store.check("Ada Lovelace", OTHER).name == "Ada Lovelace"
    assert store.remove("ada lovelace").name == "Ada Lovelace"
    assert [u.name for u in store.users()] == ["bob"] and store.check("Ada Lovelace", OTHER) is None


@pytest.mark.parametrize(("name", "password", "role", "says"), [
    ("", PASSWORD, "reader", "1 to 64 printable characters"),
    ("   ", PASSWORD, "reader", "1 to 64 printable characters"),
    ("x" * 65, PASSWORD, "reader", "1 to 64 printable characters"),
    ("ada\nroot", PASSWORD, "reader", "no tabs, newlines or control characters"),
    ("ada\x1b[2J", PASSWORD, "reader", "control characters"),
    ("ada", "seven77", "reader", "at least 8 characters"),
    ("ada", "", "reader", "at least 8 characters"),
    ("ada", "x" * 1025, "reader", "at most 1024 characters"),
    ("ada", "bad \udc80 surrogate", "reader", "not valid text"),
    ("ada", PASSWORD, "root", "use reader or admin"),
])
def test_bad_names_passwords_and_roles_are_one_line_saying_what_to_do(store, name, password, role, says):
    with pytest.raises(UserError, match=says) as refused:
        store.add(name, role, password)
    assert "\n" not in str(refused.value) and (not password or password not in str(refused.value))
    assert not store.any_users()


def test_names_are_unique_whatever_their_case_or_unicode_form(store):
    store.add("Zoë", "reader", PASSWORD)
    for same in ("zoë", "ZOË", "Zoe\u0308", "Ｚｏë"):  # lower, upper, decomposed, full-width
        with pytest.raises(UserError, match="already exists"):
            store.add(same, "admin", OTHER)
        assert store.check(same, PASSWORD).name == "Zoë"
    assert [u.role for u in store.users()] == ["reader"]


def test_only_a_slow_salted_self_describing_hash_is_stored(store):
    store.add("ada", "reader", PASSWORD)
    store.add("bob", "reader", PASSWORD)  # the same password
    hashes = stored_hashes(store)
    for stored in hashes:
        scheme, n, r, p, salt, digest = stored.split("$")
        assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
        assert len(users._unb64(salt)) == 16 and len(users._unb64(digest)) == 32
    assert hashes[0] != hashes[1]  # each its own salt
    if store.path is not None:  # a file: no password in it, and readable by the server's account alone
        assert PASSWORD.encode() not in store.path.read_bytes()
        assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


@pytest.mark.parametrize("stored", ["", "scrypt$16384$8$1$AAAA", "bcrypt$16384$8$1$AAAA$AAAA",
                                    "scrypt$16383$8$1$AAAA$AAAA", "scrypt$x$8$1$AAAA$AAAA",
                                    "scrypt$16384$8$1$not base64!$AAAA", f"scrypt${2**80}$8$1$AAAA$AAAA",
                                    f"scrypt${2**30}$8$1$AAAA$AAAA"])
def test_a_malformed_stored_hash_matches_nothing(stored):
    assert not users.verify_password(PASSWORD, stored)


def test_a_stored_hash_names_its_own_parameters(monkeypatch):
    """Hashes made with other parameters (stronger ones, later) still verify."""
    monkeypatch.setattr(users, "_N", 2**12)
    older = users.hash_password(PASSWORD)
    monkeypatch.undo()
    assert older.startswith("scrypt$4096$") and users.verify_password(PASSWORD, older)
    assert not users.verify_password(OTHER, older)


def test_every_check_spends_one_scrypt_so_its_time_does_not_tell_which_names_exist(store, scrypt_calls):
    assert store.check("ada", PASSWORD) is None and len(scrypt_calls) == 1  # no user file yet, even the first time
    store.add("ada", "reader", PASSWORD)
    scrypt_calls.clear()
    for name, password in [("ada", PASSWORD), ("ada", OTHER), ("nobody", PASSWORD), ("bad\x00name", PASSWORD),
                           ("", PASSWORD), ("ada", "x" * 5000)]:
        store.check(name, password)
        assert len(scrypt_calls) == 1, name
        scrypt_calls.clear()


def test_a_broken_user_file_is_one_clear_error(file_store):
    store = file_store
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(UserError, match="move it away and add the users again"):
        store.any_users()
    with pytest.raises(UserError, match="no users added yet"):
        UserStore.beside(store.path.parent / "elsewhere").remove("ada")


# ---------------------------------------------------------------- rag user


def run(monkeypatch, capsys, args: list[str], stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))  # not a terminal: one line is the password
    code = main(["user", *args])
    out, err = capsys.readouterr()
    assert PASSWORD not in out + err and OTHER not in out + err
    return code, out, err


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def typed(monkeypatch, *answers: str) -> list[str]:
    """A terminal where getpass returns `answers` in turn; returns the prompts it was given."""
    monkeypatch.setattr(sys, "stdin", Terminal())
    prompts: list[str] = []
    replies = iter(answers)
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": prompts.append(prompt) or next(replies))
    return prompts


def test_rag_user_adds_lists_sets_passwords_and_removes_reading_stdin(monkeypatch, capsys, store):
    assert run(monkeypatch, capsys, ["list"])[1] == "no users yet: `rag user add NAME --role reader` adds one\n"
    added = run(monkeypatch, capsys, ["add", "Ada", "--role", "admin"], PASSWORD + "\n")
    assert added[:2] == (0, "added Ada (admin)\n")
    assert run(monkeypatch, capsys, ["add", "bob", "--role", "reader"], OTHER + "\r\n")[0] == 0
    code, out, _ = run(monkeypatch, capsys, ["list"])
    assert code == 0 and [line.split()[:2] for line in out.splitlines()] == [["Ada", "admin"], ["bob", "reader"]]
    code, out, _ = run(monkeypatch, capsys, ["list", "--json"])
    assert [(u["name"], u["role"]) for u in json.loads(out)["users"]] == [("Ada", "admin"), ("bob", "reader")]
    assert store.check("ada", PASSWORD) and store.check("bob", OTHER)  # the line ending is not the password
    assert run(monkeypatch, capsys, ["passwd", "ADA"], OTHER + "\n")[0] == 0
    assert store.check("ada", OTHER) and not store.check("ada", PASSWORD)
    code, out, _ = run(monkeypatch, capsys, ["remove", "bob"])
    assert code == 0 and out == "removed bob (reader); their chats stay in the chat file\n"
    assert [u.name for u in store.users()] == ["Ada"]


@pytest.mark.parametrize(("args", "stdin", "says"), [
    (["add", "ada", "--role", "reader"], "short\n", "at least 8 characters"),
    (["add", "ada", "--role", "reader"], "", "no password on stdin"),
    (["add", "ada", "--role", "reader"], "\n", "no password on stdin"),
    (["add", "Bob", "--role", "admin"], PASSWORD + "\n", "already exists"),
    (["add", "a\x1bb", "--role", "reader"], PASSWORD + "\n", "printable characters"),
    (["passwd", "nobody"], PASSWORD + "\n", "no user named 'nobody'"),
    (["remove", "nobody"], "", "no user named 'nobody'"),
])
def test_rag_user_refusals_are_one_line_and_exit_2(monkeypatch, capsys, store, args, stdin, says):
    store.add("bob", "reader", OTHER)
    code, out, err = run(monkeypatch, capsys, args, stdin)
    assert code == 2 and out == "" and says in err and err.startswith("rag: error: ") and err.count("\n") == 1
    assert "\x1b" not in err  # a name's control characters are shown as escapes, never sent to the terminal
    assert [u.name for u in store.users()] == ["bob"] and store.check("bob", OTHER)


def test_a_name_that_is_wrong_is_refused_before_any_password_is_read(monkeypatch, capsys):
    prompts = typed(monkeypatch)  # getpass would fail: nothing to answer
    assert main(["user", "passwd", "nobody"]) == 2 and prompts == []
    assert "no user named" in capsys.readouterr().err


def test_at_a_terminal_the_password_is_asked_twice_and_must_match(monkeypatch, capsys, store):
    prompts = typed(monkeypatch, PASSWORD, PASSWORD + "x")
    assert main(["user", "add", "ada", "--role", "reader"]) == 2
    assert prompts == ["Password for ada: ", "The same password again: "]
    assert "the two passwords differ: nothing was changed" in capsys.readouterr().err and not store.any_users()
    typed(monkeypatch, "short")  # too short: said at once, not after typing it twice
    assert main(["user", "add", "ada", "--role", "reader"]) == 2
    assert "at least 8 characters" in capsys.readouterr().err
    typed(monkeypatch, PASSWORD, PASSWORD)
    assert main(["user", "add", "ada", "--role", "reader"]) == 0 and store.check("ada", PASSWORD)
    out, err = capsys.readouterr()
    assert PASSWORD not in out + err


def test_rag_user_reads_a_piped_password_in_a_real_process(tmp_path):
    env_index = {"RAG_INDEX_DIR": str(tmp_path / "index")}
    import os

    done = subprocess.run([sys.executable, "-m", "rag", "user", "add", "ops", "--role", "admin"], input=PASSWORD + "\n",
                          capture_output=True, text=True, env={**os.environ, **env_index}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert UserStore.beside(tmp_path / "index").check("OPS", PASSWORD).role == "admin"


# ---------------------------------------------------------------- from a sign-in to an owner


@pytest.fixture
def no_wait(monkeypatch):
    monkeypatch.setattr(access, "WRONG_PASSWORD_DELAY", 0.0)


def test_named_users_make_a_sign_in_necessary_even_on_loopback(store):
    settings = Settings(_env_file=None)
    assert access.gate(settings, "127.0.0.1", oidc_configured=False).open
    gate = access.gate(settings, "127.0.0.1", oidc_configured=False, users=True)
    assert (gate.open, gate.password, gate.users, gate.refused) == (False, True, True, False)


def test_a_name_signs_in_as_that_user_and_no_name_with_the_shared_password(store, no_wait):
    store.add("Ada", "admin", PASSWORD)
    shared = Settings(_env_file=None, app_password=OTHER)
    ada = access.password_visitor(" ada ", PASSWORD, shared, store)
    assert (ada.role, ada.via, ada.name, ada.owner, ada.shared) == ("admin", "user", "Ada", "user:ada", False)
    assert access.password_visitor("ada", OTHER, shared, store) is None  # a name never takes the shared one
    assert access.password_visitor("", PASSWORD, shared, store) is None  # nor no name a user's
    first, second = (access.password_visitor("", OTHER, shared, store) for _ in range(2))
    assert first.role == "reader" and first.shared and first.owner.startswith("session:")
    assert first.owner != second.owner  # each browser session is its own owner
    assert access.password_visitor("", OTHER, Settings(_env_file=None), store) is None  # no shared password set


def test_a_wrong_name_or_password_waits_like_a_wrong_shared_password(store, monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(access.time, "sleep", waits.append)
    store.add("ada", "reader", PASSWORD)
    for name, password in [("ada", OTHER), ("nobody", PASSWORD), ("", PASSWORD)]:
        assert access.password_visitor(name, password, Settings(_env_file=None), store) is None
    assert access.password_visitor("ada", PASSWORD, Settings(_env_file=None), store) is not None
    assert waits == [access.WRONG_PASSWORD_DELAY] * 3


def test_removing_a_user_or_changing_their_password_signs_their_sessions_out(store, no_wait):
    store.add("ada", "reader", PASSWORD)
    ada = access.password_visitor("ada", PASSWORD, Settings(_env_file=None), store)
    assert access.still_signed_in(ada, store) and access.still_signed_in(access.LOCAL, store)
    store.set_password("ada", OTHER)
    stamp = store.get("ada").changed
    if stamp == ada.password_set:  # changed within the same second: compare with a later stamp
        with store.db.begin() as db:
            db.execute("UPDATE users SET changed = '2999-01-01T00:00:00+00:00'")
    assert not access.still_signed_in(ada, store)
    ada = access.password_visitor("ada", OTHER, Settings(_env_file=None), store)
    store.remove("ada")
    assert not access.still_signed_in(ada, store)


@pytest.mark.parametrize(("user", "owner"), [
    ({"email": "Ada@Example.com", "sub": "1"}, "oidc:ada@example.com"),
    ({"email": "ada@example.com", "email_verified": True, "sub": "1"}, "oidc:ada@example.com"),
    # Anyone may type an unverified address: it must not open the verified person's chats.
    ({"email": "ada@example.com", "email_verified": False, "iss": "https://idp", "sub": "2"},
     "oidc-subject:https://idp:2"),
])
def test_an_oidc_users_owner_is_their_verified_email(user, owner):
    visitor = access.oidc_visitor({"is_logged_in": True, **user}, Settings(_env_file=None))
    assert visitor.owner == owner and visitor.via == "oidc" and visitor.name == user["email"]
