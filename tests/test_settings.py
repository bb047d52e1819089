"""One Settings object: described fields, RAG_ environment variables, .env, and .env.example in step."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rag import Settings, UserError
from rag.config import load_settings

ENV_EXAMPLE = Path(__file__).resolve().parent.parent / ".env.example"


def test_every_field_has_a_description():
    assert all(field.description for field in Settings.fields().values())


def test_env_example_lists_every_setting_with_its_default():
    documented = dict(re.findall(r"^# ([A-Z_]+)=(.*)$", ENV_EXAMPLE.read_text(), re.M))
    names = {Settings.variable(name): name for name in Settings.fields()}
    assert set(documented) == set(names)
    for env_name, value in documented.items():
        name, default = names[env_name], Settings.fields()[names[env_name]].default
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


@pytest.mark.parametrize("variables, named", [
    ({"RAG_DENSE_WEIGHT": "inf"}, "RAG_DENSE_WEIGHT: Input should be a finite number"),
    ({"RAG_MIN_SCORE": "nan"}, "RAG_MIN_SCORE: Input should be a finite number"),
    ({"RAG_DENSE_WEIGHT": "0", "RAG_LEXICAL_WEIGHT": "0"}, "RAG_DENSE_WEIGHT and RAG_LEXICAL_WEIGHT are both 0"),
    ({"OPENAI_BASE_URL": "http://localhost:99999/v1"}, "OPENAI_BASE_URL: not a valid URL (Port out of range"),
    ({"OPENAI_BASE_URL": "localhost:11434/v1"}, "OPENAI_BASE_URL: must be an http:// or https:// URL"),
])
def test_unusable_values_are_refused_in_one_line_naming_the_variable(monkeypatch, variables, named):
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(UserError) as refused:
        load_settings()
    assert named in str(refused.value) and "\n" not in str(refused.value)
    assert refused.value.exit_code == 2


def test_a_dotenv_that_is_not_utf8_is_one_clear_error(tmp_path):
    (tmp_path / ".env").write_bytes(b"RAG_TOP_K=3\n# caf\xe9\n")
    with pytest.raises(UserError, match=r"\.env is not UTF-8 text: save it as UTF-8"):
        load_settings()


def test_values_given_win_over_the_environment_and_are_checked_alike(monkeypatch):
    monkeypatch.setenv("RAG_TOP_K", "9")
    monkeypatch.setenv("openai_api_key", "sk-from-env")  # variable names match in any case
    settings = Settings(top_k="4", embed_context="yes", index_dir="elsewhere")
    assert (settings.top_k, settings.embed_context, settings.index_dir) == (4, True, Path("elsewhere"))
    assert settings.openai_api_key.get_secret_value() == "sk-from-env"
    assert Settings(openai_api_key="sk-given").openai_api_key.get_secret_value() == "sk-given"
    with pytest.raises(ValueError, match="RAG_INDEX_TYPE: Input should be 'auto', 'flat' or 'hnsw'"):
        Settings(index_type="ivf")
    with pytest.raises(ValueError, match="tpo_k: not a setting"):
        Settings(tpo_k=3)


def test_a_copy_is_checked_and_keeps_its_secrets_hidden():
    settings = Settings(_env_file=None, app_password="hunter2")
    changed = settings.replace(top_k=8, openai_api_key="sk-copy")
    assert (changed.top_k, settings.top_k) == (8, 5)
    assert "sk-copy" not in repr(changed) and "hunter2" not in str(changed.as_dict())
    assert changed.as_dict(secrets=True)["openai_api_key"] == "sk-copy"
    with pytest.raises(ValueError, match="RAG_FETCH_K: Input should be less than or equal to 1000"):
        settings.replace(fetch_k=5000)
