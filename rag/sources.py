"""The set of indexed documents: which roots an ingest re-scans, what was removed from under them, and
one catalogue entry per file. Pure functions over display names (paths relative to the project)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from .corpus import LoadResult, under_any
from .index.manifest import Manifest
from .index.records import Record
from .types import Chunk, Document, title_from_name

_KINDS = {".pdf": "pdf", ".docx": "docx", ".md": "markdown", ".markdown": "markdown", ".html": "html",
          ".htm": "html"}


@dataclass(frozen=True)
class Plan:
    """One change to the document set: the roots and exclusions it leaves, the paths it reads from disk,
    and which indexed files it replaces (`in_scope`): those not in scope are kept as they are."""

    roots: list[str]
    excluded: list[str]
    scan: list[str]
    in_scope: Callable[[str], bool]


def sync_plan(roots: Sequence[str], excluded: Sequence[str]) -> Plan:
    """Re-read every root: the index mirrors them (less what was removed from under them)."""
    return Plan(list(roots), list(excluded), list(roots), lambda name: True)


def add_plan(roots: Sequence[str], excluded: Sequence[str], given: Sequence[str]) -> Plan:
    """Read the given files and folders and keep everything else; they join the roots unless a root
    already covers them."""
    excluded = [e for e in excluded if not under_any(e, given)]
    kept_roots = [r for r in roots if not under_any(r, given)]
    # A root's walk leaves out hidden names and what was removed from it: such a path is a root of its own.
    new_roots = [g for g in given if not under_any(g, kept_roots) or under_any(g, excluded) or _hidden(g)]
    return Plan(kept_roots + [g for g in new_roots if g not in kept_roots], excluded, list(given),
                lambda name: under_any(name, given))


def _hidden(name: str) -> bool:
    return any(part.startswith(".") and part not in (".", "..") for part in name.split("/"))


def remove_plan(roots: Sequence[str], excluded: Sequence[str], removed: Sequence[str]) -> Plan:
    """Drop the given files and folders; a re-scan of a root that holds one of them leaves it out."""
    kept_roots = [r for r in roots if not under_any(r, removed)]
    inside = [p for p in removed if under_any(p, kept_roots)]
    excluded = [e for e in excluded if not under_any(e, removed)] + inside
    return Plan(kept_roots, excluded, [], lambda name: under_any(name, removed))


SHIPPED_CASE_STUDIES = "corpus/case-studies.txt"  # as named inside the project, or by a path ending so
CASE_STUDIES, YOUR_DOCUMENTS = "the case studies", "your documents"


def library_name(configured: str | None, documents: Iterable[str]) -> str:
    """What the library is called: RAG_COLLECTION when set, else the case studies while the index holds only
    the shipped ones (a new index that holds nothing yet is the corpus folder's), else your documents."""
    if configured and configured.strip():
        return configured.strip()
    shipped = all(name == SHIPPED_CASE_STUDIES or name.endswith("/" + SHIPPED_CASE_STUDIES) for name in documents)
    return CASE_STUDIES if shipped else YOUR_DOCUMENTS


def catalogue(manifest: Manifest, records: Iterable[Record] | None) -> dict[str, Document]:
    """Every indexed file. Indexes written before the catalogue existed are described from their records."""
    if manifest.documents or records is None:
        return {name: Document(name, **fields) for name, fields in manifest.documents.items()}
    posts: dict[str, set[str]] = {}
    passages: Counter[str] = Counter()
    for record in records:
        for source in record.sources:
            posts.setdefault(source.path, set()).add(source.title)
            passages[source.path] += 1
    return {name: Document(name, _kind(name), None, len(titles), passages[name], manifest.built_at, manifest.built_at,
                           _title(name, titles)) for name, titles in sorted(posts.items())}


def _title(name: str, titles: Collection[str]) -> str:
    return next(iter(titles)) if len(titles) == 1 else title_from_name(name)


def _kind(name: str) -> str:
    return _KINDS.get(PurePosixPath(name).suffix.lower(), "text")


def scanned_documents(loaded: LoadResult, chunks: Iterable[Chunk], old: dict[str, Document],
                      old_fingerprints: dict[str, str], now: str) -> dict[str, Document]:
    """Catalogue entries of the files read by this ingest: first added when first indexed, updated when
    their content changed."""
    passages = Counter(chunk.source.path for chunk in chunks)
    titles: dict[str, list[str]] = {}  # each file's posts, by title
    for post in loaded.posts:
        titles.setdefault(post.path, []).append(post.title)
    entries = {}
    for name, kind in loaded.read.items():
        before = old.get(name)
        unchanged = before is not None and old_fingerprints.get(name) == loaded.fingerprints.get(name)
        entries[name] = Document(name, kind.kind, kind.pages, len(titles.get(name, [])), passages[name],
                                 before.added if before else now, before.updated if unchanged and before else now,
                                 _title(name, titles.get(name, [])))
    return entries
