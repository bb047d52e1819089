"""The index folder's files: atomic publishing, the writers' lock, generations and their clean-up.

Every write makes a new generation of files and publishes it by replacing the manifest, so a crash at
any moment leaves the previous index loadable. Writers are serialized by a file lock; readers never
lock, and the previous generation is kept so a reader that raced a writer still finds it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import IndexBusy, IndexCorrupt, IndexDiskFull, IndexNotAFolder, IndexNotWritable, UserError

MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".lock"
_FORBIDDEN_SUFFIXES = (".pkl", ".pickle", ".joblib", ".npy", ".npz")
_FULL = (errno.ENOSPC, errno.EDQUOT)
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)
_SQLITE_ERRNO = {13: errno.ENOSPC, 8: errno.EROFS}  # SQLITE_FULL, SQLITE_READONLY


def new_generation() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"


def built_at() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _fsync(path: Path, flags: int = os.O_RDONLY) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: Path, final: Path) -> None:
    """Make a fully written temp file durable, then give it its final name in one step."""
    _fsync(tmp)
    os.replace(tmp, final)
    _fsync(final.parent, os.O_RDONLY | os.O_DIRECTORY)


@contextlib.contextmanager
def user_fixable(index_dir: Path) -> Iterator[None]:
    """Say a full disk, a read-only folder or a file in the folder's place as what they are, with the fix,
    instead of an unexpected failure (FAISS, SQLite and the OS each word them differently)."""
    try:
        yield
    except (OSError, sqlite3.OperationalError) as exc:
        problem = write_problem(exc, Path(index_dir))
        if problem is None:
            raise
        raise problem from exc


def write_problem(exc: OSError | sqlite3.OperationalError, index_dir: Path) -> UserError | None:
    """The user-fixable error behind a failed write in the index folder, or None."""
    code = _SQLITE_ERRNO.get(getattr(exc, "sqlite_errorcode", 0)) if isinstance(exc, sqlite3.Error) else exc.errno
    blocker = not_a_folder(index_dir)
    if blocker is not None:
        return IndexNotAFolder(blocker)
    if code in _FULL:
        return IndexDiskFull(index_dir)
    filename = getattr(exc, "filename", None)
    inside = filename is None or Path(os.path.abspath(filename)).is_relative_to(os.path.abspath(index_dir))
    if code in _DENIED and inside:  # a model or corpus file we may not read is another matter
        return IndexNotWritable(index_dir)
    return None


def not_a_folder(index_dir: Path) -> Path | None:
    """The file standing where the index folder (or one of its parents) should be, if any."""
    for path in (index_dir, *index_dir.parents):
        if path.exists():
            return None if path.is_dir() else path
    return None


@contextlib.contextmanager
def ingest_lock(index_dir: Path, timeout: float, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    from filelock import FileLock, Timeout  # here: it imports asyncio (6 MiB) that a question never needs

    index_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(index_dir / LOCK_NAME))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if on_wait:
            on_wait()
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise IndexBusy(timeout) from None
    try:
        yield
    finally:
        lock.release()


def refuse_foreign_files(index_dir: Path) -> None:
    """Serialized Python objects have no business in the index folder: never load around them."""
    for path in index_dir.iterdir():
        if path.suffix.lower() in _FORBIDDEN_SUFFIXES:
            raise IndexCorrupt(f"unexpected file {path.name} in the index folder (this index never uses pickle)")


def remove_stale_files(index_dir: Path, keep: set[str]) -> None:
    """Drop temp files left by a killed ingest and files no generation a reader may hold still names."""
    for path in index_dir.iterdir():
        if path.is_dir():
            if path.name.startswith(".") and (".tmp-" in path.name or ".old-" in path.name):
                shutil.rmtree(path, ignore_errors=True)  # a half-made export from a killed ingest
            continue
        if path.name in (MANIFEST_NAME, LOCK_NAME):
            continue
        ours = path.name.startswith(("index-", "passages-", "deleted-", MANIFEST_NAME)) and \
            path.suffix in (".faiss", ".sqlite", ".ids", ".tmp", ".sqlite-journal")
        # A kept records file's journal may be needed to undo a killed write: it stays with its file.
        if ours and path.name.removesuffix("-journal") not in keep:
            path.unlink(missing_ok=True)
