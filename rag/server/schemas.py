"""The service's request and response bodies: the CLI's JSON contracts, written down for the OpenAPI
document. Responses are validated against these, so the API cannot drift from the CLI unnoticed."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchRequest(Strict):
    question: str = Field(description="The question, as a person would ask it.")
    k: int | None = Field(None, ge=1, le=100, description="How many passages (default RAG_TOP_K).")


class Message(Strict):
    role: Literal["user", "assistant"]
    content: str


class AskRequest(SearchRequest):
    history: list[Message | tuple[Literal["user", "assistant"], str]] = Field(
        default_factory=list, max_length=100,
        description='Earlier turns, oldest first: {"role", "content"} objects or [role, text] pairs; a '
        "follow-up question is read with them.")
    answerer: Literal["auto", "extractive", "llm"] | None = Field(None, description="Override RAG_ANSWERER.")
    stream: bool = Field(False, description="Server-sent events: `sentence` events as each sentence passes the "
                         "citation check, then one `answer` event with the final answer (or one `error` event).")


class VerifyRequest(Strict):
    question: str = Field("", description="Optional: the question the answer was written for.")
    passages: list[str] = Field(min_length=1, max_length=100, description="The passages the answer was given.")
    answer: str = Field(description="The answer to check; [n] markers name passages, 1-based.")


class UploadedFile(Strict):
    name: str = Field(min_length=1, max_length=255, description="File name; a safe name is made from it.")
    data: str = Field(description="The file's bytes, base64-encoded.")


class IngestRequest(Strict):
    paths: list[str] = Field(default_factory=list, max_length=1000, description=(
        "Files or folders inside the server's corpus folder (RAG_CORPUS_DIR) to add or update; none re-reads "
        "what the index holds."))
    files: list[UploadedFile] = Field(default_factory=list, max_length=100, description=(
        "Documents to save into the corpus folder and ingest (PDF, Word .docx, Markdown, HTML, text)."))
    rebuild: bool = Field(False, description="Start over and re-embed everything.")
    sync: bool = Field(False, description="Make the index hold exactly the given paths.")


class Source(BaseModel):
    title: str
    path: str
    section: str
    category: str
    position: int
    page: int | None
    page_end: int | None


class Passage(BaseModel):
    id: int
    text: str
    titles: list[str]
    sources: list[Source]
    score: float
    dense_score: float
    lexical_score: float


class Span(BaseModel):
    start: int
    end: int


class Citation(Passage):
    marker: int
    evidence: list[Span]


class Conflict(BaseModel):
    passage: int | None
    start: int
    end: int


class RemovedClaim(BaseModel):
    text: str
    verdict: str
    reason: str
    conflict: Conflict | None = None


class SearchResponse(BaseModel):
    question: str
    passages: list[Passage]
    notices: list[str]
    timings: dict[str, float]


class Evidence(BaseModel):
    passage: int
    start: int
    end: int


class SentenceCheck(BaseModel):
    text: str
    supported: bool
    verdict: str
    score: float
    citations: list[int]
    evidence: list[Evidence]
    reason: str
    check: str = Field(description="Which check decided: quote (its verbatim quote), model (the reading "
                       "model), overlap (shared words).")


class AskResponse(BaseModel):
    question: str
    standalone_question: str
    read_as: str = Field(description="How a follow-up was read, as a sentence a person would write.")
    answer: str = Field(description="Safe Markdown: no raw HTML, images or script links; links only to "
                        "addresses a cited passage holds.")
    needs_clarification: bool
    abstained: bool
    abstain_reason: str | None
    answerer: str
    citations: list[Citation]
    near_misses: list[Passage]
    unsupported: list[str]
    removed: list[RemovedClaim]
    sentences: list[SentenceCheck] = Field(description="Every sentence of the draft that was checked, kept or "
                                           "removed, with the check that decided it.")
    notices: list[str]
    timings: dict[str, float]


class VerifyResponse(BaseModel):
    sentences: list[SentenceCheck]
    supported_answer: str
    notices: list[str] = Field(default_factory=list, description="What to know about the check itself: a "
                               "judge that could not be asked, say.")


class Document(BaseModel):
    id: str = Field(description="The document's path as indexed: DELETE /v1/sources/{id} removes it.")
    path: str
    title: str = Field(description="The document's title: its metadata title when real, else its first heading, "
                                   "else its file name, cleaned.")
    kind: str
    pages: int | None
    posts: int
    passages: int
    added: str
    updated: str


class SourcesResponse(BaseModel):
    sources: list[Document]


class Skipped(BaseModel):
    path: str
    reason: str


class FileWarning(BaseModel):
    path: str
    message: str


class IngestResponse(BaseModel):
    posts: int
    passages: int
    unique_passages: int
    embedded: int
    reused: int
    files: int
    changed_files: list[str]
    removed_files: list[str]
    skipped: list[Skipped]
    seconds: float
    wrote_index: bool
    indexed: list[str]
    warnings: list[FileWarning]


class EndpointState(BaseModel):
    model_config = ConfigDict(extra="allow")
    state: str


class InfoResponse(BaseModel):
    index_dir: str
    model: str
    dimension: int
    posts: int
    passages: int
    unique_passages: int
    files: int
    index_bytes: int
    built_at: str
    changed_files: list[str]
    index_type: str
    store: str
    location: str
    pdf_pages: dict[str, int]
    llm: EndpointState


class ErrorDetail(BaseModel):
    message: str = Field(description="One line: what went wrong and what to do.")
    type: str = Field(description="bad_request, unauthorized, forbidden, not_found, conflict, too_large, invalid, "
                      "rate_limited, unavailable or internal.")
    status: int


class ErrorResponse(BaseModel):
    error: ErrorDetail
