"""One error family. Each error says who can fix it and how; exit_code 2 means the user can."""

from __future__ import annotations

from collections.abc import Sequence


class RagError(Exception):
    """Base of every error the assistant raises on purpose."""

    exit_code = 1


class UserError(RagError):
    """The caller's mistake or the caller's data: fixable by the user (exit 2)."""

    exit_code = 2


class EmptyQuestion(UserError):
    def __init__(self) -> None:
        super().__init__("the question is empty: type a question, e.g. rag search \"how did they cut costs?\"")


class IndexMissing(UserError):
    def __init__(self, index_dir: object) -> None:
        super().__init__(f"no index in {index_dir}: run `rag ingest` first")


class IndexMismatch(UserError):
    """The index was built with other settings (model, chunking, format)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"the index was built with other settings ({detail}): run `rag ingest` to rebuild it")


class IndexCorrupt(UserError):
    """A file of the index is missing, truncated or fails its checksum."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"the index is damaged ({detail}): run `rag ingest --rebuild`")


class IndexBusy(UserError):
    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"another `rag ingest` still holds the index lock after {seconds:g}s: "
            "wait for it to finish, or raise RAG_LOCK_TIMEOUT"
        )


class RecordsBusy(IndexBusy):
    """A writer held the records file past the readers' patience (a very large in-place update)."""

    def __init__(self, seconds: float) -> None:
        UserError.__init__(self, f"an ingest kept the index's records locked for {seconds:g}s: ask again in a "
                                 "moment")


class IndexDiskFull(UserError):
    def __init__(self, index_dir: object) -> None:
        super().__init__(f"no space left on the disk of {index_dir}: free some space, then run `rag ingest` again "
                         "(the previous index is unchanged)")


class IndexNotWritable(UserError):
    def __init__(self, index_dir: object) -> None:
        super().__init__(f"cannot write to {index_dir} (read-only or not yours): make it writable, or set "
                         "RAG_INDEX_DIR to a folder you can write")


class IndexNotAFolder(UserError):
    def __init__(self, path: object) -> None:
        super().__init__(f"{path} is a file, not a folder: move it away, or set RAG_INDEX_DIR to a folder "
                         "for the index")


class StoreUnavailable(UserError):
    """The configured vector store cannot be reached or opened (a Milvus server, a locked Milvus Lite file)."""


class MissingExtra(UserError):
    """A feature's optional package is not installed: the message names the extra that brings it."""


class CorpusMissing(UserError):
    def __init__(self, path: object) -> None:
        super().__init__(f"corpus path {path} does not exist: pass existing files or folders to `rag ingest`")


class EmptyCorpus(UserError):
    def __init__(self, paths: object, skipped: Sequence = ()) -> None:
        super().__init__(f"no readable text in {paths} ({why_skipped(skipped)}): add PDF, Word .docx, Markdown, "
                         "HTML or text files")


def why_skipped(skipped: Sequence, names_shown: int = 5) -> str:
    """Why each file was skipped, grouped by reason so a long list stays one readable line."""
    if not skipped:
        return "no files found; hidden files and folders are not read"
    by_reason: dict[str, list[str]] = {}
    for entry in skipped:
        by_reason.setdefault(entry.reason, []).append(entry.path)
    parts = []
    for reason, names in by_reason.items():
        more = f" and {len(names) - names_shown} more" if len(names) > names_shown else ""
        parts.append(f"{', '.join(names[:names_shown])}{more}: {reason}")
    return "; ".join(parts)


class ModelUnavailable(UserError):
    def __init__(self, model: str, reason: str) -> None:
        super().__init__(
            f"cannot load embedding model {model!r} ({reason}): set RAG_EMBEDDING_MODEL to a local "
            "model folder, or unset it to use the bundled all-MiniLM-L6-v2"
        )


class VerifierUnavailable(UserError):
    def __init__(self, model: str, reason: str) -> None:
        self.reason = reason
        super().__init__(f"cannot load the claim verifier {model!r} ({reason}): set RAG_VERIFIER_MODEL to a "
                         "cross-encoder folder or name, or to overlap")


class ReaderUnavailable(UserError):
    def __init__(self, model: str, reason: str) -> None:
        super().__init__(f"cannot load the reading model {model!r} ({reason}): set RAG_READER_MODEL to an ONNX "
                         "folder or a cross-encoder name, or reinstall the package for the bundled one")
