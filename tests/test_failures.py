"""Failures the user can fix (full disk, read-only or blocked index folder, SIGTERM): exit 2 or an
interruption, one line naming the folder and the fix, the previous index intact and nothing left over."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO, loaded

from rag import Assistant
from rag.cli import main
from rag.index.manifest import read_manifest

CHANGED = "# Moving to Kafka\n\nAn entirely new story about queues.\n"


@pytest.fixture
def indexed(make_settings, docs, monkeypatch):
    """An index of `docs`, a changed document to ingest next, and the CLI pointed at both."""
    settings = make_settings()
    Assistant(settings).ingest()
    (docs / "kafka.md").write_text(CHANGED)
    monkeypatch.setenv("RAG_CORPUS_DIR", str(settings.corpus_dir))
    monkeypatch.setenv("RAG_INDEX_DIR", str(settings.index_dir))
    return settings


def one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "unexpected failure" not in lines[0] and "Traceback" not in lines[0]
    return lines[0]


def assert_unchanged_and_clean(settings, before) -> None:
    """The previous generation is still the published one, and the failed write left no file at all."""
    assert read_manifest(settings.index_dir) == before
    names = sorted(p.name for p in settings.index_dir.iterdir() if p.name not in ("manifest.json", ".lock", "onnx"))
    assert names == sorted(before.files())
    assert Assistant(settings).search("replayable event streams").hits


def full_faiss_write(monkeypatch, settings) -> None:
    """FAISS writes into /dev/full: the real ENOSPC, at the real write."""
    import rag.index.faiss as module

    real = module.faiss.PyCallbackIOWriter
    full = open("/dev/full", "wb", buffering=0)  # noqa: SIM115 - kept open for the writer; ENOSPC at once
    monkeypatch.setattr(module.faiss, "PyCallbackIOWriter", lambda write: real(full.write))


def full_sqlite(monkeypatch, settings) -> None:
    """SQLite's own SQLITE_FULL ("database or disk is full"), from a page limit on the records file, which
    the records of a long new document outgrow."""
    paragraphs = "\n\n".join(f"Paragraph {n} on queues, {'partitions and offsets ' * 20}." for n in range(200))
    (settings.corpus_dir / "long.md").write_text(f"# Queues at length\n\n{paragraphs}\n")
    real = sqlite3.connect

    def tiny(*args, **kwargs):
        db = real(*args, **kwargs)
        db.execute("PRAGMA max_page_count = 2")
        return db

    monkeypatch.setattr("rag.index.records.sqlite3.connect", tiny)


def full_manifest(monkeypatch, settings) -> None:
    real = os.replace

    def replace(src, dst):
        if os.path.basename(dst) == "manifest.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr("rag.index.files.os.replace", replace)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("fill", [full_faiss_write, full_sqlite, full_manifest])
def test_disk_full_exits_2_and_removes_its_temp_files(indexed, monkeypatch, capsys, fill):
    before = read_manifest(indexed.index_dir)
    fill(monkeypatch, indexed)
    assert main(["ingest"]) == 2
    line = one_error_line(capsys)
    assert f"no space left on the disk of {indexed.index_dir}: free some space" in line
    monkeypatch.undo()
    assert_unchanged_and_clean(indexed, before)


def test_read_only_index_folder_exits_2_naming_it(indexed, monkeypatch, capsys):
    before = read_manifest(indexed.index_dir)
    if os.geteuid() == 0:  # root writes through chmod: fail the lock's open as a read-only mount does
        def read_only(self, *args, **kwargs):
            raise OSError(errno.EROFS, "Read-only file system", self.lock_file)

        monkeypatch.setattr("filelock.FileLock.acquire", read_only)
    else:
        indexed.index_dir.chmod(0o555)
    try:
        assert main(["ingest"]) == 2
    finally:
        indexed.index_dir.chmod(0o755)
    line = one_error_line(capsys)
    assert f"cannot write to {indexed.index_dir}" in line and "RAG_INDEX_DIR" in line
    monkeypatch.undo()
    assert_unchanged_and_clean(indexed, before)


def test_an_index_path_that_is_a_file_exits_2_saying_so(make_settings, docs, monkeypatch, capsys):
    settings = make_settings()
    settings.index_dir.write_text("my notes")
    monkeypatch.setenv("RAG_CORPUS_DIR", str(settings.corpus_dir))
    monkeypatch.setenv("RAG_INDEX_DIR", str(settings.index_dir))
    for argv in (["search", "kafka"], ["ingest", "--rebuild"]):  # search once said to run the rebuild
        assert main(argv) == 2
        line = one_error_line(capsys)
        assert f"{settings.index_dir} is a file, not a folder: move it away" in line
        assert "--rebuild" not in line
    assert settings.index_dir.read_text() == "my notes"


SIGNAL_MID_WRITE = """
import os, signal, sys, time
import rag.index.records as records
from rag.cli import main

real = records.update_records

def write_then_signal(*args):
    real(*args)  # the generation's FAISS file and records are on disk, the manifest not yet
    os.kill(os.getpid(), signal.{name})
    time.sleep(5)

import rag.index.registry
rag.index.registry.update_records = write_then_signal
sys.exit(main(["ingest"]))
"""


@pytest.mark.parametrize(("name", "code", "message"), [("SIGTERM", 143, "interrupted (SIGTERM)"),
                                                       ("SIGINT", 130, "interrupted")])
def test_a_signal_mid_ingest_ends_with_one_line_and_no_leftovers(indexed, name, code, message):
    before = read_manifest(indexed.index_dir)
    script = textwrap.dedent(SIGNAL_MID_WRITE).replace("{name}", name)
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == code, done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"rag: error: {message}"
    assert "Traceback" not in done.stderr
    assert_unchanged_and_clean(indexed, before)


def test_an_export_lost_to_a_full_disk_is_made_by_the_next_ingest(make_settings, docs, monkeypatch):
    import rag.onnx_encoder
    from rag.onnx_encoder import OnnxEncoder

    settings, export = make_settings(), rag.onnx_encoder.export_onnx

    def full(model_path, out_dir):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rag.onnx_encoder, "export_onnx", full)
    Assistant(settings).ingest()  # the index is written; the fast query path is not
    assert read_manifest(settings.index_dir).query_model_files == []
    assert not (settings.index_dir / "onnx").exists()
    monkeypatch.setattr(rag.onnx_encoder, "export_onnx", export)
    report = Assistant(settings).ingest()  # nothing changed, but the export is made now
    assert not report.wrote_index and read_manifest(settings.index_dir).query_model_files
    assert isinstance(loaded(Assistant(settings))[1], OnnxEncoder)


def test_a_model_the_exporter_cannot_handle_is_not_tried_again(make_settings, docs, monkeypatch):
    import rag.onnx_encoder

    settings, tries = make_settings(), []

    def unsupported(model_path, out_dir):
        tries.append(out_dir)
        raise TypeError("forward() got an unexpected keyword argument 'token_type_ids'")

    monkeypatch.setattr(rag.onnx_encoder, "export_onnx", unsupported)
    Assistant(settings).ingest()
    Assistant(settings).ingest()  # a no-change ingest does not pay for the export again
    assert len(tries) == 1 and read_manifest(settings.index_dir).query_model_unsupported
    assert Assistant(settings).search("replayable event streams").hits
