"""Corpus loaders: the case-study listing format, Markdown, plain text, HTML, PDF and Word .docx.

A bad file (empty, binary, not UTF-8, too large, encrypted, unparsable, a link out of its folder) is
skipped with a reason; it never stops the others.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .formats import Unreadable
from .types import FileWarning, Paragraph, Post, Skipped, title_from_name

TEXT_SUFFIXES = {".txt", ".text"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
PDF_SUFFIXES = {".pdf"}
DOCX_SUFFIXES = {".docx"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | MARKDOWN_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES | DOCX_SUFFIXES

_END_PUNCTUATION = tuple(".,;:!?…\"'”’)]}")
_MAX_HEADING_WORDS = 10
_MAX_HEADING_CHARS = 80
_BULLET = "•"


@dataclass(frozen=True)
class FileKind:
    """What a read file is: its format and, for a paged document, how many pages it has."""

    kind: str
    pages: int | None = None


@dataclass
class LoadResult:
    posts: list[Post] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[FileWarning] = field(default_factory=list)
    # Fingerprint of every file considered, read or skipped: what "changed since" compares.
    fingerprints: dict[str, str] = field(default_factory=dict)
    read: dict[str, FileKind] = field(default_factory=dict)  # the files that gave posts
    # file_stat() of each file whose fingerprint was taken, once its last write is a few seconds old.
    stats: dict[str, list[int]] = field(default_factory=dict)
    late: list[str] = field(default_factory=list)  # not read: the reading time ran out first


_SETTLE_NS = 2_000_000_000


def display_path(path: Path, base: Path) -> str:
    """A stable name for a file: relative to base (the project folder) when inside it.

    Names do not depend on the working folder, so the index reads the same from anywhere.
    """
    absolute = Path(os.path.abspath(path))  # not resolve(): a link keeps its own name
    try:
        return absolute.relative_to(os.path.abspath(base)).as_posix()
    except ValueError:
        return absolute.as_posix()


def under(name: str, prefix: str) -> bool:
    """Whether the file or folder `name` is `prefix` or inside it ("." holds every relative name)."""
    if prefix == ".":
        return not name.startswith("/")
    return name == prefix or name.startswith(prefix.rstrip("/") + "/")


def under_any(name: str, prefixes: Iterable[str]) -> bool:
    return any(under(name, prefix) for prefix in prefixes)


def walk_exclusions(root: str, excluded: Iterable[str]) -> list[str]:
    """The exclusions that apply while walking `root`: those strictly inside it (a root added by name
    is read even when a folder around it was removed)."""
    return [e for e in excluded if under(e, root) and e != root]


def normalize_space(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def is_heading(line: str) -> bool:
    """A short line with no end punctuation: the listing format's section heading."""
    line = line.strip()
    return (
        0 < len(line) <= _MAX_HEADING_CHARS
        and len(line.split()) <= _MAX_HEADING_WORDS
        and not line.endswith(_END_PUNCTUATION)
        and not line.startswith(_BULLET)
    )


# ---------------------------------------------------------------- walking


def iter_files(paths: Iterable[Path], base: Path, skipped: list[Skipped],
               excluded: Sequence[str] = ()) -> Iterator[tuple[Path, str]]:
    """Yield (file, display name) for every supported file under the given files or folders, leaving
    out the excluded names inside them. A file reached twice (a folder and a file in it) comes once."""
    seen: set[str] = set()
    for path, name in _iter_files(paths, base, skipped, excluded):
        if name not in seen:
            seen.add(name)
            yield path, name


def _iter_files(paths: Iterable[Path], base: Path, skipped: list[Skipped],
                excluded: Sequence[str]) -> Iterator[tuple[Path, str]]:
    for root in paths:
        if root.is_file():
            if root.suffix.lower() in SUPPORTED_SUFFIXES:
                yield root, display_path(root, base)
            else:
                skipped.append(Skipped(display_path(root, base), _unsupported(root)))
        elif root.is_dir():
            inside = walk_exclusions(display_path(root, base), excluded)
            yield from _walk_folder(root, base, skipped, inside)


def _unsupported(path: Path) -> str:
    kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
    return f"unsupported file type {path.suffix or '(none)'} (rag reads {kinds})"


def _walk_folder(root: Path, base: Path, skipped: list[Skipped], excluded: list[str]) -> Iterator[tuple[Path, str]]:
    real_root = root.resolve()

    def wanted(folder: Path) -> bool:
        return not folder.name.startswith(".") and not folder.is_symlink() and \
            not under_any(display_path(folder, base), excluded)

    for folder, files in _folders(root, wanted, lambda folder, why: skipped.append(
            Skipped(display_path(folder, base), why))):
        for name in files:
            path = folder / name
            if name.startswith(".") or under_any(display_path(path, base), excluded):
                continue
            reason = _refusal(path, real_root)
            if reason:
                skipped.append(Skipped(display_path(path, base), reason))
                continue
            yield path, display_path(path, base)


def _folders(root: Path, wanted: Callable[[Path], bool],
             unreadable: Callable[[Path, str], None]) -> Iterator[tuple[Path, list[str]]]:
    """(folder, its file names) for root and the wanted folders under it, in name order (as os.walk).

    An explicit stack, not recursion: os.walk recurses before Python 3.12, so ~1000 nested folders
    would abort the whole ingest with RecursionError."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as exc:
            unreadable(folder, f"folder unreadable ({exc.strerror or exc})")
            continue
        folders = [Path(e.path) for e in entries if _is_dir(e)]
        yield folder, [e.name for e in entries if not _is_dir(e)]
        stack.extend(reversed([f for f in folders if wanted(f)]))


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _refusal(path: Path, real_root: Path) -> str:
    """Why a file found in a folder is not read ("" when it is)."""
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        return _unsupported(path)
    if not path.is_symlink():
        return ""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):  # a loop raises RuntimeError before Python 3.13
        return "broken link (it points to itself, loops, or points to nothing)"
    return "" if target.is_relative_to(real_root) else "link to a file outside the corpus folder"


# ---------------------------------------------------------------- reading


def load_paths(paths: Iterable[Path], max_bytes: int, base: Path, parse: bool | Callable[[str, str], bool] = True,
               excluded: Sequence[str] = (), known: dict[str, tuple[str, list[int]]] | None = None,
               deadline: float | None = None) -> LoadResult:
    """Fingerprint every supported file under paths (less the excluded names) and parse those for which
    parse(name, fingerprint) is true (all, or none). A file whose size and modification time are those
    `known` recorded with its fingerprint is not read again unless it is to be parsed. Past `deadline`
    (time.monotonic()) no file is read, and a parse under way is stopped: those files are `late`."""
    result = LoadResult()
    settled = time.time_ns() - _SETTLE_NS

    def wanted(name: str, fingerprint: str) -> bool:
        return parse is True or (callable(parse) and parse(name, fingerprint))

    for path, name in iter_files(paths, base, result.skipped, excluded):
        fingerprint = _unchanged(path, name, known or {})
        if fingerprint is not None and not wanted(name, fingerprint):
            result.fingerprints[name], result.stats[name] = fingerprint, (known or {})[name][1]
            continue
        if deadline is not None and time.monotonic() >= deadline:
            _late(result, name)
            continue
        data, fingerprint, reason, stat = read_bytes(path, max_bytes)
        result.fingerprints[name] = fingerprint
        if stat is not None and max(stat.st_mtime_ns, stat.st_ctime_ns) < settled:  # just written: may change unseen
            result.stats[name] = file_stat(stat)
        if data is None:
            result.skipped.append(Skipped(name, reason))
        elif wanted(name, fingerprint):
            _parse_into(result, data, path, name, deadline)
    return result


def _unchanged(path: Path, name: str, known: dict[str, tuple[str, list[int]]]) -> str | None:
    """The known fingerprint of a file whose size and modification time are still the recorded ones."""
    if name not in known:
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    fingerprint, recorded = known[name]
    return fingerprint if file_stat(stat) == list(recorded) else None


def file_stat(stat: os.stat_result) -> list[int]:
    """What says a file was not written since (the ctime changes with any write, and cannot be set back)."""
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]


def _parse_into(result: LoadResult, data: bytes, path: Path, name: str, deadline: float | None) -> None:
    try:
        with _time_limit(deadline):
            posts, kind, notes = parse_file(data, path, name)
    except OutOfTime:
        _late(result, name)
        return
    except Unreadable as exc:
        result.skipped.append(Skipped(name, str(exc)))
        return
    except Exception as exc:  # noqa: BLE001 - a parser bug on one file must not stop the rest
        result.skipped.append(Skipped(name, f"could not be parsed ({type(exc).__name__}: {exc})"))
        return
    result.warnings += [FileWarning(name, note) for note in notes]
    if not posts:
        result.skipped.append(Skipped(name, "no paragraphs of text found"))
        return
    result.posts.extend(posts)
    result.read[name] = kind


LATE = "not read: the request's reading time ran out first (RAG_SERVER_INGEST_SECONDS); send it again on its own"


class OutOfTime(BaseException):
    """The reading time ran out during a parse (a BaseException: parsers catch Exception and go on)."""


def _late(result: LoadResult, name: str) -> None:
    result.fingerprints.pop(name, None)
    result.skipped.append(Skipped(name, LATE))
    result.late.append(name)


@contextlib.contextmanager
def _time_limit(deadline: float | None) -> Iterator[None]:
    """Stop the code inside at `deadline` by raising OutOfTime: a timer signal, so only on the main thread
    (an ingest in its own process, as the server runs it); elsewhere the check between files must do."""
    if deadline is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: object) -> None:
        raise OutOfTime

    previous = signal.signal(signal.SIGALRM, expired)
    # It fires again every half second, in case a parser's bare `except:` swallowed the first.
    signal.setitimer(signal.ITIMER_REAL, max(deadline - time.monotonic(), 0.001), 0.5)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def read_bytes(path: Path, max_bytes: int) -> tuple[bytes | None, str, str, os.stat_result | None]:
    """Return (bytes or None, fingerprint, reason when None, the file's stat before reading)."""
    try:
        stat = path.stat()
        if stat.st_size > max_bytes:
            limit = f"larger than the {max_bytes}-byte limit (raise RAG_MAX_FILE_BYTES to read it)"
            return None, f"stat:{stat.st_size}:{stat.st_mtime_ns}", limit, stat
        data = path.read_bytes()
    except OSError as exc:
        return None, "unreadable", f"unreadable ({exc.strerror or exc})", None
    if not data.strip():
        return None, hashlib.sha256(data).hexdigest(), "empty file", stat
    return data, hashlib.sha256(data).hexdigest(), "", stat


def decode_text(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise Unreadable("binary file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Unreadable("not UTF-8 text (convert it to UTF-8)") from None
    if not text.strip():
        raise Unreadable("empty file")
    return text


def parse_file(data: bytes, path: Path, name: str) -> tuple[list[Post], FileKind, list[str]]:
    """(posts, what the file is, warnings about parts of it that could not be read)."""
    suffix = path.suffix.lower()
    if suffix in PDF_SUFFIXES:
        from .formats.pdf import read_pdf

        pdf = read_pdf(data, is_heading)
        if not pdf.paragraphs and len(pdf.empty) == pdf.pages:
            raise Unreadable("no extractable text on any page (a scanned PDF? run OCR first)")
        notes = pdf.notes + ([f"no extractable text on page{'s' if len(pdf.empty) > 1 else ''} "
                              f"{_numbers(pdf.empty)} (scanned images? run OCR first)"] if pdf.empty else [])
        posts = _posts([(pdf.title or title_from_name(path.name), "", pdf.paragraphs)], name)
        return posts, FileKind("pdf", pdf.pages), notes
    if suffix in DOCX_SUFFIXES:
        from .formats.word import read_docx

        title, paragraphs = read_docx(data)
        return _posts([(title or title_from_name(path.name), "", paragraphs)], name), FileKind("docx"), []
    text = decode_text(data)
    if suffix in HTML_SUFFIXES:
        from .htmltext import parse_html

        title, category, paragraphs = parse_html(text)
        return _posts([(title or title_from_name(path.name), category, paragraphs)], name), FileKind("html"), []
    if suffix in MARKDOWN_SUFFIXES:
        return _posts([parse_markdown(text, path)], name), FileKind("markdown"), []
    if is_listing(text):
        return _posts(parse_listing(text), name), FileKind("listing"), []
    return _posts([parse_plain(text, path)], name), FileKind("text"), []


def _numbers(pages: list[int]) -> str:
    shown = ", ".join(str(p) for p in pages[:10])
    return shown + (f" and {len(pages) - 10} more" if len(pages) > 10 else "")


def _posts(parsed: list[tuple[str, str, list[Paragraph]]], name: str) -> list[Post]:
    posts = []
    for title, category, paragraphs in parsed:
        if not paragraphs:
            continue
        posts.append(Post(title, category, name, tuple(paragraphs)))
    return posts


# ---------------------------------------------------------------- formats


def is_listing(text: str) -> bool:
    first = next((line for line in text.splitlines() if line.strip()), "")
    return first.strip().lower().startswith("category:") or any(
        line.lstrip().startswith(_BULLET) for line in text.splitlines()
    )


def _blocks(lines: Iterable[str]) -> Iterator[str]:
    """Blank-line separated blocks, each folded to one line."""
    block: list[str] = []
    for line in lines:
        if line.strip():
            block.append(line.strip())
        elif block:
            yield " ".join(block)
            block = []
    if block:
        yield " ".join(block)


def _paragraphs(blocks: Iterable[str]) -> list[Paragraph]:
    paragraphs, section = [], ""
    for block in blocks:
        if is_heading(block):
            section = normalize_space(block)
        else:
            paragraphs.append(Paragraph(normalize_space(block), section))
    return paragraphs


def parse_listing(text: str) -> list[tuple[str, str, list[Paragraph]]]:
    """A category export: `Category: X`, then one post per `•` line, headings as short lines."""
    category, posts = "", []
    title: str | None = None
    body: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.lower().startswith("category:") and title is None and not category:
            category = stripped.split(":", 1)[1].strip()
        elif stripped.startswith(_BULLET):
            if title is not None:
                posts.append((title, category, _paragraphs(_blocks(body))))
            title, body = normalize_space(stripped[1:]), []
        elif title is not None:
            body.append(line)
    if title is not None:
        posts.append((title, category, _paragraphs(_blocks(body))))
    return posts


def parse_plain(text: str, path: Path) -> tuple[str, str, list[Paragraph]]:
    blocks = list(_blocks(text.splitlines()))
    title = title_from_name(path.name)
    if blocks and is_heading(blocks[0]):
        title = normalize_space(blocks.pop(0))
    return title, "", _paragraphs(blocks)


_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def parse_markdown(text: str, path: Path) -> tuple[str, str, list[Paragraph]]:
    meta: dict[str, str] = {}
    match = _FRONT_MATTER.match(text)
    if match:
        for line in match.group(1).splitlines():
            key, sep, value = line.partition(":")
            if sep:
                meta[key.strip().lower()] = value.strip().strip("\"'")
        text = text[match.end():]
    title, section, paragraphs = meta.get("title", ""), "", []
    for block in _markdown_blocks(text):
        heading = _MD_HEADING.match(block)
        if heading and "\n" not in block:
            level, words = len(heading.group(1)), normalize_space(heading.group(2))
            if level == 1 and not title:
                title = words
            else:
                section = words
        else:
            paragraphs.append(Paragraph(normalize_space(block), section))
    return title or title_from_name(path.name), meta.get("category", ""), paragraphs


def _markdown_blocks(text: str) -> Iterator[str]:
    """Blocks split on blank lines and headings; a fenced code block stays one block."""
    block: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        if not fenced and (not line.strip() or _MD_HEADING.match(line)):
            if block:
                yield "\n".join(block)
                block = []
            if line.strip():
                yield line.strip()
            continue
        block.append(line)
    if block:
        yield "\n".join(block)
