"""What a run of a job writes: claim, heartbeats, progress, checkpoints, the end; plus the reaper.

Fencing: :func:`claim_job` increments ``attempt`` and hands the new value to the run. Every later write
by that run starts with ``UPDATE jobs ... WHERE id = :id AND attempt = :attempt AND status IN ('running',
'cancelling')``; when no row matches, the transaction raises :class:`StaleAttempt` before writing anything
else and rolls back. A run whose job was requeued, reclaimed or ended elsewhere can therefore never write it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Row, case, delete, func, insert, literal, or_, select, update
from sqlalchemy.orm import Session

from service.errors import NotFound, StaleAttempt
from service.store.blobs import sha256_hex, verified
from service.store.db import Store, finite_or_none, jsonable, utcnow
from service.store.jobs import append_event, end_job
from service.store.models import MODEL_FIELDS, insert_model
from service.store.records import Checkpoint, JobRecord
from service.store.snapshots import write_snapshot
from service.store.tables import CheckpointRow, JobMetricRow, JobRow, UTCDateTime
from service.vocabulary import ERROR_TYPES, RUN_STATUSES, TERMINAL_STATUSES

METRIC_NAMES = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")
_IN_CHUNK = 500  # bound parameters per IN (...) list, well under every driver's limit


def claim_job(store: Store, job_id: str) -> int | None:
    """Take a queued job for a new run.

    In one transaction, and only if the job is 'queued': status 'running', ``attempt`` + 1, ``started_at``
    (the first time only), ``heartbeat_at`` now, and a 'status' event.

    Returns
    -------
    attempt : int or None
        The run's attempt number (its fencing token), or None when the job is missing or not queued,
        e.g. because another worker claimed it first.
    """
    now = utcnow()
    with store.write() as session:
        attempt = session.scalar(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.status == "queued")
            .values(
                status="running",
                attempt=JobRow.attempt + 1,
                started_at=func.coalesce(JobRow.started_at, literal(now, UTCDateTime())),
                heartbeat_at=now,
            )
            .returning(JobRow.attempt)
        )
        if attempt is None:
            return None
        append_event(session, job_id, "status", {"status": "running", "attempt": attempt})
        return int(attempt)


def _fence(session: Session, job_id: str, attempt: int, **values: Any) -> Row[str, bool]:
    """The fenced UPDATE every run write starts with; also a heartbeat. Returns (status, cancel_requested)."""
    # SQLite takes its write lock when the transaction begins: stamp the heartbeat after any wait for
    # it, so that a run kept waiting by another writer (a large checkpoint) does not look silent.
    session.connection()
    row = session.execute(
        update(JobRow)
        .where(JobRow.id == job_id, JobRow.attempt == attempt, JobRow.status.in_(RUN_STATUSES))
        .values(heartbeat_at=_not_earlier(utcnow()), **values)
        .returning(JobRow.status, JobRow.cancel_requested)
    ).one_or_none()
    if row is None:
        if session.scalar(select(JobRow.id).where(JobRow.id == job_id)) is None:
            raise NotFound.resource("job", job_id)
        raise StaleAttempt(job_id, attempt)
    return row


def _not_earlier(now: datetime) -> Any:
    """``now``, or the stored heartbeat if later: a write that waited for the row's lock (PostgreSQL)
    while another write of the run committed a later heartbeat does not move it back."""
    stamp = literal(now, UTCDateTime())
    return case((JobRow.heartbeat_at > stamp, JobRow.heartbeat_at), else_=stamp)


def _locked_row(session: Session, job_id: str) -> JobRow:
    """The job's row after a successful fence (which already holds its lock)."""
    row = session.get(JobRow, job_id, populate_existing=True)
    if row is None:
        raise NotFound.resource("job", job_id)
    return row


def heartbeat(store: Store, job_id: str, attempt: int) -> bool:
    """Refresh the run's heartbeat; returns whether a cancel was requested. Raises ``StaleAttempt``."""
    with store.write() as session:
        return bool(_fence(session, job_id, attempt).cancel_requested)


def _metric_row(row: Mapping[str, Any]) -> dict[str, Any]:
    epoch = row.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int | np.integer) or epoch < 0:
        raise ValueError(f"each metrics row needs a non-negative integer 'epoch', got {row!r}")
    unknown = set(row) - {"epoch", *METRIC_NAMES}
    if unknown:
        raise ValueError(f"unknown metric names {sorted(unknown)}; allowed: {list(METRIC_NAMES)}")
    return {"epoch": int(epoch), **{name: finite_or_none(row.get(name)) for name in METRIC_NAMES}}


def record_progress(
    store: Store,
    job_id: str,
    attempt: int,
    *,
    rows: Sequence[Mapping[str, Any]],
    progress: Mapping[str, Any],
    metrics: Mapping[str, Any],
    best: Mapping[str, Any] | None,
    snapshot: bytes | None = None,
) -> bool:
    """Record the epochs finished since the last call, in one fenced transaction.

    Parameters
    ----------
    store : Store
    job_id : str
    attempt : int
        The run's attempt from :func:`claim_job`.
    rows : sequence of dict
        Per-epoch metrics ``{"epoch", "train_loss", "val_loss"?, "train_accuracy"?, "val_accuracy"?}``.
        An epoch already recorded is replaced (a resumed run rewrites the epochs after its checkpoint), so
        the history holds each epoch once; non-finite values are stored as None.
    progress, metrics, best : dict
        The job's latest progress, latest metrics and best-so-far, shown by ``GET /v1/jobs/{id}``.
    snapshot : bytes, optional
        The parameters after the latest epoch (see ``service.store.snapshots``), replacing the last ones.

    Returns
    -------
    cancel_requested : bool

    Raises
    ------
    StaleAttempt
        When ``attempt`` no longer owns the job; nothing is written.
    """
    by_epoch = {values["epoch"]: values for values in map(_metric_row, rows)}
    latest = by_epoch[max(by_epoch)] if by_epoch else None
    with store.write() as session:
        fenced = _fence(
            session,
            job_id,
            attempt,
            progress=jsonable(progress),
            metrics=jsonable(metrics),
            best=jsonable(best),
        )
        epochs = sorted(by_epoch)
        for start in range(0, len(epochs), _IN_CHUNK):
            chunk = epochs[start : start + _IN_CHUNK]
            session.execute(
                delete(JobMetricRow).where(JobMetricRow.job_id == job_id, JobMetricRow.epoch.in_(chunk))
            )
        if epochs:
            session.execute(insert(JobMetricRow), [{"job_id": job_id, **by_epoch[e]} for e in epochs])
        event = {
            "epoch": latest["epoch"] if latest else progress.get("epoch"),
            "progress": progress,
            "metrics": metrics,
            "best": best,
        }
        if snapshot is not None:
            epoch = latest["epoch"] if latest else progress.get("epoch")
            write_snapshot(session, job_id, attempt, int(epoch or 0), snapshot)
        append_event(session, job_id, "progress", event)
        return bool(fenced.cancel_requested)


def truncate_metrics_after(store: Store, job_id: str, attempt: int, epoch: int) -> int:
    """Delete the job's history after ``epoch`` (a resumed run starts again from its checkpoint).

    Returns the number of epochs deleted; raises ``StaleAttempt`` (deleting nothing) for a stale attempt.
    """
    with store.write() as session:
        _fence(session, job_id, attempt)
        result = session.execute(
            delete(JobMetricRow).where(JobMetricRow.job_id == job_id, JobMetricRow.epoch > epoch)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


def save_checkpoint(store: Store, job_id: str, attempt: int, epoch: int, blob: bytes) -> None:
    """Replace the job's checkpoint with ``blob`` (``.npz`` bytes made by the run) taken after ``epoch``.

    Raises ``StaleAttempt`` (writing nothing) when ``attempt`` no longer owns the job.
    """
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise ValueError(f"checkpoint must be bytes, got {type(blob).__name__}")
    with store.write() as session:
        _fence(session, job_id, attempt)
        row = session.get(CheckpointRow, job_id)
        if row is None:
            row = CheckpointRow(job_id=job_id)
            session.add(row)
        row.attempt = attempt
        row.epoch = epoch
        row.blob = bytes(blob)
        row.sha256 = sha256_hex(row.blob)
        row.updated_at = utcnow()
        session.flush()
        # Writing a large blob takes a while: the run was alive at its end, not only at its start.
        session.execute(update(JobRow).where(JobRow.id == job_id).values(heartbeat_at=_not_earlier(utcnow())))


def load_checkpoint(store: Store, job_id: str) -> Checkpoint | None:
    """The job's latest checkpoint as ``(epoch, data)``, or None when it has none.

    Raises ``StorageCorrupted`` when its bytes do not have the sha256 recorded with them.
    """
    with store.read() as session:
        row = session.get(CheckpointRow, job_id)
        if row is None:
            return None
        return Checkpoint(row.epoch, verified(row.blob, row.sha256, "checkpoint of job", job_id))


def finish_job(
    store: Store,
    job_id: str,
    attempt: int,
    *,
    status: str,
    error_type: str | None = None,
    error_detail: str | None = None,
    model: Mapping[str, Any] | None = None,
) -> JobRecord:
    """End a run: the model (if any) and the terminal status are written in one fenced transaction.

    Parameters
    ----------
    store : Store
    job_id : str
    attempt : int
    status : {"succeeded", "failed", "cancelled"}
    error_type, error_detail : str or None
        Required type for 'failed': one of ``service.vocabulary.ERROR_TYPES``.
    model : dict or None
        Keyword arguments of :func:`service.store.models.create_model` other than owner and job_id:
        ``architecture, n_features, task, classes, metrics, standardization, parameters``.

    Returns
    -------
    record : JobRecord
        Terminal, with ``model_id`` set when a model was given; 'status' and 'end' events appended.

    Raises
    ------
    StaleAttempt
        When ``attempt`` no longer owns the job, including when it is already terminal (terminal states
        never change); nothing is written.
    ValueError
        For a non-terminal status, a failure without an error type, or an invalid model (nothing is written).
    """
    if status not in TERMINAL_STATUSES:
        raise ValueError(f"status must be one of {list(TERMINAL_STATUSES)}, got {status!r}")
    if status == "failed" and not error_type:
        raise ValueError("a failed job needs an error_type, got none")
    if error_type is not None and error_type not in ERROR_TYPES:
        raise ValueError(f"error_type must be one of {list(ERROR_TYPES)}, got {error_type!r}")
    if model is not None and set(model) != MODEL_FIELDS:
        raise ValueError(f"model must have exactly the keys {sorted(MODEL_FIELDS)}, got {sorted(model)}")
    with store.write() as session:
        _fence(session, job_id, attempt)
        row = _locked_row(session, job_id)
        model_id = None
        if model is not None:
            model_id = insert_model(session, owner=row.owner, job_id=job_id, **model).id
        end_job(session, row, status, error_type=error_type, error_detail=error_detail, model_id=model_id)
        return JobRecord.from_row(row)


def requeue_job(store: Store, job_id: str, attempt: int) -> str:
    """Give a job back when its worker shuts down; returns the job's new status.

    A running job goes back to 'queued' (a 'status' event) and resumes from its checkpoint when claimed
    again; a 'cancelling' job is ended 'cancelled' instead, since its cancel was asked for.

    Raises
    ------
    StaleAttempt
        When ``attempt`` no longer owns the job; nothing is written.
    """
    with store.write() as session:
        fenced = _fence(session, job_id, attempt)
        row = _locked_row(session, job_id)
        if fenced.status == "cancelling":
            end_job(session, row, "cancelled")
        else:
            _back_in_queue(session, row)
            append_event(
                session, job_id, "status", {"status": "queued", "attempt": attempt, "reason": "shutdown"}
            )
        return row.status


def _back_in_queue(session: Session, row: JobRow) -> None:
    """Queue a locked job again; the caller dispatches it at once, which is recorded here."""
    row.status = "queued"
    row.dispatched_at = utcnow()
    row.dispatch_count += 1
    session.flush()


def reap_stale(store: Store, stale_after_s: float, *, now: datetime | None = None) -> list[str]:
    """Recover jobs whose run stopped sending heartbeats for more than ``stale_after_s`` seconds.

    A running job is requeued while ``attempt < max_retries + 1`` (a 'status' event), else it fails with
    error type 'worker_lost' ('status' and 'end' events); a 'cancelling' job ends 'cancelled'.

    Parameters
    ----------
    store : Store
    stale_after_s : float
        Heartbeat age beyond which the run is presumed dead.
    now : datetime or None
        The current time (aware); defaults to the clock.

    Returns
    -------
    requeued : list of str
        Ids of the jobs put back in the queue, oldest first, for the runner to dispatch again.
    """
    if not stale_after_s >= 0:
        raise ValueError(f"stale_after_s must be >= 0, got {stale_after_s!r}")
    cutoff = (now or utcnow()) - timedelta(seconds=stale_after_s)
    requeued: list[str] = []
    with store.write() as session:
        stmt = (
            select(JobRow)
            .where(
                JobRow.status.in_(RUN_STATUSES),
                or_(JobRow.heartbeat_at.is_(None), JobRow.heartbeat_at < cutoff),
            )
            .order_by(JobRow.id)
            # A row locked by a run's write is alive by definition; skip it rather than wait.
            .with_for_update(skip_locked=True)
        )
        for row in session.scalars(stmt).all():
            if row.status == "cancelling":
                end_job(session, row, "cancelled")
            elif row.attempt < row.max_retries + 1:
                _back_in_queue(session, row)
                event = {"status": "queued", "attempt": row.attempt, "reason": "worker_lost"}
                append_event(session, row.id, "status", event)
                requeued.append(row.id)
            else:
                detail = (
                    f"the worker of attempt {row.attempt} stopped sending heartbeats and "
                    f"all {row.max_retries} retries are used"
                )
                end_job(session, row, "failed", error_type="worker_lost", error_detail=detail)
    return requeued


def release_lost_run(
    store: Store, job_id: str, attempt: int, detail: str, *, error_type: str | None = None
) -> str | None:
    """Recover one job whose worker is known to be dead (the runner saw its process exit).

    Like :func:`reap_stale` for a single run, fenced on ``attempt``, the attempt the dead worker was
    running: requeued while retries remain, else failed 'worker_lost'; a 'cancelling' job ends
    'cancelled'. With ``error_type`` the job fails with that type at once, whatever its retries (the
    worker died of the job itself, e.g. 'resource_exhausted', so running it again would not help).

    Returns
    -------
    status : str or None
        The job's new status, or None when ``attempt`` no longer owned the job (it was requeued and
        claimed again, or it ended): then nothing is written.
    """
    with store.write() as session:
        row = session.scalar(
            select(JobRow)
            .where(JobRow.id == job_id, JobRow.attempt == attempt, JobRow.status.in_(RUN_STATUSES))
            .with_for_update()
        )
        if row is None:
            return None
        if row.status == "cancelling":
            end_job(session, row, "cancelled")
        elif error_type is not None:
            end_job(session, row, "failed", error_type=error_type, error_detail=detail)
        elif row.attempt < row.max_retries + 1:
            _back_in_queue(session, row)
            append_event(
                session, row.id, "status", {"status": "queued", "attempt": attempt, "reason": detail}
            )
        else:
            end_job(
                session,
                row,
                "failed",
                error_type="worker_lost",
                error_detail=f"{detail}; all {row.max_retries} retries are used",
            )
        return row.status
