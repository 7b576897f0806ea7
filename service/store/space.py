"""Disk space of a SQLite store: a reserve that lets deletes work on a full disk, and giving space back.

SQLite in WAL mode needs room to write even a delete: its pages go to the write-ahead log first. On a
full disk every write fails, deletes included, so nothing could ever free space through the API. Three
things keep deletes possible:

- ``PRAGMA secure_delete = FAST`` (set on every connection): a delete rewrites only the b-tree pages it
  touches instead of zeroing every page of the deleted blob, so deleting a 1 GB dataset writes kilobytes,
  not a gigabyte (the freed pages keep their old bytes until they are reused or given back).
- A reserve file, ``<database>.reserve`` (:data:`RESERVE_BYTES`), made when the store opens with room to
  spare. A delete that fails for want of space releases it and runs again.
- After a delete, :func:`give_back` gives the freed pages back to the file system: incremental vacuum in
  steps of :data:`RECLAIM_PAGES` pages, each followed by a passive checkpoint that truncates the file (a
  store created with ``auto_vacuum = INCREMENTAL``, which every new store is; older ones keep their free
  pages for reuse). Then the reserve is made again if there is room.

PostgreSQL manages its own files: none of this applies to it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from service.errors import InsufficientStorage

if TYPE_CHECKING:
    from service.store.db import Store

log = logging.getLogger("descent.store")
T = TypeVar("T")

RESERVE_BYTES = 8 * 1024 * 1024
# Deletes give their pages back to the file system only when the disk is this low (or the reserve is
# spent): moving pages costs about as much as writing the data again (0.85 s for a 40 MB dataset), and
# otherwise later writes reuse the free pages anyway.
GIVE_BACK_BELOW_BYTES = 1024 * 1024 * 1024
# Pages moved per vacuum step (2 MiB): the log a step writes fits in the reserve.
RECLAIM_PAGES = 512
_AUTO_VACUUM_INCREMENTAL = 2


class Reserve:
    """The reserve file beside a SQLite database."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".reserve")

    def ensure(self) -> bool:
        """Make the reserve if it is missing and the disk has room for twice its size; whether it exists."""
        if self.path.exists():
            return True
        with contextlib.suppress(OSError):
            if shutil.disk_usage(self.path.parent).free < 2 * RESERVE_BYTES:
                return False
            with open(self.path, "wb") as file:
                # Real blocks, not a sparse file: releasing it must free space.
                os.posix_fallocate(file.fileno(), 0, RESERVE_BYTES)
            return True
        with contextlib.suppress(OSError):
            self.path.unlink()
        return False

    def release(self) -> bool:
        """Delete the reserve; whether there was one to release."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        log.warning("the store's disk is full: released its %d MiB reserve", RESERVE_BYTES // 2**20)
        return True


def freeing(store: Store, delete: Callable[[], T], *, reclaim: bool = True) -> T:
    """Run ``delete`` (a small store write: a delete, a cancel) even on a full disk, then give space back.

    When ``delete`` fails with ``InsufficientStorage`` the reserve is released and it runs once more.
    With ``reclaim``, the pages it freed are then given back to the file system (:func:`give_back`).
    """
    reserve = store.reserve
    try:
        result = delete()
    except InsufficientStorage:
        if reserve is None or not reserve.release():
            raise
        result = delete()
    if reserve is not None:
        if reclaim and _low_on_space(reserve):
            give_back(store)
        reserve.ensure()
    return result


def _low_on_space(reserve: Reserve) -> bool:
    """Whether the reserve is spent or the disk has less than :data:`GIVE_BACK_BELOW_BYTES` free."""
    try:
        return (
            not reserve.path.exists() or shutil.disk_usage(reserve.path.parent).free < GIVE_BACK_BELOW_BYTES
        )
    except OSError:
        return True


def give_back(store: Store) -> int:
    """Give a SQLite store's free pages back to the file system, as far as it can; the pages given back.

    Best effort: it stops at the first step that cannot be made (no room for its log, readers holding the
    log) and leaves the rest free inside the file, where later writes reuse it.
    """
    if store.dialect != "sqlite":
        return 0
    given_back = 0
    raw = store.engine.raw_connection()
    try:
        sqlite = raw.driver_connection
        assert sqlite is not None
        if sqlite.execute("PRAGMA auto_vacuum").fetchone()[0] != _AUTO_VACUUM_INCREMENTAL:
            return 0
        while (free := int(sqlite.execute("PRAGMA freelist_count").fetchone()[0])) > 0:
            _vacuum_step(sqlite, store.reserve)
            busy, frames, done = sqlite.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            given_back += free - int(sqlite.execute("PRAGMA freelist_count").fetchone()[0])
            if busy or frames != done:
                break  # readers still use the log: the file is truncated at a later checkpoint
    except (sqlite3.Error, SQLAlchemyError, OSError) as exc:
        log.warning("giving free pages back stopped: %s", exc)
    finally:
        raw.close()
    return given_back


def _vacuum_step(sqlite: sqlite3.Connection, reserve: Reserve | None) -> None:
    """Move up to :data:`RECLAIM_PAGES` pages into free ones; on a full disk, with the reserve's room."""
    # executescript steps the pragma to its end (execute would free one page only).
    step = f"PRAGMA incremental_vacuum({RECLAIM_PAGES});"
    try:
        sqlite.executescript(step)
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode != sqlite3.SQLITE_FULL or reserve is None or not reserve.release():
            raise
        sqlite.executescript(step)
