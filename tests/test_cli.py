"""The `rag` command: JSON contracts, batch mode, exit codes and one-line errors."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys

import pytest
from conftest import SHIPPED_CORPUS

from rag.cli import main


@pytest.fixture
def env(monkeypatch, shipped_index):
    monkeypatch.setenv("RAG_INDEX_DIR", str(shipped_index))
    monkeypatch.setenv("RAG_CORPUS_DIR", str(SHIPPED_CORPUS))


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_search_json_matches_the_contract(env, capsys):
    code, out, err = run(capsys, "search", "How did they cut cloud costs?", "--k", "3", "--json")
    assert code == 0 and err == ""
    data = json.loads(out)
    assert data["question"] == "How did they cut cloud costs?"
    passages = data["passages"]
    assert len(passages) == 3
    for passage in passages:
        assert isinstance(passage["text"], str) and passage["text"]
        assert isinstance(passage["score"], float)
        assert passage["titles"] and all(isinstance(t, str) for t in passage["titles"])
        assert {s["title"] for s in passage["sources"]} == set(passage["titles"])
        assert all({"title", "path", "section"} <= set(s) for s in passage["sources"])
    scores = [p["score"] for p in passages]
    assert scores == sorted(scores, reverse=True)
    cost = [p for p in passages if p["text"].startswith("Our cost optimization")]
    assert len(cost) == 1 and len(cost[0]["titles"]) == 4  # one passage naming all four posts


def test_batch_prints_one_json_line_per_input_line(env, capsys, tmp_path):
    questions = tmp_path / "q.txt"
    questions.write_text("what went wrong with database connections?\n\nwhy use feature flags?\n")
    code, out, _ = run(capsys, "search", "--batch", str(questions), "--k", "2")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 2  # one line was empty
    assert [line["question"] for line in lines] == [
        "what went wrong with database connections?", "", "why use feature flags?"]
    assert "empty" in lines[1]["error"]
    assert "PgBouncer" in lines[0]["passages"][0]["text"]
    assert "Feature flags" in lines[2]["passages"][0]["text"]


def test_batch_reads_stdin(env, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("mob programming\nstructured logging\n"))
    code, out, _ = run(capsys, "search", "--batch", "-", "--k", "1")
    assert code == 0
    assert [json.loads(line)["passages"][0]["text"][:14] for line in out.splitlines()] == [
        "The team exper", "Structured log"]


def test_human_output_names_posts_and_sections(env, capsys):
    code, out, _ = run(capsys, "search", "orphaned resources and reserved capacity", "--k", "1")
    assert code == 0
    assert "Incident Post-Mortem" in out and "Your First 3 Days with CQRS Patterns" in out


def test_info_json(env, capsys):
    code, out, _ = run(capsys, "info", "--json")
    info = json.loads(out)
    assert code == 0
    assert (info["posts"], info["passages"], info["unique_passages"], info["dimension"]) == (5, 36, 25, 384)
    assert info["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert info["changed_files"] == [] and info["index_bytes"] > 0 and info["built_at"]


def test_info_lists_files_changed_since(capsys, tmp_path, monkeypatch):
    shutil.copytree(SHIPPED_CORPUS, tmp_path / "corpus")
    assert run(capsys, "ingest", "--json")[0] == 0
    (tmp_path / "corpus" / "new.md").write_text("# New\n\nA new post.\n")
    code, out, _ = run(capsys, "info")
    assert code == 0 and "changed since: corpus/new.md" in out



def test_a_link_loop_in_the_corpus_is_skipped_by_ingest_and_info(capsys, tmp_path):
    shutil.copytree(SHIPPED_CORPUS, tmp_path / "corpus")
    assert run(capsys, "ingest", "--json")[0] == 0
    (tmp_path / "corpus" / "self.md").symlink_to("self.md")  # added after the ingest
    code, out, err = run(capsys, "info")
    assert code == 0 and "changed since: none" in out and err == ""
    code, out, err = run(capsys, "ingest")
    assert code == 0 and "warning: skipped corpus/self.md: broken link" in err

@pytest.mark.parametrize("argv, message", [
    (["search", "   "], "the question is empty"),
    (["search", "\x00\x07"], "the question is empty"),
    (["search"], "give a question"),
])
def test_user_errors_exit_2_with_one_line(env, capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and err.count("\n") == 1


def test_bad_k_is_a_usage_error(env, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["search", "x", "--k", "0"])
    assert caught.value.code == 2 and "--k takes a number from 1 to 100" in capsys.readouterr().err


def test_huge_question_is_cut_and_the_user_told(env, capsys):
    code, out, err = run(capsys, "search", "database connection pooling " * 50_000, "--json", "--k", "1")
    data = json.loads(out)
    assert code == 0 and len(data["question"]) <= 2000
    assert "RAG_MAX_QUESTION_CHARS" in err and data["notices"]
    assert "PgBouncer" in data["passages"][0]["text"]


def test_search_before_ingest_exits_2_saying_to_ingest(capsys):
    code, out, err = run(capsys, "search", "anything", "--json")
    assert (code, out) == (2, "")
    error = json.loads(err)
    assert "rag ingest" in error["error"] and error["exit_code"] == 2


def test_corrupted_index_exits_2(capsys, tmp_path):
    shutil.copytree(SHIPPED_CORPUS, tmp_path / "corpus")
    run(capsys, "ingest")
    records = next((tmp_path / "vectorstore").glob("passages-*.sqlite"))
    records.write_bytes(records.read_bytes()[:-10])
    code, _, err = run(capsys, "search", "costs")
    assert code == 2 and "rag ingest --rebuild" in err and err.count("\n") == 1


def test_settings_mismatch_exits_2(capsys, tmp_path, monkeypatch):
    shutil.copytree(SHIPPED_CORPUS, tmp_path / "corpus")
    run(capsys, "ingest")
    monkeypatch.setenv("RAG_MAX_PASSAGE_TOKENS", "100")
    code, _, err = run(capsys, "search", "costs")
    assert code == 2 and "other settings" in err and "rag ingest" in err


def test_ingest_warns_about_skipped_files_by_name(capsys, tmp_path):
    shutil.copytree(SHIPPED_CORPUS, tmp_path / "corpus")
    (tmp_path / "corpus" / "blob.txt").write_bytes(b"\x00\x01binary")
    code, out, err = run(capsys, "ingest")
    assert code == 0 and "index holds 5 posts from 1 document:" in out and "read     corpus/case-studies.txt" in out
    assert "warning: skipped corpus/blob.txt: binary file" in err


def test_ingest_of_missing_path_exits_2(capsys):
    code, _, err = run(capsys, "ingest", "no/such/folder")
    assert code == 2 and "does not exist" in err


@pytest.mark.slow
def test_console_script_end_to_end(tmp_path):
    """The installed `rag` entry point in a fresh process: ingest, search --json, exit codes."""
    rag = shutil.which("rag", path=str(sys.prefix + "/bin")) or "rag"
    shutil.copytree(SHIPPED_CORPUS, tmp_path / "corpus")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("RAG_")}
    ingest = subprocess.run([rag, "ingest"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert ingest.returncode == 0, ingest.stderr
    search = subprocess.run([rag, "search", "connection limits during traffic spikes", "--json", "--k", "2"],
                            cwd=tmp_path, env=env, capture_output=True, text=True)
    assert search.returncode == 0, search.stderr
    assert "PgBouncer" in json.loads(search.stdout)["passages"][0]["text"]
    empty = subprocess.run([rag, "search", ""], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert empty.returncode == 2 and empty.stderr.startswith("rag: error: the question is empty")


def test_invalid_setting_exits_2_naming_the_variable(capsys, monkeypatch):
    monkeypatch.setenv("RAG_TOP_K", "many")
    code, _, err = run(capsys, "info")
    assert code == 2 and "RAG_TOP_K" in err and err.count("\n") == 1
