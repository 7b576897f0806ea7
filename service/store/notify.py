"""Wake-ups for the readers of job events: a cheap signal that the store may hold new events.

- PostgreSQL: every transaction that appends an event sends ``NOTIFY descent_job_events, '<job id>'``
  (:func:`notify_event`, delivered at commit, never for a rolled-back transaction). A watcher holds one
  ``LISTEN`` connection and reports the job ids it is told of.
- SQLite: ``PRAGMA data_version`` of a connection changes whenever another connection commits, whatever
  process it is in. A watcher polls it on a connection of its own (a few microseconds, no I/O beyond the
  WAL index in shared memory) and reports "something changed" (``None``).

A watcher is a hint only: the reader it wakes still reads the store, and reads it now and then without
a wake-up too, so a lost notification (a dropped LISTEN connection) costs time, never an event.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import Session

from service.store.db import Store

log = logging.getLogger("descent.store")

EVENTS_CHANNEL = "descent_job_events"
# How often the SQLite watcher looks at data_version; the PostgreSQL one wakes as notifications arrive.
SQLITE_POLL_S = 0.025
_RECONNECT_S = 1.0

# Called with the ids of jobs that may have new events, or None when any job may.
OnChange = Callable[[set[str] | None], None]


_NOTIFY = text("SELECT pg_notify(:channel, :job)")


def notify_event(session: Session | Connection, job_id: str) -> None:
    """Tell the listeners, at commit, that ``job_id`` has a new event (PostgreSQL; a no-op on SQLite).

    Takes an ORM session or a Core connection in a transaction. PostgreSQL folds identical
    notifications of one transaction into one.
    """
    dialect = session.dialect if isinstance(session, Connection) else session.get_bind().dialect
    if dialect.name == "postgresql":
        session.execute(_NOTIFY, {"channel": EVENTS_CHANNEL, "job": job_id})


class EventWatcher:
    """A daemon thread that calls ``on_change`` when the store may hold new job events.

    Parameters
    ----------
    store : Store
    on_change : callable
        Called from the watcher's thread with a set of job ids, or None for "any job".
    poll_s : float
        SQLite: seconds between two looks at ``data_version``.
    """

    def __init__(self, store: Store, on_change: OnChange, *, poll_s: float = SQLITE_POLL_S) -> None:
        self.store, self.on_change, self.poll_s = store, on_change, poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> EventWatcher:
        target = self._listen if self.store.dialect == "postgresql" else self._poll_sqlite
        self._thread = threading.Thread(target=target, name="descent-event-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _poll_sqlite(self) -> None:
        while not self._stop.is_set():
            try:
                self._watch_data_version()
            except Exception as exc:  # the file went away, a disk error: report, retry, never die
                log.warning("watching the store for new events failed: %s", exc)
                self.on_change(None)
                self._stop.wait(_RECONNECT_S)

    def _watch_data_version(self) -> None:
        conn: Any = self.store.engine.raw_connection()
        try:
            last = None
            while not self._stop.wait(self.poll_s):
                cursor = conn.cursor()
                cursor.execute("PRAGMA data_version")
                version = cursor.fetchone()[0]
                cursor.close()
                if version != last:
                    if last is not None:
                        self.on_change(None)
                    last = version
        finally:
            conn.close()

    def _listen(self) -> None:
        import psycopg

        url = make_url(str(self.store.engine.url.render_as_string(hide_password=False)))
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                    # Events committed while no one listened: the reader looks at every job once.
                    self.on_change(None)
                    while not self._stop.is_set():
                        # Each notification is passed on as it arrives; the timeout only lets the
                        # loop see the stop flag.
                        for note in conn.notifies(timeout=0.5):
                            self.on_change({note.payload})
            except Exception as exc:
                log.warning("listening for job events failed: %s; trying again", exc)
                with contextlib.suppress(Exception):
                    self.on_change(None)
                self._stop.wait(_RECONNECT_S)
