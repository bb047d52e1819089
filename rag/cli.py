"""The `rag` command: thin commands over the Assistant facade, formatting only.

Exit codes: 0 success, 2 something the user can fix, 1 anything else. Errors are one line on
stderr (a JSON object with --json); RAG_DEBUG=1 shows the traceback of an unexpected failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

from .assistant import Assistant
from .config import load_settings
from .errors import EmptyQuestion, RagError, UserError
from .types import IngestReport, SearchResult


def _positive_k(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--k takes a whole number, not {text!r}") from None
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError("--k takes a number from 1 to 100")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag", description="Cited answers from engineering case studies.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = commands.add_parser("ingest", help="index the corpus (incremental; only changes are embedded)")
    ingest.add_argument("paths", nargs="*", type=Path,
                        help="files or folders to index (default: what the index was built from, "
                             "else RAG_CORPUS_DIR); the index mirrors exactly these")
    ingest.add_argument("--rebuild", action="store_true", help="start over and re-embed everything")
    ingest.add_argument("--json", action="store_true", help="print the report as JSON")

    search = commands.add_parser("search", help="find the passages that best match a question")
    search.add_argument("question", nargs="?", help="the question (omit with --batch)")
    search.add_argument("--k", type=_positive_k, default=None, help="how many passages (default RAG_TOP_K)")
    search.add_argument("--json", action="store_true", help="print one JSON object")
    search.add_argument("--batch", metavar="FILE", help="one question per line ('-' for stdin), JSON lines out")

    info = commands.add_parser("info", help="what the index holds and which files changed since")
    info.add_argument("--json", action="store_true", help="print as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    as_json = getattr(args, "json", False) or bool(getattr(args, "batch", None))
    try:
        assistant = Assistant(load_settings())
        return COMMANDS[args.command](assistant, args)
    except RagError as exc:
        return _fail(str(exc), exc.exit_code, as_json)
    except KeyboardInterrupt:
        return _fail("interrupted", 130, as_json)
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the last line of defence: one line, no traceback
        if os.environ.get("RAG_DEBUG"):
            raise
        return _fail(f"unexpected failure ({type(exc).__name__}: {exc}); rerun with RAG_DEBUG=1 "
                     "for the details and report it", 1, as_json)


def _fail(message: str, code: int, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"error": message, "exit_code": code}), file=sys.stderr)
    else:
        print(f"rag: error: {message}", file=sys.stderr)
    return code


def _print_json(data: dict) -> None:
    print(json.dumps(data, ensure_ascii=False), flush=True)


# ---------------------------------------------------------------- commands


def cmd_ingest(assistant: Assistant, args: argparse.Namespace) -> int:
    progress = sys.stderr.isatty() and not args.json
    report = assistant.ingest(
        args.paths, rebuild=args.rebuild, progress=progress,
        on_wait=lambda: print("rag: another ingest is running; waiting for its lock...", file=sys.stderr),
    )
    for skipped in report.skipped:
        print(f"rag: warning: skipped {skipped.path}: {skipped.reason}", file=sys.stderr)
    if args.json:
        _print_json(report.to_dict())
    else:
        print(_describe_ingest(report))
    return 0


def _describe_ingest(report: IngestReport) -> str:
    if not report.wrote_index:
        return (f"index is up to date: {report.posts} posts, {report.unique_passages} passages; "
                f"nothing to embed ({report.seconds:.2f}s)")
    changes = ""
    if report.changed_files or report.removed_files:
        changes = f"; {len(report.changed_files)} files new or changed, {len(report.removed_files)} removed"
    return (f"indexed {report.posts} posts from {report.files} files: {report.passages} passages, "
            f"{report.unique_passages} unique; embedded {report.embedded}, reused {report.reused}"
            f"{changes} ({report.seconds:.2f}s)")


def cmd_search(assistant: Assistant, args: argparse.Namespace) -> int:
    if args.batch:
        return _search_batch(assistant, args)
    if args.question is None:
        raise UserError("give a question, e.g. rag search \"how did they cut costs?\", or use --batch FILE")
    result = assistant.search(args.question, k=args.k)
    for notice in result.notices:
        print(f"rag: note: {notice}", file=sys.stderr)
    if args.json:
        _print_json(result.to_dict())
    else:
        print(_describe_search(result))
    return 0


def _read_lines(source: str) -> Iterator[str]:
    if source == "-":
        yield from (line.rstrip("\r\n") for line in sys.stdin)
        return
    try:
        with open(source, encoding="utf-8") as handle:
            yield from (line.rstrip("\r\n") for line in handle)
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the batch file {source}: {exc}") from exc


def _search_batch(assistant: Assistant, args: argparse.Namespace) -> int:
    """One JSON line out per line in; a bad line gets an error object and the rest go on."""
    failures = 0
    for line in _read_lines(args.batch):
        try:
            _print_json(assistant.search(line, k=args.k).to_dict())
        except EmptyQuestion as exc:
            failures += 1
            _print_json({"question": line, "error": str(exc)})
    return 2 if failures else 0


def _describe_search(result: SearchResult) -> str:
    if not result.hits:
        return "no passages found"
    blocks = []
    for rank, hit in enumerate(result.hits, 1):
        where = "; ".join(f"{s.title}" + (f" › {s.section}" if s.section else "") for s in hit.passage.sources)
        body = textwrap.fill(hit.passage.text, width=100, initial_indent="    ", subsequent_indent="    ")
        blocks.append(f"{rank}. [{hit.score:.3f}] {where}\n{body}")
    return "\n\n".join(blocks)


def cmd_info(assistant: Assistant, args: argparse.Namespace) -> int:
    info = assistant.info()
    if args.json:
        _print_json(info.to_dict())
        return 0
    changed = ", ".join(info.changed_files) if info.changed_files else "none"
    print(textwrap.dedent(f"""\
        index:      {info.index_dir} ({info.index_bytes / 1e6:.2f} MB, built {info.built_at})
        model:      {info.model} ({info.dimension} dimensions)
        posts:      {info.posts} from {info.files} files
        passages:   {info.passages} ({info.unique_passages} unique)
        changed since: {changed}"""))
    return 0


COMMANDS = {"ingest": cmd_ingest, "search": cmd_search, "info": cmd_info}
