"""The one Settings object: built once by the CLI or the app and passed down.

Each setting is read from the constructor's arguments, else the environment (RAG_<NAME>, or its own name
such as OPENAI_API_KEY), else .env, else its default, and checked against its type and bounds; a bad value
raises SettingsError naming the variable. Written here rather than with pydantic-settings: importing
pydantic and building the model cost a cold `rag ask` ~11 MiB of its 150 MiB budget and ~0.15 s.
"""

from __future__ import annotations

import math
import os
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union
from urllib.parse import urlsplit

from .errors import UserError

BUNDLED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
ENV_PREFIX, ENV_FILE = "RAG_", ".env"


class Secret:
    """A value never shown: repr and str print asterisks; get_secret_value() is the only way to it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    def __str__(self) -> str:
        return "**********" if self._value else ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _base_url(url: str) -> str:
    """Refused here, not at the first question, where a bad port fails deep inside the HTTP client."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError when the port is out of range or not a number
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host, e.g. http://localhost:11434/v1")
    return url


def _database_url(url: Secret) -> Secret:
    """Refused at start-up, not at the first sign-in. The message never repeats the URL: it holds a password."""
    try:
        parts = urlsplit(url.get_secret_value())
        parts.port  # noqa: B018 - raises ValueError when the port is out of range or not a number
    except ValueError:
        raise ValueError("not a valid URL (check its port)") from None
    if parts.scheme not in ("postgresql", "postgres", "postgresql+psycopg"):
        raise ValueError("must be a PostgreSQL URL: postgresql://USER:PASSWORD@HOST:5432/DATABASE")
    return url


@dataclass(frozen=True)
class Setting:
    """One setting's default, description and bounds (`env`: its variable when not RAG_<NAME>; `check`: a
    further test of the typed value, which returns it or raises ValueError)."""

    default: Any
    description: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    env: str | None = None
    check: Callable[[Any], Any] | None = None


def setting(default: Any, *, description: str, **rules: Any) -> Any:
    return Setting(default, description, **rules)


class SettingsError(ValueError):
    """Values that are not valid settings: `problems` holds one "VARIABLE: what is wrong" per value."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Settings:
    """Every knob of the assistant. Environment variables use the prefix ``RAG_``; they win over ``.env``,
    and values given to the constructor win over both (`_env_file=None` reads no .env)."""

    collection: str | None = setting(
        None, min_length=1, max_length=80,
        description="What the documents are called in the app and in answers: its title (\"Ask the case "
        "studies\"), the chat's placeholder and what an abstention says (\"The case studies don't cover this.\"). "
        "Unset: \"the case studies\" while the index holds only the shipped ones, else \"your documents\".",
    )
    corpus_dir: Path = setting(
        Path("corpus"), description="Folder (or file) that a new index reads."
    )
    upload_dir: Path | None = setting(
        None, description="Folder where the app and `rag serve` save uploaded documents; unset: `uploads` beside "
        "the index folder (never the source tree: the repository ignores it).",
    )
    index_dir: Path = setting(
        Path("vectorstore"), description="Folder that holds the FAISS index, passage records and manifest."
    )
    embedding_model: str = setting(
        BUNDLED_MODEL,
        description="Sentence-transformers model: the bundled offline name, another hub name, or a local path.",
    )
    query_backend: Literal["onnx", "torch"] = setting(
        "onnx",
        description="How questions are embedded: 'onnx' uses the export made at ingest (no torch, fast cold "
        "start; falls back to torch when there is none), 'torch' always loads sentence-transformers.",
    )
    embed_batch_size: int = setting(32, ge=1, le=4096, description="Passages embedded per batch at ingest.")
    max_passage_tokens: int = setting(
        256, ge=16, le=8192,
        description="Longest passage in word pieces; longer paragraphs are split at sentence boundaries. "
        "Capped by the model's own window.",
    )
    max_file_bytes: int = setting(
        50_000_000, ge=1, description="Corpus files (and uploads) larger than this many bytes are skipped with a "
        "warning."
    )
    embed_context: bool = setting(
        False, description="Embed each passage with its post titles and sections in front (re-embeds when changed).",
    )
    dense_weight: float = setting(1.0, ge=0, description="Weight of a passage's cosine to the question in its score.")
    lexical_weight: float = setting(
        0.2, ge=0, description="Weight of a passage's BM25 (SQLite FTS5), as a share of the question's best BM25 "
        "match, in its score.",
    )
    fetch_k: int = setting(30, ge=1, le=1000, description="Candidates each ranking contributes before fusion.")
    mmr_lambda: float = setting(
        0.8, ge=0, le=1,
        description="Diversity of the top k (maximal marginal relevance): 1 ranks by relevance alone, lower "
        "values push out passages that repeat a fact already listed.",
    )
    top_k: int = setting(5, ge=1, le=100, description="Passages returned by a search when --k is not given.")
    max_question_chars: int = setting(
        2000, ge=10, description="Longer questions are cut to this many characters, and the user is told."
    )
    lock_timeout: float = setting(
        300.0, ge=0, description="Seconds an ingest waits for another ingest's lock before giving up (exit 2)."
    )
    index_type: Literal["auto", "flat", "hnsw"] = setting(
        "auto",
        description="FAISS index kind written at ingest: 'flat' (exact inner product), 'hnsw' (approximate "
        "graph search), or 'auto': flat below RAG_HNSW_THRESHOLD unique passages, HNSW from there on.",
    )
    hnsw_threshold: int = setting(
        50_000, ge=1, description="With RAG_INDEX_TYPE=auto, indexes with at least this many unique passages use HNSW.",
    )
    hnsw_m: int = setting(32, ge=4, le=128, description="HNSW graph degree (neighbours per node) used at build.")
    hnsw_ef_construction: int = setting(
        80, ge=8, le=2048, description="HNSW candidate list size while building: higher is slower and more exact.",
    )
    hnsw_ef_search: int = setting(
        192, ge=1, le=4096,
        description="HNSW candidate list size per query, applied when the index is loaded: higher is slower and "
        "more exact (never below the number of candidates asked for).",
    )
    index_rebuild_share: float = setting(
        0.2, gt=0, le=1,
        description="An ingest that leaves at least this share of the FAISS index's vectors deleted (removed or "
        "edited passages, filtered out of searches until then) rebuilds the index from the live ones once it has "
        "published its changes.",
    )
    store: Literal["faiss", "milvus"] = setting(
        "faiss",
        description="Where the vectors live: 'faiss' (index file in RAG_INDEX_DIR) or 'milvus' (a Milvus Lite "
        "database or a Milvus server, see RAG_MILVUS_URI). Passage records and BM25 stay in RAG_INDEX_DIR.",
    )
    milvus_uri: str | None = setting(
        None,
        description="With RAG_STORE=milvus: a local path ending in .db (Milvus Lite, embedded) or a server URI "
        "such as http://host:19530; unset means milvus.db inside RAG_INDEX_DIR.",
    )
    milvus_token: Secret | None = setting(
        None, description="Milvus server token ('user:password' or an API key); never logged or shown.",
    )
    milvus_collection: str = setting(
        "rag_passages", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,254}$",
        description="Milvus collection that holds the passage vectors.",
    )


    min_score: float = setting(
        0.25, ge=-1, le=1,
        description="Abstain when no retrieved passage has a cosine similarity to the question of at least "
        "this (calibrated on tests/data: answerable case-study questions scored 0.27 and up).",
    )
    reader_model: str = setting(
        "bundled",
        description="The reading model that decides which sentence answers, whether the passages can answer at "
        "all, and whether a claim is supported: 'bundled' (shipped in the package, checked against its SHA-256), "
        "a folder with an ONNX export (model.onnx, tokenizer.json, meta.json), or a sentence-transformers "
        "cross-encoder (a folder or a Hub name), exported to ONNX once into RAG_INDEX_DIR. 'overlap' reads by "
        "shared words and closeness of meaning instead (no model).",
    )
    answer_threshold: float | None = setting(
        None, ge=0, le=1,
        description="The offline answer abstains when no retrieved sentence's P(answers) reaches this; unset "
        "uses the reading model's own (calibrated with it). Higher abstains more.",
    )
    verifier_model: str = setting(
        "reader",
        description="What checks every answer sentence against its passages: 'reader' (the reading model, "
        "RAG_READER_MODEL, with word coverage in one calibrated rule; word overlap when RAG_READER_MODEL is "
        "'overlap'), 'overlap' (shared content words and quantities: the explicit fallback, which removes far more "
        "clean sentences), or another cross-encoder: a folder with an ONNX export or a sentence-transformers/"
        "Hugging Face cross-encoder or NLI model (a folder or a Hub name), exported to ONNX once into RAG_INDEX_DIR.",
    )
    verifier_threshold: float | None = setting(
        None, ge=0, le=1,
        description="Keep a sentence when the verifier's P(supported) reaches this; unset uses the model's own "
        "threshold (calibrated with it). Higher removes more.",
    )
    verifier: Literal["auto", "llm", "local", "overlap"] = setting(
        "auto",
        description="How LLM answers are checked after their verbatim quotes: 'auto' decides each sentence by the "
        "first sure check (its quote, then RAG_VERIFIER_MODEL, then, with an LLM configured, one judge request "
        "per answer for the sentences still undecided); 'llm' sends every sentence its quote did not decide to "
        "the judge; 'local' never asks the judge; 'overlap' checks by shared words alone.",
    )
    judge_model: str | None = setting(
        None, description="The model that judges sentences (RAG_VERIFIER auto or llm), on the same endpoint; unset "
        "uses RAG_LLM_MODEL.",
    )
    trusted_link_hosts: str | None = setting(
        None, description="Comma-separated hosts (and their subdomains) whose links in answers show as plain links. "
        "A link to any other host is kept only when its cited passage holds it, and then shown with a warning "
        "and not clickable.",
    )
    answer_max_sentences: int = setting(3, ge=1, le=10, description="Most sentences the extractive answerer writes.")
    history_turns: int = setting(6, ge=0, le=50, description="Earlier messages used to rewrite a follow-up question.")
    chats_path: Path = setting(
        Path("chats.sqlite3"),
        description="SQLite file where the app and `rag chat` keep conversations and the feedback on answers.",
    )
    database_url: Secret | None = setting(
        None, check=_database_url,
        description="PostgreSQL database for users, tokens, chats, messages and feedback, shared by every "
        "replica: postgresql://USER:PASSWORD@HOST:5432/DATABASE (the password is never logged or shown). Unset: "
        "SQLite files, tokens.sqlite3 and users.sqlite3 beside the index and RAG_CHATS_PATH.",
    )
    server_rate_limit: int = setting(
        120, ge=0, description="Requests each token (with no tokens, each client address) may make per minute to "
        "`rag serve`; over it the reply is HTTP 429 with Retry-After. 0 turns the limit off.",
    )
    server_max_body_bytes: int = setting(
        1_000_000, ge=1024, description="Largest request body `rag serve` reads (HTTP 413 beyond), except uploads.",
    )
    server_max_upload_bytes: int = setting(
        100_000_000, ge=1024, description="Largest body of `POST /v1/ingest`, whose files come base64-encoded.",
    )
    server_failed_token_limit: int = setting(
        10, ge=1, description="Requests with a missing or wrong token each client address may make per minute "
        "to `rag serve` before it answers 429 without checking tokens: guessing stays slow.",
    )
    server_max_passages: int = setting(
        20, ge=1, le=1000, description="Most passages one `POST /v1/verify` may send (and `k` of a search or ask).",
    )
    server_max_passage_chars: int = setting(
        10_000, ge=100, description="Longest passage, in characters, one `POST /v1/verify` may send.",
    )
    server_max_sentences: int = setting(
        50, ge=1, description="Most sentences one answer sent to `POST /v1/verify` may have. Each sentence counts "
        "as one request against RAG_SERVER_RATE_LIMIT.",
    )
    server_max_ingest_files: int = setting(
        20, ge=1, description="Most paths and uploaded files one `POST /v1/ingest` may name.",
    )
    server_ingest_seconds: float = setting(
        60.0, gt=0, description="Reading time of one `POST /v1/ingest` or removal: files not read by then are "
        "skipped (what was read is kept, the rest reported); a request still embedding at twice this (and at "
        "least 30 s more) is stopped and changes nothing. It bounds how long one request holds the ingest lock.",
    )
    # The chat app's address and sign-in (rag/access.py has the rules).
    app_address: str = setting(
        "127.0.0.1", min_length=1, pattern=r"^[A-Za-z0-9.:\[\]-]+$",
        description="Address `make run` serves the app on: 127.0.0.1 keeps it on this machine; 0.0.0.0 (or a "
        "LAN address) opens it up, which needs RAG_APP_PASSWORD, RAG_APP_ADMIN_PASSWORD or OIDC.",
    )
    app_password: Secret | None = setting(
        None, description="Password that signs in to the app as a reader (chat, sources); never logged or shown.",
    )
    app_admin_password: Secret | None = setting(
        None, description="Password that signs in to the app as an admin (also re-ingest, upload and remove "
        "documents); never logged or shown.",
    )
    app_admins: str | None = setting(
        None, description="Comma-separated e-mails of the admins among users signed in with OIDC "
        "(.streamlit/secrets.toml [auth]); everyone else signed in is a reader.",
    )
    answerer: Literal["auto", "extractive", "llm"] = setting(
        "auto", description="Who writes answers: 'llm' needs OPENAI_API_KEY; 'auto' uses the LLM when a key is set.",
    )
    llm_model: str = setting("gpt-4o-mini", description="Chat model name at the OpenAI-compatible endpoint.")
    llm_temperature: float = setting(0.0, ge=0, le=2, description="Sampling temperature of the LLM.")
    llm_timeout: float = setting(
        30.0, gt=0,
        description="Seconds one LLM call (a follow-up's rewrite, or an answer) may take in all, retries included.",
    )
    llm_max_passage_chars: int = setting(
        4000, ge=200, description="Most characters of one passage sent to the LLM; the rest of a longer "
        "passage (from an index built before passages had a length cap) is left out of the prompt.",
    )
    llm_max_retries: int = setting(
        2, ge=0, le=10,
        description="Retries on connection errors, 429 (honouring Retry-After) and 5xx replies, all within "
        "RAG_LLM_TIMEOUT.",
    )
    llm_breaker_failures: int = setting(
        3, ge=1, le=100,
        description="After this many failed requests in a row the LLM endpoint is skipped (answers go extractive "
        "at once) for RAG_LLM_BREAKER_COOLDOWN seconds.",
    )
    llm_breaker_cooldown: float = setting(
        60.0, gt=0,
        description="Seconds a failing LLM endpoint is skipped before one trial request is let through again.",
    )
    llm_fallback: bool = setting(
        True, description="When the LLM endpoint fails, answer extractively instead (the answer says so).",
    )
    openai_api_key: Secret | None = setting(
        None, env="OPENAI_API_KEY", description="Key for the OpenAI-compatible endpoint (never logged)."
    )
    openai_base_url: str | None = setting(
        None, env="OPENAI_BASE_URL", check=_base_url,
        description="OpenAI-compatible endpoint, e.g. http://localhost:11434/v1 for Ollama; unset for OpenAI.",
    )

    def __init__(self, _env_file: str | Path | None = ENV_FILE, **values: Any) -> None:
        self._assign({**_environment(_env_file), **values})

    @classmethod
    def fields(cls) -> dict[str, Setting]:
        return dict(_FIELDS)

    @classmethod
    def variable(cls, name: str) -> str:
        """The environment variable of a setting."""
        return _FIELDS[name].env or ENV_PREFIX + name.upper()

    @property
    def uploads(self) -> Path:
        """Where uploads are saved: RAG_UPLOAD_DIR, else `uploads` beside the index folder."""
        return self.upload_dir if self.upload_dir is not None else Path(self.index_dir).parent / "uploads"

    def replace(self, **updates: Any) -> Settings:
        """A copy with these values changed, checked as the constructor checks them (no environment read)."""
        clone = object.__new__(Settings)
        clone._assign({**self._values(), **updates})
        return clone

    def as_dict(self, secrets: bool = False) -> dict[str, Any]:
        """Every setting by name as a JSON value; secrets as asterisks unless asked for."""
        out = {}
        for name, value in self._values().items():
            if isinstance(value, Secret):
                value = value.get_secret_value() if secrets else str(value)
            out[name] = str(value) if isinstance(value, Path) else value
        return out

    def __repr__(self) -> str:
        return "Settings(" + ", ".join(f"{name}={value!r}" for name, value in self._values().items()) + ")"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Settings) and self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]  # mutable, like the values it holds

    def _values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _FIELDS}

    def _assign(self, values: dict[str, Any]) -> None:
        unknown = sorted(set(values) - set(_FIELDS))
        problems = [f"{name}: not a setting" for name in unknown]
        for name, spec in _FIELDS.items():
            try:
                value = _checked(_TYPES[name], values.get(name, spec.default), spec)
            except ValueError as exc:
                problems.append(f"{Settings.variable(name)}: {exc}")
                continue
            object.__setattr__(self, name, value)
        if not problems and self.dense_weight == 0 and self.lexical_weight == 0:
            problems.append("RAG_DENSE_WEIGHT and RAG_LEXICAL_WEIGHT are both 0: set at least one above 0")
        if problems:
            raise SettingsError(problems)


_FIELDS: dict[str, Setting] = {name: value for name, value in vars(Settings).items() if isinstance(value, Setting)}
for _name in _FIELDS:
    delattr(Settings, _name)  # an instance always holds its own value
_TYPES = {name: kind for name, kind in typing.get_type_hints(Settings).items() if name in _FIELDS}


def _environment(env_file: str | Path | None) -> dict[str, str]:
    """The settings the environment and .env give, by field name (the environment wins; names in any case)."""
    names = {Settings.variable(name).lower(): name for name in _FIELDS}
    found: dict[str, str] = {}
    sources: list[Any] = [os.environ]
    if env_file is not None and Path(env_file).is_file():
        from dotenv import dotenv_values

        sources.insert(0, dotenv_values(env_file, encoding="utf-8"))
    for source in sources:
        found.update({names[key.lower()]: value for key, value in source.items()
                      if value is not None and key.lower() in names})
    return found


def _checked(kind: Any, value: Any, spec: Setting) -> Any:
    """The value as the setting's type, within its bounds; raises ValueError saying what is wrong."""
    if typing.get_origin(kind) in (Union, types.UnionType):
        if value is None:
            return None
        kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
    value = _typed(kind, value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if spec.ge is not None and value < spec.ge:
            raise ValueError(f"Input should be greater than or equal to {spec.ge:g}")
        if spec.gt is not None and value <= spec.gt:
            raise ValueError(f"Input should be greater than {spec.gt:g}")
        if spec.le is not None and value > spec.le:
            raise ValueError(f"Input should be less than or equal to {spec.le:g}")
    if isinstance(value, str):
        if spec.min_length is not None and len(value) < spec.min_length:
            raise ValueError(f"String should have at least {spec.min_length} character(s)")
        if spec.max_length is not None and len(value) > spec.max_length:
            raise ValueError(f"String should have at most {spec.max_length} characters")
        if spec.pattern is not None and not re.search(spec.pattern, value):
            raise ValueError(f"String should match pattern '{spec.pattern}'")
    return spec.check(value) if spec.check is not None else value


_TRUE, _FALSE = {"1", "true", "yes", "on", "t", "y"}, {"0", "false", "no", "off", "f", "n"}


def _typed(kind: Any, value: Any) -> Any:  # noqa: PLR0911 - one return per type
    if typing.get_origin(kind) is Literal:
        options = typing.get_args(kind)
        if value not in options:
            said = [repr(option) for option in options]
            raise ValueError(f"Input should be {', '.join(said[:-1])} or {said[-1]}")
        return value
    if kind is bool:
        text = str(value).strip().lower()
        if isinstance(value, (bool, int, str)) and text in _TRUE | _FALSE:
            return text in _TRUE
        raise ValueError("Input should be a valid boolean")
    if kind is int:
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+(_\d+)*\s*", value):
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError("Input should be a valid integer")
    if kind is float:
        try:
            number = float(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None
        except ValueError:
            number = None
        if number is None:
            raise ValueError("Input should be a valid number")
        if not math.isfinite(number):
            raise ValueError("Input should be a finite number")
        return number
    if kind is Path:
        if isinstance(value, (str, os.PathLike)):
            return Path(value)
        raise ValueError("Input should be a valid path")
    if kind is Secret:
        if isinstance(value, (Secret, str)):
            return value if isinstance(value, Secret) else Secret(value)
        raise ValueError("Input should be a valid string")
    if isinstance(value, str):
        return value
    raise ValueError("Input should be a valid string")


def trusted_hosts(settings: Settings) -> tuple[str, ...]:
    return tuple(h.strip().lower() for h in (settings.trusted_link_hosts or "").split(",") if h.strip())


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and .env; a bad value is the user's to fix, named by its variable."""
    try:
        return Settings(**overrides)
    except SettingsError as exc:
        raise UserError(f"invalid setting ({exc}): fix it in the environment or .env") from None
    except UnicodeDecodeError:
        raise UserError(".env is not UTF-8 text: save it as UTF-8 (or remove it)") from None
    except OSError as exc:
        raise UserError(f"cannot read .env ({exc.strerror or exc}): fix its permissions or remove it") from None
