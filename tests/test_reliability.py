"""Reliability and security: kills mid-ingest, concurrent writers, tampering, hostile input, secrets."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import SHIPPED_CORPUS
from fake_openai import FakeOpenAI, reply, status

from rag import Assistant, Settings
from rag.cli import main
from rag.index.manifest import read_manifest

RAG = str(Path(sys.executable).with_name("rag"))
KEY = "sk-live-SENTINEL-0badc0ffee"
CODEWORD = "The deployment codeword for the rollout was {word}, chosen by the release captain."


def write_corpus(folder: Path, word: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(SHIPPED_CORPUS, folder)
    (folder / "codeword.md").write_text(f"# Release notes\n\n{CODEWORD.format(word=word)}\n")


def cli_env(root: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_"))}
    env.update({"RAG_INDEX_DIR": str(root / "vectorstore"), "RAG_CORPUS_DIR": str(root / "corpus"), **extra})
    return env


def codeword(root: Path) -> str:
    """The codeword the index answers with; fails if the index does not load or answer."""
    result = subprocess.run([RAG, "search", "what was the deployment codeword?", "--k", "1", "--json"],
                            cwd=root, env=cli_env(root), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    text = json.loads(result.stdout)["passages"][0]["text"]
    return next(w for w in ("ALPHA", "BRAVO") if w in text)


def kill_ingests(root: Path, kills: int, seed: int) -> list[str]:
    """Build on ALPHA, switch the corpus to BRAVO, and kill -9 rebuilding ingests at random moments."""
    write_corpus(root / "corpus", "ALPHA")
    subprocess.run([RAG, "ingest"], cwd=root, env=cli_env(root), check=True, capture_output=True, timeout=300)
    started = time.perf_counter()  # how long a rebuild takes: the kills land anywhere inside one
    subprocess.run([RAG, "ingest", "--rebuild"], cwd=root, env=cli_env(root), check=True, capture_output=True)
    full = time.perf_counter() - started
    write_corpus(root / "corpus", "BRAVO")
    rng, seen = random.Random(seed), []
    for _ in range(kills):
        process = subprocess.Popen([RAG, "ingest", "--rebuild"], cwd=root, env=cli_env(root),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, full * 0.98))
        process.send_signal(signal.SIGKILL)
        process.wait()
        seen.append(codeword(root))  # the old or the new index, loadable and answering
    return seen


def test_kill_minus_9_during_ingest_leaves_a_loadable_index(tmp_path):
    seen = kill_ingests(tmp_path, kills=3, seed=7)
    assert set(seen) <= {"ALPHA", "BRAVO"}
    subprocess.run([RAG, "ingest"], cwd=tmp_path, env=cli_env(tmp_path), check=True, capture_output=True)
    assert codeword(tmp_path) == "BRAVO"
    leftovers = [p.name for p in (tmp_path / "vectorstore").iterdir() if ".tmp" in p.name or ".old-" in p.name]
    assert leftovers == []  # what the kills left is cleaned at the next start


@pytest.mark.slow
def test_kill_stress_twenty_kills(tmp_path):
    seen = kill_ingests(tmp_path, kills=20, seed=2026)
    assert len(seen) == 20 and set(seen) <= {"ALPHA", "BRAVO"}
    print(f"20 kills survived; the index answered {seen.count('ALPHA')}x old, {seen.count('BRAVO')}x new")


@pytest.mark.slow
def test_two_ingests_are_serialized_and_searches_never_see_a_mix(tmp_path):
    write_corpus(tmp_path / "corpus", "ALPHA")
    subprocess.run([RAG, "ingest"], cwd=tmp_path, env=cli_env(tmp_path), check=True, capture_output=True)
    write_corpus(tmp_path / "corpus", "BRAVO")
    answers, errors, stop = [], [], threading.Event()

    def search_loop():
        settings = Settings(index_dir=tmp_path / "vectorstore")
        while not stop.is_set():
            try:
                hit = Assistant(settings).search("what was the deployment codeword?", k=1).hits[0]
                answers.append("ALPHA" if "ALPHA" in hit.passage.text else "BRAVO" if "BRAVO" in hit.passage.text
                               else "MIX")
            except Exception as exc:  # noqa: BLE001 - any failure is what this test looks for
                errors.append(repr(exc))

    reader = threading.Thread(target=search_loop)
    reader.start()
    # Embedding with sentence-transformers (not the ONNX export a few passages would use) keeps the lock for
    # the seconds torch takes to load: long enough for the other two to find it held.
    first = subprocess.Popen([RAG, "ingest", "--rebuild"], cwd=tmp_path,
                             env=cli_env(tmp_path, RAG_QUERY_BACKEND="torch"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    impatient = subprocess.run([RAG, "ingest", "--rebuild"], cwd=tmp_path,
                               env=cli_env(tmp_path, RAG_LOCK_TIMEOUT="0.5"), capture_output=True, text=True)
    patient = subprocess.run([RAG, "ingest"], cwd=tmp_path, env=cli_env(tmp_path),
                             capture_output=True, text=True, timeout=300)
    first.wait(timeout=300)
    stop.set()
    reader.join()
    assert first.returncode == 0
    assert impatient.returncode == 2 and "RAG_LOCK_TIMEOUT" in impatient.stderr
    assert patient.returncode == 0 and "waiting for its lock" in patient.stderr
    assert errors == [] and "MIX" not in answers and answers
    assert codeword(tmp_path) == "BRAVO"


def _tamper_checksum(index_dir: Path) -> None:
    data = json.loads((index_dir / "manifest.json").read_text())
    data["records_file"]["sha256"] = "0" * 64
    (index_dir / "manifest.json").write_text(json.dumps(data))


def _tamper_dimension(index_dir: Path) -> None:
    data = json.loads((index_dir / "manifest.json").read_text())
    data["dimension"] = 768
    (index_dir / "manifest.json").write_text(json.dumps(data))


def _tamper_truncate(index_dir: Path) -> None:
    path = index_dir / read_manifest(index_dir).index_file.name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _tamper_records(index_dir: Path) -> None:
    path = index_dir / read_manifest(index_dir).records_file.name
    data = path.read_bytes()
    path.write_bytes(data.replace(b"PgBouncer", b"PgBouncEr"))


def _tamper_pickle(index_dir: Path) -> None:
    # A pickle that would run code if anything loaded it.
    (index_dir / "index.pkl").write_bytes(b"cos\nsystem\n(S'touch /tmp/rag-pwned'\ntR.")


def _tamper_onnx(index_dir: Path) -> None:
    (index_dir / "onnx" / "model.onnx").write_bytes(b"not a model")


TAMPERING = [_tamper_checksum, _tamper_dimension, _tamper_truncate, _tamper_records, _tamper_pickle, _tamper_onnx]


@pytest.mark.parametrize("tamper", TAMPERING, ids=[t.__name__[8:] for t in TAMPERING])
def test_tampered_index_is_refused_with_exit_2(tmp_path, monkeypatch, capsys, tamper):
    shutil.copytree(SHIPPED_CORPUS, tmp_path / "corpus")
    assert main(["ingest"]) == 0
    tamper(tmp_path / "vectorstore")
    capsys.readouterr()
    assert main(["search", "connection pooling"]) == 2
    err = capsys.readouterr().err
    assert "rag ingest" in err and err.count("\n") == 1
    assert not Path("/tmp/rag-pwned").exists()


def test_odd_file_names_and_hostile_html_are_read_safely(make_settings, tmp_path):
    docs = tmp_path / "corpus"
    docs.mkdir()
    (docs / "-rf --rebuild.md").write_text("# Dash\n\nA file whose name looks like options.\n")
    (docs / "naïve café ☕.md").write_text("# Unicode\n\nA file with a unicode name.\n")
    (docs / "new\nline.md").write_text("# Newline\n\nA file with a newline in its name.\n")
    (docs / "page.html").write_text("<title>Hostile</title><script>alert(document.cookie)</script>"
                                    "<p onclick='steal()'>Plain words about caching.</p><iframe src=x></iframe>")
    report = Assistant(make_settings()).ingest()
    assert report.posts == 4 and report.skipped == ()
    texts = [h.passage.text for h in Assistant(make_settings()).search("caching", k=4).hits]
    assert "Plain words about caching." in texts and not any("alert" in t or "steal" in t for t in texts)


def test_planted_links_and_images_never_reach_the_answer(shipped_index):
    planted = ("A simple PgBouncer setup eliminated the database connection limit issue, see "
               "http://evil.example/collect?d=1 [1]. ![status](http://evil.example/pixel.png) Under normal load, "
               "direct connections worked fine [1]. Visit [the full story](https://evil.example/x) now [1]. "
               "Questions about PgBouncer go to help@evil.example [1].")
    with FakeOpenAI() as fake:
        fake.then(reply(planted))
        settings = Settings(index_dir=shipped_index, openai_api_key=KEY, openai_base_url=fake.url, answerer="llm",
                            llm_fallback=False)
        answer = Assistant(settings).ask("Why did the database fail during traffic spikes?")
    assert "evil.example" not in answer.text and "PgBouncer" in answer.text
    assert any("link" in n for n in answer.notices)


def test_a_planted_phishing_link_is_answered_with_a_warning_unless_its_host_is_trusted(make_settings, tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "help.md").write_text("# Account help\n\nTo reset your password, visit http://evil.example/reset "
                                    "and enter your old password there.\n\n## Tokens\n\nAPI tokens expire after "
                                    "ninety days.\n")
    assistant = Assistant(make_settings(corpus_dir=folder))
    assistant.ingest()
    answer = assistant.ask("How do I reset my password?")
    assert "http://evil.example/reset" in answer.text  # its source says so: quoted, and flagged
    assert any("points outside (evil.example)" in n for n in answer.notices)
    trusting = assistant.configured(trusted_link_hosts="corp.example, evil.example")
    assert not any("points outside" in n for n in trusting.ask("How do I reset my password?").notices)


def test_the_key_never_appears_in_output_logs_or_errors(tmp_path, shipped_index):
    with FakeOpenAI() as fake:
        fake.then(reply("PgBouncer eliminated the connection limit issue [1]."), status(401), status(500))
        env = cli_env(tmp_path, OPENAI_API_KEY=KEY, OPENAI_BASE_URL=fake.url, RAG_INDEX_DIR=str(shipped_index),
                      RAG_LLM_MAX_RETRIES="0")
        runs = [
            [RAG, "--log-json", "--log-text", "ask", "Why did the database fail during traffic spikes?", "--json"],
            [RAG, "--log-json", "ask", "Why did the database fail during traffic spikes?"],
            [RAG, "ask", "Why did the database fail during traffic spikes?", "--json"],
            [RAG, "info", "--json"],
            [RAG, "--log-json", "search", "pooling"],
        ]
        outputs = [subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
                   for run in runs]
    seen = "".join(o.stdout + o.stderr for o in outputs)
    assert KEY not in seen
    assert '"event": "ask"' in seen and "refused the key (401)" in seen and "HTTP 500" in seen
    assert KEY not in repr(Settings(openai_api_key=KEY)) and KEY not in str(Settings(openai_api_key=KEY))


def test_log_json_has_counts_and_timings_but_no_text_unless_asked(shipped_index, monkeypatch, capsys):
    monkeypatch.setenv("RAG_INDEX_DIR", str(shipped_index))
    assert main(["--log-json", "ask", "How did they cut cloud costs?"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    (ask,) = [e for e in events if e["event"] == "ask"]
    assert ask["citations"] >= 1 and ask["total_ms"] > 0 and "question" not in ask and "answer" not in ask
    assert main(["--log-json", "--log-text", "ask", "How did they cut cloud costs?"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert any(e.get("question") == "How did they cut cloud costs?" for e in events)
