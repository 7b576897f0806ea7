"""Whether the store can serve: it reads, it writes, its file is sound and its disk has room (``/readyz``).

Each call of :meth:`StoreHealth.problems` reads a row and makes a write that is rolled back, on a
connection of its own (a SQLite probe opens a fresh one, so that it sees the file as it is on disk, not a
page cache). For SQLite it also reports the free space of the database's file system against a minimum,
and the result of ``PRAGMA quick_check``. That check reads the whole file, so it runs in a background
thread, at most every ``max(QUICK_CHECK_MIN_INTERVAL_S, QUICK_CHECK_DUTY × its last duration)`` seconds
(at most about 2% of one core however large the store); a probe waits for a running check at most
``QUICK_CHECK_WAIT_S`` and otherwise reports the previous result.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:
    from service.store.db import Store

QUICK_CHECK_MIN_INTERVAL_S = 5.0
QUICK_CHECK_DUTY = 50.0
QUICK_CHECK_WAIT_S = 0.5
_PROBE_TIMEOUT_S = 0.5
_SQLITE_BUSY = 5
_PROBE = "UPDATE alembic_version SET version_num = version_num"


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or ["no message"])[0][:200]


class StoreHealth:
    """The health probes of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._check: threading.Thread | None = None
        self._checked_at: float | None = None
        self._check_cost_s = 0.0
        self._check_problem: str | None = None

    def problems(self, min_free_bytes: int = 0) -> list[str]:
        """What keeps the store from serving, as sentences; empty when it is healthy."""
        path = self.store.database_path
        if path is None:
            found = [self._postgresql_probe()]
        else:
            found = [self._disk_space(path, min_free_bytes), self._sqlite_probe(path), self._integrity(path)]
        return [problem for problem in found if problem is not None]

    @staticmethod
    def _disk_space(path: Path, min_free_bytes: int) -> str | None:
        try:
            free = shutil.disk_usage(path.parent).free
        except OSError as exc:
            return f"the store's disk cannot be measured: {exc.strerror or exc}"
        if free >= min_free_bytes:
            return None
        mib = 1024 * 1024
        return (
            f"the disk is full: {free / mib:.1f} MiB free on the store's disk, below "
            f"DESCENT_MIN_FREE_MB ({min_free_bytes / mib:g})"
        )

    @staticmethod
    def _sqlite_probe(path: Path) -> str | None:
        try:
            conn = sqlite3.connect(
                f"file:{path}?mode=rw", uri=True, timeout=_PROBE_TIMEOUT_S, isolation_level=None
            )
        except sqlite3.Error as exc:
            return f"the store cannot be opened: {_first_line(exc)}"
        try:
            conn.execute("SELECT version_num FROM alembic_version").fetchall()
        except sqlite3.Error as exc:
            conn.close()
            return f"the store cannot be read: {_first_line(exc)}"
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(_PROBE)
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            # Busy: another connection is writing right now, so the store takes writes.
            if exc.sqlite_errorcode & 0xFF != _SQLITE_BUSY:
                return f"the store cannot be written: {_first_line(exc)}"
        finally:
            conn.close()
        return None

    def _postgresql_probe(self) -> str | None:
        try:
            with self.store.engine.connect() as conn, conn.begin() as transaction:
                timeout = int(_PROBE_TIMEOUT_S * 1000)
                conn.execute(text("SELECT version_num FROM alembic_version")).all()
                conn.execute(text(f"SET LOCAL lock_timeout = {timeout}"))
                conn.execute(text(f"SET LOCAL statement_timeout = {2 * timeout}"))
                try:
                    conn.execute(text(_PROBE))
                except SQLAlchemyError as exc:
                    if getattr(getattr(exc, "orig", None), "sqlstate", None) != "55P03":
                        raise
                    # lock_not_available: a migration is writing the row, so the store takes writes.
                transaction.rollback()
        except SQLAlchemyError as exc:
            return f"the store cannot be read or written: {_first_line(exc)}"
        return None

    def _integrity(self, path: Path) -> str | None:
        """The latest ``PRAGMA quick_check`` result, starting a new check when the last one is old."""
        with self._lock:
            interval = max(QUICK_CHECK_MIN_INTERVAL_S, QUICK_CHECK_DUTY * self._check_cost_s)
            due = self._checked_at is None or time.monotonic() - self._checked_at >= interval
            if due and self._check is None:
                self._check = threading.Thread(
                    target=self._quick_check, args=(path,), name="store-quick-check", daemon=True
                )
                self._check.start()
            running = self._check
        if running is not None:
            running.join(QUICK_CHECK_WAIT_S)
        return self._check_problem

    def _quick_check(self, path: Path) -> None:
        started = time.monotonic()
        problem: str | None = None
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0, isolation_level=None)
            try:
                rows = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
            finally:
                conn.close()
            if rows != ["ok"]:
                problem = f"the store's file is damaged (quick_check: {'; '.join(map(str, rows))})"
        except sqlite3.Error as exc:
            problem = f"the store's file is damaged ({_first_line(exc)})"
        with self._lock:
            self._check_problem = problem
            self._check_cost_s = time.monotonic() - started
            self._checked_at = time.monotonic()
            self._check = None
