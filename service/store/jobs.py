"""Training jobs as clients see them: create, read, list, cancel, events and metric history.

What a run writes while it owns a job (claim, progress, checkpoints, finish) is in ``runs.py``.

Event ordering: every transaction that appends events for a job first locks that job's row (by inserting
it, updating it, or ``SELECT ... FOR UPDATE``). Events of one job are therefore committed in the order of
their ids, so a reader that resumes after the last id it saw never skips one, even on PostgreSQL where ids
of concurrent transactions may commit out of order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import and_, bindparam, case, delete, func, insert, or_, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.errors import Conflict, NotFound, QueueFull, QuotaExceeded
from service.store.db import QUEUE_LOCK_KEY, Store, check_limit, jsonable, new_id, paginate, utcnow
from service.store.idempotency import Claim, complete
from service.store.notify import notify_event
from service.store.records import EpochMetrics, EventRecord, JobRecord
from service.store.space import freeing
from service.store.tables import (
    DEFAULT_OWNER,
    CheckpointRow,
    DatasetRow,
    JobEventRow,
    JobMetricRow,
    JobRow,
    JobSnapshotRow,
    ModelRow,
    table,
)
from service.vocabulary import ACTIVE_STATUSES, JOB_STATUSES, TERMINAL_STATUSES


def append_event(session: Session, job_id: str, kind: str, data: dict[str, Any]) -> None:
    """Append an event; the caller must hold the job's row (see the module docstring)."""
    session.add(JobEventRow(job_id=job_id, kind=kind, data=jsonable(data), created_at=utcnow()))
    session.flush()
    notify_event(session, job_id)


_EVENTS = table(JobEventRow)
_INSERT_EVENT = insert(_EVENTS)


def append_events(conn: Connection, job_id: str, events: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """:func:`append_event` for a Core connection: ``(kind, data)`` pairs, in this order, in one statement.

    ``data`` must already be plain JSON data (see ``jsonable``); the caller holds the job's row.
    """
    now = utcnow()
    conn.execute(
        _INSERT_EVENT, [{"job_id": job_id, "kind": k, "data": d, "created_at": now} for k, d in events]
    )
    notify_event(conn, job_id)


def lock_job(session: Session, job_id: str, owner: str | None = None) -> JobRow:
    """The job's row, locked until the transaction ends; ``NotFound`` when missing or not ``owner``'s."""
    row = session.scalar(
        select(JobRow).where(JobRow.id == job_id).with_for_update().execution_options(populate_existing=True)
    )
    if row is None or (owner is not None and row.owner != owner):
        raise NotFound.resource("job", job_id)
    return row


def end_job(
    session: Session,
    row: JobRow,
    status: str,
    *,
    error_type: str | None = None,
    error_detail: str | None = None,
    model_id: str | None = None,
) -> None:
    """Move a locked job to a terminal state, drop its checkpoint, and append 'status' then 'end'."""
    row.status = status
    row.finished_at = utcnow()
    row.error_type = error_type
    row.error_detail = error_detail
    row.model_id = model_id
    session.flush()
    # A finished job is never resumed, so its checkpoint is dead weight.
    session.execute(delete(CheckpointRow).where(CheckpointRow.job_id == row.id))
    error = None if error_type is None else {"type": error_type, "detail": error_detail}
    payload = {"status": status, "attempt": row.attempt, "model_id": model_id, "error": error}
    append_event(session, row.id, "status", payload)
    append_event(session, row.id, "end", payload)


def create_job(
    store: Store,
    *,
    owner: str = DEFAULT_OWNER,
    config: dict[str, Any],
    config_hash: str,
    dataset_id: str | None,
    max_retries: int = 0,
    max_queued: int,
    owner_quota: int | None = None,
    claim: Claim | None = None,
) -> JobRecord:
    """Queue a job, unless ``max_queued`` jobs are already queued.

    Parameters
    ----------
    store : Store
    owner : str
    config : dict
        The resolved training configuration (defaults filled, seed chosen).
    config_hash : str
    dataset_id : str or None
        The dataset to train on, which must be ``owner``'s. Inline data in a request is stored as a dataset
        first, so jobs created by the API always have one; the column only becomes None when a finished
        job's dataset is deleted.
    max_retries : int
        How many times the job is requeued after its worker is lost.
    max_queued : int
        Queue capacity; counted and enforced in the same transaction as the insert (serialised by an
        advisory lock on PostgreSQL and by the write lock on SQLite).
    owner_quota : int, optional
        How many queued, running or cancelling jobs ``owner`` may have; enforced under the same lock.
    claim : Claim, optional
        A reserved Idempotency-Key, completed with the job's id in the transaction that creates it.

    Returns
    -------
    record : JobRecord
        Status 'queued', attempt 0; a 'status' event is appended. :func:`queue_job` also gives its
        queue position.

    Raises
    ------
    QueueFull
    QuotaExceeded
        When ``owner`` has ``owner_quota`` active jobs already.
    NotFound
        When the dataset does not exist or is not ``owner``'s.
    """
    return queue_job(
        store,
        owner=owner,
        config=config,
        config_hash=config_hash,
        dataset_id=dataset_id,
        max_retries=max_retries,
        max_queued=max_queued,
        owner_quota=owner_quota,
        claim=claim,
    )[0]


_JOBS = table(JobRow)
_INSERT_JOB = insert(_JOBS)
_JOB_FIELDS = tuple(field.name for field in dataclasses.fields(JobRecord))
_DATASET_OWNER = (
    select(DatasetRow.owner)
    .where(DatasetRow.id == bindparam("dataset_id"))
    # FOR KEY SHARE: the dataset cannot be deleted until this transaction ends (PostgreSQL).
    .with_for_update(read=True, key_share=True)
)
# Over the active jobs, in one scan: how many are queued, how many are the owner's, and how many queued
# ones a new job (attempt 0, the id given) will wait for.
_QUEUE_COUNTS = select(
    func.count(case((_JOBS.c.status == "queued", 1))),
    func.count(case((_JOBS.c.owner == bindparam("owner"), 1))),
    func.count(
        case(((_JOBS.c.status == "queued") & ((_JOBS.c.attempt > 0) | (_JOBS.c.id < bindparam("id"))), 1))
    ),
).where(_JOBS.c.status.in_(ACTIVE_STATUSES))


def queue_job(
    store: Store,
    *,
    owner: str = DEFAULT_OWNER,
    config: dict[str, Any],
    config_hash: str,
    dataset_id: str | None,
    max_retries: int = 0,
    max_queued: int,
    owner_quota: int | None = None,
    claim: Claim | None = None,
) -> tuple[JobRecord, int]:
    """:func:`create_job`, which it is, also giving the new job's queue position (how many queued jobs
    will be claimed before it), read in the transaction that queues it."""
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"max_retries must be a non-negative integer, got {max_retries!r}")
    if isinstance(max_queued, bool) or not isinstance(max_queued, int) or max_queued < 0:
        raise ValueError(f"max_queued must be a non-negative integer, got {max_queued!r}")
    job_id = new_id("job")
    try:
        with store.write_core() as conn:
            if store.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": QUEUE_LOCK_KEY})
            if dataset_id is not None:
                dataset_owner = conn.scalar(_DATASET_OWNER, {"dataset_id": dataset_id})
                if dataset_owner is None or dataset_owner != owner:
                    raise NotFound.resource("dataset", dataset_id)
            queued, active, ahead = conn.execute(_QUEUE_COUNTS, {"owner": owner, "id": job_id}).one()
            if queued >= max_queued:
                raise QueueFull(max_queued)
            if owner_quota is not None and active >= owner_quota:
                raise QuotaExceeded("jobs", usage=active, limit=owner_quota)
            now = utcnow()
            record = JobRecord(
                id=job_id,
                owner=owner,
                status="queued",
                config=jsonable(config),
                config_hash=config_hash,
                dataset_id=dataset_id,
                created_at=now,
                started_at=None,
                finished_at=None,
                attempt=0,
                max_retries=max_retries,
                heartbeat_at=None,
                cancel_requested=False,
                progress=None,
                metrics=None,
                best=None,
                error_type=None,
                error_detail=None,
                model_id=None,
                # The caller hands the job to the runner next: that is its first dispatch.
                dispatched_at=now,
                dispatch_count=1,
            )
            conn.execute(_INSERT_JOB, {name: getattr(record, name) for name in _JOB_FIELDS})
            append_events(conn, job_id, [("status", {"status": "queued", "attempt": 0})])
            if claim is not None:
                complete(conn, claim, job_id)
            return record, int(ahead)
    except IntegrityError as exc:
        # Only the dataset foreign key can fail here: the dataset was deleted concurrently.
        raise NotFound.resource("dataset", str(dataset_id)) from exc


_JOB_BY_ID = select(_JOBS).where(_JOBS.c.id == bindparam("id"))
# Queued jobs claimed before a queued one (see claim_order): for a job that never started, every
# interrupted job and every older one; for an interrupted job, every older interrupted one.
_AHEAD_OF_NEW = select(func.count()).where(
    _JOBS.c.status == "queued", (_JOBS.c.attempt > 0) | (_JOBS.c.id < bindparam("id"))
)
_AHEAD_OF_INTERRUPTED = select(func.count()).where(
    _JOBS.c.status == "queued", _JOBS.c.attempt > 0, _JOBS.c.id < bindparam("id")
)


def _job_record(conn: Connection, job_id: str, owner: str | None) -> JobRecord:
    row = conn.execute(_JOB_BY_ID, {"id": job_id}).one_or_none()
    if row is None or (owner is not None and row.owner != owner):
        raise NotFound.resource("job", job_id)
    return JobRecord(**row._mapping)


def get_job(store: Store, job_id: str, *, owner: str | None = None) -> JobRecord:
    """The job ``job_id``; ``NotFound`` when missing or, if ``owner`` is given, someone else's."""
    with store.read_core() as conn:
        return _job_record(conn, job_id, owner)


def read_job(store: Store, job_id: str, *, owner: str | None = None) -> tuple[JobRecord, int | None]:
    """:func:`get_job` and the job's :func:`queue_position`, in one read."""
    with store.read_core() as conn:
        job = _job_record(conn, job_id, owner)
        if job.status != "queued":
            return job, None
        ahead = _AHEAD_OF_NEW if job.attempt == 0 else _AHEAD_OF_INTERRUPTED
        return job, int(conn.scalar(ahead, {"id": job_id}) or 0)


def list_jobs(
    store: Store,
    owner: str | None = DEFAULT_OWNER,
    status: str | Collection[str] | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[JobRecord], str | None]:
    """One page of ``owner``'s jobs (every owner's when None; optionally in one of some statuses), newest
    first, and the next cursor.

    Raises
    ------
    ValueError
        For an unknown status, a non-positive limit or a cursor that is not a job id.
    """
    statuses = [status] if isinstance(status, str) else list(status or ())
    unknown = [s for s in statuses if s not in JOB_STATUSES]
    if unknown:
        raise ValueError(f"status must be one of {list(JOB_STATUSES)}, got {unknown[0]!r}")
    with store.read() as session:
        stmt = select(JobRow)
        if owner is not None:
            stmt = stmt.where(JobRow.owner == owner)
        if statuses:
            stmt = stmt.where(JobRow.status.in_(statuses))
        rows, next_cursor = paginate(session, stmt, JobRow.id, "job", limit, cursor)
        return [JobRecord.from_row(row) for row in rows], next_cursor


def claim_order() -> tuple[Any, ...]:
    """The order queued jobs are claimed in: interrupted ones (attempt > 0) first, then by age.

    A job that lost its worker or was given back at shutdown keeps its place ahead of every job that
    never started.
    """
    return (JobRow.attempt == 0, JobRow.id)


def queue_position(store: Store, job: JobRecord) -> int | None:
    """How many queued jobs will be claimed before ``job`` (0 = next), or None when it is not queued."""
    with store.read() as session:
        row = session.execute(select(JobRow.status, JobRow.attempt).where(JobRow.id == job.id)).one_or_none()
        if row is None or row.status != "queued":
            return None
        # Ahead: every interrupted job older than this one, and, if this one never started, every
        # interrupted job at all and every older job that never started.
        ahead = (JobRow.attempt > 0) & (JobRow.id < job.id)
        if row.attempt == 0:
            ahead = (JobRow.attempt > 0) | (JobRow.id < job.id)
        count = session.scalar(
            select(func.count()).select_from(JobRow).where(JobRow.status == "queued", ahead)
        )
        return int(count or 0)


def queued_job_ids(store: Store, limit: int = 100) -> list[str]:
    """Ids of queued jobs in the order they should run: interrupted ones first, then oldest first."""
    check_limit(limit)
    with store.read() as session:
        stmt = select(JobRow.id).where(JobRow.status == "queued").order_by(*claim_order()).limit(limit)
        return list(session.scalars(stmt))


def delete_job(store: Store, job_id: str, *, owner: str | None = None) -> None:
    """Delete an ended job and what it wrote, even on a full disk (``service.store.space``)."""
    return freeing(store, lambda: _delete_job(store, job_id, owner=owner))


def _delete_job(store: Store, job_id: str, *, owner: str | None = None) -> None:
    """Delete a job that has ended, with its events, metric history, checkpoint and snapshot.

    Its model stays, with ``job_id`` set to None; its dataset stays.

    Raises
    ------
    NotFound
    Conflict
        While the job is queued, running or cancelling.
    """
    with store.write() as session:
        row = lock_job(session, job_id, owner)
        if row.status not in TERMINAL_STATUSES:
            raise Conflict(
                f"job {job_id!r} is {row.status}; only a job that has ended can be deleted (cancel it first)"
            )
        for table in (JobEventRow, JobMetricRow, CheckpointRow, JobSnapshotRow):
            session.execute(delete(table).where(table.job_id == job_id))
        session.execute(update(ModelRow).where(ModelRow.job_id == job_id).values(job_id=None))
        session.execute(delete(JobRow).where(JobRow.id == job_id))


def count_queued(store: Store) -> int:
    """How many jobs are queued."""
    with store.read() as session:
        count = session.scalar(select(func.count()).select_from(JobRow).where(JobRow.status == "queued"))
        return int(count or 0)


def request_cancel(store: Store, job_id: str, *, owner: str | None = None) -> JobRecord:
    """Ask a job to stop, even on a full disk (see :func:`_request_cancel`, ``service.store.space``)."""
    return freeing(store, lambda: _request_cancel(store, job_id, owner=owner), reclaim=False)


def _request_cancel(store: Store, job_id: str, *, owner: str | None = None) -> JobRecord:
    """Ask a job to stop.

    A queued job is cancelled at once ('status' and 'end' events); a running one becomes 'cancelling' with
    ``cancel_requested`` set (a 'status' event) and its run ends it; a job already 'cancelling' is
    returned unchanged.

    Raises
    ------
    NotFound
    Conflict
        When the job is already terminal.
    """
    with store.write() as session:
        row = lock_job(session, job_id, owner)
        if row.status == "queued":
            end_job(session, row, "cancelled")
        elif row.status == "running":
            row.status = "cancelling"
            row.cancel_requested = True
            session.flush()
            append_event(session, row.id, "status", {"status": "cancelling", "attempt": row.attempt})
        elif row.status != "cancelling":
            raise Conflict(f"job {job_id!r} is already {row.status}")
        return JobRecord.from_row(row)


def events_since(store: Store, job_id: str, after_id: int = 0, limit: int = 100) -> list[EventRecord]:
    """The job's events with an id above ``after_id``, oldest first, at most ``limit``."""
    check_limit(limit)
    if isinstance(after_id, bool) or not isinstance(after_id, int) or after_id < 0:
        raise ValueError(f"after_id must be a non-negative integer, got {after_id!r}")
    with store.read() as session:
        stmt = (
            select(JobEventRow)
            .where(JobEventRow.job_id == job_id, JobEventRow.id > after_id)
            .order_by(JobEventRow.id)
            .limit(limit)
        )
        return [EventRecord.from_row(row) for row in session.scalars(stmt)]


def events_after(store: Store, cursors: Mapping[str, int], limit: int = 1000) -> list[EventRecord]:
    """Events of several jobs in one read: those of each job ``j`` with an id above ``cursors[j]``.

    Ordered by id, at most ``limit``; a caller that gets ``limit`` events reads again from where they end.
    """
    check_limit(limit)
    if not cursors:
        return []
    wanted = or_(*(and_(JobEventRow.job_id == job, JobEventRow.id > after) for job, after in cursors.items()))
    with store.read() as session:
        stmt = select(JobEventRow).where(wanted).order_by(JobEventRow.id).limit(limit)
        return [EventRecord.from_row(row) for row in session.scalars(stmt)]


def job_statuses(store: Store, job_ids: Collection[str]) -> dict[str, str]:
    """The status of each of ``job_ids`` that exists, in one read."""
    with store.read() as session:
        rows = session.execute(select(JobRow.id, JobRow.status).where(JobRow.id.in_(list(job_ids))))
        return {job_id: status for job_id, status in rows}


def list_job_metrics(store: Store, job_id: str, after_epoch: int | None = None) -> list[EpochMetrics]:
    """The job's per-epoch history in epoch order, only epochs above ``after_epoch`` when given.

    Raises
    ------
    NotFound
    """
    with store.read() as session:
        if session.scalar(select(JobRow.id).where(JobRow.id == job_id)) is None:
            raise NotFound.resource("job", job_id)
        stmt = select(JobMetricRow).where(JobMetricRow.job_id == job_id)
        if after_epoch is not None:
            stmt = stmt.where(JobMetricRow.epoch > after_epoch)
        return [EpochMetrics.from_row(row) for row in session.scalars(stmt.order_by(JobMetricRow.epoch))]
