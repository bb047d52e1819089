"""Cited question answering over engineering case studies.

    from rag import Assistant, Settings
    result = Assistant(Settings()).search("how did they cut cloud costs?")
"""

from .assistant import Assistant
from .config import Settings, load_settings
from .errors import IndexCorrupt, IndexMismatch, IndexMissing, RagError, UserError
from .types import Hit, IndexInfo, IngestReport, Passage, Post, SearchResult, Source

__all__ = [
    "Assistant", "Settings", "load_settings", "RagError", "UserError", "IndexMissing", "IndexMismatch", "IndexCorrupt",
    "Hit", "IndexInfo", "IngestReport", "Passage", "Post", "SearchResult", "Source",
]
