"""The library facade: what the CLI, the app, the LangChain retriever and other tools call."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from . import logs
from .answer import pipeline
from .answer.answerers import Answerer, ExtractiveAnswerer, Fallback, LLMAnswerer
from .answer.conversation import as_turns
from .answer.judge import judge_for
from .answer.questions import clean_question
from .answer.reader import reading_model
from .answer.stream import AnswerStream
from .answer.verify import load_verifier, verify_answer
from .config import Settings
from .embeddings import Progress
from .errors import RagError, UserError
from .extras import require
from .index.shared import SharedIndex
from .ingest import describe_index, list_documents, logged, migrate, run_ingest, run_remove
from .resources import Loaded, Loader
from .retrieval import hybrid_search
from .sources import library_name
from .types import Answer, Document, IndexInfo, IngestReport, SearchResult, Verification

# Settings that change which index or query model is loaded: a copy that changes one loads its own.
_INDEX_SETTINGS = {"index_dir", "embedding_model", "query_backend", "store", "milvus_uri", "milvus_token",
                   "milvus_collection", "verifier_model"}


class Assistant:
    """Cited search and answers over an ingested corpus: ingest, search, ask, stream, evaluate.

    The index and the query model load on first use and stay loaded; every thread may ask at once, and
    an ingest switches later questions to the new index while earlier ones finish on the old.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._index: SharedIndex[Loaded] = _shared(self.settings)

    def ingest(self, paths: Sequence[Path | str] | None = None, rebuild: bool = False, progress: Progress = False,
               on_wait: Callable[[], None] | None = None, isolated: bool = False, sync: bool = False,
               time_limit: float | None = None) -> IngestReport:
        """Add or update these files or folders and keep every other document (`sync`: the index then
        holds exactly these); no paths re-reads the documents the index holds (a new index: the corpus
        folder). `isolated` runs it in a child process, so a long-running server never loads torch.
        `time_limit`: seconds of reading, after which the files left are skipped (and reported); an
        isolated run still going at twice it is stopped and changes nothing."""
        arguments = (self.settings, [Path(p) for p in paths or []], rebuild, progress, on_wait, sync, time_limit)
        if isolated:
            from .isolated import ingest_in_child

            report = ingest_in_child(*arguments)
        else:
            report = run_ingest(*arguments)
        return self._ingested(report)

    def remove(self, paths: Sequence[Path | str], on_wait: Callable[[], None] | None = None,
               isolated: bool = False, time_limit: float | None = None) -> IngestReport:
        """Remove these files or folders, and only their passages, from the index (an isolated removal
        still going at twice `time_limit` seconds is stopped and changes nothing)."""
        if not paths:
            raise UserError("name the files or folders to remove; `rag sources` lists what is indexed")
        if isolated:
            from .isolated import ingest_in_child

            report = ingest_in_child(self.settings, [Path(p) for p in paths], on_wait=on_wait, remove=True,
                                     time_limit=time_limit)
        else:
            report = run_remove(self.settings, [Path(p) for p in paths], on_wait)
        return self._ingested(report)

    def _ingested(self, report: IngestReport) -> IngestReport:
        if report.wrote_index:
            self._index.refresh()
        return logged(report)

    def info(self) -> IndexInfo:
        return describe_index(self.settings)

    def library(self) -> str:
        """What the documents are called ("the case studies", "your documents" or RAG_COLLECTION): for
        titles and prompts. An index that cannot be opened yet is named by the settings alone."""
        try:
            with self._index.borrow() as loaded:
                return loaded.library
        except RagError:
            return library_name(self.settings.collection, ())

    def sources(self) -> list[Document]:
        """Every indexed file: path, format, pages, posts, passages, when added and last updated."""
        return list_documents(self.settings)

    def migrate(self, to: str, on_wait: Callable[[], None] | None = None) -> IndexInfo:
        """Copy the index into another backend (RAG_STORE value) with its stored vectors: nothing is
        embedded. Point RAG_STORE at the new backend afterwards."""
        started = time.perf_counter()
        self._index.refresh()
        manifest = migrate(self.settings, to, on_wait)
        logs.event("migrate", to=to, unique_passages=manifest.unique_passages,
                   seconds=round(time.perf_counter() - started, 3))
        return self.configured(store=to).info()

    def search(self, question: str, k: int | None = None) -> SearchResult:
        question, notices = clean_question(question, self.settings.max_question_chars)
        k = k or self.settings.top_k
        started = time.perf_counter()
        with self._index.borrow() as loaded:
            searching = time.perf_counter()
            hits = hybrid_search(loaded.store, loaded.encoder, question, k, self.settings)
        timings = {"load_ms": _ms(started, searching), "search_ms": _ms(searching, time.perf_counter())}
        logs.event("search", {"question": question}, k=k, hits=len(hits), question_chars=len(question), **timings)
        return SearchResult(question, tuple(hits), tuple(notices), timings)

    def ask(self, question: str, history=None, k: int | None = None, answerer: str | None = None) -> Answer:
        """A short cited answer (or an abstention with near misses)."""
        return self.stream(question, history=history, k=k, answerer=answerer).answer

    def stream(self, question: str, history=None, k: int | None = None, answerer: str | None = None) -> AnswerStream:
        """The answer as it is written: iterate for text pieces, then read `.answer` (verified)."""
        mode = answerer or self.settings.answerer
        if mode == "auto":
            mode = "llm" if self.settings.openai_api_key is not None else "extractive"
        llm = LLMAnswerer(self.settings) if mode == "llm" else None  # a missing key fails here, not mid-stream
        history = list(history or ())  # read twice: for the run, and whether this is a conversation's first turn

        def writer(loaded: Loaded) -> Answerer:
            extractive = ExtractiveAnswerer(loaded.encoder, loaded.matcher, self.settings.answer_max_sentences,
                                            reading_model(self.settings), self.settings.answer_threshold)
            if llm is None:
                return extractive
            first_turn = not as_turns(history, 1)  # a skipped LLM is told once per conversation (Fallback)
            return Fallback(llm, extractive, first_turn) if self.settings.llm_fallback else llm

        run = pipeline.answer(question, history, k or self.settings.top_k, self.settings, self._index.borrow, writer)
        return AnswerStream(logs.answered(run))

    def verify(self, answer: str, passages: Sequence[str], question: str = "") -> Verification:
        """Check an answer written elsewhere, sentence by sentence, against the passages it was given (and the
        question it was written for, which a detector reads)."""
        passages = list(passages)
        return verify_answer(answer, passages, load_verifier(self.settings), judge_for(self.settings, passages),
                             question)

    def evaluate(self, questions_file: Path | str, k: int | None = None, baseline: bool = False,
                 retrieval_only: bool = False) -> dict:
        """Quality figures on a question set (see rag.eval); with `baseline` the LangChain recipe's and
        plain BM25's on the same passages; `retrieval_only` skips answering."""
        from .eval.report import evaluate_assistant

        return evaluate_assistant(self, Path(questions_file), k or self.settings.top_k, baseline, retrieval_only)

    def as_retriever(self, k: int | None = None):
        """A LangChain BaseRetriever over this index (hybrid search, every post named in metadata)."""
        require("langchain_core", "llm", "as_retriever")
        from .lc import AssistantRetriever

        return AssistantRetriever(assistant=self, k=k or self.settings.top_k)

    def load(self) -> None:
        """Load the index and the query model now rather than at the first question."""
        with self._index.borrow():
            pass

    def configured(self, **updates) -> Assistant:
        """A copy with some settings changed that shares this one's loaded index and model (unless the
        change is to the index or the model). Copies never close what they share."""
        clone = copy.copy(self)
        clone.settings = self.settings.replace(**updates)
        if _INDEX_SETTINGS & set(updates):
            clone._index = _shared(clone.settings)
        return clone

    def close(self) -> None:
        """Release the loaded index once the questions still reading it are done."""
        self._index.close()


def verify(answer: str, passages: Sequence[str], settings: Settings | None = None, question: str = "") -> Verification:
    """`from rag import verify`: each sentence of `answer` checked against `passages` (its [n] markers,
    1-based, say which; an unmarked sentence may be supported by any); verdicts, evidence, supported answer."""
    return Assistant(settings).verify(answer, passages, question)


def _shared(settings: Settings) -> SharedIndex[Loaded]:
    loader = Loader(settings)
    return SharedIndex(loader, loader.stamp)


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 2)
