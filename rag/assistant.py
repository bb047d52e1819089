"""The library facade that wires the stages: what the CLI, the app and internal tools call."""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from . import logs
from .citations import check, strip_links
from .config import Settings
from .conversation import as_turns, looks_like_follow_up, rule_rewrite
from .corpus import load_paths
from .embeddings import Progress
from .errors import RagError
from .extractive import extractive_draft
from .grounding import NameMatcher, compound_names, context_of, question_names
from .ingest import QUERY_MODEL_DIR, build_spec, changed_files, migrate, project_dir, recorded_roots, run_ingest
from .manifest import read_manifest, verify_file
from .prompts import ABSTAIN_TEXT, NO_ANSWER
from .questions import clean_question
from .retrieval import hybrid_search
from .types import Answer, Citation, IndexInfo, IngestReport, SearchResult


class Assistant:
    """Cited search and answers over an ingested corpus: ingest, search, ask, stream, evaluate.

    The index and the query model load on first use and stay loaded for the life of the object.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._store = None
        self._encoder = None
        self._matcher: NameMatcher | None = None

    # ------------------------------------------------------------ index

    def ingest(
        self, paths: Sequence[Path | str] | None = None, rebuild: bool = False, progress: Progress = False,
        on_wait: Callable[[], None] | None = None,
    ) -> IngestReport:
        report = run_ingest(self.settings, [Path(p) for p in paths or []], rebuild, progress, on_wait)
        if report.wrote_index:
            self.close()
        logs.event("ingest", files=report.files, posts=report.posts, passages=report.passages,
                   unique_passages=report.unique_passages, embedded=report.embedded, reused=report.reused,
                   changed_files=len(report.changed_files), removed_files=len(report.removed_files),
                   skipped_files=len(report.skipped), wrote_index=report.wrote_index, seconds=report.seconds)
        return report

    def info(self) -> IndexInfo:
        manifest = read_manifest(self.settings.index_dir)
        roots = [p for p in recorded_roots(self.settings, manifest) if p.exists()]
        current = load_paths(roots, self.settings.max_file_bytes, project_dir(self.settings), parse=False)
        changed, removed = changed_files(manifest.fingerprints, current.fingerprints)
        # Bytes on local disk: for Milvus, the records and BM25 file (the vectors are in the collection).
        index_bytes = (manifest.index_file.bytes if manifest.index_file else 0) + manifest.records_file.bytes
        if manifest.store == "milvus":
            loc = manifest.store_location
            kind = "Milvus server" if loc.get("uri", "").startswith(("http", "tcp", "unix")) else "Milvus Lite"
            location = f"{kind} {loc.get('uri')}, collection {loc.get('collection')}"
        else:
            location = str(Path(self.settings.index_dir) / manifest.index_file.name)
        return IndexInfo(
            index_dir=str(self.settings.index_dir), model=manifest.spec.model, dimension=manifest.dimension,
            posts=manifest.posts, passages=manifest.passages, unique_passages=manifest.unique_passages,
            files=len(manifest.fingerprints), index_bytes=index_bytes, built_at=manifest.built_at,
            changed_files=tuple(changed + removed), index_type=manifest.index_type,
            store=manifest.store, location=location,
        )

    def migrate(self, to: str, on_wait: Callable[[], None] | None = None) -> IndexInfo:
        """Copy the current index into another backend (RAG_STORE value) with its stored vectors: nothing is
        embedded. Point RAG_STORE at the new backend afterwards."""
        started = time.perf_counter()
        self.close()
        manifest = migrate(self.settings, to, on_wait)
        logs.event("migrate", to=to, unique_passages=manifest.unique_passages,
                   seconds=round(time.perf_counter() - started, 3))
        return self.configured(store=to).info()

    # ------------------------------------------------------------ queries

    def search(self, question: str, k: int | None = None) -> SearchResult:
        question, notices = clean_question(question, self.settings.max_question_chars)
        started = time.perf_counter()
        store, encoder = self._loaded()
        loaded = time.perf_counter()
        hits = hybrid_search(store, encoder, question, k or self.settings.top_k, self.settings)
        timings = {"load_ms": _ms(started, loaded), "search_ms": _ms(loaded, time.perf_counter())}
        logs.event("search", {"question": question}, k=k or self.settings.top_k, hits=len(hits),
                   question_chars=len(question), **timings)
        return SearchResult(question, tuple(hits), tuple(notices), timings)

    def ask(self, question: str, history=None, k: int | None = None, answerer: str | None = None) -> Answer:
        """A short cited answer (or an abstention with near misses)."""
        *_, answer = self.stream(question, history=history, k=k, answerer=answerer)
        return answer

    def stream(self, question: str, history=None, k: int | None = None,
               answerer: str | None = None) -> Iterator[str | Answer]:
        """Yield the answer's text as it is written, then the final, verified Answer.

        An LLM's streamed draft can differ from the final text: unsupported sentences are removed and
        markers renumbered, so show Answer.text once it arrives.
        """
        started = time.perf_counter()
        question, notices = clean_question(question, self.settings.max_question_chars)
        mode = self._answerer(answerer)
        turns = as_turns(history, self.settings.history_turns)
        standalone = self._standalone(turns, question, mode, notices)
        store, encoder = self._loaded()
        retrieved = time.perf_counter()
        hits = hybrid_search(store, encoder, standalone, k or self.settings.top_k, self.settings)
        draft_started = time.perf_counter()
        timings = {"retrieve_ms": _ms(retrieved, draft_started)}
        if not hits or max(h.dense_score for h in hits) < self.settings.min_score:
            yield _logged(self._abstain(question, standalone, hits, mode, notices, timings, started))
            return
        if mode == "llm":
            draft, mode = yield from self._llm_draft(question, standalone, hits, notices)
        else:
            draft = self._extractive_draft(question, standalone, hits, notices)
        timings["generate_ms"] = _ms(draft_started, time.perf_counter())
        answer = _logged(self._verified(question, standalone, draft, hits, mode, notices, timings, started))
        if mode != "llm":
            yield from re.findall(r"\S+\s*", answer.text)  # the text as it is written, like the LLM's
        yield answer

    def _answerer(self, requested: str | None) -> str:
        mode = requested or self.settings.answerer
        if mode == "auto":
            return "llm" if self.settings.openai_api_key is not None else "extractive"
        if mode == "llm" and self.settings.openai_api_key is None:
            from .llm import chat_model

            chat_model(self.settings)  # raises the error that says what to set
        return mode

    def _standalone(self, turns, question: str, mode: str, notices: list[str]) -> str:
        if not turns or not looks_like_follow_up(question):
            return question
        if mode == "llm":
            from .llm import condense

            try:
                return condense(self.settings, turns, question)
            except RagError as exc:
                if not self.settings.llm_fallback:
                    raise
                notices.append(f"the LLM could not rewrite the follow-up ({exc}); used a simple rule")
        return rule_rewrite(turns, question)

    def _llm_draft(self, question: str, standalone: str, hits, notices: list[str]):
        """Stream the LLM's draft; on failure, fall back to the extractive draft if the settings allow."""
        from .llm import stream_answer

        pieces: list[str] = []
        try:
            for piece in stream_answer(self.settings, standalone, hits):
                pieces.append(piece)
                yield piece
            return "".join(pieces), "llm"
        except RagError as exc:
            if not self.settings.llm_fallback:
                raise
            notices.append(f"the LLM failed, so this answer is extractive: {exc}")
            return self._extractive_draft(question, standalone, hits, notices), "extractive (LLM failed)"

    def _extractive_draft(self, question: str, standalone: str, hits, notices: list[str]) -> str:
        """Quote the passages that speak of everything the question names; none may (a near miss)."""
        _, encoder = self._loaded()
        contexts = [context_of(h.passage) for h in hits]
        names = list(dict.fromkeys(question_names(question) + compound_names(question, contexts)))
        missing = [self._matcher.missing(names, context) for context in contexts] if names else []
        if missing and all(missing):
            nowhere = [n for n in names if all(n in m for m in missing)]
            notices.append("none of the passages found mentions " + ", ".join(nowhere) if nowhere else
                           "no passage found mentions " + " and ".join(names) + " together")
            return NO_ANSWER
        quotable = [not m for m in missing] if missing else None
        return extractive_draft([question, standalone], hits, encoder, self.settings.answer_max_sentences, quotable)

    def _verified(self, question, standalone, draft, hits, mode, notices, timings, started) -> Answer:
        if NO_ANSWER.lower() in draft.lower():
            return self._abstain(question, standalone, hits, mode, notices, timings, started)
        checked = check(draft, [h.passage.text for h in hits], self.settings.citation_min_support)
        if not checked.cited:
            notices.append("no retrieved sentence answers this" if not draft.strip() else
                           "no sentence of the draft answer was supported by the passages")
            return self._abstain(question, standalone, hits, mode, notices, timings, started,
                                 unsupported=checked.unsupported)
        if checked.unsupported:
            notices.append(f"removed {len(checked.unsupported)} sentence(s) no passage supports")
        citations = tuple(Citation(n, hits[i]) for n, i in enumerate(checked.cited, 1))
        text, removed = strip_links(checked.text, [c.hit.passage.text for c in citations])
        if removed:
            notices.append(f"removed {removed} link(s) or image(s) that no cited passage contains")
        timings["total_ms"] = _ms(started, time.perf_counter())
        return Answer(question, text, citations, False, mode, standalone, (),
                      tuple(checked.unsupported), tuple(notices), timings)

    def _abstain(self, question, standalone, hits, mode, notices, timings, started, unsupported=()) -> Answer:
        timings["total_ms"] = _ms(started, time.perf_counter())
        return Answer(question, ABSTAIN_TEXT, (), True, mode, standalone, tuple(hits[:3]),
                      tuple(unsupported), tuple(notices), timings)

    def evaluate(self, questions_file: Path | str, k: int | None = None, baseline: bool = False) -> dict:
        """Quality figures on a question set (see rag.evaluation), and the LangChain recipe's if asked."""
        from .evaluation import evaluate, load_questions, result_of

        questions = load_questions(Path(questions_file))
        k = k or self.settings.top_k

        def search(question: str):
            return [result_of(hit) for hit in self.search(question, k=k).hits]

        summary, misses = evaluate(questions, search, lambda q: self.ask(q, k=k))
        report = {"k": k, "rag": summary, "misses": misses}
        if baseline:
            report["baseline"], _ = evaluate(questions, self._baseline(k))
        return report

    def _baseline(self, k: int):
        from .baseline import baseline_search
        from .embeddings import load_encoder, resolve_model_path

        manifest = read_manifest(self.settings.index_dir)
        posts = load_paths(recorded_roots(self.settings, manifest), self.settings.max_file_bytes,
                           project_dir(self.settings)).posts
        encoder = load_encoder(resolve_model_path(self.settings.embedding_model), self.settings.embed_batch_size)
        search = baseline_search(posts, encoder)
        return lambda question: search(question, k)

    def as_retriever(self, k: int | None = None):
        """A LangChain BaseRetriever over this index (hybrid search, every post named in metadata)."""
        from .lc_retriever import AssistantRetriever

        return AssistantRetriever(assistant=self, k=k or self.settings.top_k)

    def load(self) -> None:
        """Load the index and the query model now rather than at the first question."""
        self._loaded()

    def configured(self, **updates) -> Assistant:
        """A copy with some settings changed that shares this one's loaded index and model
        (unless the change is to the index or the model)."""
        clone = copy.copy(self)
        clone.settings = self.settings.model_copy(update=updates)
        if {"index_dir", "embedding_model", "query_backend", "store", "milvus_uri", "milvus_token",
                "milvus_collection"} & set(updates):
            clone._store = clone._encoder = None
        return clone

    def _loaded(self):
        if self._store is None:
            from .stores import open_store

            store = open_store(self.settings, build_spec(self.settings))
            self._encoder = self._query_encoder(store.manifest)
            self._matcher = NameMatcher(self._encoder)
            self._store = store
        return self._store, self._encoder

    def _query_encoder(self, manifest):
        """The ONNX export made at ingest (no torch: a fast cold start), else sentence-transformers."""
        from .embeddings import model_window, resolve_model_path

        model_path = resolve_model_path(self.settings.embedding_model)
        if manifest.query_model_files and self.settings.query_backend == "onnx":
            from .onnx_encoder import OnnxEncoder

            for entry in manifest.query_model_files:
                verify_file(self.settings.index_dir, entry)
            return OnnxEncoder(self.settings.index_dir / QUERY_MODEL_DIR, model_path, model_window(model_path))
        from .embeddings import load_encoder

        return load_encoder(model_path, self.settings.embed_batch_size)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        self._store = None


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 2)


def _logged(answer: Answer) -> Answer:
    logs.event("ask", {"question": answer.question, "answer": answer.text}, answerer=answer.answerer,
               abstained=answer.abstained, citations=len(answer.citations), unsupported=len(answer.unsupported),
               notices=len(answer.notices), **answer.timings)
    return answer
