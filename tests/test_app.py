"""The Streamlit page starts and searches, through the real script (AppTest)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture
def app(monkeypatch, shipped_index):
    import streamlit as st

    monkeypatch.setenv("RAG_INDEX_DIR", str(shipped_index))
    st.cache_resource.clear()
    yield AppTest.from_file(APP, default_timeout=60)
    st.cache_resource.clear()


def test_page_starts_with_index_status(app):
    app.run()
    assert not app.exception
    assert "5 posts · 25 passages" in " ".join(m.value for m in app.sidebar.markdown)


def test_question_shows_passages_with_every_post(app):
    app.run()
    app.chat_input[0].set_value("How did they fix database connection limits?").run()
    assert not app.exception
    assert "PgBouncer" in app.text[0].value
    captions = [c.value for c in app.caption]
    assert any("Your First 3 Days with CQRS Patterns" in c for c in captions)
    assert any("Revisiting AI Agent Orchestration" in c for c in captions)


def test_missing_index_is_a_short_error(monkeypatch, tmp_path):
    import streamlit as st

    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "nothing"))
    st.cache_resource.clear()
    app = AppTest.from_file(APP, default_timeout=60).run()
    assert not app.exception
    assert "rag ingest" in app.sidebar.error[0].value
