"""One owner for a loaded index generation that many threads (chat sessions, requests) borrow.

A question borrows the current generation and keeps it until it is done, however many ingests happen
meanwhile. An ingest retires the generation: the next borrower loads the new one, and the old one is
closed when its last borrower gives it back. Copies of an Assistant share this owner and never close
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
    def __init__(self, value: T) -> None:
        self.value = value
        self.borrowers = 0
        self.retired = False


class SharedIndex(Generic[T]):
    """Lends one loaded value at a time; `open()` loads the next one when the current one is retired."""

    def __init__(self, open: Callable[[], T]) -> None:
        self._open = open
        self._lock = threading.Lock()
        self._current: _Lease[T] | None = None

    @contextlib.contextmanager
    def borrow(self) -> Iterator[T]:
        with self._lock:  # one load at a time: concurrent first questions share it
            if self._current is None:
                self._current = _Lease(self._open())
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
            if lease is None:
                return
            lease.retired = True
            done = lease.borrowers == 0
        if done:
            lease.value.close()

    close = refresh
