"""One owner for a loaded index generation that many threads (chat sessions, requests) borrow.

A question borrows the current generation and keeps it until it is done, however many ingests happen
meanwhile. An ingest retires the generation: the next borrower loads the new one, and the old one is
closed when its last borrower gives it back. An ingest by another process (a terminal, another app) is
noticed the same way: each borrow compares a stamp of the published manifest (one stat call) with the
one it loaded. Copies of an Assistant share this owner and never close
what they borrowed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Generic, Protocol, TypeVar


class Closable(Protocol):
    def close(self) -> None: ...


T = TypeVar("T", bound=Closable)


class _Lease(Generic[T]):
    def __init__(self, value: T, stamp: object) -> None:
        self.value = value
        self.stamp = stamp
        self.borrowers = 0
        self.retired = False


class SharedIndex(Generic[T]):
    """Lends one loaded value at a time; `open()` loads the next one when the current one is retired or
    `stamp()` (what identifies the published generation) has changed since it was loaded."""

    def __init__(self, open: Callable[[], T], stamp: Callable[[], object] = lambda: None) -> None:
        self._open = open
        self._stamp = stamp
        self._lock = threading.Lock()
        self._current: _Lease[T] | None = None

    @contextlib.contextmanager
    def borrow(self) -> Iterator[T]:
        with self._lock:  # one load at a time: concurrent first questions share it
            stamp = self._stamp()
            if self._current is not None and self._current.stamp != stamp:
                self._retire(self._current)
                self._current = None
            if self._current is None:
                self._current = _Lease(self._open(), stamp)
            lease = self._current
            lease.borrowers += 1
        try:
            yield lease.value
        finally:
            with self._lock:
                lease.borrowers -= 1
                done = lease.retired and lease.borrowers == 0
            if done:
                lease.value.close()

    def refresh(self) -> None:
        """A new generation was published: lend it from the next borrow on."""
        with self._lock:
            lease, self._current = self._current, None
            if lease is not None:
                self._retire(lease)

    @staticmethod
    def _retire(lease: _Lease[T]) -> None:
        """Called with the lock held: close it now if nobody reads it, else when its last borrower is done."""
        lease.retired = True
        if lease.borrowers == 0:
            lease.value.close()

    close = refresh
