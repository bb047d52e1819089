"""A library of documents: add, update, remove and sync files without re-embedding the rest."""

from __future__ import annotations

import json

import pytest

from rag import Assistant
from rag.cli import main
from rag.sources import add_plan, remove_plan


def _paths(assistant: Assistant) -> list[str]:
    return [d.path for d in assistant.sources()]


def _indexed_texts(assistant: Assistant) -> set[str]:
    return {hit.passage.text for hit in assistant.search("kafka cdn incident postgres lesson", k=20).hits}


@pytest.fixture
def notes(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "postgres.md").write_text("# Postgres upgrade\n\nThe upgrade to Postgres 16 took one weekend.\n")
    (folder / "incident.txt").write_text("Incident notes\n\nThe pager woke three engineers at night.\n")
    return folder


def test_adding_keeps_the_rest_and_embeds_only_the_new(make_settings, docs, notes):
    assistant = Assistant(make_settings())
    first = assistant.ingest()
    assert first.embedded == 4 and _paths(assistant) == ["corpus/cdn.md", "corpus/kafka.md"]
    added = assistant.ingest([notes / "postgres.md"])
    assert (added.embedded, added.reused, added.indexed) == (1, 4, ("notes/postgres.md",))
    assert _paths(assistant) == ["corpus/cdn.md", "corpus/kafka.md", "notes/postgres.md"]
    # A plain ingest re-reads every recorded source, the added file included: nothing changed, nothing written.
    again = assistant.ingest()
    assert not again.wrote_index and again.files == 3


def test_remove_drops_only_that_files_passages_and_stays_removed(make_settings, docs, notes):
    assistant = Assistant(make_settings())
    assistant.ingest()
    assistant.ingest([notes])
    before = _indexed_texts(assistant)
    report = assistant.remove([docs / "cdn.md"])
    assert report.removed_files == ("corpus/cdn.md",) and report.embedded == 0
    after = _indexed_texts(assistant)
    assert before - after == {"A CDN in front of the API raised the cache hit rate to 94 percent."}
    assert "Shared lesson: always measure before optimizing." in after  # kafka.md has it too
    assert _paths(assistant) == ["corpus/kafka.md", "notes/incident.txt", "notes/postgres.md"]
    # Re-reading the corpus folder does not bring the removed file back; naming it does.
    assert not assistant.ingest().wrote_index
    assert _paths(assistant) == ["corpus/kafka.md", "notes/incident.txt", "notes/postgres.md"]
    back = assistant.ingest([docs / "cdn.md"])
    assert back.indexed == ("corpus/cdn.md",) and "corpus/cdn.md" in _paths(assistant)


def test_remove_a_folder_and_sync(make_settings, docs, notes):
    assistant = Assistant(make_settings())
    assistant.ingest([docs, notes])
    assert assistant.remove([notes]).removed_files == ("notes/incident.txt", "notes/postgres.md")
    assert _paths(assistant) == ["corpus/cdn.md", "corpus/kafka.md"]
    synced = assistant.ingest([notes], sync=True)
    assert synced.embedded == 2 and set(synced.removed_files) == {"corpus/cdn.md", "corpus/kafka.md"}
    assert _paths(assistant) == ["notes/incident.txt", "notes/postgres.md"]


def test_an_edited_file_is_updated_in_place(make_settings, docs, notes):
    assistant = Assistant(make_settings())
    assistant.ingest([docs, notes])
    added = {d.path: d.added for d in assistant.sources()}
    (notes / "postgres.md").write_text("# Postgres upgrade\n\nThe upgrade to Postgres 17 took two weekends.\n")
    report = assistant.ingest([notes / "postgres.md"])
    assert (report.embedded, report.changed_files) == (1, ("notes/postgres.md",))
    documents = {d.path: d for d in assistant.sources()}
    assert documents["notes/postgres.md"].added == added["notes/postgres.md"]
    assert documents["notes/postgres.md"].updated >= documents["notes/postgres.md"].added
    assert "The upgrade to Postgres 16 took one weekend." not in _indexed_texts(assistant)


def test_removing_what_is_not_indexed_or_everything_says_so_and_changes_nothing(make_settings, docs, capsys):
    Assistant(make_settings()).ingest()
    assert main(["remove", "corpus/nope.md"]) == 2
    assert "corpus/nope.md is not in the index; `rag sources` lists what is" in capsys.readouterr().err
    assert main(["remove", "corpus"]) == 2
    assert "that would leave the index empty" in capsys.readouterr().err
    assert _paths(Assistant(make_settings())) == ["corpus/cdn.md", "corpus/kafka.md"]


def test_a_new_index_holds_what_it_is_given(make_settings, docs, notes):
    report = Assistant(make_settings()).ingest([notes / "postgres.md"])
    assert report.indexed == ("notes/postgres.md",) and report.files == 1


def test_rag_sources_and_remove_from_the_command_line(docs, notes, capsys):
    assert main(["ingest"]) == 0 and main(["ingest", "notes/postgres.md"]) == 0
    capsys.readouterr()
    assert main(["sources", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["sources"]
    assert [(s["path"], s["kind"], s["posts"], s["passages"]) for s in listed] == [
        ("corpus/cdn.md", "markdown", 1, 2), ("corpus/kafka.md", "markdown", 1, 3),
        ("notes/postgres.md", "markdown", 1, 1)]
    assert all(s["title"] for s in listed) and listed[0]["title"] == "Edge caching"
    assert main(["remove", "notes/postgres.md"]) == 0
    assert "removed  notes/postgres.md" in capsys.readouterr().out
    assert main(["sources"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith(
        'corpus/cdn.md  "Edge caching"  (markdown, 1 post, 2 passages, added ')


def test_plans_keep_roots_and_exclusions_straight():
    plan = add_plan(["corpus"], ["corpus/old"], ["corpus/old/a.md", "notes"])
    assert (plan.roots, plan.excluded) == (["corpus", "corpus/old/a.md", "notes"], ["corpus/old"])
    assert plan.in_scope("notes/x.md") and not plan.in_scope("corpus/b.md")
    plan = remove_plan(["corpus", "notes"], [], ["corpus/b.md", "notes"])
    assert (plan.roots, plan.excluded) == (["corpus"], ["corpus/b.md"])
