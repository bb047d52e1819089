"""The plain LangChain tutorial recipe, for `rag eval --baseline` to measure against on the same machine.

RecursiveCharacterTextSplitter(1000, 200) over each post, the same embedding model, LangChain's FAISS
vector store, top k by similarity. Posts come from this project's loaders (title, then paragraphs), so
the recipe sees the same text and each chunk keeps its post's title and file for scoring.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..config import Settings
from ..extras import require
from ..types import Post
from .metrics import Result


def baseline_for(settings: Settings, k: int) -> Callable[[str], list[Result]]:
    """The recipe over the posts the index was built from, with the same embedding model."""
    from ..corpus import load_paths
    from ..embeddings import load_encoder, resolve_model_path
    from ..index.manifest import read_manifest
    from ..ingest import project_dir, recorded_roots

    manifest = read_manifest(settings.index_dir)
    posts = load_paths(recorded_roots(settings, manifest), settings.max_file_bytes, project_dir(settings)).posts
    search = baseline_search(posts, load_encoder(resolve_model_path(settings.embedding_model),
                                                 settings.embed_batch_size))
    return lambda question: search(question, k)


def baseline_search(posts: Sequence[Post], encoder) -> Callable[[str, int], list[Result]]:
    require("langchain_community", "eval", "the LangChain baseline")
    require("langchain_text_splitters", "eval", "the LangChain baseline")
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    class SameModel(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return encoder.encode(list(texts)).tolist()

        def embed_query(self, text: str) -> list[float]:
            return encoder.encode([text])[0].tolist()

    documents = [Document(page_content=post.title + "\n\n" + "\n\n".join(p.text for p in post.paragraphs),
                          metadata={"title": post.title, "path": post.path}) for post in posts]
    chunks = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(documents)
    store = FAISS.from_documents(chunks, SameModel())

    def search(question: str, k: int) -> list[Result]:
        return [Result(frozenset([d.metadata["title"]]), frozenset([d.metadata["path"]]), d.page_content)
                for d in store.similarity_search(question, k=k)]

    return search
