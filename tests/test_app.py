"""The Streamlit chat through the real script (AppTest): ask, follow up, sources, abstention, faults."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import streamlit as st
from conftest import SHIPPED_CORPUS
from fake_openai import FakeOpenAI, status
from streamlit import config
from streamlit.testing.v1 import AppTest

from rag import access
from rag.render import safe_markdown

APP = str(Path(__file__).resolve().parent.parent / "app.py")
KEY = "sk-app-SENTINEL-55aa"
READER, ADMIN = "reader-pw-SENTINEL-77", "admin-pw-SENTINEL-88"


@pytest.fixture(autouse=True)
def served_on():
    """The address the app is served on (Streamlit's server.address), loopback unless a test opens it up;
    `make run` always passes one."""
    before = config.get_option("server.address")
    config.set_option("server.address", "127.0.0.1")
    yield lambda address: config.set_option("server.address", address)
    config.set_option("server.address", before)


def start(monkeypatch, **env) -> AppTest:
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    st.cache_resource.clear()
    return AppTest.from_file(APP, default_timeout=60).run()


@pytest.fixture
def app(monkeypatch, shipped_index):
    yield start(monkeypatch, RAG_INDEX_DIR=shipped_index)
    st.cache_resource.clear()


def ask(app: AppTest, question: str) -> AppTest:
    app.chat_input[0].set_value(question).run()
    assert not app.exception, app.exception
    return app


def page_text(app: AppTest) -> str:
    parts = [m.value for m in app.markdown] + [c.value for c in app.caption] + [e.label for e in app.expander]
    return "\n".join(parts)


def test_empty_chat_shows_status_and_examples(app):
    assert not app.exception
    assert "**1** document · **5** posts · **25** passages" in " ".join(m.value for m in app.sidebar.markdown)
    assert app.title[0].value == "Ask the case studies"
    assert app.chat_input[0].placeholder == "Ask about the case studies"
    examples = [b.label for b in app.main.button]
    assert "How did they cut cloud costs?" in examples


def test_clicking_an_example_asks_it(app):
    next(b for b in app.main.button if b.label.startswith("Why did the database")).click().run()
    assert not app.exception
    assert len(app.chat_message) == 2 and "connection limit" in page_text(app)


def test_answer_with_markers_and_sources_naming_every_post(app):
    ask(app, "Which cheap, unexciting changes reduced the cloud bill?")
    assert len(app.chat_message) == 2
    answer = app.chat_message[1]
    assert "[1]." in answer.markdown[0].value  # the marker as written: no link definition can claim it
    sources = [e.label for e in answer.expander]
    assert any(label.startswith("[1] ") and label.count(";") == 3 for label in sources)  # four posts
    assert "extractive answer" in page_text(app)
    assert re.search(r"Checked: \d+ by the reading model", page_text(app))  # the check that kept each sentence


def test_follow_up_uses_the_history_and_shows_the_rewrite(app):
    ask(app, "How did they move to structured logging?")
    ask(app, "and how long did that take?")
    assert len(app.chat_message) == 4
    (caption,) = [c.value for c in app.chat_message[3].caption if "Read as" in c.value]
    assert caption.startswith("Read as:")  # a sentence in the user's own words, not the rule's keywords
    assert caption == safe_markdown("Read as: How did they move to structured logging, and how long did that take?")
    assert "move structured logging" not in page_text(app) and "simple rule" not in page_text(app)
    assert "two weeks" in app.chat_message[3].markdown[0].value


def test_a_dangling_follow_up_is_asked_back(app):
    ask(app, "and why?")
    text = page_text(app)
    assert 'What is "and why?" about?' in text and "Sources" not in text and "Near miss" not in text


def test_abstention_shows_near_misses(app):
    ask(app, "How do I bake sourdough bread?")
    text = page_text(app)
    assert "The case studies don't cover this." in text
    assert "Near misses" in text and sum(e.label.startswith("Near miss") for e in app.expander) == 3


def test_new_chat_clears_the_history(app):
    ask(app, "How did they cut cloud costs?")
    next(b for b in app.sidebar.button if b.label == "New chat").click().run()
    assert len(app.chat_message) == 0


def test_llm_endpoint_down_falls_back_and_never_shows_the_key(monkeypatch, shipped_index):
    with FakeOpenAI() as fake:
        fake.then(status(500), status(500), status(500))
        app = start(monkeypatch, RAG_INDEX_DIR=shipped_index, OPENAI_API_KEY=KEY, OPENAI_BASE_URL=fake.url,
                    RAG_LLM_MAX_RETRIES=0)
        ask(app, "Why did the database fail during traffic spikes?")
    text = page_text(app)
    assert "extractive (LLM failed) answer" in text and "HTTP 500" in text
    assert KEY not in text + "".join(str(e.value) for e in app.sidebar.text_input)


def test_the_sidebar_says_when_the_endpoint_is_skipped(monkeypatch, shipped_index):
    with FakeOpenAI() as fake:
        fake.always(status(500))
        app = start(monkeypatch, RAG_INDEX_DIR=shipped_index, OPENAI_API_KEY=KEY, OPENAI_BASE_URL=fake.url,
                    RAG_LLM_MAX_RETRIES=0, RAG_LLM_BREAKER_FAILURES=1)
        assert safe_markdown(f"Endpoint {fake.url}: working") in [c.value for c in app.sidebar.caption]
        ask(app, "Why did the database fail during traffic spikes?")
    warning = " ".join(w.value for w in app.sidebar.warning)
    assert safe_markdown(f"Endpoint {fake.url}: failing: skipped for another") in warning and "HTTP 500" in warning
    endpoint = [e.value for e in [*app.sidebar.caption, *app.sidebar.warning] if e.value.startswith("Endpoint")]
    assert len(endpoint) == 1 and not re.search(r"\b(closed|open|half)\b", endpoint[0].replace(fake.url, ""))


def test_llm_endpoint_down_without_fallback_is_a_short_error(monkeypatch, shipped_index):
    with FakeOpenAI() as fake:
        fake.then(status(401))
        app = start(monkeypatch, RAG_INDEX_DIR=shipped_index, OPENAI_API_KEY=KEY, OPENAI_BASE_URL=fake.url,
                    RAG_LLM_FALLBACK="false")
        ask(app, "Why did the database fail during traffic spikes?")
        error = app.error[0].value
        assert safe_markdown("check OPENAI_API_KEY") in error and KEY not in error
        # The question stays, with a retry that asks it again (and fails again, the same way).
        assert app.chat_message[0].markdown[0].value == "Why did the database fail during traffic spikes?"
        fake.then(status(401))
        next(b for b in app.main.button if b.label == "Retry").click().run()
        assert len(app.chat_message) == 2 and len(app.error) == 1 and len(fake.requests) == 2


def test_without_a_key_the_llm_choice_is_disabled_and_says_what_to_set(app):
    assert app.sidebar.radio[0].disabled and app.sidebar.radio[0].value == "extractive"
    assert "llm needs OPENAI_API_KEY" in " ".join(c.value for c in app.sidebar.caption)


def test_reingest_builds_a_missing_index_then_answers(monkeypatch, tmp_path):
    shutil.copytree(SHIPPED_CORPUS, tmp_path / "corpus")
    app = start(monkeypatch, RAG_INDEX_DIR=tmp_path / "vectorstore", RAG_CORPUS_DIR=tmp_path / "corpus")
    assert "rag ingest" in app.sidebar.error[0].value
    # The ingest runs in a child process (torch, the model and the ONNX export load there): give it time.
    next(b for b in app.sidebar.button if b.label == "Re-ingest").click().run(timeout=300)
    assert not app.exception
    assert "Done: embedded 25, reused 0" in app.sidebar.success[0].value
    assert not app.sidebar.error  # the panels describe the index just written, not the missing one
    assert "Read corpus/case-studies.txt" in [c.value for c in app.sidebar.caption]
    ask(app, "How much notice do API consumers get before a breaking change?")
    assert "twelve weeks" in app.chat_message[1].markdown[0].value
    st.cache_resource.clear()


def test_an_ingest_elsewhere_is_answered_from_on_the_next_question(monkeypatch, tmp_path):
    """The stale-app case: the app has the index loaded, a terminal adds a document, the app answers from it."""
    shutil.copytree(SHIPPED_CORPUS, tmp_path / "corpus")
    env = {"RAG_INDEX_DIR": tmp_path / "vectorstore", "RAG_CORPUS_DIR": tmp_path / "corpus"}
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    assert subprocess.run([sys.executable, "-m", "rag", "ingest"], capture_output=True).returncode == 0
    app = start(monkeypatch)
    ask(app, "What did the quokka team migrate to?")
    assert "CockroachDB" not in app.chat_message[1].markdown[0].value
    (tmp_path / "quokka.md").write_text("# Quokka migration\n\nThe quokka team migrated to CockroachDB in 2023.\n")
    done = subprocess.run([sys.executable, "-m", "rag", "ingest", str(tmp_path / "quokka.md")], capture_output=True)
    assert done.returncode == 0, done.stderr
    app.run()
    assert "**2** documents" in " ".join(m.value for m in app.sidebar.markdown)
    ask(app, "What did the quokka team migrate to?")
    assert "CockroachDB" in app.chat_message[3].markdown[0].value
    st.cache_resource.clear()


def test_documents_panel_lists_and_removes(monkeypatch, tmp_path, shipped_index):
    shutil.copytree(shipped_index, tmp_path / "vectorstore")
    shutil.copytree(SHIPPED_CORPUS, tmp_path / "corpus")
    (tmp_path / "notes.md").write_text("# Pager notes\n\nThe pager woke three engineers at night.\n")
    monkeypatch.chdir(tmp_path)
    assert subprocess.run([sys.executable, "-m", "rag", "ingest", "notes.md"], capture_output=True).returncode == 0
    app = start(monkeypatch, RAG_INDEX_DIR=tmp_path / "vectorstore", RAG_CORPUS_DIR=tmp_path / "corpus")
    listed = [m.value for m in app.sidebar.markdown if "passages]" in m.value]
    titles = [text.split("  ")[0] for text in listed]
    names = [text.split("[", 1)[1].split(" · ")[0] for text in listed]
    assert titles == ["**Case studies**", "**Pager notes**"]
    assert len(names) == 2 and names[0].endswith("/corpus/case-studies.txt") and names[1] == "notes.md"
    # The library is named for what it holds: the case studies and a note are "your documents".
    assert app.title[0].value == "Ask your documents"
    ask(app, "Who won the rugby world cup?")
    assert app.chat_message[1].markdown[0].value == "Your documents don't cover this."
    next(b for b in app.sidebar.button if b.key == "remove:notes.md").click().run(timeout=120)
    assert not app.exception and "Removed notes.md" in [c.value for c in app.sidebar.caption]
    assert "**1** document ·" in " ".join(m.value for m in app.sidebar.markdown)
    app.run()
    assert app.title[0].value == "Ask the case studies"
    st.cache_resource.clear()


def test_the_collection_name_is_the_apps_own_words(monkeypatch, shipped_index):
    app = start(monkeypatch, RAG_INDEX_DIR=shipped_index, RAG_COLLECTION="our post-mortems")
    assert app.title[0].value == "Ask our post-mortems"
    ask(app, "Who won the rugby world cup?")
    assert app.chat_message[1].markdown[0].value == "Our post-mortems don't cover this."
    st.cache_resource.clear()


def test_answer_text_cannot_render_links_or_images():
    rendered = safe_markdown("See ![x](http://evil.example/p.png) and [here](https://evil.example) "
                             "or www.evil.example <b>bold</b> **strong**")
    assert "![" not in rendered and "](" not in rendered and "<b>" not in rendered and "**" not in rendered
    assert "http://" not in rendered and "https://" not in rendered and "www." not in rendered


def test_index_and_model_load_once_per_server_process(monkeypatch, shipped_index):
    from rag import onnx_encoder
    from rag.index import faiss

    opened = []
    real_open, real_encoder = faiss.FaissBackend.open.__func__, onnx_encoder.OnnxEncoder.__init__
    monkeypatch.setattr(faiss.FaissBackend, "open", classmethod(lambda cls, *a: opened.append("index") or
                                                                real_open(cls, *a)))
    monkeypatch.setattr(onnx_encoder.OnnxEncoder, "__init__", lambda self, *a: opened.append("model") or
                        real_encoder(self, *a))
    app = start(monkeypatch, RAG_INDEX_DIR=shipped_index)
    ask(app, "How did they cut cloud costs?")
    ask(app, "Why did the database fail during traffic spikes?")
    assert len(app.chat_message) == 4
    assert opened == ["index", "model"]
    st.cache_resource.clear()


def test_a_chat_survives_a_restart_and_reopens_with_its_sources(monkeypatch, shipped_index):
    app = start(monkeypatch, RAG_INDEX_DIR=shipped_index)
    ask(app, "How did they move to structured logging?")
    ask(app, "and how long did that take?")
    chat_id = app.query_params["chat"]
    st.cache_resource.clear()  # a new server process: nothing kept in memory
    again = AppTest.from_file(APP, default_timeout=60)
    again.query_params["chat"] = chat_id  # the address a reload keeps
    again.run()
    assert not again.exception and len(again.chat_message) == 4
    assert "two weeks" in again.chat_message[3].markdown[0].value
    assert "Read as: How did they move to structured logging, and how long did that take?" in page_text(again)
    assert any(e.label.startswith("[1] ") for e in again.expander)
    assert any(b.label == "Export chat (Markdown)" for b in again.main.get("download_button"))
    titles = [b.label for b in again.sidebar.button if b.key and b.key.startswith("chat:")]
    assert titles == ["How did they move to structured logging?"]


def test_chats_are_listed_renamed_and_deleted(app):
    ask(app, "How did they cut cloud costs?")
    next(b for b in app.sidebar.button if b.label == "New chat").click().run()
    assert len(app.chat_message) == 0
    ask(app, "What tool fixed the database running out of connections?")
    chats = [b for b in app.sidebar.button if b.key and b.key.startswith("chat:")]
    assert [b.label for b in chats] == ["What tool fixed the database running out of connections?",
                                        "How did they cut cloud costs?"]
    chats[1].click().run()
    assert "right-sizing" in app.chat_message[1].markdown[0].value
    next(t for t in app.sidebar.text_input if t.label == "Title").set_value("Cloud costs").run()
    next(b for b in app.sidebar.button if b.label == "Rename").click().run()
    assert "Cloud costs" in [b.label for b in app.sidebar.button]
    next(b for b in app.sidebar.button if b.label == "Delete").click().run()
    assert len(app.chat_message) == 0
    assert [b.label for b in app.sidebar.button if b.key and b.key.startswith("chat:")] == [
        "What tool fixed the database running out of connections?"]


def test_a_rating_and_its_comment_are_stored_with_the_answer(app, tmp_path):
    from rag.chats import ChatStore

    ask(app, "What tool fixed the database running out of connections?")
    app.feedback[0].set_value(0).run()  # thumbs down
    app.text_input(key=next(k for k in app.session_state if str(k).startswith("comment:"))) \
        .set_value("names the tool but not the fix").run()
    rows = ChatStore(tmp_path / "chats.sqlite3").feedback()
    assert len(rows) == 1 and rows[0]["rating"] == -1 and rows[0]["comment"] == "names the tool but not the fix"
    assert rows[0]["question"] == "What tool fixed the database running out of connections?"
    assert "PgBouncer" in rows[0]["answer"] and rows[0]["settings"]["answerer"] == "extractive"
    assert rows[0]["response"]["citations"]


# ---------------------------------------------------------------- sign-in and roles


def sidebar_labels(app: AppTest) -> list[str]:
    return [b.label for b in app.sidebar.button] + [b.label for b in app.sidebar.get("form_submit_button")]


def can_change_the_index(app: AppTest) -> bool:
    labels = sidebar_labels(app)
    assert ("Re-ingest" in labels) == ("Upload and index" in labels) == ("Remove" in labels) \
        == bool(app.sidebar.get("file_uploader"))
    return "Re-ingest" in labels


def sign_in(app: AppTest, password: str) -> AppTest:
    next(t for t in app.text_input if t.label == "Password").set_value(password)
    next(b for b in app.get("form_submit_button") if b.label == "Sign in").click().run()
    assert not app.exception, app.exception
    return app


@pytest.fixture
def opened_up(monkeypatch, served_on, shipped_index):
    """Served on all interfaces with a reader and an admin password; wrong passwords do not wait here."""
    monkeypatch.setattr(access, "WRONG_PASSWORD_DELAY", 0.0)
    served_on("0.0.0.0")
    yield start(monkeypatch, RAG_INDEX_DIR=shipped_index, RAG_APP_PASSWORD=READER, RAG_APP_ADMIN_PASSWORD=ADMIN)
    st.cache_resource.clear()


def test_on_loopback_with_nothing_set_the_local_user_is_admin_without_sign_in(app):
    assert app.chat_input and can_change_the_index(app)
    assert "Sign out" not in sidebar_labels(app) and not [t for t in app.text_input if t.label == "Password"]


def test_opened_up_without_a_password_says_what_to_set_and_nothing_else(monkeypatch, served_on, shipped_index):
    served_on("0.0.0.0")
    app = start(monkeypatch, RAG_INDEX_DIR=shipped_index)
    assert not app.exception
    assert len(app.error) == 1 and "RAG_APP_PASSWORD" in app.error[0].value and "[auth]" in app.error[0].value
    assert not app.chat_input and not app.sidebar.children and not app.button and not app.title
    st.cache_resource.clear()


def test_on_loopback_through_a_proxy_with_nothing_set_says_what_to_set(monkeypatch, shipped_index):
    """Behind nginx on the same host (X-Forwarded-For set) a visitor is not the local admin."""
    monkeypatch.setattr(access, "proxied", lambda headers: True)
    app = start(monkeypatch, RAG_INDEX_DIR=shipped_index)
    assert not app.exception
    assert len(app.error) == 1 and "through a reverse proxy" in app.error[0].value
    assert not app.chat_input and not app.sidebar.children and not app.button
    st.cache_resource.clear()


def test_opened_up_asks_for_a_password_first_and_refuses_a_wrong_one(opened_up):
    app = opened_up
    assert app.title[0].value == "Sign in" and not app.chat_input and not sidebar_labels(app)
    sign_in(app, "guess")
    assert [e.value for e in app.error] == ["Wrong password."] and not app.chat_input
    page = " ".join(e.value for e in app.error) + " ".join(str(t.value) for t in app.text_input)
    assert READER not in page and ADMIN not in page


def test_a_reader_chats_and_reads_sources_but_cannot_change_the_index(opened_up):
    app = sign_in(opened_up, READER)
    assert app.title[0].value == "Ask the case studies" and not can_change_the_index(app)
    assert "Signed in as reader" in [c.value for c in app.sidebar.caption]
    assert "**1** document · **5** posts · **25** passages" in " ".join(m.value for m in app.sidebar.markdown)
    ask(app, "Why did the database fail during traffic spikes?")
    assert "connection limit" in page_text(app) and any(e.label.startswith("[1] ") for e in app.expander)
    next(b for b in app.sidebar.button if b.label == "Sign out").click().run()
    assert app.title[0].value == "Sign in" and not app.chat_input


def test_an_admin_can_change_the_index(opened_up):
    app = sign_in(opened_up, ADMIN)
    assert app.chat_input and can_change_the_index(app)
    assert "Signed in as admin" in [c.value for c in app.sidebar.caption]


def test_a_password_on_loopback_still_asks_for_it(monkeypatch, shipped_index):
    """A reverse proxy on the same host reaches a loopback app: a configured password always applies."""
    app = start(monkeypatch, RAG_INDEX_DIR=shipped_index, RAG_APP_ADMIN_PASSWORD=ADMIN)
    assert app.title[0].value == "Sign in" and not app.chat_input
    assert can_change_the_index(sign_in(app, ADMIN))
    st.cache_resource.clear()


# ---------------------------------------------------------------- people and their chats


def sign_in_as(app: AppTest, name: str, password: str) -> AppTest:
    next(t for t in app.text_input if t.label == "Name").set_value(name)
    return sign_in(app, password)


def chat_titles(app: AppTest) -> list[str]:
    return [b.label for b in app.sidebar.button if b.key and b.key.startswith("chat:")]


def another_session() -> AppTest:
    """A second browser on the same server: the cached assistant is shared, the session is its own."""
    return AppTest.from_file(APP, default_timeout=60).run()


@pytest.fixture
def people(monkeypatch, tmp_path, shipped_index):
    """The app on loopback with two named users, Ada (admin) and Bob (reader), added to its index."""
    from rag.users import UserStore

    shutil.copytree(shipped_index, tmp_path / "vectorstore")
    users = UserStore.beside(tmp_path / "vectorstore")
    users.add("Ada", "admin", ADA_PW)
    users.add("Bob", "reader", BOB_PW)
    monkeypatch.setattr(access, "WRONG_PASSWORD_DELAY", 0.0)
    yield start(monkeypatch, RAG_INDEX_DIR=tmp_path / "vectorstore")
    st.cache_resource.clear()


ADA_PW, BOB_PW = "ada-pw-SENTINEL-11", "bob-pw-SENTINEL-22"


def test_with_users_the_app_asks_for_a_name_and_password_even_on_loopback(people):
    app = people
    assert app.title[0].value == "Sign in" and not app.chat_input
    assert [t.label for t in app.text_input] == ["Name", "Password"]
    sign_in_as(app, "Ada", BOB_PW)  # someone else's password
    assert [e.value for e in app.error] == ["Wrong name or password."] and not app.chat_input
    sign_in_as(app, "nobody", ADA_PW)
    assert [e.value for e in app.error] == ["Wrong name or password."] and not app.chat_input
    sign_in_as(app, "ada", ADA_PW)
    assert app.chat_input and can_change_the_index(app)
    assert "Signed in as Ada (admin)" in [c.value for c in app.sidebar.caption]
    page = page_text(app) + " ".join(str(t.value) for t in app.text_input)
    assert ADA_PW not in page and BOB_PW not in page


def test_two_people_do_not_see_each_others_chats(people, tmp_path):
    ada = sign_in_as(people, "Ada", ADA_PW)
    ask(ada, "How did they cut cloud costs?")
    ada_chat = ada.query_params["chat"]
    bob = sign_in_as(another_session(), "bob", BOB_PW)
    assert not can_change_the_index(bob) and "Signed in as Bob (reader)" in [c.value for c in bob.sidebar.caption]
    assert chat_titles(bob) == []
    bob.query_params["chat"] = ada_chat  # Ada's chat's address, typed or shared
    bob.run()
    assert not bob.exception and len(bob.chat_message) == 0 and "cloud" not in page_text(bob).lower()
    assert "no chat at this address among yours" in " ".join(i.value for i in bob.info)
    assert not [b for b in bob.sidebar.button if b.label in ("Rename", "Delete")]
    ask(bob, "Why did the database fail during traffic spikes?")  # a new chat of Bob's, not an answer in Ada's
    assert bob.query_params["chat"] != ada_chat and chat_titles(bob) == [
        "Why did the database fail during traffic spikes?"]
    ada.run()
    assert chat_titles(ada) == ["How did they cut cloud costs?"] and len(ada.chat_message) == 2


def test_a_removed_user_is_signed_out_at_their_next_click(people, tmp_path):
    from rag.users import UserStore

    ada = sign_in_as(people, "Ada", ADA_PW)
    assert ada.chat_input
    UserStore.beside(tmp_path / "vectorstore").remove("ada")
    ada.run()
    assert ada.title[0].value == "Sign in" and not ada.chat_input


def test_shared_password_chats_belong_to_the_browser_session_that_made_them(opened_up):
    first = sign_in(opened_up, READER)
    assert any("this browser tab only" in c.value for c in first.sidebar.caption)
    ask(first, "How did they cut cloud costs?")
    chat_id = first.query_params["chat"]
    assert chat_titles(first) == ["How did they cut cloud costs?"]
    second = sign_in(another_session(), READER)  # the same password, another browser
    assert chat_titles(second) == []
    second.query_params["chat"] = chat_id
    second.run()
    assert len(second.chat_message) == 0 and "cloud" not in page_text(second).lower()
    admin = sign_in(another_session(), ADMIN)  # an admin no more than anyone else
    admin.query_params["chat"] = chat_id
    admin.run()
    assert chat_titles(admin) == [] and len(admin.chat_message) == 0
    next(b for b in first.sidebar.button if b.label == "Sign out").click().run()
    sign_in(first, READER)  # signing in again is a new session: the old chat is not its own
    assert chat_titles(first) == []


def test_chats_with_the_same_title_show_when_each_was_started(app):
    ask(app, "How did they cut cloud costs?")
    next(b for b in app.sidebar.button if b.label == "New chat").click().run()
    ask(app, "How did they cut cloud costs?")
    titles = chat_titles(app)
    assert len(titles) == 2 and titles[0] != titles[1]
    assert all(t.startswith("How did they cut cloud costs? · ") for t in titles)


AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "cookie-SENTINEL",
        "client_id": "id", "client_secret": "secret-SENTINEL",
        "server_metadata_url": "https://accounts.example.com/.well-known/openid-configuration"}


def oidc_app(monkeypatch, shipped_index, user: dict) -> AppTest:
    monkeypatch.setenv("RAG_INDEX_DIR", str(shipped_index))
    monkeypatch.setenv("RAG_APP_ADMINS", "ada@example.com")
    st.cache_resource.clear()
    app = AppTest.from_file(APP, default_timeout=60)
    app.secrets["auth"] = AUTH
    app.user = user
    return app.run()


def test_opened_up_with_oidc_offers_its_sign_in(monkeypatch, served_on, shipped_index):
    served_on("0.0.0.0")
    monkeypatch.setattr(access, "authlib_installed", lambda: True)
    app = oidc_app(monkeypatch, shipped_index, {"is_logged_in": False})
    assert [b.label for b in app.button] == ["Sign in with your account"] and not app.chat_input
    assert not [t for t in app.text_input if t.label == "Password"]  # no password is configured
    st.cache_resource.clear()


def test_oidc_without_authlib_says_what_to_install(monkeypatch, served_on, shipped_index):
    served_on("0.0.0.0")
    monkeypatch.setattr(access, "authlib_installed", lambda: False)
    app = oidc_app(monkeypatch, shipped_index, {"is_logged_in": False})
    assert len(app.error) == 1 and 'pip install "streamlit[auth]"' in app.error[0].value and not app.chat_input
    st.cache_resource.clear()


@pytest.mark.parametrize(("email", "admin"), [("ada@example.com", True), ("eve@example.com", False)])
def test_oidc_users_listed_in_rag_app_admins_are_admins(monkeypatch, served_on, shipped_index, email, admin):
    served_on("0.0.0.0")
    app = oidc_app(monkeypatch, shipped_index, {"is_logged_in": True, "email": email})
    assert not app.exception and app.chat_input and can_change_the_index(app) == admin
    role = "admin" if admin else "reader"
    assert f"Signed in as {safe_markdown(email)} ({role})" in [c.value for c in app.sidebar.caption]
    assert "Sign out" in sidebar_labels(app)
    st.cache_resource.clear()


SERVER_PATH = "/usr/lib/python3/site-packages/rag-internals/x.py"


def no_traceback_or_path(app: AppTest) -> str:
    """Every error line on the page, checked to hold no traceback and no server path."""
    assert not app.exception, app.exception  # an st.exception element is a traceback on the page
    errors = " ".join(e.value for e in app.error)
    page = errors + page_text(app)
    assert "Traceback" not in page and "site-packages" not in page and SERVER_PATH not in page
    return errors


def test_an_unexpected_failure_while_answering_is_one_line_with_retry(app, monkeypatch):
    def broken(self, *args, **kwargs):
        raise OSError(5, "Input/output error", SERVER_PATH)

    monkeypatch.setattr("rag.assistant.Assistant.stream", broken)
    app.chat_input[0].set_value("How did they cut cloud costs?").run()
    assert "try again" in no_traceback_or_path(app)
    assert any(b.label == "Retry" for b in app.main.button)


def test_an_unexpected_failure_drawing_the_page_is_one_line(monkeypatch, shipped_index):
    def broken(self):
        raise RuntimeError(f"Error in {SERVER_PATH}: 'ret == 0' failed")

    monkeypatch.setattr("rag.assistant.Assistant.info", broken)
    app = start(monkeypatch, RAG_INDEX_DIR=shipped_index)
    assert "the server's log has the details" in no_traceback_or_path(app)


def test_a_damaged_index_is_one_line_naming_the_fix(monkeypatch, tmp_path, shipped_index):
    shutil.copytree(shipped_index, tmp_path / "vectorstore")
    faiss_file = next((tmp_path / "vectorstore").glob("index-*.faiss"))
    faiss_file.write_bytes(faiss_file.read_bytes()[:100])
    app = start(monkeypatch, RAG_INDEX_DIR=tmp_path / "vectorstore")
    app.chat_input[0].set_value("How did they cut cloud costs?").run()
    assert "rag ingest --rebuild" in no_traceback_or_path(app)


def test_a_crashed_ingest_process_shows_no_traceback(monkeypatch, make_settings):
    from rag.errors import RagError
    from rag.isolated import ingest_in_child

    crash = f"import sys; sys.stderr.write('Traceback (most recent call last):\\nOSError: {SERVER_PATH}'); sys.exit(1)"
    real = subprocess.Popen
    monkeypatch.setattr("rag.isolated.subprocess.Popen", lambda args, **kw: real([sys.executable, "-c", crash], **kw))
    with pytest.raises(RagError) as failed:
        ingest_in_child(make_settings(), [])
    assert "Traceback" not in str(failed.value) and SERVER_PATH not in str(failed.value)


def test_make_run_turns_streamlits_file_watcher_off():
    """Watching the whole tree floods `make run`'s log with "Inotify queue overflowed"; the browser test
    and the screenshot start the app the same way."""
    root = Path(APP).parent
    run = (root / "Makefile").read_text().split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "streamlit run app.py" in run and "--server.fileWatcherType none" in run
    assert '"--server.fileWatcherType", "none"' in (root / "scripts" / "screenshot.py").read_text()


def test_error_details_are_off_wherever_the_app_is_served():
    import tomllib

    root = Path(APP).parent
    assert tomllib.loads((root / ".streamlit" / "config.toml").read_text())["client"]["showErrorDetails"] == "none"
    assert "--client.showErrorDetails none" in (root / "Makefile").read_text()


def test_a_chat_started_on_one_app_server_continues_on_another(monkeypatch, shipped_index, postgres_url):
    """Two app servers over one PostgreSQL database (RAG_DATABASE_URL): Ada's chat, begun on the first, is
    listed, reopened, continued and rated on the second, and nothing of it is in a local file."""
    from rag import Settings
    from rag.chats import ChatStore
    from rag.users import UserStore

    settings = Settings(_env_file=None, index_dir=shipped_index, database_url=postgres_url)
    UserStore.of(settings).add("Ada", "admin", ADA_PW)
    monkeypatch.setattr(access, "WRONG_PASSWORD_DELAY", 0.0)
    first = sign_in_as(start(monkeypatch, RAG_INDEX_DIR=shipped_index, RAG_DATABASE_URL=postgres_url), "Ada", ADA_PW)
    ask(first, "How did they move to structured logging?")
    st.cache_resource.clear()  # the second server shares nothing in memory with the first
    second = sign_in_as(another_session(), "Ada", ADA_PW)
    assert chat_titles(second) == ["How did they move to structured logging?"]
    next(b for b in second.sidebar.button if b.key and b.key.startswith("chat:")).click().run()
    ask(second, "and how long did that take?")
    assert "two weeks" in second.chat_message[3].markdown[0].value
    second.feedback[1].set_value(1).run()
    rows = ChatStore.of(settings).feedback()
    assert [(row["question"], row["rating"]) for row in rows] == [("and how long did that take?", 1)]
    assert not (Path(settings.chats_path)).exists()
    st.cache_resource.clear()
