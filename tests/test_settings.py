"""One Settings object: described fields, RAG_ environment variables, .env, and .env.example in step."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rag import Settings, UserError
from rag.config import load_settings

ENV_EXAMPLE = Path(__file__).resolve().parent.parent / ".env.example"


def test_every_field_has_a_description():
    assert all(field.description for field in Settings.model_fields.values())


def test_env_example_lists_every_setting_with_its_default():
    documented = dict(re.findall(r"^# ([A-Z_]+)=(.*)$", ENV_EXAMPLE.read_text(), re.M))
    names = {field.validation_alias or f"RAG_{name.upper()}": name for name, field in Settings.model_fields.items()}
    assert set(documented) == set(names)
    for env_name, value in documented.items():
        name, default = names[env_name], Settings.model_fields[names[env_name]].default
        if value == "":
            assert default is None, env_name
        else:
            assert getattr(Settings(**{name: value}), name) == default, env_name


def test_environment_and_dotenv(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text("RAG_TOP_K=7\nRAG_INDEX_DIR=elsewhere\n")
    monkeypatch.setenv("RAG_TOP_K", "9")  # the environment wins over .env
    settings = Settings()
    assert (settings.top_k, settings.index_dir) == (9, Path("elsewhere"))


def test_bad_values_are_refused_naming_the_variable(monkeypatch):
    monkeypatch.setenv("RAG_TOP_K", "0")
    with pytest.raises(UserError, match="RAG_TOP_K"):
        load_settings()
