"""The Streamlit chat: a thin layer over rag.Assistant.

Corpus and model text is never rendered as HTML, and answer text is escaped so that markdown links,
images and bare URLs in it cannot fetch or point anywhere. Served beyond loopback, or with a password,
OIDC or named users configured, it shows nothing until someone signs in (the rules are in rag/access.py).
Each chat is its owner's alone (rag/chats.py): every read and write of one passes the visitor's owner key.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import streamlit as st

from rag import Assistant, RagError, Settings, access, load_settings
from rag.access import Visitor
from rag.answer.llm import describe_state, endpoint_state
from rag.chats import NEW_TITLE, Chat, ChatStore, Message, chat_labels, chat_markdown
from rag.config import trusted_hosts
from rag.render import answer_markdown, rewrite_note, source_label
from rag.render import safe_markdown as safe
from rag.uploads import UploadRefused, save_upload
from rag.users import UserStore

EXAMPLES = [
    "How did they cut cloud costs?",
    "Why did the database fail during traffic spikes?",
    "How long did the move to structured logging take?",
]

UPLOAD_TYPES = ["pdf", "docx", "md", "markdown", "html", "htm", "txt"]
# An unexpected failure's one line: its traceback and paths go to the server's log, never to the page.
UNEXPECTED = ("Something went wrong on the server: try again, or reload the page; if it keeps happening, "
              "the server's log has the details.")
log = logging.getLogger("rag.app")


@st.cache_resource(show_spinner="Loading the index and the model…")
def shared_assistant() -> Assistant:
    """One assistant per server process: the index and the model load once, not per message. Each question
    checks the published index (one stat call) and answers from the newest, whoever ingested it."""
    assistant = Assistant(load_settings())
    try:
        assistant.load()
    except RagError:
        pass  # no index yet: the sidebar says so and offers to build it
    return assistant


# ---------------------------------------------------------------- sign-in


def signed_in(settings: Settings) -> Visitor:
    """Whoever uses this session. Until someone has signed in, draws the sign-in (or, when there is no way
    to sign in, one line saying what to set) and stops the script there: nothing else is drawn."""
    address = st.get_option("server.address")
    auth = oidc_config()
    users = UserStore.of(settings)
    proxied = access.proxied(st.context.headers)
    gate = access.gate(settings, address, auth is not None, users_exist(users), proxied)
    if gate.open:
        return access.LOCAL
    if gate.refused:
        st.set_page_config(page_title="Sign in", page_icon="📚")
        st.error(access.refusal(address, proxied))
        st.stop()
    visitor = st.session_state.get("visitor")  # a password sign-in, kept for the session
    if visitor is not None and not access.still_signed_in(visitor, users):
        del st.session_state.visitor  # removed, or their password changed: they sign in again
        visitor = None
    if visitor is None and auth is not None and st.user.get("is_logged_in"):
        visitor = access.oidc_visitor(st.user.to_dict(), settings)
    if visitor is None:
        sign_in(settings, gate, auth, users)
        st.stop()
    return visitor


def users_exist(users: UserStore) -> bool:
    """Whether named users exist; a user file that cannot be read stops the page, saying so in one line
    (its path and the reason go to the log: the visitor has not signed in)."""
    try:
        return users.any_users()
    except RagError as exc:
        log.error("cannot read the user file: %s", exc)
        st.set_page_config(page_title="Sign in", page_icon="📚")
        st.error("Sign-in is not possible now: the server cannot read its list of users. The server's log has "
                 "the details.")
        st.stop()


def oidc_config() -> Mapping[str, Any] | None:
    """secrets.toml's [auth] table, where Streamlit's OIDC login is configured, or None."""
    try:
        auth = st.secrets.get("auth")
    except FileNotFoundError:  # no secrets.toml at all
        return None
    return auth if isinstance(auth, Mapping) else None


def sign_in(settings: Settings, gate: access.Gate, auth: Mapping[str, Any] | None, users: UserStore) -> None:
    st.set_page_config(page_title="Sign in", page_icon="📚")
    st.title("Sign in")
    if gate.password:
        password_form(settings, gate, users)
    if auth is not None:
        if not access.authlib_installed():
            st.error('Sign-in with OIDC needs Authlib: pip install "streamlit[auth]", then restart the app.')
            return
        for provider in access.oidc_providers(auth):
            label = f"Sign in with {provider}" if provider else "Sign in with your account"
            if st.button(label, key=f"login:{provider}"):
                st.login(provider)


def password_form(settings: Settings, gate: access.Gate, users: UserStore) -> None:
    """A name and password when named users exist (the name left empty for the shared password, if one
    is set); the password alone otherwise."""
    shared = access.shared_password(settings)
    with st.form("sign-in", clear_on_submit=True):
        name = ""
        if gate.users:
            name = st.text_input("Name", autocomplete="username",
                                 help="Leave it empty to use the shared password" if shared else None)
        password = st.text_input("Password", type="password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        try:
            visitor = access.password_visitor(name or "", password or "", settings, users)
        except RagError as exc:  # the user file broke since the page was drawn
            log.error("cannot check a sign-in: %s", exc)
            st.error("Sign-in is not possible now: the server's log has the details.")
            return
        if visitor is not None:
            st.session_state.visitor = visitor
            st.rerun()
        st.error("Wrong name or password." if gate.users else "Wrong password.")


def account_panel(visitor: Visitor) -> None:
    if visitor.via == "local":
        return
    who = f"{safe(visitor.name)} ({visitor.role})" if visitor.name else visitor.role
    st.caption(f"Signed in as {who}")
    if visitor.shared:
        st.caption("With the shared password your chats are kept for this browser tab only: a reload or "
                   "signing out starts afresh.")
    if st.button("Sign out", icon=":material/logout:"):
        if visitor.via == "oidc":
            st.logout()
        else:
            st.session_state.pop("visitor", None)
            st.rerun()


# ---------------------------------------------------------------- side panel


def index_panel(assistant: Assistant, admin: bool) -> None:
    st.header("Index")
    try:
        info = assistant.info()
        st.markdown(f"**{info.files}** {'document' if info.files == 1 else 'documents'} · **{info.posts}** posts · "
                    f"**{info.unique_passages}** passages")
        st.caption(f"{safe(info.model)} · built {info.built_at}")
        if info.changed_files:
            st.warning("Changed since: " + safe(", ".join(info.changed_files)))
    except RagError as exc:
        st.error(str(exc))
    if admin and st.button("Re-ingest", help="Read the indexed documents again (only changes are embedded)"):
        change(assistant, "Reading the documents…", lambda progress: assistant.ingest(isolated=True, progress=progress))
    show_last_change()


def documents_panel(assistant: Assistant, admin: bool) -> None:
    """The indexed documents; an admin can also upload and remove them."""
    st.header("Documents")
    if admin:
        upload_form(assistant)
    try:
        documents = assistant.sources()
    except RagError:
        return
    with st.expander(f"{len(documents)} indexed", expanded=len(documents) <= 10):
        for document in documents:
            text, button = st.columns([3, 2], vertical_alignment="center")
            size = f"{document.pages} p." if document.pages is not None else f"{document.posts} posts"
            text.markdown(f"**{safe(document.title)}**  \n:gray[{safe(document.path)} · {document.kind} · {size} · "
                          f"{document.passages} passages]")
            if admin and button.button("Remove", key=f"remove:{document.path}",
                                       help="Remove it from the index (the file stays)"):
                change(assistant, f"Removing {safe(document.path)}…",
                       lambda progress, path=document.path: assistant.remove([path], isolated=True))


def upload_form(assistant: Assistant) -> None:
    limit = assistant.settings.max_file_bytes
    with st.form("upload", clear_on_submit=True, border=False):
        files = st.file_uploader("Add documents", type=UPLOAD_TYPES, accept_multiple_files=True,
                                 max_upload_size=max(1, math.ceil(limit / 2**20)),
                                 help=f"PDF, Word .docx, Markdown, HTML or text, up to {limit / 1e6:g} MB each "
                                      "(RAG_MAX_FILE_BYTES)")
        submitted = st.form_submit_button("Upload and index")
    if submitted and files:
        upload(assistant, files)


def upload(assistant: Assistant, files) -> None:
    saved, refused = [], []
    for file in files:
        try:
            saved.append(save_upload(assistant.settings.uploads, file.name, file.getvalue(),
                                     assistant.settings.max_file_bytes))
        except UploadRefused as exc:
            refused.append(f"{file.name}: {exc}")
    st.session_state.upload_refused = refused
    if saved:
        change(assistant, "Reading the uploads…",
               lambda progress: assistant.ingest(saved, isolated=True, progress=progress))
    else:
        st.rerun()


def change(assistant: Assistant, label: str, run) -> None:
    """Run an ingest or a removal with a progress bar; its report shows after the page is drawn again,
    so the panels above it describe the index it wrote."""
    bar = st.progress(0.0, text=label)
    try:
        # In a child process: the server never keeps torch loaded, and other sessions go on asking.
        report = run(lambda done, total: bar.progress(done / total, text=f"Embedding {done}/{total} passages"))
        st.session_state.last_change = {"report": report.to_dict()}
    except RagError as exc:
        st.session_state.last_change = {"error": str(exc)}
    st.rerun()


def show_last_change() -> None:
    for refused in st.session_state.pop("upload_refused", []):
        st.error(safe(f"Not uploaded: {refused}"))
    change = st.session_state.pop("last_change", None)
    if change is None:
        return
    if "error" in change:
        st.error(safe(change["error"]))
        return
    report = change["report"]
    if report["wrote_index"]:
        st.success(f"Done: embedded {report['embedded']}, reused {report['reused']}; "
                   f"{report['unique_passages']} passages in {report['seconds']:.1f}s")
    else:
        st.success("Up to date: nothing changed")
    for name in report["indexed"]:
        st.caption(safe(f"Read {name}"))
    for name in report["removed_files"]:
        st.caption(safe(f"Removed {name}"))
    for skipped in report["skipped"]:
        st.warning(safe(f"Skipped {skipped['path']}: {skipped['reason']}"))
    for warning in report["warnings"]:
        st.warning(safe(f"{warning['path']}: {warning['message']}"))


def answer_panel(assistant: Assistant) -> dict:
    st.header("Answers")
    k = st.slider("Passages to read", 1, 20, assistant.settings.top_k)
    has_key = assistant.settings.openai_api_key is not None
    answerer = st.radio("Answerer", ["extractive", "llm"], index=1 if has_key else 0, horizontal=True,
                        disabled=not has_key,
                        help="extractive quotes the passages (offline); llm writes the answer with a model")
    if not has_key:  # said before a question is asked, not after it fails
        st.caption("llm needs OPENAI_API_KEY (and OPENAI_BASE_URL for vLLM, Ollama, llama.cpp or LM Studio) "
                   "in the environment or .env, then a restart of the app.")
    options = {"k": k, "answerer": answerer}
    if answerer == "llm":
        options["llm_model"] = st.text_input("Model", assistant.settings.llm_model)
        options["llm_temperature"] = st.slider("Temperature", 0.0, 1.0, assistant.settings.llm_temperature)
        state = endpoint_state(assistant.settings.replace(llm_model=options["llm_model"]))
        shown = st.warning if state["state"] in ("open", "half_open") else st.caption  # skipped, or on trial
        shown(safe(f"Endpoint {state['endpoint']}: {describe_state(state)}"))
    return options


def chats_panel(store: ChatStore, owner: str, open_chat: str | None) -> None:
    """The visitor's own chats, newest first; two with the same title show when each was started."""
    st.header("Chats")
    if st.button("New chat", type="primary"):
        st.query_params.clear()
        st.rerun()
    try:
        chats = store.chats(owner)[:50]
    except RagError as exc:
        st.error(safe(str(exc)))
        return
    for chat, label in zip(chats, chat_labels(chats, reader_zone()), strict=True):
        current = chat.id == open_chat
        if st.button(safe(label), key=f"chat:{chat.id}", type="tertiary", disabled=current,
                     icon=":material/chat:" if not current else ":material/chevron_right:"):
            st.query_params["chat"] = chat.id
            st.rerun()
    chat = next((c for c in chats if c.id == open_chat), None)
    if chat is not None:
        with st.popover("Rename or delete this chat"):
            title = st.text_input("Title", chat.title, max_chars=80)
            rename, delete = st.columns(2)
            if rename.button("Rename", disabled=not title.strip()):
                store.rename(owner, chat.id, title)
                st.rerun()
            if delete.button("Delete", type="primary"):
                store.delete(owner, chat.id)
                st.query_params.clear()
                st.rerun()


def reader_zone() -> tzinfo | None:
    """The browser's time zone, so times read as the reader's clock; None (the server's) when unknown.
    The name comes from the browser: one that is not a real zone is ignored, never looked up as a path."""
    name = st.context.timezone
    try:
        return ZoneInfo(name) if name else None
    except (KeyError, ValueError):  # ZoneInfoNotFoundError is a KeyError
        return None


# ---------------------------------------------------------------- chat


def show_sources(answer: dict) -> None:
    if answer["needs_clarification"]:
        return
    if answer["abstained"]:
        if answer["near_misses"]:
            st.caption("Near misses: the closest passages, which do not answer the question")
        for hit in answer["near_misses"]:
            with st.expander(f"Near miss · {'; '.join(hit['titles'])}"):
                st.markdown(safe(hit["text"]))
                st.caption(safe(" · ".join(source_label(s) for s in hit["sources"])))
        return
    st.caption("Sources (the sentences that support the answer in bold)")
    checks = checked_by(answer.get("sentences", []))  # chats saved before checks were recorded have none
    if checks:
        st.caption(safe(checks))
    for citation in answer["citations"]:
        with st.expander(f"[{citation['marker']}] {'; '.join(citation['titles'])}"):
            st.markdown(highlighted(citation["text"], citation["evidence"]))
            st.caption(safe(" · ".join(source_label(s) for s in citation["sources"])))
    if answer["removed"]:
        with st.expander(f"Removed {len(answer['removed'])} claim(s) the sources do not support"):
            for claim in answer["removed"]:
                st.markdown(f"~~{safe(claim['text'])}~~ — {safe(claim['reason'])}")


CHECK_WORDS = {"quote": "by its verbatim quote", "model": "by the reading model", "overlap": "by shared words",
               "judge": "by the LLM judge"}


def checked_by(sentences: list[dict]) -> str:
    """How the kept sentences were checked, in words: "Checked: 2 by its verbatim quote, 1 by shared words"."""
    counts: dict[str, int] = {}
    for sentence in sentences:
        if sentence["supported"]:
            counts[sentence["check"]] = counts.get(sentence["check"], 0) + 1
    said = [f"{n} {CHECK_WORDS.get(check, 'by ' + check)}" for check, n in counts.items()]
    return "Checked: " + ", ".join(said) if said else ""


def highlighted(text: str, evidence: list[dict]) -> str:
    """The passage, escaped, with its supporting spans in bold."""
    out, at = [], 0
    for span in sorted(evidence, key=lambda s: s["start"]):
        if span["start"] >= at:
            out += [safe(text[at:span["start"]]), "**" + safe(text[span["start"]:span["end"]]) + "**"]
            at = span["end"]
    return "".join(out + [safe(text[at:])])


def show_message(store: ChatStore, owner: str, message: Message, last: bool, options: dict) -> None:
    with st.chat_message(message.role):
        if message.role == "user":
            st.markdown(safe(message.content))
        elif message.error is not None:
            st.error(safe(message.error))
            if last and st.button("Retry", icon=":material/refresh:"):
                st.session_state.retry = True
                st.rerun()
        else:
            show_answer(store, owner, message, options)


def show_answer(store: ChatStore, owner: str, message: Message, options: dict) -> None:
    answer = message.answer or {}
    hosts = trusted_hosts(shared_assistant().settings)
    st.markdown(answer_markdown(message.content, [c["text"] for c in answer.get("citations", [])], hosts))
    note = rewrite_note(answer.get("question", ""), answer.get("standalone_question", ""), answer.get("read_as"))
    if note:
        st.caption(safe(note))
    for notice in answer.get("notices", []):
        st.caption(safe(notice))
    if answer:
        show_sources(answer)
        st.caption(f"{answer['answerer']} answer")
    copy, rating = st.columns([1, 4], vertical_alignment="center")
    with copy.popover("Copy", icon=":material/content_copy:"):
        st.code(message.content, language=None, wrap_lines=True)  # its corner button copies the answer
    with rating:
        feedback(store, owner, message, options)


def feedback(store: ChatStore, owner: str, message: Message, options: dict) -> None:
    """Thumbs up or down, and an optional comment, stored with the answer and the settings it ran with.
    The owner is bound to the callbacks now: they run at the start of the next click's run."""
    key = f"rate:{message.id}"
    if key not in st.session_state and message.rating is not None:
        st.session_state[key] = 1 if message.rating > 0 else 0
    args = (store, owner, message.id, key, options)
    rated = st.feedback("thumbs", key=key, on_change=rate, args=args)
    if rated is not None:
        st.text_input("Comment (optional)", message.comment, key=f"comment:{message.id}",
                      placeholder="What was right or wrong?", on_change=rate, args=args, label_visibility="collapsed")


def rate(store: ChatStore, owner: str, message_id: int, key: str, options: dict) -> None:
    """Store the rating; nothing happens if the answer is gone (its chat deleted in another tab)."""
    value = st.session_state.get(key)
    if value is not None:
        comment = st.session_state.get(f"comment:{message_id}", "")
        store.rate(owner, message_id, 1 if value == 1 else -1, comment, options)


def respond(assistant: Assistant, store: ChatStore, owner: str, chat_id: str | None, question: str,
            options: dict, asked: bool = False) -> None:
    """Answer `question` in the owner's chat (made now if none is open); `asked` when it is already stored
    (a retry). A failure is stored too, so the question stays and can be asked again."""
    if chat_id is None:
        chat_id = store.create(owner, NEW_TITLE).id
        st.query_params["chat"] = chat_id
    history = store.history(owner, chat_id)[:-1] if asked else store.history(owner, chat_id)
    if not asked:
        store.add(owner, chat_id, "user", question)
        with st.chat_message("user"):
            st.markdown(safe(question))
    answer_only = {k: v for k, v in options.items() if k != "k"}
    with st.chat_message("assistant"):
        checking = st.empty()
        checking.caption("Checking each sentence against its sources…")
        try:
            stream = assistant.configured(**answer_only).stream(question, history=history, k=options["k"])
            st.write_stream(safe(piece) for piece in stream)  # only sentences that passed the check
            store.add(owner, chat_id, "assistant", stream.answer.text, answer=stream.answer.to_dict())
        except RagError as exc:
            store.add(owner, chat_id, "assistant", "", error=str(exc))
        except Exception:  # stored like any failure, so the question stays and Retry asks it again
            log.exception("answering failed")
            store.add(owner, chat_id, "assistant", "", error=UNEXPECTED)
        finally:
            checking.empty()
    st.rerun()  # redraw from the store: the verified text, its sources, the rating


def open_chat(store: ChatStore, owner: str) -> tuple[Chat | None, list[Message]]:
    """The chat named in the address (so a reload reopens it), and its messages, if it is the owner's.
    Anyone else's is not there: the same line shows for a deleted chat, so nothing tells which it was."""
    chat_id = st.query_params.get("chat")
    chat = store.get(owner, chat_id) if chat_id is not None else None
    if chat_id is not None and chat is None:
        st.info("There is no chat at this address among yours: it may have been deleted. Ask a question to "
                "start a new one.")
    return (chat, store.messages(owner, chat.id)) if chat is not None else (None, [])


def main() -> None:
    try:
        assistant = shared_assistant()
    except RagError as exc:  # a bad setting: say which, and stop
        st.set_page_config(page_title="Q&A", page_icon="📚")
        st.error(str(exc))
        st.stop()
    visitor = signed_in(assistant.settings)
    admin, owner = visitor.role == "admin", visitor.owner
    collection = assistant.library()  # the case studies, or your documents once others join them
    st.set_page_config(page_title=f"Ask {collection}", page_icon="📚")
    st.title(f"Ask {safe(collection)}")
    store = ChatStore.of(assistant.settings)
    try:
        chat, messages = open_chat(store, owner)
    except RagError as exc:
        st.error(safe(str(exc)))
        chat, messages = None, []
    chat_id = chat.id if chat is not None else None
    with st.sidebar:
        account_panel(visitor)
        options = answer_panel(assistant)
        chats_panel(store, owner, chat_id)
        index_panel(assistant, admin)
        documents_panel(assistant, admin)
    for number, message in enumerate(messages):
        show_message(store, owner, message, number == len(messages) - 1, options)
    if st.session_state.pop("retry", False) and chat_id is not None:
        question = store.drop_failure(owner, chat_id)
        if question is not None:
            respond(assistant, store, owner, chat_id, question, options, asked=True)
    if messages and chat is not None:
        exported = chat_markdown(chat, messages, trusted_hosts(assistant.settings))
        st.download_button("Export chat (Markdown)", exported, file_name=f"chat-{chat.id}.md",
                           mime="text/markdown", icon=":material/download:")
    question = st.chat_input(f"Ask about {collection}")
    if not messages and not question:
        st.caption("Try one of these:")
        for example in EXAMPLES:
            if st.button(example):
                question = example
    if question:
        respond(assistant, store, owner, chat_id, question, options)


def guarded() -> None:
    """The last line of defence: st.stop and st.rerun are BaseExceptions and pass through."""
    try:
        main()
    except Exception:
        log.exception("the page failed")
        st.error(UNEXPECTED)


guarded()
