"""Small typed records passed between the stages; ``to_dict()`` gives the JSON contracts."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath

# Why an answer abstained (Answer.abstain_reason).
LOW_SCORE = "low_score"  # no retrieved passage came close enough to the question
NO_GROUNDED_PASSAGE = "no_grounded_passage"  # no passage speaks of every name the question asks about
ANSWER_KIND = "answer_kind"  # no retrieved sentence is the kind of answer asked for (a number, a name)
LLM_DECLINED = "llm_declined"  # the LLM said the passages do not hold the answer
NOT_ANSWERED = "not_answered"  # the reading model found no retrieved sentence that answers the question
NOTHING_VERIFIED = "nothing_verified"  # no sentence of the draft was supported by the passages


@dataclass(frozen=True, slots=True)
class Paragraph:
    """A paragraph of a post; from a paged document, the page it starts on (1-based) and, for each later
    page it runs onto, (offset in `text` where that page begins, page number)."""

    text: str
    section: str = ""
    page: int | None = None
    breaks: tuple[tuple[int, int], ...] = ()

    def page_at(self, offset: int) -> int | None:
        page = self.page
        for start, number in self.breaks:
            if start <= offset:
                page = number
        return page


@dataclass(frozen=True, slots=True)
class Post:
    title: str
    category: str
    path: str
    paragraphs: tuple[Paragraph, ...]


@dataclass(frozen=True, slots=True)
class Skipped:
    """A corpus file that was not read, and why."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class FileWarning:
    """A corpus file that was read, but not all of it (a page with no text, say)."""

    path: str
    message: str


@dataclass(frozen=True, slots=True)
class Source:
    """One place a passage appears: a post, its section, the paragraph's position in the post and, in a
    paged document, the page the passage starts on and the one it ends on (1-based; None elsewhere)."""

    title: str
    path: str
    section: str = ""
    category: str = ""
    position: int = 0
    page: int | None = None
    page_end: int | None = None

    def to_dict(self) -> dict:
        # Every field is a plain value: no need for asdict's recursive deep copy (9 s per 100k records).
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class Chunk:
    """One paragraph-sized passage of one post, before duplicates are grouped."""

    text: str
    source: Source


@dataclass(frozen=True, slots=True)
class Passage:
    """A unique passage text with every place it appears."""

    id: int
    text: str
    sources: tuple[Source, ...]

    @property
    def titles(self) -> list[str]:
        return list(dict.fromkeys(s.title for s in self.sources))

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "text": self.text,
            "titles": self.titles,
            "sources": [s.to_dict() for s in self.sources],
        }


@dataclass(frozen=True, slots=True)
class Hit:
    """A retrieved passage: score orders results (cosine plus a share of BM25; 1.0 = the question's meaning and
    its best word match); dense_score is the cosine similarity to the question; lexical_score the BM25 score
    (0 when no word matched)."""

    passage: Passage
    score: float
    dense_score: float = 0.0
    lexical_score: float = 0.0

    def to_dict(self) -> dict:
        data = self.passage.to_dict()
        data.update(score=round(self.score, 6), dense_score=round(self.dense_score, 6),
                    lexical_score=round(self.lexical_score, 6))
        return data


@dataclass(frozen=True, slots=True)
class SearchResult:
    question: str
    hits: tuple[Hit, ...]
    notices: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "passages": [h.to_dict() for h in self.hits],
            "notices": list(self.notices),
            "timings": self.timings,
        }


@dataclass(frozen=True, slots=True)
class Document:
    """An indexed file: its format ("pdf", "docx", "markdown", "html", "text", "listing"), pages (paged
    formats only), posts and passages, when it was first indexed and last changed (UTC, ISO 8601), and
    its title (its one post's title; a file of many posts is named by its file name)."""

    path: str
    kind: str
    pages: int | None
    posts: int
    passages: int
    added: str
    updated: str
    title: str = ""

    def __post_init__(self) -> None:
        if not self.title:  # catalogues written before titles existed
            object.__setattr__(self, "title", title_from_name(self.path))

    def to_dict(self) -> dict:
        return asdict(self)

    def fields(self) -> dict:
        """As the manifest stores it, under its path."""
        return {name: value for name, value in asdict(self).items() if name != "path"}


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What an ingest did. `indexed` names each file read this time, `skipped` each file not read and
    why, `warnings` the parts of read files that could not be; `files` counts the documents in the index."""

    posts: int
    passages: int
    unique_passages: int
    embedded: int
    reused: int
    files: int
    changed_files: tuple[str, ...]
    removed_files: tuple[str, ...]
    skipped: tuple[Skipped, ...]
    seconds: float
    wrote_index: bool
    indexed: tuple[str, ...] = ()
    warnings: tuple[FileWarning, ...] = ()

    def to_dict(self) -> dict:
        data = asdict(self)
        data["skipped"] = [asdict(s) for s in self.skipped]
        data["warnings"] = [asdict(w) for w in self.warnings]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> IngestReport:
        tuples = {name: tuple(data[name]) for name in ("changed_files", "removed_files", "indexed")}
        return cls(**{**data, **tuples, "skipped": tuple(Skipped(**s) for s in data["skipped"]),
                      "warnings": tuple(FileWarning(**w) for w in data["warnings"])})


@dataclass(frozen=True, slots=True)
class IndexInfo:
    index_dir: str
    model: str
    dimension: int
    posts: int
    passages: int
    unique_passages: int
    files: int
    index_bytes: int
    built_at: str
    changed_files: tuple[str, ...]
    index_type: str = "flat"
    store: str = "faiss"  # the backend that holds the vectors
    location: str = ""  # where: the FAISS file, or the Milvus URI and collection (never a credential)
    pdf_pages: dict[str, int] = field(default_factory=dict)  # pages of each indexed PDF

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of a conversation: role is "user" or "assistant"."""

    role: str
    content: str


@dataclass(frozen=True, slots=True)
class Citation:
    """Marker [n] of an answer: the passage, and the (start, end) characters in it that support the answer."""

    marker: int
    hit: Hit
    evidence: tuple[tuple[int, int], ...] = ()

    def to_dict(self) -> dict:
        return {"marker": self.marker, **self.hit.to_dict(),
                "evidence": [{"start": start, "end": end} for start, end in self.evidence]}


@dataclass(frozen=True, slots=True)
class RemovedClaim:
    """A sentence of the draft that did not pass: "unsupported" (no source says this) or "contradicted"
    (with the conflicting characters of retrieved passage `conflict_passage`, 1-based)."""

    text: str
    verdict: str
    reason: str
    conflict_passage: int | None = None
    conflict: tuple[int, int] | None = None

    def to_dict(self) -> dict:
        data: dict = {"text": self.text, "verdict": self.verdict, "reason": self.reason}
        if self.conflict is not None:
            data["conflict"] = {"passage": self.conflict_passage, "start": self.conflict[0], "end": self.conflict[1]}
        return data


@dataclass(frozen=True, slots=True)
class Answer:
    """A short answer whose every [n] marker has a Citation; near misses when it abstains."""

    question: str
    text: str
    citations: tuple[Citation, ...]
    abstained: bool
    answerer: str
    standalone_question: str = ""
    abstain_reason: str | None = None  # one of the reasons at the top of this module
    near_misses: tuple[Hit, ...] = ()
    unsupported: tuple[str, ...] = ()  # the removed sentences' text (`removed` says why)
    notices: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    removed: tuple[RemovedClaim, ...] = ()
    # A follow-up with nothing to refer to: `text` asks the user what they mean, and nothing is cited.
    needs_clarification: bool = False
    # How the question was read, as a person would write it: the question itself when it stood alone, the
    # LLM's rewrite of a follow-up, or (for the rule's keyword rewrite) the follow-up in the earlier question's words.
    read_as: str = ""
    # Every sentence of the draft that was judged, kept or removed, with the check that decided it.
    sentences: tuple[SentenceCheck, ...] = ()

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "standalone_question": self.standalone_question or self.question,
            "read_as": self.read_as or self.standalone_question or self.question,
            "answer": self.text,
            "needs_clarification": self.needs_clarification,
            "abstained": self.abstained,
            "abstain_reason": self.abstain_reason,
            "answerer": self.answerer,
            "citations": [c.to_dict() for c in self.citations],
            "near_misses": [h.to_dict() for h in self.near_misses],
            "unsupported": list(self.unsupported),
            "removed": [r.to_dict() for r in self.removed],
            "sentences": [s.to_dict() for s in self.sentences],
            "notices": list(self.notices),
            "timings": self.timings,
        }


@dataclass(frozen=True, slots=True)
class SentenceCheck:
    """One sentence of a checked answer. `citations` are the 1-based passages that support it, `evidence`
    the supporting characters in them, `score` the judge's confidence that it is supported."""

    text: str
    verdict: str  # "supported", "unsupported" or "contradicted"
    score: float
    citations: tuple[int, ...] = ()
    evidence: tuple[tuple[int, int, int], ...] = ()  # (passage, start, end)
    reason: str = ""
    check: str = ""  # which check decided: quote, model, overlap

    @property
    def supported(self) -> bool:
        return self.verdict == "supported"

    def to_dict(self) -> dict:
        return {"text": self.text, "supported": self.supported, "verdict": self.verdict,
                "score": round(self.score, 4), "citations": list(self.citations),
                "evidence": [{"passage": p, "start": s, "end": e} for p, s, e in self.evidence],
                "reason": self.reason, "check": self.check}


@dataclass(frozen=True, slots=True)
class Verification:
    """An answer written elsewhere, checked sentence by sentence against the passages it was given."""

    sentences: tuple[SentenceCheck, ...]
    supported_answer: str
    notices: tuple[str, ...] = ()  # what the user should know about the check itself (a judge that failed)

    def to_dict(self) -> dict:
        return {"sentences": [s.to_dict() for s in self.sentences], "supported_answer": self.supported_answer,
                "notices": list(self.notices)}


def title_from_name(path: str) -> str:
    """A file name as a title: "cloud_costs-2024.pdf" -> "Cloud costs 2024"."""
    name = PurePosixPath(path).name
    return re.sub(r"[-_]+", " ", PurePosixPath(path).stem).strip().capitalize() or name
