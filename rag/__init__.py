"""Cited question answering over engineering case studies.

    from rag import Assistant, Settings
    result = Assistant(Settings()).search("how did they cut cloud costs?")
"""

from .answer.stream import AnswerStream
from .assistant import Assistant
from .config import Settings, load_settings
from .errors import IndexCorrupt, IndexMismatch, IndexMissing, MissingExtra, RagError, UserError
from .types import Answer, Citation, Hit, IndexInfo, IngestReport, Passage, Post, SearchResult, Skipped, Source, Turn

__all__ = [
    "Assistant", "Settings", "load_settings",
    "Answer", "AnswerStream", "Citation", "Hit", "IndexInfo", "IngestReport", "Passage", "Post", "SearchResult",
    "Skipped", "Source", "Turn",
    "RagError", "UserError", "IndexMissing", "IndexMismatch", "IndexCorrupt", "MissingExtra",
]
