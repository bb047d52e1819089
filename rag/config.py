"""The one Settings object: built once by the CLI or the app and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import UserError

BUNDLED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class Settings(BaseSettings):
    """Every knob of the assistant. Environment variables use the prefix ``RAG_``."""

    model_config = SettingsConfigDict(
        env_prefix="RAG_", env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True,
        allow_inf_nan=False,  # inf or nan would reach scores and print as invalid JSON (NaN)
    )

    collection: str = Field(
        "the case studies", min_length=1, max_length=80,
        description="What the documents are called in the app and in answers: its title (\"Ask the case "
        "studies\"), the chat's placeholder and what an abstention says (\"The case studies don't cover this.\").",
    )
    corpus_dir: Path = Field(
        Path("corpus"), description="Folder (or file) that a new index reads, and where the app saves uploads."
    )
    index_dir: Path = Field(
        Path("vectorstore"), description="Folder that holds the FAISS index, passage records and manifest."
    )
    embedding_model: str = Field(
        BUNDLED_MODEL,
        description="Sentence-transformers model: the bundled offline name, another hub name, or a local path.",
    )
    query_backend: Literal["onnx", "torch"] = Field(
        "onnx",
        description="How questions are embedded: 'onnx' uses the export made at ingest (no torch, fast cold "
        "start; falls back to torch when there is none), 'torch' always loads sentence-transformers.",
    )
    embed_batch_size: int = Field(32, ge=1, le=4096, description="Passages embedded per batch at ingest.")
    max_passage_tokens: int = Field(
        256, ge=16, le=8192,
        description="Longest passage in word pieces; longer paragraphs are split at sentence boundaries. "
        "Capped by the model's own window.",
    )
    max_file_bytes: int = Field(
        50_000_000, ge=1, description="Corpus files (and uploads) larger than this many bytes are skipped with a "
        "warning."
    )
    embed_context: bool = Field(
        False, description="Embed each passage with its post titles and sections in front (re-embeds when changed).",
    )
    dense_weight: float = Field(1.0, ge=0, description="Weight of the dense (FAISS) ranking in the fusion.")
    lexical_weight: float = Field(1.0, ge=0, description="Weight of the BM25 (SQLite FTS5) ranking in the fusion.")
    rrf_k: int = Field(60, ge=1, description="Reciprocal rank fusion constant: higher flattens rank differences.")
    fetch_k: int = Field(30, ge=1, le=1000, description="Candidates each ranking contributes before fusion.")
    mmr_lambda: float = Field(
        0.8, ge=0, le=1,
        description="Diversity of the top k (maximal marginal relevance): 1 ranks by relevance alone, lower "
        "values push out passages that repeat a fact already listed.",
    )
    top_k: int = Field(5, ge=1, le=100, description="Passages returned by a search when --k is not given.")
    max_question_chars: int = Field(
        2000, ge=10, description="Longer questions are cut to this many characters, and the user is told."
    )
    lock_timeout: float = Field(
        300.0, ge=0, description="Seconds an ingest waits for another ingest's lock before giving up (exit 2)."
    )
    index_type: Literal["auto", "flat", "hnsw"] = Field(
        "auto",
        description="FAISS index kind written at ingest: 'flat' (exact inner product), 'hnsw' (approximate "
        "graph search), or 'auto': flat below RAG_HNSW_THRESHOLD unique passages, HNSW from there on.",
    )
    hnsw_threshold: int = Field(
        50_000, ge=1, description="With RAG_INDEX_TYPE=auto, indexes with at least this many unique passages use HNSW.",
    )
    hnsw_m: int = Field(32, ge=4, le=128, description="HNSW graph degree (neighbours per node) used at build.")
    hnsw_ef_construction: int = Field(
        80, ge=8, le=2048, description="HNSW candidate list size while building: higher is slower and more exact.",
    )
    hnsw_ef_search: int = Field(
        192, ge=1, le=4096,
        description="HNSW candidate list size per query, applied when the index is loaded: higher is slower and "
        "more exact (never below the number of candidates asked for).",
    )
    index_rebuild_share: float = Field(
        0.2, gt=0, le=1,
        description="An ingest that leaves at least this share of the FAISS index's vectors deleted (removed or "
        "edited passages, filtered out of searches until then) rebuilds the index from the live ones once it has "
        "published its changes.",
    )
    store: Literal["faiss", "milvus"] = Field(
        "faiss",
        description="Where the vectors live: 'faiss' (index file in RAG_INDEX_DIR) or 'milvus' (a Milvus Lite "
        "database or a Milvus server, see RAG_MILVUS_URI). Passage records and BM25 stay in RAG_INDEX_DIR.",
    )
    milvus_uri: str | None = Field(
        None,
        description="With RAG_STORE=milvus: a local path ending in .db (Milvus Lite, embedded) or a server URI "
        "such as http://host:19530; unset means milvus.db inside RAG_INDEX_DIR.",
    )
    milvus_token: SecretStr | None = Field(
        None, description="Milvus server token ('user:password' or an API key); never logged or shown.",
    )
    milvus_collection: str = Field(
        "rag_passages", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,254}$",
        description="Milvus collection that holds the passage vectors.",
    )


    min_score: float = Field(
        0.25, ge=-1, le=1,
        description="Abstain when no retrieved passage has a cosine similarity to the question of at least "
        "this (calibrated on tests/data: answerable case-study questions scored 0.27 and up).",
    )
    verifier_model: str = Field(
        "overlap",
        description="What checks every answer sentence against its passages: 'overlap' (shared content words and "
        "quantities), or a cross-encoder that reads claim and evidence together: a folder with an ONNX export "
        "(model.onnx, tokenizer.json, meta.json), or a sentence-transformers/Hugging Face cross-encoder or NLI "
        "model (a folder or a Hub name), exported to ONNX once into RAG_INDEX_DIR.",
    )
    verifier_threshold: float | None = Field(
        None, ge=0, le=1,
        description="Keep a sentence when the verifier's P(supported) reaches this; unset uses the model's own "
        "threshold (tuned with it). Higher removes more.",
    )
    trusted_link_hosts: str | None = Field(
        None, description="Comma-separated hosts (and their subdomains) whose links in answers show as plain links. "
        "A link to any other host is kept only when its cited passage holds it, and then shown with a warning "
        "and not clickable.",
    )
    answer_max_sentences: int = Field(3, ge=1, le=10, description="Most sentences the extractive answerer writes.")
    history_turns: int = Field(6, ge=0, le=50, description="Earlier messages used to rewrite a follow-up question.")
    chats_path: Path = Field(
        Path("chats.sqlite3"),
        description="SQLite file where the app and `rag chat` keep conversations and the feedback on answers.",
    )
    server_rate_limit: int = Field(
        120, ge=0, description="Requests each token (with no tokens, each client address) may make per minute to "
        "`rag serve`; over it the reply is HTTP 429 with Retry-After. 0 turns the limit off.",
    )
    server_max_body_bytes: int = Field(
        1_000_000, ge=1024, description="Largest request body `rag serve` reads (HTTP 413 beyond), except uploads.",
    )
    server_max_upload_bytes: int = Field(
        100_000_000, ge=1024, description="Largest body of `POST /v1/ingest`, whose files come base64-encoded.",
    )
    # The chat app's address and sign-in (rag/access.py has the rules).
    app_address: str = Field(
        "127.0.0.1", min_length=1, pattern=r"^[A-Za-z0-9.:\[\]-]+$",
        description="Address `make run` serves the app on: 127.0.0.1 keeps it on this machine; 0.0.0.0 (or a "
        "LAN address) opens it up, which needs RAG_APP_PASSWORD, RAG_APP_ADMIN_PASSWORD or OIDC.",
    )
    app_password: SecretStr | None = Field(
        None, description="Password that signs in to the app as a reader (chat, sources); never logged or shown.",
    )
    app_admin_password: SecretStr | None = Field(
        None, description="Password that signs in to the app as an admin (also re-ingest, upload and remove "
        "documents); never logged or shown.",
    )
    app_admins: str | None = Field(
        None, description="Comma-separated e-mails of the admins among users signed in with OIDC "
        "(.streamlit/secrets.toml [auth]); everyone else signed in is a reader.",
    )
    answerer: Literal["auto", "extractive", "llm"] = Field(
        "auto", description="Who writes answers: 'llm' needs OPENAI_API_KEY; 'auto' uses the LLM when a key is set.",
    )
    llm_model: str = Field("gpt-4o-mini", description="Chat model name at the OpenAI-compatible endpoint.")
    llm_temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature of the LLM.")
    llm_timeout: float = Field(
        30.0, gt=0,
        description="Seconds one LLM call (a follow-up's rewrite, or an answer) may take in all, retries included.",
    )
    llm_max_passage_chars: int = Field(
        4000, ge=200, description="Most characters of one passage sent to the LLM; the rest of a longer "
        "passage (from an index built before passages had a length cap) is left out of the prompt.",
    )
    llm_max_retries: int = Field(
        2, ge=0, le=10,
        description="Retries on connection errors, 429 (honouring Retry-After) and 5xx replies, all within "
        "RAG_LLM_TIMEOUT.",
    )
    llm_breaker_failures: int = Field(
        3, ge=1, le=100,
        description="After this many failed requests in a row the LLM endpoint is skipped (answers go extractive "
        "at once) for RAG_LLM_BREAKER_COOLDOWN seconds.",
    )
    llm_breaker_cooldown: float = Field(
        60.0, gt=0,
        description="Seconds a failing LLM endpoint is skipped before one trial request is let through again.",
    )
    llm_fallback: bool = Field(
        True, description="When the LLM endpoint fails, answer extractively instead (the answer says so).",
    )
    openai_api_key: SecretStr | None = Field(
        None, validation_alias="OPENAI_API_KEY", description="Key for the OpenAI-compatible endpoint (never logged)."
    )
    openai_base_url: str | None = Field(
        None, validation_alias="OPENAI_BASE_URL",
        description="OpenAI-compatible endpoint, e.g. http://localhost:11434/v1 for Ollama; unset for OpenAI.",
    )

    @field_validator("openai_base_url")
    @classmethod
    def _base_url(cls, url: str | None) -> str | None:
        """Refused here, not at the first question, where a bad port fails deep inside the HTTP client."""
        if url is None:
            return None
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError when the port is out of range or not a number
        except ValueError as exc:
            raise ValueError(f"not a valid URL ({exc})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host, e.g. http://localhost:11434/v1")
        return url

    @model_validator(mode="after")
    def _some_ranking_counts(self) -> Settings:
        if self.dense_weight == 0 and self.lexical_weight == 0:
            raise ValueError("RAG_DENSE_WEIGHT and RAG_LEXICAL_WEIGHT are both 0: set at least one above 0")
        return self


def trusted_hosts(settings: Settings) -> tuple[str, ...]:
    return tuple(h.strip().lower() for h in (settings.trusted_link_hosts or "").split(",") if h.strip())


def load_settings(**overrides) -> Settings:
    """Settings from the environment and .env; a bad value is the user's to fix, named by its variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(_problem(error) for error in exc.errors())
        raise UserError(f"invalid setting ({problems}): fix it in the environment or .env") from None
    except UnicodeDecodeError:
        raise UserError(".env is not UTF-8 text: save it as UTF-8 (or remove it)") from None
    except OSError as exc:
        raise UserError(f"cannot read .env ({exc.strerror or exc}): fix its permissions or remove it") from None


def _problem(error: ErrorDetails) -> str:
    """One validation error, named by its environment variable (OPENAI_* keep their own names)."""
    message = error["msg"].removeprefix("Value error, ")
    if not error["loc"]:  # a rule over several settings names them itself
        return message
    name = "_".join(str(part) for part in error["loc"])
    return f"{name if name.isupper() else 'RAG_' + name.upper()}: {message}"
