"""Saved chats and feedback (rag.chats), their export, and the Markdown an answer is shown as."""

from __future__ import annotations

import io
import json
import sys

import pytest

from rag.chats import NEW_TITLE, ChatStore, chat_markdown
from rag.cli import main
from rag.errors import UserError
from rag.render import answer_markdown

SOURCE = {"title": "Scaling Postgres", "path": "posts/postgres.md", "section": "Pooling", "category": "",
          "position": 0, "page": 4, "page_end": 4}
PASSAGE = "A simple PgBouncer setup eliminated the issue. See https://www.pgbouncer.org/config.html for details."
ANSWER = {"question": "What fixed it?", "standalone_question": "What fixed it?", "abstained": False,
          "citations": [{"marker": 1, "text": PASSAGE, "titles": ["Scaling Postgres"], "sources": [SOURCE],
                         "evidence": [{"start": 0, "end": 46}]}]}


@pytest.fixture
def store(tmp_path) -> ChatStore:
    return ChatStore(tmp_path / "chats.sqlite3")


def test_a_chat_keeps_its_turns_titles_itself_and_leaves_failures_out_of_the_history(store):
    chat = store.create()
    assert chat.title == NEW_TITLE
    store.add(chat.id, "user", "What fixed the   connection\nlimit?")
    store.add(chat.id, "assistant", "A simple PgBouncer setup eliminated the issue [1].", answer=ANSWER)
    store.add(chat.id, "user", "and how long did that take?")
    store.add(chat.id, "assistant", "", error="the LLM endpoint refused the key (401)")
    assert store.get(chat.id).title == "What fixed the connection limit?"
    assert [m.role for m in store.messages(chat.id)] == ["user", "assistant", "user", "assistant"]
    assert store.messages(chat.id)[1].answer == ANSWER
    assert store.history(chat.id) == [("user", "What fixed the   connection\nlimit?"),
                                      ("assistant", "A simple PgBouncer setup eliminated the issue [1]."),
                                      ("user", "and how long did that take?")]
    assert store.drop_failure(chat.id) == "and how long did that take?"
    assert store.drop_failure(chat.id) is None  # nothing failed any more
    store.rename(chat.id, "  Postgres pooling  ")
    assert ChatStore(store.path).chats()[0].title == "Postgres pooling"  # another connection sees it
    store.delete(chat.id)
    assert store.chats() == [] and store.messages(chat.id) == []


def test_feedback_is_stored_with_the_question_answer_and_settings_and_exported_as_eval_lines(
        store, monkeypatch, capsys):
    chat = store.create()
    store.add(chat.id, "user", "What fixed it?")
    good = store.add(chat.id, "assistant", "PgBouncer [1].", answer=ANSWER)
    store.add(chat.id, "user", "Who wrote it?")
    bad = store.add(chat.id, "assistant", "The case studies don't cover this.",
                    answer={**ANSWER, "abstained": True, "citations": []})
    store.rate(good, 1, settings={"answerer": "extractive", "k": 4})
    store.rate(bad, 1)
    store.rate(bad, -1, "  it is in the Postgres post  ", {"answerer": "llm"})  # changed their mind
    with pytest.raises(UserError):
        store.rate(good, 0)
    rows = store.feedback()
    assert [(r["question"], r["rating"]) for r in rows] == [("What fixed it?", 1), ("Who wrote it?", -1)]
    assert rows[1]["comment"] == "it is in the Postgres post" and rows[1]["settings"] == {"answerer": "llm"}
    monkeypatch.setenv("RAG_CHATS_PATH", str(store.path))
    assert main(["feedback", "export"]) == 0
    down, up = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert down["rating"] == "down" and down["question"] == "Who wrote it?" and "needs_review" in down
    assert up["gold_files"] == ["posts/postgres.md"] and up["answer"] == "PgBouncer [1]."
    assert main(["feedback", "export", "--rating", "up"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_an_exported_chat_has_each_question_answer_and_its_sources(store):
    chat = store.create()
    store.add(chat.id, "user", "What fixed it?")
    store.add(chat.id, "assistant", "**PgBouncer** fixed it [1]. ![x](http://evil.test/x.png)", answer=ANSWER)
    store.add(chat.id, "user", "<b>and then?</b>")
    store.add(chat.id, "assistant", "", error="the LLM timed out")
    text = chat_markdown(store.get(chat.id), store.messages(chat.id))
    assert text.startswith("# What fixed it?\n")
    assert "**Question:** What fixed it?" in text and "**Answer:** **PgBouncer** fixed it [1]." in text
    assert "- [1] Scaling Postgres › Pooling, p. 4" in text
    assert "  > A simple PgBouncer setup eliminated the issue" in text
    assert "evil.test" not in text and "<b>" not in text and "**Failed:** the LLM timed out" in text


def test_a_broken_chat_file_is_one_clear_error(tmp_path):
    path = tmp_path / "chats.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(UserError, match="move it aside"):
        ChatStore(path).chats()


def test_rag_chat_saves_turns_then_resumes_lists_and_exports(shipped_index, monkeypatch, capsys):
    monkeypatch.setenv("RAG_INDEX_DIR", str(shipped_index))
    monkeypatch.setattr(sys, "stdin", io.StringIO("How did they move to structured logging?\n/quit\n"))
    assert main(["chat"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdin", io.StringIO("and how long did that take?\n/quit\n"))
    assert main(["chat", "--resume"]) == 0
    out = capsys.readouterr().out
    assert '(resuming "How did they move to structured logging?": 1 questions so far)' in out
    assert "two weeks" in out  # the follow-up read the resumed history
    assert main(["chat", "--list"]) == 0
    chat_id, _, title = capsys.readouterr().out.strip().split("  ", 2)
    assert title == "How did they move to structured logging?"
    assert main(["chat", "--export", chat_id]) == 0
    exported = capsys.readouterr().out
    assert exported.count("**Question:**") == 2 and "two weeks" in exported and "- [1] " in exported
    assert main(["chat", "--resume", "nope"]) == 2


def test_answer_markdown_keeps_formatting_and_only_the_links_its_sources_have():
    passages = [PASSAGE]
    text = ("**Bold** and *emphasis* stay.\n\n- a list\n- `code <b>` too\n\n![tracker](https://evil.test/p.png) "
            "[config](https://www.pgbouncer.org/config.html) [phish](https://evil.test/login) "
            "<img src=x onerror=alert(1)> https://evil.test/raw $x$ :red[alarm]\n\n[1]: https://evil.test/ref")
    shown = answer_markdown(text, passages, ("pgbouncer.org",))
    assert shown.startswith("**Bold** and *emphasis* stay.\n\n- a list\n- `code <b>` too")
    assert "[config](https://www.pgbouncer.org/config.html)" in shown
    assert "](https://evil.test" not in shown and "evil.test/p.png" not in shown and "phish" in shown
    assert "\\<img" in shown and "https://evil.test/raw" not in shown and "\\$x\\$" in shown
    assert "\\:red[alarm]" in shown and "\\[1\\]: " in shown


def test_a_sourced_link_to_a_host_not_allow_listed_is_shown_unlinked_with_a_warning():
    text = "See [config](https://www.pgbouncer.org/config.html) or https://www.pgbouncer.org/config.html now."
    shown = answer_markdown(text, [PASSAGE])
    assert "](https://" not in shown and shown.count("outside link to www\u200b.pgbouncer.org") == 2
    assert "https\u200b://www\u200b.pgbouncer.org/config.html" in shown  # shown, but not auto-linked
    assert "[config](https://www.pgbouncer.org/config.html)" in answer_markdown(text, [PASSAGE], ("pgbouncer.org",))


def test_an_email_address_is_a_link_kept_only_when_its_source_holds_it():
    source = "Questions go to ops@pgbouncer.org."
    shown = answer_markdown("Write to help@evil.test or ops@pgbouncer.org.", [source], ("pgbouncer.org",))
    assert "help@\u200bevil.test" in shown and "help@evil.test" not in shown  # not turned into a mailto: link
    assert "ops@pgbouncer.org" in shown and "outside" not in shown


def test_safe_markdown_neutralizes_streamlit_directives_and_latex():
    from rag.render import safe_markdown

    shown = safe_markdown(":material/warning: :red[alarm] :smile: cost $5 and $6 at 10:30")
    assert shown == "\\:material/warning: \\:red\\[alarm\\] \\:smile: cost \\$5 and \\$6 at 10:30"
