"""Cited question answering over engineering case studies.

    from rag import Assistant, Settings
    result = Assistant(Settings()).search("how did they cut cloud costs?")
"""

from .answer.stream import AnswerStream
from .assistant import Assistant, verify
from .config import Settings, load_settings
from .errors import IndexCorrupt, IndexMismatch, IndexMissing, MissingExtra, RagError, UserError
from .types import (
    Answer,
    Citation,
    Hit,
    IndexInfo,
    IngestReport,
    Passage,
    Post,
    RemovedClaim,
    SearchResult,
    SentenceCheck,
    Skipped,
    Source,
    Turn,
    Verification,
)

__all__ = [
    "Assistant", "Settings", "load_settings", "verify",
    "Answer", "AnswerStream", "Citation", "Hit", "IndexInfo", "IngestReport", "Passage", "Post", "SearchResult",
    "RemovedClaim", "SentenceCheck", "Skipped", "Source", "Turn", "Verification",
    "RagError", "UserError", "IndexMissing", "IndexMismatch", "IndexCorrupt", "MissingExtra",
]
