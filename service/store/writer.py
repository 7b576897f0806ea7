"""One writer at a time on a SQLite store, handed over without SQLite's sleeps.

SQLite lets one transaction write at a time; a writer that finds the lock taken sleeps in its busy
handler for 1, 2, 5, 10, 15, 20, 25 … ms between tries, however soon the lock is free again, so that
under a stream of short writes (a job's submit, claim and end, from the API and every worker) the
waiters lose more time asleep than the writes take. :class:`WriterLock` queues the writers of every
process on a file lock of their own (``flock`` on ``<database>.writer``) before they begin, and tries it
again after a tenth of a millisecond, then a little longer each time (at most a millisecond).

It only orders writers; SQLite's own locking stays the authority. The kernel drops a ``flock`` when its
process dies (kill -9 included), so a dead writer never keeps it. A writer that cannot get the lock
within the busy timeout, or whose lock file cannot be opened (a full disk), writes without it and
SQLite's busy handler decides, as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

_FIRST_TRY_S, _LONGEST_WAIT_S = 0.0001, 0.001


class WriterLock:
    """The lock writers of the SQLite file ``database`` take around each write transaction (reentrant)."""

    def __init__(self, database: Path, timeout_s: float) -> None:
        self.path = database.with_name(database.name + ".writer")
        self.timeout_s = timeout_s
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        self._pid = 0  # the process that opened _fd

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock (or, failing that, nothing) for the duration of the block."""
        if not self._thread_lock.acquire(timeout=self.timeout_s):
            yield  # another thread of this process kept it all this time: SQLite decides
            return
        try:
            self._depth += 1
            locked = self._depth == 1 and self._acquire()
            try:
                yield
            finally:
                self._depth -= 1
                if locked and self._fd is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def _acquire(self) -> bool:
        fd = self._open()
        if fd is None:
            return False
        deadline = time.monotonic() + self.timeout_s
        wait = _FIRST_TRY_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                pass
            except OSError:
                return False
            if time.monotonic() > deadline:
                return False
            time.sleep(wait)
            wait = min(wait * 1.5, _LONGEST_WAIT_S)

    def _open(self) -> int | None:
        # A forked child opens a file of its own: the lock of a descriptor inherited from its parent is
        # the parent's lock (and is left alone).
        if self._fd is None or self._pid != os.getpid():
            try:
                # Read-only: flock needs no more, and a file open for writing would keep the file system
                # from being remounted read-only.
                self._fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
                self._pid = os.getpid()
            except OSError:
                return None
        return self._fd

    def close(self) -> None:
        with self._thread_lock:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = None
