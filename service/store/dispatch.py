"""Dispatch records: which queued jobs may have lost their message, shared by every process.

Each transaction that makes a job queued records a dispatch (``dispatched_at``, ``dispatch_count``),
because its caller hands the job to the runner next. A queued job still unclaimed long after its last
dispatch may have lost its message (a broker restart, a worker killed holding it): the reaper takes
such jobs with :func:`take_redispatch`, which records the new dispatch in the same statement, so that
of several reapers racing for one job exactly one sends it again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from service.store.db import Store, check_limit, utcnow
from service.store.jobs import claim_order
from service.store.tables import JobRow


def take_redispatch(
    store: Store, older_than_s: float, limit: int, *, now: datetime | None = None
) -> list[str]:
    """Take up to ``limit`` queued jobs last dispatched more than ``older_than_s`` seconds ago.

    The dispatch is recorded (``dispatched_at`` now, ``dispatch_count`` + 1) in the statement that
    selects the jobs, and the condition is checked again on each row as it is updated: when several
    processes call this at once, each job goes to one of them only.

    Parameters
    ----------
    store : Store
    older_than_s : float
        How long a job must have waited since its last dispatch.
    limit : int
        At most this many jobs, in claim order (interrupted jobs first, then the oldest).
    now : datetime, optional
        The current time (aware); defaults to the clock.

    Returns
    -------
    job_ids : list of str
        The jobs the caller must send to the runner again, in claim order.
    """
    if not older_than_s >= 0:
        raise ValueError(f"older_than_s must be >= 0, got {older_than_s!r}")
    check_limit(limit)
    now = now or utcnow()
    cutoff = now - timedelta(seconds=older_than_s)
    due = (JobRow.status == "queued") & or_(
        JobRow.dispatched_at < cutoff, JobRow.dispatched_at.is_(None) & (JobRow.created_at < cutoff)
    )
    with store.write() as session:
        candidates = list(session.scalars(select(JobRow.id).where(due).order_by(*claim_order()).limit(limit)))
        if not candidates:
            return []
        # Re-evaluated on every row it updates (PostgreSQL rechecks a row another transaction changed;
        # SQLite runs one writer at a time): a job another reaper just took no longer matches.
        taken = set(
            session.scalars(
                update(JobRow)
                .where(JobRow.id.in_(candidates), due)
                .values(dispatched_at=now, dispatch_count=JobRow.dispatch_count + 1)
                .returning(JobRow.id)
            )
        )
    return [job_id for job_id in candidates if job_id in taken]
