"""The `rag` command: thin commands over the Assistant facade, formatting only.

Exit codes: 0 success, 2 something the user can fix, 1 anything else. Errors are one line on
stderr (a JSON object with --json); RAG_DEBUG=1 shows the traceback of an unexpected failure.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import signal
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

from . import logs
from .assistant import Assistant
from .chats import LOCAL, Chat, ChatStore, chat_markdown, feedback_line
from .config import load_settings, trusted_hosts
from .errors import EmptyQuestion, IndexCorrupt, IndexMismatch, IndexMissing, RagError, UserError
from .index.registry import BACKENDS
from .render import rewrite_note, source_label
from .text import printable
from .tokens import TokenStore
from .types import Answer, IngestReport, SearchResult
from .users import UserStore, check_password, clean_name


def _positive_k(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--k takes a whole number, not {text!r}") from None
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError("--k takes a number from 1 to 100")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag", description="Cited answers from your documents.")
    parser.add_argument("--log-json", action="store_true",
                        help="log events (ingest, search, ask: counts and timings) as JSON lines on stderr")
    parser.add_argument("--log-text", action="store_true",
                        help="with --log-json, include question and answer text in the events")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = commands.add_parser("ingest", help="add or update documents (incremental; only changes are embedded)")
    ingest.add_argument("paths", nargs="*", type=Path,
                        help="files or folders to add or update, keeping every other document (default: "
                             "re-read what the index holds; a new index reads RAG_CORPUS_DIR)")
    ingest.add_argument("--sync", action="store_true",
                        help="make the index hold exactly the given paths (drops every other document)")
    ingest.add_argument("--rebuild", action="store_true", help="start over and re-embed everything")
    ingest.add_argument("--store", choices=list(BACKENDS), default=None,
                        help="vector store to build (default RAG_STORE); switching reuses the stored vectors")
    ingest.add_argument("--json", action="store_true", help="print the report as JSON")

    remove = commands.add_parser("remove", help="remove files or folders (and only their passages) from the index")
    remove.add_argument("paths", nargs="+", type=Path, help="indexed files or folders (see `rag sources`)")
    remove.add_argument("--json", action="store_true", help="print the report as JSON")

    sources = commands.add_parser("sources", help="list the indexed documents")
    sources.add_argument("--json", action="store_true", help="print one JSON object")

    search = commands.add_parser("search", help="find the passages that best match a question")
    search.add_argument("question", nargs="?", help="the question (omit with --batch)")
    search.add_argument("--k", type=_positive_k, default=None, help="how many passages (default RAG_TOP_K)")
    search.add_argument("--json", action="store_true", help="print one JSON object")
    search.add_argument("--batch", metavar="FILE", help="one question per line ('-' for stdin), JSON lines out")

    ask = commands.add_parser("ask", help="a short answer with verified [n] citations")
    ask.add_argument("question", nargs="?", help="the question (omit with --batch)")
    ask.add_argument("--k", type=_positive_k, default=None, help="passages to answer from (default RAG_TOP_K)")
    ask.add_argument("--json", action="store_true", help="print one JSON object")
    ask.add_argument("--batch", metavar="FILE", help="one question per line ('-' for stdin), or JSON lines "
                     '{"question": str, "history": [[role, text], ...]}; JSON lines out')
    ask.add_argument("--answerer", choices=["auto", "extractive", "llm"], help="override RAG_ANSWERER")

    chat = commands.add_parser("chat", help="an interactive chat in the terminal (follow-ups use the history)")
    chat.add_argument("--k", type=_positive_k, default=None, help="passages to answer from (default RAG_TOP_K)")
    chat.add_argument("--answerer", choices=["auto", "extractive", "llm"], help="override RAG_ANSWERER")
    saved = chat.add_mutually_exclusive_group()
    saved.add_argument("--resume", nargs="?", const="last", metavar="ID",
                       help="go on with a saved chat (the latest without ID); chats are kept in RAG_CHATS_PATH")
    saved.add_argument("--list", action="store_true",
                       help="list the local user's saved chats (terminal, and the app with no sign-in), newest first")
    saved.add_argument("--export", metavar="ID", help="print a saved chat as Markdown, with its sources")

    feedback = commands.add_parser("feedback", help="the ratings given to answers in the app")
    feedback_commands = feedback.add_subparsers(dest="feedback_command", required=True)
    export = feedback_commands.add_parser("export", help="rated answers as eval lines (JSON), thumbs-down first")
    export.add_argument("--rating", choices=["down", "up", "all"], default="all", help="which ratings (default all)")

    verify = commands.add_parser("verify", help="check answers written elsewhere against their passages")
    verify.add_argument("--batch", metavar="FILE", required=True,
                        help='JSON lines {"question", "passages": [str, ...], "answer"} (\'-\' for stdin); '
                             'one JSON line out each')
    verify.add_argument("--json", action="store_true", help="JSON out (always, with --batch)")

    evaluate = commands.add_parser("eval", help="retrieval and answer quality on a question set")
    evaluate.add_argument("questions", type=Path, help='JSON lines: {"question", "gold_titles" or "gold_files", '
                          '"answers"}, empty gold = out of scope; or conversations: {"turns": [question, ...]}')
    evaluate.add_argument("--k", type=_positive_k, default=None, help="passages per question (default RAG_TOP_K)")
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    evaluate.add_argument("--corpus", type=Path, help="index this corpus in a temporary folder and evaluate on it")
    evaluate.add_argument("--baseline", action="store_true",
                          help="also run the plain LangChain recipe (1000/200 splitter, same model, FAISS) and "
                               "plain BM25 over the same passages")
    evaluate.add_argument("--retrieval-only", action="store_true", help="skip the answers (retrieval figures only)")
    evaluate.add_argument("--show-misses", type=int, default=10, metavar="N",
                          help="list up to N questions whose results miss a gold source (default 10)")

    migrate = commands.add_parser("migrate", help="copy the index into another vector store without re-embedding")
    migrate.add_argument("--to", choices=list(BACKENDS), required=True,
                         help="target store (Milvus: RAG_MILVUS_URI, RAG_MILVUS_TOKEN, RAG_MILVUS_COLLECTION)")
    migrate.add_argument("--json", action="store_true", help="print the migrated index's info as JSON")

    serve = commands.add_parser("serve", help="an HTTP API (REST and OpenAI-compatible) for a team; needs rag[server]")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1; another needs a token made first)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")

    token = commands.add_parser("token", help="access tokens for `rag serve` (kept as hashes beside the index, or in "
                                   "RAG_DATABASE_URL)")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    create = token_commands.add_parser("create", help="make a token and print it once")
    create.add_argument("--role", choices=["reader", "admin"], required=True,
                        help="reader: search, ask, verify; admin: also ingest and remove")
    create.add_argument("--name", default="", help="who or what it is for (shown by `rag token list`)")
    create.add_argument("--json", action="store_true", help='print {"token": ..., "id": ..., "role": ...}')
    listed = token_commands.add_parser("list", help="the tokens made (never the tokens themselves)")
    listed.add_argument("--json", action="store_true", help="print one JSON object")
    revoke = token_commands.add_parser("revoke", help="stop a token from working")
    revoke.add_argument("id", help="the token's id, as `rag token list` shows it")
    revoke.add_argument("--json", action="store_true", help="print the revoked token's record as JSON")

    _user_parser(commands)
    database = commands.add_parser("db", help="the database of users, tokens and chats (RAG_DATABASE_URL, or the "
                                   "SQLite files)")
    database_commands = database.add_subparsers(dest="db_command", required=True)
    database_commands.add_parser("upgrade", help="bring its schema to this version of rag (every start does too)")

    info = commands.add_parser("info", help="what the index holds and which files changed since")
    info.add_argument("--json", action="store_true", help="print as JSON")
    return parser


def _user_parser(commands) -> None:
    user = commands.add_parser("user", help="people who sign in to the app by name and password (hashes kept "
                               "beside the index, or in RAG_DATABASE_URL)")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    stdin_note = "; the password is asked twice, or read as one line from stdin when it is not a terminal"
    add = user_commands.add_parser("add", help="add a person" + stdin_note)
    add.add_argument("name", help="their name, 1 to 64 characters (case does not matter when signing in)")
    add.add_argument("--role", choices=["reader", "admin"], required=True,
                     help="reader: chat and read sources; admin: also re-ingest, upload and remove documents")
    listed = user_commands.add_parser("list", help="the people added (never their passwords)")
    listed.add_argument("--json", action="store_true", help="print one JSON object")
    remove = user_commands.add_parser("remove", help="stop a person signing in (their chats stay in the chat file)")
    remove.add_argument("name")
    passwd = user_commands.add_parser("passwd", help="set a new password" + stdin_note)
    passwd.add_argument("name")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    as_json = getattr(args, "json", False) or bool(getattr(args, "batch", None))
    logs.setup(args.log_json, args.log_text)
    try:
        with _sigterm_as_interrupt(args.command != "serve"):  # the server stops gracefully on its own
            assistant = Assistant(load_settings())
            return COMMANDS[args.command](assistant, args)
    except RagError as exc:
        return _fail(str(exc), exc.exit_code, as_json)
    except Terminated:
        return _fail("interrupted (SIGTERM)", 128 + signal.SIGTERM, as_json)
    except KeyboardInterrupt:
        return _fail("interrupted", 130, as_json)
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the last line of defence: one line, no traceback
        if os.environ.get("RAG_DEBUG"):
            raise
        return _fail(f"unexpected failure ({type(exc).__name__}: {exc}); rerun with RAG_DEBUG=1 "
                     "for the details and report it", 1, as_json)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so it unwinds like Ctrl-C and every clean-up runs."""


def _terminated(signum: int, frame: object) -> None:
    raise Terminated


@contextlib.contextmanager
def _sigterm_as_interrupt(enabled: bool) -> Iterator[None]:
    """SIGTERM's default ends the process at once, leaving an ingest's temp files behind."""
    if not enabled:
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _fail(message: str, code: int, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"error": message, "exit_code": code}), file=sys.stderr)
    else:
        print(f"rag: error: {printable(message)}", file=sys.stderr)
    return code


def _print_json(data: dict) -> None:
    print(json.dumps(data, ensure_ascii=False), flush=True)


# ---------------------------------------------------------------- commands


def cmd_ingest(assistant: Assistant, args: argparse.Namespace) -> int:
    progress = sys.stderr.isatty() and not args.json
    if args.store:
        assistant = assistant.configured(store=args.store)
    if args.sync and not args.paths:
        raise UserError("--sync needs the paths the index should hold, e.g. rag ingest --sync corpus/")
    report = assistant.ingest(args.paths, rebuild=args.rebuild, progress=progress, on_wait=_waiting, sync=args.sync)
    return _print_report(report, args.json)


def _waiting() -> None:
    print("rag: another ingest is running; waiting for its lock...", file=sys.stderr)


def cmd_remove(assistant: Assistant, args: argparse.Namespace) -> int:
    return _print_report(assistant.remove(args.paths, on_wait=_waiting), args.json)


def _print_report(report: IngestReport, as_json: bool) -> int:
    if as_json:
        _print_json(report.to_dict())
        return 0
    # Names and reasons come from the corpus: printable() so none can forge a line or drive the terminal.
    for name in report.indexed:
        print(f"  read     {printable(name)}")
    for name in report.removed_files:
        print(f"  removed  {printable(name)}")
    for skipped in report.skipped:
        print(f"rag: warning: skipped {printable(skipped.path)}: {printable(skipped.reason)}", file=sys.stderr)
    for warning in report.warnings:
        print(f"rag: warning: {printable(warning.path)}: {printable(warning.message)}", file=sys.stderr)
    print(_describe_ingest(report))
    return 0


def _describe_ingest(report: IngestReport) -> str:
    if not report.wrote_index:
        return (f"index is up to date: {_count(report.files, 'document')}, {report.posts} posts, "
                f"{report.unique_passages} passages; nothing to embed ({report.seconds:.2f}s)")
    changes = ""
    if report.changed_files or report.removed_files:
        changes = f"; {len(report.changed_files)} files new or changed, {len(report.removed_files)} removed"
    return (f"index holds {report.posts} posts from {_count(report.files, 'document')}: {report.passages} passages, "
            f"{report.unique_passages} unique; embedded {report.embedded}, reused {report.reused}"
            f"{changes} ({report.seconds:.2f}s)")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def cmd_sources(assistant: Assistant, args: argparse.Namespace) -> int:
    documents = assistant.sources()
    if args.json:
        _print_json({"sources": [d.to_dict() for d in documents]})
        return 0
    if not documents:
        print("no documents indexed")
    for d in documents:
        size = _count(d.pages, "page") if d.pages is not None else _count(d.posts, "post")
        print(f"{printable(d.path)}  \"{printable(d.title)}\"  ({d.kind}, {size}, "
              f"{_count(d.passages, 'passage')}, added {d.added})")
    return 0


def cmd_search(assistant: Assistant, args: argparse.Namespace) -> int:
    if args.batch:
        return _batch(args, lambda line: assistant.search(line, k=args.k))
    result = assistant.search(_question(args, "search"), k=args.k)
    _print_notices(result.notices)
    if args.json:
        _print_json(result.to_dict())
    else:
        print(_describe_search(result))
    return 0


def _question(args: argparse.Namespace, command: str) -> str:
    if args.question is None:
        raise UserError(f"give a question, e.g. rag {command} \"how did they cut costs?\", or use --batch FILE")
    return args.question


def _print_notices(notices) -> None:
    for notice in notices:
        print(f"rag: note: {printable(notice)}", file=sys.stderr)


def _read_lines(source: str) -> Iterator[str]:
    if source == "-":
        yield from (line.rstrip("\r\n") for line in sys.stdin)
        return
    try:
        with open(source, encoding="utf-8") as handle:
            yield from (line.rstrip("\r\n") for line in handle)
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the batch file {source}: {exc}") from exc


def _batch(args: argparse.Namespace, run, errors: tuple[type[Exception], ...] = (EmptyQuestion,),
           label: str = "question") -> int:
    """One JSON line out per line in; a bad line gets an error object (naming it) and the rest go on."""
    failures = 0
    for line in _read_lines(args.batch):
        try:
            _print_json(run(line).to_dict())
        except errors as exc:
            failures += 1
            _print_json({label: line, "error": str(exc)})
    return 2 if failures else 0


def _ask_request(line: str) -> tuple[str, list]:
    """A batch line: the question as plain text, or {"question": str, "history": [[role, text], ...]}."""
    if not line.lstrip().startswith("{"):
        return line, []
    try:
        request = json.loads(line)
        question, history = request["question"], request.get("history", [])
    except (ValueError, KeyError, TypeError):
        raise UserError('a JSON line must be {"question": str, "history": [[role, text], ...]}') from None
    if not isinstance(question, str) or not isinstance(history, list) or not all(
            isinstance(t, list) and len(t) == 2 and t[0] in ("user", "assistant") and isinstance(t[1], str)
            for t in history):
        raise UserError('"question" must be a string and "history" a list of ["user" or "assistant", text] pairs')
    return question, history


def _describe_search(result: SearchResult) -> str:
    if not result.hits:
        return "no passages found"
    blocks = []
    for rank, hit in enumerate(result.hits, 1):
        where = _where(hit.passage)
        body = textwrap.fill(printable(hit.passage.text), width=100, initial_indent="    ", subsequent_indent="    ")
        blocks.append(f"{rank}. [{hit.score:.3f}] {where}\n{body}")
    return "\n\n".join(blocks)


def cmd_ask(assistant: Assistant, args: argparse.Namespace) -> int:
    if args.batch:
        def ask_line(line: str) -> Answer:
            question, history = _ask_request(line)
            return assistant.ask(question, history=history, k=args.k, answerer=args.answerer)

        return _batch(args, ask_line, (UserError,))
    answer = assistant.ask(_question(args, "ask"), k=args.k, answerer=args.answerer)
    _print_notices(answer.notices)
    if args.json:
        _print_json(answer.to_dict())
    else:
        text = printable(answer.text, newlines=True)
        print(text if answer.needs_clarification else
              text + "\n\n" + _describe_sources(answer) + f"\n({answer.answerer} answer)")
    return 0


def _describe_sources(answer: Answer) -> str:
    if answer.abstained:
        if not answer.near_misses:
            return "Nothing in the index came close."
        lines = ["Closest passages (near misses, not sources):"]
        lines += [f"  - {_where(h.passage)}: {_clip(printable(h.passage.text))}" for h in answer.near_misses]
        return "\n".join(lines)
    lines = ["Sources:"]
    for citation in answer.citations:
        lines.append(f"  [{citation.marker}] {_where(citation.hit.passage)}")
        lines.append(textwrap.fill(printable(citation.hit.passage.text), width=100, initial_indent="      ",
                                   subsequent_indent="      "))
        lines += [f"      supported by: \"{printable(citation.hit.passage.text[start:end])}\""
                  for start, end in citation.evidence]
    if answer.removed:
        lines.append("Removed (the sources do not support them):")
        lines += [f"  - {printable(claim.text)} ({printable(claim.reason)})" for claim in answer.removed]
    return "\n".join(lines)


def _where(passage) -> str:
    return printable("; ".join(source_label(s.to_dict()) for s in passage.sources))


def _clip(text: str, width: int = 120) -> str:
    return text if len(text) <= width else text[: width - 1].rsplit(" ", 1)[0] + "…"


def cmd_chat(assistant: Assistant, args: argparse.Namespace) -> int:
    """Read questions until EOF or /quit; /new starts another chat. Every turn is saved (RAG_CHATS_PATH), as
    the local user's: the same chats as the app's on loopback with no sign-in, never a signed-in person's."""
    store = ChatStore.of(assistant.settings)
    if args.list or args.export:
        return _saved_chats(store, args.export, trusted_hosts(assistant.settings))
    chat = _resumed(store, args.resume) if args.resume else None
    print(f"Ask about {assistant.library()}. /new starts over, /quit (or Ctrl-D) leaves.", file=sys.stderr)
    while True:
        try:
            question = input("you> ").strip()
        except EOFError:
            return 0
        if question in ("/quit", "/exit"):
            return 0
        if question == "/new":
            chat = None
            print("(new conversation)")
            continue
        if not question:
            continue
        chat = chat or store.create(LOCAL)
        history = store.history(LOCAL, chat.id)
        store.add(LOCAL, chat.id, "user", question)
        try:
            answer = _chat_turn(assistant, question, history, args)
        except UserError as exc:
            store.add(LOCAL, chat.id, "assistant", "", error=str(exc))
            if isinstance(exc, (IndexMissing, IndexCorrupt, IndexMismatch)):
                raise
            print(f"rag: error: {printable(str(exc))}", file=sys.stderr)
            continue
        store.add(LOCAL, chat.id, "assistant", answer.text, answer=answer.to_dict())


def _resumed(store: ChatStore, wanted: str) -> Chat:
    chats = store.chats(LOCAL)
    chat = chats[0] if wanted == "last" and chats else store.get(LOCAL, wanted)
    if chat is None:
        raise UserError("no saved chat to resume" if wanted == "last" else
                        f"no saved chat {wanted}: rag chat --list shows their ids")
    turns = store.messages(LOCAL, chat.id)
    print(f'(resuming "{printable(chat.title)}": {sum(m.role == "user" for m in turns)} questions so far)')
    for message in turns[-4:]:
        said = printable(message.error or message.content, newlines=True)
        print(f"{'you' if message.role == 'user' else 'rag'}> {said}")
    return chat


def _saved_chats(store: ChatStore, export: str | None, hosts: tuple[str, ...]) -> int:
    if export:
        chat = store.get(LOCAL, export)
        if chat is None:
            raise UserError(f"no saved chat {export}: rag chat --list shows their ids")
        print(printable(chat_markdown(chat, store.messages(LOCAL, chat.id), hosts), newlines=True), end="")
        return 0
    for chat in store.chats(LOCAL):
        print(f"{chat.id}  {chat.updated}  {printable(chat.title)}")
    return 0


def cmd_feedback(assistant: Assistant, args: argparse.Namespace) -> int:
    """Rated answers as lines `rag eval` reads: a thumbs-down is a candidate regression question."""
    rows = ChatStore.of(assistant.settings).feedback()
    wanted = {"down": (-1,), "up": (1,), "all": (-1, 1)}[args.rating]
    for row in sorted((r for r in rows if r["rating"] in wanted), key=lambda r: r["rating"]):
        _print_json(feedback_line(row))
    return 0


def _chat_turn(assistant: Assistant, question: str, history: list, args: argparse.Namespace) -> Answer:
    print("rag> ", end="", flush=True)
    stream = assistant.stream(question, history=history, k=args.k, answerer=args.answerer)
    shown = False
    for piece in stream:  # each sentence once it has passed the check
        shown = True
        print(printable(piece, newlines=True), end="", flush=True)
    answer = stream.answer
    if not shown:  # an abstention: nothing of the draft passed
        print(printable(answer.text, newlines=True), end="")
    note = rewrite_note(answer.question, answer.standalone_question, answer.read_as)
    if note:
        print(f"\n({printable(note)})", end="")
    print("\n" + ("" if answer.needs_clarification else _describe_sources(answer) + "\n"))
    _print_notices(answer.notices)
    return answer


def cmd_verify(assistant: Assistant, args: argparse.Namespace) -> int:
    return _batch(args, lambda line: assistant.verify(*_verify_request(line)), (UserError,), label="input")


def _verify_request(line: str) -> tuple[str, list[str], str]:
    try:
        request = json.loads(line)
        answer, passages, question = request["answer"], request["passages"], request.get("question", "")
    except (ValueError, KeyError, TypeError):
        raise UserError('each line must be a JSON object {"question", "passages": [str, ...], "answer": str}'
                        ) from None
    if not isinstance(answer, str) or not isinstance(passages, list) or not all(isinstance(p, str) for p in passages):
        raise UserError('"answer" must be a string and "passages" a list of strings')
    return answer, passages, question if isinstance(question, str) else ""


def cmd_eval(assistant: Assistant, args: argparse.Namespace) -> int:
    if args.corpus:
        with tempfile.TemporaryDirectory(prefix="rag-eval-") as folder:
            scratch = assistant.configured(index_dir=Path(folder) / "vectorstore")
            scratch.ingest([args.corpus])
            report = scratch.evaluate(args.questions, k=args.k, baseline=args.baseline,
                                      retrieval_only=args.retrieval_only)
    else:
        report = assistant.evaluate(args.questions, k=args.k, baseline=args.baseline,
                                    retrieval_only=args.retrieval_only)
    if args.json:
        _print_json(report)
    else:
        print(_describe_eval(report, args.show_misses))
    return 0


def _describe_eval(report: dict, show_misses: int) -> str:
    if "conversations" in report:
        return _describe_conversations(report, show_misses)
    columns = [c for c in ("rag", "langchain", "bm25") if c in report]
    lines = [f"{'metric (k=' + str(report['k']) + ')':<24}" + "".join(f"{c:>12}" for c in columns)]
    for metric in report["rag"]:
        cells = [report[c].get(metric) for c in columns]
        lines.append(f"{metric:<24}" + "".join(f"{'-' if v is None else v:>12}" for v in cells))
    misses = report["misses"]
    for miss in misses[:show_misses]:
        lines.append(printable(f"miss: {miss['question']}  gold {miss['gold']}  got {miss['got']}"))
    if len(misses) > show_misses:
        lines.append(f"... and {len(misses) - show_misses} more misses (--show-misses N, or --json for all)")
    return "\n".join(lines)


def _describe_conversations(report: dict, show_misses: int) -> str:
    lines = [f"{'metric (k=' + str(report['k']) + ')':<28}{'rag':>8}"]
    lines += [f"{metric:<28}{'-' if value is None else value:>8}" for metric, value in report["conversations"].items()]
    wrong = report["wrong_turns"]
    for turn in wrong[:show_misses]:
        lines.append(f"wrong ({turn['kind']}): {turn['question']!r} after {turn['history']} -> searched for "
                     f"{turn['searched_for']!r}, answered {turn['answer'][:100]!r}")
    if len(wrong) > show_misses:
        lines.append(f"... and {len(wrong) - show_misses} more wrong turns (--show-misses N, or --json for all)")
    return "\n".join(lines)


def cmd_migrate(assistant: Assistant, args: argparse.Namespace) -> int:
    info = assistant.migrate(
        args.to, on_wait=lambda: print("rag: an ingest is running; waiting for its lock...", file=sys.stderr))
    if args.json:
        _print_json(info.to_dict())
    else:
        print(f"copied {info.unique_passages} passages into {info.store} ({printable(info.location)}); "
              f"nothing re-embedded. Set RAG_STORE={args.to} to use it.")
    return 0


def cmd_info(assistant: Assistant, args: argparse.Namespace) -> int:
    from .answer.llm import describe_state, endpoint_state

    info, llm = assistant.info(), endpoint_state(assistant.settings)
    if args.json:
        _print_json({**info.to_dict(), "llm": llm})
        return 0
    changed = printable(", ".join(info.changed_files)) if info.changed_files else "none"
    where, model = printable(info.index_dir), printable(info.model)
    print(textwrap.dedent(f"""\
        index:      {where} ({info.index_type}, {info.index_bytes / 1e6:.2f} MB, built {info.built_at})
        store:      {info.store}: {printable(info.location)}
        model:      {model} ({info.dimension} dimensions)
        posts:      {info.posts} from {info.files} documents
        passages:   {info.passages} ({info.unique_passages} unique)
        changed since: {changed}
        llm:        {llm['endpoint']} ({llm['model']}): {describe_state(llm)}"""))
    for name, pages in sorted(info.pdf_pages.items()):
        print(f"pdf:        {printable(name)} ({pages} pages)")
    return 0


def cmd_serve(assistant: Assistant, args: argparse.Namespace) -> int:
    from .server import serve

    if not 0 < args.port < 65536:
        raise UserError("--port takes a number from 1 to 65535")
    logs.setup(True, args.log_text)  # one JSON line per request on stderr
    return serve(assistant, args.host, args.port)


def cmd_token(assistant: Assistant, args: argparse.Namespace) -> int:
    store = TokenStore.of(assistant.settings)
    if args.token_command == "create":
        token, record = store.create(args.role, args.name)
        if args.json:
            _print_json({"token": token, **record.to_dict()})
        else:
            print(token)
            print(f"rag: {record.role} token {record.id} made; this is the only time it is shown",
                  file=sys.stderr)
        return 0
    if args.token_command == "revoke":
        record = store.revoke(args.id)
        if args.json:
            _print_json(record.to_dict())
        else:
            print(printable(f"revoked {record.id} ({record.role}{', ' + record.name if record.name else ''})"))
        return 0
    records = store.tokens()
    if args.json:
        _print_json({"tokens": [r.to_dict() for r in records]})
    for r in [] if args.json else records:
        state = f"revoked {r.revoked}" if r.revoked else "active"
        print(f"{r.id}  {r.role:<6}  {state:<32}  made {r.created}  {printable(r.name)}")
    if not records and not args.json:
        print("no tokens yet: `rag token create --role reader` makes one")
    return 0



def cmd_user(assistant: Assistant, args: argparse.Namespace) -> int:
    store = UserStore.of(assistant.settings)
    if args.user_command == "list":
        return _list_users(store, args.json)
    name = clean_name(args.name)
    if args.user_command == "remove":
        record = store.remove(name)
        print(printable(f"removed {record.name} ({record.role}); their chats stay in the chat file"))
        return 0
    # The name is checked before the password is asked for: nobody types one twice to learn of a typo.
    if args.user_command == "add":
        _add_user(store, name, args.role)
    else:
        _set_password(store, name)
    return 0


def _add_user(store: UserStore, name: str, role: str) -> None:
    known = store.get(name)
    if known:
        raise UserError(f"a user named {known.name!r} already exists: `rag user passwd` sets a new password")
    record = store.add(name, role, _new_password(name))
    print(printable(f"added {record.name} ({record.role})"))


def _set_password(store: UserStore, name: str) -> None:
    if store.get(name) is None:
        raise UserError(f"no user named {name!r}: `rag user list` shows who there is")
    record = store.set_password(name, _new_password(name))
    print(printable(f"new password set for {record.name}; their open sessions in the app are signed out"))


def _list_users(store: UserStore, as_json: bool) -> int:
    records = store.users()
    if as_json:
        _print_json({"users": [r.to_dict() for r in records]})
        return 0
    for r in records:
        print(f"{printable(r.name)}  {r.role:<6}  added {r.created}  password set {r.changed}")
    if not records:
        print("no users yet: `rag user add NAME --role reader` adds one")
    return 0


def _new_password(name: str) -> str:
    """The password, typed twice without echo at a terminal; or one line of stdin, for scripts. It is
    never printed, logged or put in an error message."""
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line.strip("\r\n"):
            raise UserError("no password on stdin: pipe one line, e.g. `printf '%s\\n' \"$PW\" | rag user add "
                            "NAME --role reader`, or run it at a terminal to be asked")
        return check_password(line.rstrip("\r\n"))
    first = check_password(getpass.getpass(f"Password for {printable(name)}: "))
    if getpass.getpass("The same password again: ") != first:
        raise UserError("the two passwords differ: nothing was changed; run the command again")
    return first


def cmd_db(assistant: Assistant, args: argparse.Namespace) -> int:
    """Migrate by hand (`rag db upgrade`): PostgreSQL's one database, or each SQLite file that exists."""
    settings = assistant.settings
    found = {store.db.where: store.db for store in (TokenStore.of(settings), UserStore.of(settings),
                                                    ChatStore.of(settings))}
    for where, database in found.items():
        if not database.exists():
            print(printable(f"{where}: not made yet (its first use makes it at the current version)"))
            continue
        before, now = database.upgrade()
        said = f" (was {before})" if before != now else ", already current"
        print(printable(f"{where}: schema version {now}{said}"))
    return 0


COMMANDS = {"ingest": cmd_ingest, "remove": cmd_remove, "sources": cmd_sources, "search": cmd_search, "ask": cmd_ask,
            "chat": cmd_chat, "feedback": cmd_feedback, "verify": cmd_verify, "eval": cmd_eval, "migrate": cmd_migrate,
            "info": cmd_info, "serve": cmd_serve, "token": cmd_token, "user": cmd_user, "db": cmd_db}
