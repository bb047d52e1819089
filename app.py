"""The Streamlit chat: a thin layer over rag.Assistant.

Corpus and model text is never rendered as HTML, and answer text is escaped so that markdown links,
images and bare URLs in it cannot fetch or point anywhere.
"""

from __future__ import annotations

import streamlit as st

from rag import Assistant, RagError, load_settings
from rag.render import safe_markdown as safe

EXAMPLES = [
    "How did they cut cloud costs?",
    "Why did the database fail during traffic spikes?",
    "How long did the move to structured logging take?",
]

st.set_page_config(page_title="Case-study Q&A", page_icon="📚")


@st.cache_resource(show_spinner="Loading the index and the model…")
def shared_assistant() -> Assistant:
    """One assistant per server process: the index and the model load once, not per message."""
    assistant = Assistant(load_settings())
    try:
        assistant.load()
    except RagError:
        pass  # no index yet: the sidebar says so and offers to build it
    return assistant


def where(source: dict) -> str:
    return source["title"] + (f" › {source['section']}" if source["section"] else "")


# ---------------------------------------------------------------- side panel


def index_panel(assistant: Assistant) -> None:
    st.header("Index")
    try:
        info = assistant.info()
        st.markdown(f"**{info.posts}** posts · **{info.unique_passages}** passages "
                    f"({info.passages} with repeats)")
        st.caption(f"{safe(info.model)} · built {info.built_at}")
        if info.changed_files:
            st.warning("Changed since: " + safe(", ".join(info.changed_files)))
    except RagError as exc:
        st.error(str(exc))
    if st.button("Re-ingest", help="Index what changed in the corpus (only changes are embedded)"):
        reingest(assistant)


def reingest(assistant: Assistant) -> None:
    bar = st.progress(0.0, text="Reading the corpus…")
    try:
        # In a child process: the server never keeps torch loaded, and other sessions go on asking.
        report = assistant.ingest(isolated=True, progress=lambda done, total: bar.progress(
            done / total, text=f"Embedding {done}/{total} passages"))
        assistant.load()
    except RagError as exc:
        bar.empty()
        st.error(str(exc))
        return
    bar.progress(1.0, text="Done")
    st.success(f"Embedded {report.embedded}, reused {report.reused}; "
               f"{report.unique_passages} passages in {report.seconds:.1f}s")
    for skipped in report.skipped:
        st.warning(safe(f"Skipped {skipped.path}: {skipped.reason}"))


def answer_panel(assistant: Assistant) -> dict:
    st.header("Answers")
    k = st.slider("Passages to read", 1, 20, assistant.settings.top_k)
    has_key = assistant.settings.openai_api_key is not None
    answerer = st.radio("Answerer", ["extractive", "llm"], index=1 if has_key else 0, horizontal=True,
                        help="extractive quotes the passages (offline); llm writes the answer with a model")
    options = {"k": k, "answerer": answerer}
    if answerer == "llm":
        options["llm_model"] = st.text_input("Model", assistant.settings.llm_model)
        options["llm_temperature"] = st.slider("Temperature", 0.0, 1.0, assistant.settings.llm_temperature)
        if not has_key:
            st.info("Set OPENAI_API_KEY (and OPENAI_BASE_URL for vLLM, Ollama, llama.cpp or LM Studio) "
                    "in the environment or .env, then restart the app.")
    if st.button("New chat", type="primary"):
        st.session_state.messages = []
    return options


# ---------------------------------------------------------------- chat


def show_sources(answer: dict) -> None:
    if answer["abstained"]:
        if answer["near_misses"]:
            st.caption("Near misses: the closest passages, which do not answer the question")
        for hit in answer["near_misses"]:
            with st.expander(f"Near miss · {'; '.join(hit['titles'])}"):
                st.markdown(safe(hit["text"]))
                st.caption(safe(" · ".join(where(s) for s in hit["sources"])))
        return
    st.caption("Sources (the sentences that support the answer in bold)")
    for citation in answer["citations"]:
        with st.expander(f"[{citation['marker']}] {'; '.join(citation['titles'])}"):
            st.markdown(highlighted(citation["text"], citation["evidence"]))
            st.caption(safe(" · ".join(where(s) for s in citation["sources"])))
    if answer["removed"]:
        with st.expander(f"Removed {len(answer['removed'])} claim(s) the sources do not support"):
            for claim in answer["removed"]:
                st.markdown(f"~~{safe(claim['text'])}~~ — {safe(claim['reason'])}")


def highlighted(text: str, evidence: list[dict]) -> str:
    """The passage, escaped, with its supporting spans in bold."""
    out, at = [], 0
    for span in sorted(evidence, key=lambda s: s["start"]):
        if span["start"] >= at:
            out += [safe(text[at:span["start"]]), "**" + safe(text[span["start"]:span["end"]]) + "**"]
            at = span["end"]
    return "".join(out + [safe(text[at:])])


def show_message(message: dict) -> None:
    with st.chat_message(message["role"]):
        st.markdown(safe(message["content"]))
        answer = message.get("answer")
        if answer:
            if answer["standalone_question"] != answer["question"]:
                st.caption(safe(f"Searched for: {answer['standalone_question']}"))
            for notice in answer["notices"]:
                st.caption(safe(notice))
            show_sources(answer)
            st.caption(f"{answer['answerer']} answer")


def respond(assistant: Assistant, question: str, options: dict) -> None:
    history = [{"role": m["role"], "content": m["content"]} for m in st.session_state.messages]
    st.session_state.messages.append({"role": "user", "content": question})
    show_message(st.session_state.messages[-1])
    answer_only = {k: v for k, v in options.items() if k != "k"}
    with st.chat_message("assistant"):
        checking = st.empty()
        checking.caption("Checking each sentence against its sources…")
        try:
            stream = assistant.configured(**answer_only).stream(question, history=history, k=options["k"])
            st.write_stream(safe(piece) for piece in stream)  # only sentences that passed the check
            answer = stream.answer
        except RagError as exc:
            st.error(str(exc))
            st.session_state.messages.pop()
            return
        finally:
            checking.empty()
    st.session_state.messages.append({"role": "assistant", "content": answer.text, "answer": answer.to_dict()})
    st.rerun()  # redraw with the verified text and its sources


def main() -> None:
    st.title("Case-study Q&A")
    try:
        assistant = shared_assistant()
    except RagError as exc:  # a bad setting: say which, and stop
        st.error(str(exc))
        st.stop()
    st.session_state.setdefault("messages", [])
    with st.sidebar:
        index_panel(assistant)
        options = answer_panel(assistant)
    for message in st.session_state.messages:
        show_message(message)
    question = st.chat_input("Ask about the case studies")
    if not st.session_state.messages and not question:
        st.caption("Try one of these:")
        for example in EXAMPLES:
            if st.button(example):
                question = example
    if question:
        respond(assistant, question, options)


main()
