"""Many readers, one owner: questions keep the generation they opened while ingests publish new ones."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from conftest import loaded

from rag import Assistant
from rag.answer.grounding import NameMatcher
from rag.index.shared import SharedIndex


def add_paragraph(corpus, original: str, text: str) -> None:
    """The shipped corpus is one listing: a paragraph appended to it belongs to its last post."""
    (corpus / "case-studies.txt").write_text(f"{original.rstrip()}\n\n    {text}\n")


class Resource:
    def __init__(self, number: int) -> None:
        self.number, self.closed = number, False

    def close(self) -> None:
        self.closed = True


def test_a_retired_generation_closes_when_its_last_borrower_is_done():
    opened: list[Resource] = []
    shared = SharedIndex(lambda: opened.append(Resource(len(opened))) or opened[-1])
    with shared.borrow() as first:
        shared.refresh()  # an ingest published a new generation meanwhile
        with shared.borrow() as second:
            assert (first.number, second.number) == (0, 1)
        assert not first.closed  # still being read
    assert first.closed and not second.closed
    with shared.borrow() as again:
        assert again is second  # the current one is lent, not loaded again
    shared.close()
    assert second.closed


def test_reingest_while_others_ask_fails_no_question(make_settings, corpus):
    """The app shares one Assistant across sessions: an ingest must not close what other threads read."""
    assistant = Assistant(make_settings(corpus_dir=corpus))
    assistant.ingest()
    errors: list[BaseException] = []
    done = threading.Event()

    def ask_until_done(number: int) -> None:
        while not done.is_set():
            try:
                if number % 2:
                    assert assistant.search("why did the database fall over?").hits
                else:
                    assert not assistant.ask("How long did the move to structured logging take?").abstained
            except BaseException as exc:  # noqa: BLE001 - collected and reported below
                errors.append(exc)
                return

    askers = [threading.Thread(target=ask_until_done, args=(n,)) for n in range(4)]
    for thread in askers:
        thread.start()
    original = (corpus / "case-studies.txt").read_text()
    try:
        for edit in range(8):
            add_paragraph(corpus, original, f"Edit number {edit} added the zanzibar-{edit} pooler.")
            assert assistant.ingest().embedded == 1
            time.sleep(0.05)
    finally:
        done.set()
        for thread in askers:
            thread.join(60)
    assert not errors, repr(errors[0])
    assert "zanzibar-7" in assistant.search("zanzibar-7 pooler", k=1).hits[0].passage.text


def test_a_copy_that_ingests_never_closes_what_the_original_reads(make_settings, corpus):
    a = Assistant(make_settings(corpus_dir=corpus))
    a.ingest()
    assert a.search("connection pooling").hits
    b = a.configured(top_k=3)
    add_paragraph(corpus, (corpus / "case-studies.txt").read_text(), "The quokka pooler replaced PgBouncer in the end.")
    assert b.ingest().embedded == 1
    assert "quokka" in a.search("quokka pooler", k=1).hits[0].passage.text  # a sees the new generation
    assert "quokka" in b.search("quokka pooler", k=1).hits[0].passage.text


def test_name_matcher_cache_is_safe_when_threads_fill_it(shipped):
    """The cache is shared by every chat session and emptied when full while others read it."""
    _, encoder = loaded(shipped)
    matcher = NameMatcher(encoder, max_words=3)
    errors: list[BaseException] = []

    def ground(number: int) -> None:
        try:
            for round_ in range(20):
                # Not spelled alike, so word vectors decide (iPhone/iOS); every round brings new words.
                context = f"The iOS app of team{number}x{round_} shipped in release{round_}."
                assert matcher.missing(["iPhone"], context) == []
        except BaseException as exc:  # noqa: BLE001 - collected and reported below
            errors.append(exc)

    threads = [threading.Thread(target=ground, args=(n,)) for n in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, as a busy server does
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        sys.setswitchinterval(interval)
    assert not errors, repr(errors[0])


@pytest.mark.slow
def test_an_isolated_ingest_leaves_no_torch_in_the_process(make_settings, corpus, tmp_path):
    """What the app's Re-ingest does: the embedding model loads in a child process and goes with it."""
    settings = make_settings(corpus_dir=corpus)
    Assistant(settings).ingest()
    add_paragraph(corpus, (corpus / "case-studies.txt").read_text(), "The wombat pooler replaced PgBouncer in the end.")
    script = f"""
import sys
from rag import Assistant, Settings
assistant = Assistant(Settings(corpus_dir={str(corpus)!r}, index_dir={str(settings.index_dir)!r}))
assistant.load()
seen = []
report = assistant.ingest(isolated=True, progress=lambda done, total: seen.append((done, total)))
assert (report.embedded, seen[-1]) == (1, (1, 1)), (report, seen)
assert "wombat" in assistant.search("wombat pooler", k=1).hits[0].passage.text
heavy = sorted(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules)
print("heavy:", heavy)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "heavy: []"
