"""LangChain adapters for chains that are already LangChain: the index as a retriever, the claim check as a
runnable. Needs the `llm` extra (langchain-core)."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda

from .config import Settings


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


def verify_runnable(settings: Settings | None = None) -> RunnableLambda:
    """A LangChain runnable for chains of your own: {"answer": str, "passages": [str or Document, ...]}
    in, the checked answer out ({"sentences": [...], "supported_answer": str}, as `rag verify` prints)."""
    from .assistant import Assistant

    assistant = Assistant(settings)

    def run(inputs: dict) -> dict:
        passages = [p.page_content if isinstance(p, Document) else str(p) for p in inputs["passages"]]
        return assistant.verify(str(inputs["answer"]), passages).to_dict()

    return RunnableLambda(run, name="rag_verify")
