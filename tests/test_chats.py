"""Saved chats and feedback (rag.chats), their export, and the Markdown an answer is shown as."""

from __future__ import annotations

import io
import json
import sys

import pytest

from rag.chats import LOCAL, NEW_TITLE, Chat, ChatStore, chat_labels, chat_markdown
from rag.cli import main
from rag.config import Settings
from rag.errors import UserError
from rag.render import answer_markdown

SOURCE = {"title": "Scaling Postgres", "path": "posts/postgres.md", "section": "Pooling", "category": "",
          "position": 0, "page": 4, "page_end": 4}
PASSAGE = "A simple PgBouncer setup eliminated the issue. See https://www.pgbouncer.org/config.html for details."
ANSWER = {"question": "What fixed it?", "standalone_question": "What fixed it?", "abstained": False,
          "citations": [{"marker": 1, "text": PASSAGE, "titles": ["Scaling Postgres"], "sources": [SOURCE],
                         "evidence": [{"start": 0, "end": 46}]}]}


@pytest.fixture
def store(tmp_path, people_url) -> ChatStore:
    """The chat file, or a PostgreSQL database (each test runs on both)."""
    return ChatStore.of(Settings(_env_file=None, chats_path=tmp_path / "chats.sqlite3", database_url=people_url))


def another(store: ChatStore) -> ChatStore:
    """A second store on the same file or database, as another process would open it."""
    return ChatStore(store.path, None if store.path else store.db)


def test_a_chat_keeps_its_turns_titles_itself_and_leaves_failures_out_of_the_history(store):
    chat = store.create(LOCAL)
    assert chat.title == NEW_TITLE
    store.add(LOCAL, chat.id, "user", "What fixed the   connection\nlimit?")
    store.add(LOCAL, chat.id, "assistant", "A simple PgBouncer setup eliminated the issue [1].", answer=ANSWER)
    store.add(LOCAL, chat.id, "user", "and how long did that take?")
    store.add(LOCAL, chat.id, "assistant", "", error="the LLM endpoint refused the key (401)")
    assert store.get(LOCAL, chat.id).title == "What fixed the connection limit?"
    assert [m.role for m in store.messages(LOCAL, chat.id)] == ["user", "assistant", "user", "assistant"]
    assert store.messages(LOCAL, chat.id)[1].answer == ANSWER
    assert store.history(LOCAL, chat.id) == [("user", "What fixed the   connection\nlimit?"),
                                             ("assistant", "A simple PgBouncer setup eliminated the issue [1]."),
                                             ("user", "and how long did that take?")]
    assert store.drop_failure(LOCAL, chat.id) == "and how long did that take?"
    assert store.drop_failure(LOCAL, chat.id) is None  # nothing failed any more
    store.rename(LOCAL, chat.id, "  Postgres pooling  ")
    assert another(store).chats(LOCAL)[0].title == "Postgres pooling"  # another connection sees it
    store.delete(LOCAL, chat.id)
    assert store.chats(LOCAL) == [] and store.messages(LOCAL, chat.id) == []


def test_feedback_is_stored_with_the_question_answer_and_settings_and_exported_as_eval_lines(
        store, monkeypatch, capsys):
    chat = store.create(LOCAL)
    store.add(LOCAL, chat.id, "user", "What fixed it?")
    good = store.add(LOCAL, chat.id, "assistant", "PgBouncer [1].", answer=ANSWER)
    store.add(LOCAL, chat.id, "user", "Who wrote it?")
    bad = store.add(LOCAL, chat.id, "assistant", "The case studies don't cover this.",
                    answer={**ANSWER, "abstained": True, "citations": []})
    assert store.rate(LOCAL, good, 1, settings={"answerer": "extractive", "k": 4})
    assert store.rate(LOCAL, bad, 1)
    assert store.rate(LOCAL, bad, -1, "  it is in the Postgres post  ", {"answerer": "llm"})  # changed their mind
    with pytest.raises(UserError):
        store.rate(LOCAL, good, 0)
    rows = store.feedback()
    assert [(r["question"], r["rating"]) for r in rows] == [("What fixed it?", 1), ("Who wrote it?", -1)]
    assert rows[1]["comment"] == "it is in the Postgres post" and rows[1]["settings"] == {"answerer": "llm"}
    monkeypatch.setenv("RAG_CHATS_PATH", str(store.path))  # unused with RAG_DATABASE_URL (set by people_url)
    assert main(["feedback", "export"]) == 0
    down, up = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert down["rating"] == "down" and down["question"] == "Who wrote it?" and "needs_review" in down
    assert up["gold_files"] == ["posts/postgres.md"] and up["answer"] == "PgBouncer [1]."
    assert main(["feedback", "export", "--rating", "up"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_an_exported_chat_has_each_question_answer_and_its_sources(store):
    chat = store.create(LOCAL)
    store.add(LOCAL, chat.id, "user", "What fixed it?")
    store.add(LOCAL, chat.id, "assistant", "**PgBouncer** fixed it [1]. ![x](http://evil.test/x.png)", answer=ANSWER)
    store.add(LOCAL, chat.id, "user", "<b>and then?</b>")
    store.add(LOCAL, chat.id, "assistant", "", error="the LLM timed out")
    text = chat_markdown(store.get(LOCAL, chat.id), store.messages(LOCAL, chat.id))
    assert text.startswith("# What fixed it?\n")
    assert "**Question:** What fixed it?" in text and "**Answer:** **PgBouncer** fixed it [1]." in text
    assert "- [1] Scaling Postgres › Pooling, p. 4" in text
    assert "  > A simple PgBouncer setup eliminated the issue" in text
    assert "evil.test" not in text and "<b>" not in text and "**Failed:** the LLM timed out" in text


def test_a_broken_chat_file_is_one_clear_error(tmp_path):
    path = tmp_path / "chats.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(UserError, match="move it aside"):
        ChatStore(path).chats(LOCAL)


# ---------------------------------------------------------------- whose chats


ADA, BOB = "user:ada", "user:bob"


def test_another_owner_cannot_list_open_read_rename_delete_append_to_retry_or_rate_a_chat(store):
    """Admins included: the store knows owners, not roles, so nobody has a way into another's chat."""
    chat = store.create(ADA)
    store.add(ADA, chat.id, "user", "What fixed it?")
    answer = store.add(ADA, chat.id, "assistant", "PgBouncer [1].", answer=ANSWER)
    store.add(ADA, chat.id, "user", "and then?")
    store.add(ADA, chat.id, "assistant", "", error="the LLM timed out")
    assert store.rate(ADA, answer, -1, "Ada's own comment")

    assert store.chats(BOB) == [] and store.get(BOB, chat.id) is None
    assert store.messages(BOB, chat.id) == [] and store.history(BOB, chat.id) == []
    assert store.drop_failure(BOB, chat.id) is None
    with pytest.raises(UserError, match="no chat"):
        store.add(BOB, chat.id, "user", "planted question")
    assert not store.rate(BOB, answer, 1, "overwritten by Bob")
    store.rename(BOB, chat.id, "Bob was here")
    store.delete(BOB, chat.id)

    mine = store.messages(ADA, chat.id)  # all of it still there, unchanged
    assert [c.title for c in store.chats(ADA)] == ["What fixed it?"]
    assert len(mine) == 4 and mine[1].rating == -1 and mine[1].comment == "Ada's own comment"
    assert "planted question" not in [m.content for m in mine]
    assert [(r["rating"], r["comment"]) for r in store.feedback()] == [(-1, "Ada's own comment")]
    assert store.drop_failure(ADA, chat.id) == "and then?"


def test_feedback_export_holds_everyones_ratings_and_a_question_cannot_be_rated(store):
    rated = []
    for owner in (ADA, BOB):
        chat = store.create(owner)
        question = store.add(owner, chat.id, "user", f"{owner} asks")
        assert not store.rate(owner, question, 1)  # only answers are rated
        rated.append(store.add(owner, chat.id, "assistant", f"{owner} is answered", answer=ANSWER))
        assert store.rate(owner, rated[-1], 1)
    assert sorted(r["question"] for r in store.feedback()) == ["user:ada asks", "user:bob asks"]
    store.delete(ADA, store.chats(ADA)[0].id)  # a deleted chat takes its feedback with it
    assert [r["question"] for r in store.feedback()] == ["user:bob asks"]


OLD_SCHEMA = """
CREATE TABLE chats (id TEXT PRIMARY KEY, title TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL);
CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT,
                       chat_id TEXT NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
                       role TEXT NOT NULL, content TEXT NOT NULL, answer TEXT, error TEXT, created TEXT NOT NULL);
CREATE INDEX messages_by_chat ON messages(chat_id, id);
CREATE TABLE feedback (message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
                       rating INTEGER NOT NULL, comment TEXT NOT NULL, settings TEXT NOT NULL, created TEXT NOT NULL);
INSERT INTO chats VALUES ('0123456789abcdef', 'What fixed it?', '2025-03-01T09:00:00Z', '2025-03-01T09:01:00Z');
INSERT INTO messages (chat_id, role, content, created) VALUES ('0123456789abcdef', 'user', 'What fixed it?',
                                                               '2025-03-01T09:00:00Z');
INSERT INTO messages (chat_id, role, content, created) VALUES ('0123456789abcdef', 'assistant', 'PgBouncer.',
                                                               '2025-03-01T09:01:00Z');
INSERT INTO feedback VALUES (2, 1, 'good', '{}', '2025-03-01T09:02:00Z');
"""


def test_a_chat_file_from_before_owners_keeps_its_chats_as_the_local_users(tmp_path):
    import sqlite3

    path = tmp_path / "chats.sqlite3"
    with sqlite3.connect(path) as db:  # the file the code before owners made, with a chat in it
        db.executescript(OLD_SCHEMA)
    store = ChatStore(path)
    [chat] = store.chats(LOCAL)
    assert (chat.id, chat.title) == ("0123456789abcdef", "What fixed it?")
    assert [m.content for m in store.messages(LOCAL, chat.id)] == ["What fixed it?", "PgBouncer."]
    assert store.chats(ADA) == [] and store.get(ADA, chat.id) is None  # nobody else's
    store.add(LOCAL, chat.id, "user", "and then?")  # the migrated file works as a new one
    assert store.rate(LOCAL, 2, -1, "changed my mind")
    assert [(r["rating"], r["comment"]) for r in store.feedback()] == [(-1, "changed my mind")]
    again = ChatStore(path)  # a second store (another process) on the migrated file: no second migration
    assert [c.id for c in again.chats(LOCAL)] == [chat.id] and again.create(ADA).id in [c.id for c in again.chats(ADA)]


# ---------------------------------------------------------------- titles in the chats list


def test_chats_that_share_a_title_show_when_each_was_started():
    from datetime import UTC, datetime, timedelta, timezone

    now = datetime(2025, 12, 9, tzinfo=UTC)
    chats = [Chat("a", "How did they cut cloud costs?", "2025-12-05T14:02:31Z", "2025-12-08T10:00:00Z"),
             Chat("b", "Who wrote it?", "2025-12-05T14:03:00Z", "2025-12-07T10:00:00Z"),
             Chat("c", "how did they cut cloud costs?", "2024-12-31T23:30:00Z", "2025-12-06T10:00:00Z")]
    assert chat_labels(chats, UTC, now) == ["How did they cut cloud costs? · 5 Dec 14:02", "Who wrote it?",
                                            "how did they cut cloud costs? · 31 Dec 2024 23:30"]
    # In the reader's zone (here UTC+2): another day, and so another year, for the second one.
    assert chat_labels(chats, timezone(timedelta(hours=2)), now)[::2] == [
        "How did they cut cloud costs? · 5 Dec 16:02", "how did they cut cloud costs? · 1 Jan 01:30"]
    # Started in the same minute: the seconds tell them apart.
    twins = [chats[0], Chat("d", chats[0].title, "2025-12-05T14:02:59Z", "2025-12-05T14:02:59Z")]
    assert chat_labels(twins, UTC, now) == ["How did they cut cloud costs? · 5 Dec 14:02:31",
                                            "How did they cut cloud costs? · 5 Dec 14:02:59"]
    # Started in the same second (a script, or a double click): numbered from the oldest.
    triplets = [*twins, Chat("e", chats[0].title, "2025-12-05T14:02:59Z", "2025-12-05T14:02:59Z")]
    assert [label.rsplit(" · ", 1)[1] for label in chat_labels(triplets, UTC, now)] == [
        "5 Dec 14:02:31", "5 Dec 14:02:59 (2)", "5 Dec 14:02:59 (1)"]
    assert chat_labels(chats[:2], UTC, now) == [chats[0].title, chats[1].title]  # no twins: titles alone
    assert chat_labels([]) == []


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
