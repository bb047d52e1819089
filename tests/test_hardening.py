"""Hostile input from the corpus, files, settings and eval sets: one clear line, nothing lost, nothing raw."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from rag import logs
from rag.cli import main
from rag.text import printable

HOSTILE = "\x1b]0;PWNED\x07\x1b[2J\x1b]52;c;cm0gLXJmIH4=\x07"  # retitle, clear screen, write the clipboard
FORGED_NAME = "evil\nrag: note: index verified OK.md"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def raw_controls(text: str) -> bool:
    """Whether text holds a control character other than the line breaks the CLI lays out."""
    return printable(text, newlines=True) != text


def test_printable_makes_every_control_character_visible():
    assert printable("a\x1b[2Jb\x07\r\t\x9b\u202ec") == "a\\x1b[2Jb\\x07\\r\\t\\x9b\\u202ec"
    assert printable("name\nforged") == "name\\nforged"
    assert printable("line one\nline two\x1b", newlines=True) == "line one\nline two\\x1b"
    assert printable("café — ünïcode “quotes”") == "café — ünïcode “quotes”"


@pytest.fixture
def hostile_corpus(tmp_path, monkeypatch):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "kafka.md").write_text(
        f"# Moving to Kafka {HOSTILE}\n\nWe replaced RabbitMQ with Kafka{HOSTILE} to get replayable event "
        "streams for the billing team.\n")
    (folder / FORGED_NAME).write_text("# Evil\n\nThe cluster costs four thousand dollars a month to run.\n")
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "vectorstore"))
    monkeypatch.setenv("RAG_CORPUS_DIR", str(folder))
    return folder


def test_corpus_text_and_names_reach_the_terminal_escaped_and_json_intact(hostile_corpus, capsys, monkeypatch):
    code, out, err = run(capsys, "ingest")
    assert code == 0 and not raw_controls(out + err)
    assert "corpus/evil\\nrag: note: index verified OK.md" in out
    assert not any(line.startswith("rag: note: index verified") for line in (out + err).splitlines())

    question = "why did they replace RabbitMQ with Kafka?"
    for argv in (["search", question], ["ask", question], ["sources"], ["info"]):
        code, out, err = run(capsys, *argv)
        assert code == 0 and not raw_controls(out + err), argv
    assert "\\x1b]52;c;" in run(capsys, "search", question)[1]

    code, out, _ = run(capsys, "search", question, "--json")
    assert code == 0 and HOSTILE in json.loads(out)["passages"][0]["text"]  # JSON keeps the text, escaped
    assert "\x1b" not in out

    monkeypatch.setattr(sys, "stdin", io.StringIO(question + "\n"))
    code, out, err = run(capsys, "chat")
    assert code == 0 and "RabbitMQ" in out and not raw_controls(out + err)


def test_plain_log_lines_are_escaped(capsys):
    logs.setup(json_lines=False)
    logging.getLogger("rag.ingest").warning("no export of %s", FORGED_NAME + HOSTILE)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and "evil\\nrag: note" in err


def test_when_every_file_is_skipped_the_error_says_why_for_each(tmp_path, capsys):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "blob.txt").write_bytes(b"\x00\x01binary")
    (folder / "sheet.csv").write_text("a,b\n")
    (folder / "empty.md").write_text("\n")
    for n in range(7):
        (folder / f"latin{n}.txt").write_bytes(b"caf\xe9")
    code, _, err = run(capsys, "ingest", str(folder))
    assert code == 2 and err.count("\n") == 1
    assert "docs/blob.txt: binary file" in err and "docs/empty.md: empty file" in err
    assert "docs/sheet.csv: unsupported file type .csv" in err
    assert "docs/latin0.txt, docs/latin1.txt, docs/latin2.txt, docs/latin3.txt, docs/latin4.txt and 2 more: " \
           "not UTF-8 text" in err


def test_a_folder_with_nothing_to_read_says_so(tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / ".draft.md").write_text("# Hidden\n\nNot read.\n")
    code, _, err = run(capsys, "ingest", str(tmp_path / "docs"))
    assert code == 2 and "no files found; hidden files and folders are not read" in err


def test_one_passage_sends_at_most_the_cap_to_the_llm(shipped_index):
    from fake_openai import FakeOpenAI, passages_in, scripted_llm

    from rag import Assistant, Settings

    with FakeOpenAI() as fake:
        fake.then(scripted_llm)
        settings = Settings(index_dir=shipped_index, openai_api_key="sk-test", openai_base_url=fake.url,
                            answerer="llm", llm_fallback=False, llm_max_retries=0, llm_max_passage_chars=200)
        assistant = Assistant(settings)
        assistant.ask("How did they cut cloud costs?", k=3)
        sent = passages_in(fake.requests[0])
    whole = [h.passage.text for h in assistant.search("How did they cut cloud costs?", k=3).hits]
    assert sent and all(len(text) <= 200 for text in sent.values())
    assert any(len(text) > 200 for text in whole)  # the index keeps them whole; only the prompt is cut
    assert all(whole[n - 1].startswith(text) for n, text in sent.items())


@pytest.mark.parametrize("line, message", [
    ('{"question": "What did it cost?", "gold_titles": "Cost"}', ':2: "gold_titles" must be a list of strings'),
    ('{"question": null, "gold_titles": []}', ':2: "question" must be a non-empty string'),
    ('{"question": "Why?", "gold_titles": [["nested"]]}', ':2: "gold_titles" must be a list of strings'),
    ('{"question": "Why?", "gold_files": [], "answers": "two weeks"}', ':2: "answers" must be a list of strings'),
    ('{"question": "Why?"}', ':2: "gold_titles" is missing'),
    ('["question"]', ":2: expected a JSON object"),
    ("{not json", ":2: not a JSON line"),
    ('{"turns": [{"question": "Why?"}, {"question": 3}]}', ':2: turn 2: "question" must be a non-empty string'),
    ('{"turns": [{"question": "Why?", "subject": "db"}]}', ':2: turn 1: "subject" must be a list of strings'),
    ('{"turns": "Why?"}', ":2: expected {\"turns\""),
])
def test_each_eval_line_is_checked_and_a_bad_one_named_by_line_and_field(shipped_index, tmp_path, capsys, line,
                                                                          message):
    conversation = line.startswith('{"turns"')
    good = ('{"turns": [{"question": "Why feature flags?"}]}' if conversation else
            '{"question": "Why feature flags?", "gold_titles": []}')
    questions = tmp_path / "questions.jsonl"
    questions.write_text(good + "\n" + line + "\n")
    code, out, err = run(capsys, "eval", str(questions), *([] if conversation else ["--retrieval-only"]))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert f"questions.jsonl{message}" in err, err
