"""The base install answers offline; optional features name the extra that brings them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from rag import Assistant, MissingExtra
from rag.cli import main

RAG_DIR = Path(__file__).resolve().parent.parent / "rag"
OPTIONAL = ("torch", "sentence_transformers", "transformers", "streamlit", "langchain_core", "langchain_openai",
            "langchain_community", "openai", "pymilvus", "milvus_lite")


@pytest.mark.slow
def test_import_search_and_ask_load_no_optional_package(shipped_index, tmp_path):
    script = f"""
import os, sys
import rag
assistant = rag.Assistant(rag.Settings(index_dir={str(shipped_index)!r}, answerer="extractive"))
assert assistant.search("how did they cut cloud costs?").hits
assert not assistant.ask("How long did the move to structured logging take?").abstained
from rag.cli import main  # and `rag ask` itself
os.environ.update(RAG_INDEX_DIR={str(shipped_index)!r}, RAG_ANSWERER="extractive")
assert main(["ask", "Which cheap, unexciting changes reduced the cloud bill?", "--json"]) == 0
print(sorted(m for m in {OPTIONAL!r} if m in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"  # after the answer `rag ask --json` printed


def test_llm_without_its_extra_names_it(shipped, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "langchain_openai", None)  # as if not installed
    keyed = shipped.configured(openai_api_key="sk-test")
    with pytest.raises(MissingExtra, match=r'pip install "rag\[llm\]"'):
        keyed.ask("How did they cut cloud costs?", answerer="llm")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("RAG_INDEX_DIR", str(shipped.settings.index_dir))
    assert main(["ask", "How did they cut cloud costs?", "--answerer", "llm"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and 'pip install "rag[llm]"' in error and "sk-test" not in error


def test_milvus_without_its_extra_names_it(make_settings, docs, monkeypatch):
    monkeypatch.setitem(sys.modules, "pymilvus", None)
    with pytest.raises(MissingExtra, match=r'pip install "rag\[milvus\]"'):
        Assistant(make_settings(store="milvus")).ingest()


def test_retriever_without_langchain_names_the_extra(shipped, monkeypatch):
    monkeypatch.setitem(sys.modules, "langchain_core", None)
    with pytest.raises(MissingExtra, match=r'pip install "rag\[llm\]"'):
        shipped.as_retriever()


def test_only_the_registry_and_the_backends_name_a_backend():
    """One table maps a backend's name to its module: nothing branches on "milvus" or "faiss"."""
    branching = []
    for path in RAG_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [n.value for n in ast.walk(node) if isinstance(n, ast.Constant)] if isinstance(
                node, ast.Compare) else []
            if {"milvus", "faiss"} & set(names):
                branching.append(f"{path.relative_to(RAG_DIR)}:{node.lineno}")
    assert branching == []
