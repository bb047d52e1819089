"""The Streamlit page: a thin layer over rag.Assistant (search for now; cited answers come next)."""

from __future__ import annotations

import streamlit as st

from rag import Assistant, RagError
from rag.config import load_settings

st.set_page_config(page_title="Case-study search", page_icon="🔎")


@st.cache_resource
def assistant() -> Assistant:
    """One assistant (model and index) per server process, not per rerun."""
    return Assistant(load_settings())


def show_status(helper: Assistant) -> None:
    with st.sidebar:
        st.header("Index")
        try:
            info = helper.info()
        except RagError as exc:
            st.error(str(exc))
            return
        st.write(f"{info.posts} posts · {info.unique_passages} passages ({info.passages} with repeats)")
        st.caption(f"{info.model} · built {info.built_at}")
        if info.changed_files:
            st.warning("Changed since: " + ", ".join(info.changed_files) + " — run `rag ingest`.")


def show_results(helper: Assistant, question: str, k: int) -> None:
    try:
        result = helper.search(question, k=k)
    except RagError as exc:
        st.error(str(exc))
        return
    for notice in result.notices:
        st.info(notice)
    for rank, hit in enumerate(result.hits, 1):
        with st.container(border=True):
            st.markdown(f"**{rank}.** score {hit.score:.3f}")
            st.text(hit.passage.text)  # st.text: corpus text is never rendered as markdown or HTML
            for source in hit.passage.sources:
                st.caption(source.title + (f" › {source.section}" if source.section else ""))


st.title("Case-study search")
try:
    helper = assistant()
except RagError as exc:  # a bad setting: say which, and stop
    st.error(str(exc))
    st.stop()
show_status(helper)
k = st.sidebar.slider("Passages", 1, 20, helper.settings.top_k)
question = st.chat_input("Ask about the case studies")
if question:
    st.chat_message("user").write(question)
    show_results(helper, question, k)
