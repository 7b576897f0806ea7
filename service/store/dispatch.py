"""Dispatch records: which queued jobs may have lost their message, shared by every process.

Each transaction that makes a job queued records a dispatch (``dispatched_at``, ``dispatch_count``),
because its caller hands the job to the runner next. A queued job still unclaimed long after its last
dispatch may have lost its message (a broker restart, a worker killed holding it): the reaper takes
such jobs with :func:`take_redispatch`, which counts and records under one lock, so that reapers in
several processes make up for a lost message once between them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, text, update

from service.store.db import DISPATCH_LOCK_KEY, Store, utcnow
from service.store.jobs import claim_order
from service.store.tables import JobRow


def take_redispatch(
    store: Store, older_than_s: float, waiting_messages: Callable[[], int], *, now: datetime | None = None
) -> list[str]:
    """Take the queued jobs whose wake-up is missing from the broker, and record their new dispatch.

    Missing: the queued jobs, less those dispatched within the last ``older_than_s`` seconds (their
    message may still be on its way), less the messages waiting in the broker (``waiting_messages()``):
    the jobs due for a new dispatch beyond the messages that wait. That many due jobs are taken, in
    claim order (messages are wake-ups: which job a message names does not matter). The
    count and the record happen under one lock (an advisory lock on PostgreSQL, the write lock on
    SQLite), so that reapers in several processes never make up for one shortage twice.

    Parameters
    ----------
    store : Store
    older_than_s : float
        How long a job must have waited since its last dispatch to be sent again.
    waiting_messages : callable
        Reads how many messages wait in the broker; called while the lock is held.
    now : datetime, optional
        The current time (aware); defaults to the clock once the lock is held.

    Returns
    -------
    job_ids : list of str
        The jobs the caller must send to the runner again, in claim order.
    """
    if not older_than_s >= 0:
        raise ValueError(f"older_than_s must be >= 0, got {older_than_s!r}")
    with store.write() as session:
        if store.dialect == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": DISPATCH_LOCK_KEY})
        else:
            session.connection()  # BEGIN IMMEDIATE: the write lock
        now = now or utcnow()
        cutoff = now - timedelta(seconds=older_than_s)
        due = or_(
            JobRow.dispatched_at < cutoff, JobRow.dispatched_at.is_(None) & (JobRow.created_at < cutoff)
        )
        queued = JobRow.status == "queued"
        n_due = int(session.scalar(select(func.count()).select_from(JobRow).where(queued, due)) or 0)
        missing = n_due - waiting_messages() if n_due else 0
        if missing <= 0:
            return []
        taken = list(
            session.scalars(select(JobRow.id).where(queued, due).order_by(*claim_order()).limit(missing))
        )
        session.execute(
            update(JobRow)
            .where(JobRow.id.in_(taken))
            .values(dispatched_at=now, dispatch_count=JobRow.dispatch_count + 1)
        )
    return taken
