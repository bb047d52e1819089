"""The index as a LangChain retriever, for internal tools whose chains are already LangChain."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever


class AssistantRetriever(BaseRetriever):
    """Hybrid search over the assistant's index; each Document names every post its passage is in."""

    assistant: Any
    k: int = 5

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [
            Document(page_content=hit.passage.text, id=str(hit.passage.id),
                     metadata={"titles": hit.passage.titles, "score": hit.score, "dense_score": hit.dense_score,
                               "sources": [s.to_dict() for s in hit.passage.sources]})
            for hit in self.assistant.search(query, k=self.k).hits
        ]
