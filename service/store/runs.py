"""What a run of a job writes: claim, heartbeats, progress, checkpoints, the end; plus the reaper.

Fencing: :func:`claim_job` increments ``attempt`` and hands the new value to the run. Every later write
by that run starts with ``UPDATE jobs ... WHERE id = :id AND attempt = :attempt AND status IN ('running',
'cancelling')``; when no row matches, the transaction raises :class:`StaleAttempt` before writing anything
else and rolls back. A run whose job was requeued, reclaimed or ended elsewhere can therefore never write it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import Row, bindparam, case, delete, func, literal, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from service.errors import NotFound, StaleAttempt
from service.store.blobs import sha256_hex, verified
from service.store.db import Store, finite_or_none, jsonable, upsert, utcnow
from service.store.jobs import append_event, append_events, end_job
from service.store.models import MODEL_FIELDS, insert_model
from service.store.records import Checkpoint, DatasetRecord, JobRecord
from service.store.snapshots import write_snapshot
from service.store.tables import CheckpointRow, DatasetRow, JobMetricRow, JobRow, UTCDateTime, table
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
    claimed = claim(store, job_id)
    return None if claimed is None else claimed.attempt


class Claimed(NamedTuple):
    """A job just claimed, with what its run reads before training, read in the claim's transaction."""

    job_id: str
    attempt: int
    config: dict[str, Any]
    #: The dataset the configuration names; None when it is gone.
    dataset: DatasetRecord | None
    #: ``(epoch, blob, sha256)`` of the job's checkpoint, not yet checked; see :meth:`checkpoint`.
    stored_checkpoint: tuple[int, bytes | None, str | None] | None

    def checkpoint(self) -> Checkpoint | None:
        """The job's latest checkpoint, or None; ``StorageCorrupted`` when its bytes fail their check."""
        if self.stored_checkpoint is None:
            return None
        epoch, blob, sha256 = self.stored_checkpoint
        return Checkpoint(epoch, verified(blob, sha256, "checkpoint of job", self.job_id))


_JOBS = table(JobRow)
_NOW = bindparam("now_", type_=UTCDateTime())
_CLAIM_VALUES = {
    "status": "running",
    "attempt": _JOBS.c.attempt + 1,
    "started_at": func.coalesce(_JOBS.c.started_at, _NOW),
    "heartbeat_at": _NOW,
}
_CLAIM_RETURNS = (_JOBS.c.id, _JOBS.c.attempt, _JOBS.c.config)
_CLAIM_ONE = (
    update(_JOBS)
    .where(_JOBS.c.id == bindparam("job_id"), _JOBS.c.status == "queued")
    .values(_CLAIM_VALUES)
    .returning(*_CLAIM_RETURNS)
)
# The first queued job in claim order; on PostgreSQL, one no concurrent claim holds (SQLite, which
# serialises writers, ignores FOR UPDATE).
_FIRST_QUEUED = (
    select(_JOBS.c.id)
    .where(_JOBS.c.status == "queued")
    .order_by(_JOBS.c.attempt == 0, _JOBS.c.id)
    .limit(1)
    .with_for_update(skip_locked=True)
    .scalar_subquery()
)
_CLAIM_NEXT = (
    update(_JOBS)
    .where(_JOBS.c.id == _FIRST_QUEUED, _JOBS.c.status == "queued")
    .values(_CLAIM_VALUES)
    .returning(*_CLAIM_RETURNS)
)
_DATASETS = table(DatasetRow)
_CHECKPOINTS = table(CheckpointRow)
# What a run reads before it trains, in one query: the dataset's record and the checkpoint's columns.
_RUN_INPUTS = (
    select(
        _JOBS.c.dataset_id.label("job_dataset_id"),
        *_DATASETS.c,
        _CHECKPOINTS.c.epoch.label("checkpoint_epoch"),
        _CHECKPOINTS.c.blob.label("checkpoint_blob"),
        _CHECKPOINTS.c.sha256.label("checkpoint_sha256"),
    )
    .select_from(_JOBS)
    .outerjoin(_DATASETS, _DATASETS.c.id == _JOBS.c.dataset_id)
    .outerjoin(_CHECKPOINTS, _CHECKPOINTS.c.job_id == _JOBS.c.id)
    .where(_JOBS.c.id == bindparam("job_id"))
)
_DATASET_FIELDS = tuple(column.name for column in _DATASETS.c)


def claim(store: Store, job_id: str | None = None) -> Claimed | None:
    """:func:`claim_job` for ``job_id``, or for the first queued job in claim order when None (interrupted
    jobs first, then the oldest), reading in the same transaction what the run needs before it trains:
    its configuration, its dataset's record and its checkpoint.

    Returns None when there was no such queued job.
    """
    with store.write_core() as conn:
        if job_id is None:
            row = conn.execute(_CLAIM_NEXT, {"now_": utcnow()}).one_or_none()
        else:
            row = conn.execute(_CLAIM_ONE, {"now_": utcnow(), "job_id": job_id}).one_or_none()
        if row is None:
            return None
        claimed_id, attempt, config = row
        append_events(conn, claimed_id, [("status", {"status": "running", "attempt": attempt})])
        return _claimed(conn, claimed_id, attempt, config)


_CONFIG = select(_JOBS.c.config).where(_JOBS.c.id == bindparam("job_id"))


def read_claimed(store: Store, job_id: str, attempt: int) -> Claimed:
    """What :func:`claim` reads for a run, read again for a run that has its attempt already."""
    with store.read_core() as conn:
        config = conn.scalar(_CONFIG, {"job_id": job_id})
        if config is None:
            raise NotFound.resource("job", job_id)
        return _claimed(conn, job_id, attempt, config)


def _claimed(conn: Connection, job_id: str, attempt: int, config: dict[str, Any]) -> Claimed:
    row = conn.execute(_RUN_INPUTS, {"job_id": job_id}).one()
    values = row._mapping
    dataset = None
    if values["id"] is not None and values["id"] == config.get("dataset_id"):
        dataset = DatasetRecord(**{name: values[name] for name in _DATASET_FIELDS})
    stored = None
    if values["checkpoint_epoch"] is not None:
        stored = (values["checkpoint_epoch"], values["checkpoint_blob"], values["checkpoint_sha256"])
    return Claimed(job_id, int(attempt), config, dataset, stored)


_RUN_IS_LIVE = (
    (_JOBS.c.id == bindparam("job_id"))
    & (_JOBS.c.attempt == bindparam("attempt_"))
    & _JOBS.c.status.in_(RUN_STATUSES)
)
# ``now``, or the stored heartbeat if later: a write that waited for the row's lock (PostgreSQL) while
# another write of the run committed a later heartbeat does not move it back.
_NOT_EARLIER = case((_JOBS.c.heartbeat_at > _NOW, _JOBS.c.heartbeat_at), else_=_NOW)
_FENCED = (_JOBS.c.status, _JOBS.c.cancel_requested, _JOBS.c.owner)
_FENCE = update(_JOBS).where(_RUN_IS_LIVE).values(heartbeat_at=_NOT_EARLIER).returning(*_FENCED)
_FENCE_WITH_PROGRESS = (
    update(_JOBS)
    .where(_RUN_IS_LIVE)
    .values(
        heartbeat_at=_NOT_EARLIER,
        progress=bindparam("progress_", type_=_JOBS.c.progress.type),
        metrics=bindparam("metrics_", type_=_JOBS.c.metrics.type),
        best=bindparam("best_", type_=_JOBS.c.best.type),
    )
    .returning(*_FENCED)
)
_JOB_EXISTS = select(_JOBS.c.id).where(_JOBS.c.id == bindparam("job_id"))


class ProgressWrite(NamedTuple):
    """What a progress write records (see :func:`record_progress`)."""

    rows: Sequence[Mapping[str, Any]]
    progress: Mapping[str, Any]
    metrics: Mapping[str, Any]
    best: Mapping[str, Any] | None
    snapshot: bytes | None = None


def _fence_core(
    conn: Connection, job_id: str, attempt: int, progress: ProgressWrite | None = None
) -> Row[Any]:
    """The fenced UPDATE every run write starts with; also a heartbeat, and with ``progress`` the job's
    latest progress, metrics and best. Returns (status, cancel_requested, owner).

    Raises ``StaleAttempt`` (or ``NotFound``) when ``attempt`` does not own the job: the caller's
    transaction then rolls back, having written nothing.
    """
    # SQLite takes its write lock when the transaction begins: the heartbeat is stamped after any wait
    # for it, so that a run kept waiting by another writer (a large checkpoint) does not look silent.
    params: dict[str, Any] = {"job_id": job_id, "attempt_": attempt, "now_": utcnow()}
    stmt = _FENCE
    if progress is not None:
        stmt = _FENCE_WITH_PROGRESS
        params.update(
            progress_=jsonable(progress.progress),
            metrics_=jsonable(progress.metrics),
            best_=jsonable(progress.best),
        )
    row = conn.execute(stmt, params).one_or_none()
    if row is None:
        if conn.scalar(_JOB_EXISTS, {"job_id": job_id}) is None:
            raise NotFound.resource("job", job_id)
        raise StaleAttempt(job_id, attempt)
    return row


def _fence(session: Session, job_id: str, attempt: int) -> Row[Any]:
    """:func:`_fence_core` in an ORM session's transaction."""
    return _fence_core(session.connection(), job_id, attempt)


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
    with store.write_core() as conn:
        return bool(_fence_core(conn, job_id, attempt).cancel_requested)


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
    write = ProgressWrite(rows, progress, metrics, best, snapshot)
    by_epoch = _by_epoch(rows)
    with store.write_core() as conn:
        fenced = _fence_core(conn, job_id, attempt, write)
        append_events(conn, job_id, [_write_progress(conn, job_id, attempt, write, by_epoch)])
        return bool(fenced.cancel_requested)


_METRICS = table(JobMetricRow)
# An epoch already recorded is replaced (a resumed run rewrites the epochs after its checkpoint).
_UPSERT_METRICS = upsert(_METRICS, ("job_id", "epoch"))


def _by_epoch(rows: Sequence[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
    """The checked metric rows by epoch (``ValueError`` for a malformed one, before any transaction)."""
    return {values["epoch"]: values for values in map(_metric_row, rows)}


def _write_progress(
    conn: Connection, job_id: str, attempt: int, write: ProgressWrite, by_epoch: dict[int, dict[str, Any]]
) -> tuple[str, dict[str, Any]]:
    """The rest of a progress write, after its fence: the epochs' history and the snapshot. Returns the
    'progress' event, for the caller to append with the transaction's other events."""
    epochs = sorted(by_epoch)
    if epochs:
        conn.execute(_UPSERT_METRICS[conn.dialect.name], [{"job_id": job_id, **by_epoch[e]} for e in epochs])
    epoch = by_epoch[epochs[-1]]["epoch"] if epochs else write.progress.get("epoch")
    if write.snapshot is not None:
        write_snapshot(conn, job_id, attempt, int(epoch or 0), write.snapshot)
    event = {"epoch": epoch, "progress": write.progress, "metrics": write.metrics, "best": write.best}
    return "progress", jsonable(event)


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
    _check_end(Ending(status, error_type, error_detail, model))
    with store.write() as session:
        _fence(session, job_id, attempt)
        row = _locked_row(session, job_id)
        model_id = None
        if model is not None:
            model_id = insert_model(session.connection(), owner=row.owner, job_id=job_id, **model).id
        end_job(session, row, status, error_type=error_type, error_detail=error_detail, model_id=model_id)
        return JobRecord.from_row(row)


class Ending(NamedTuple):
    """How a run ends its job (see :func:`finish_job`)."""

    status: str
    error_type: str | None = None
    error_detail: str | None = None
    model: Mapping[str, Any] | None = None


def _check_end(end: Ending) -> None:
    if end.status not in TERMINAL_STATUSES:
        raise ValueError(f"status must be one of {list(TERMINAL_STATUSES)}, got {end.status!r}")
    if end.status == "failed" and not end.error_type:
        raise ValueError("a failed job needs an error_type, got none")
    if end.error_type is not None and end.error_type not in ERROR_TYPES:
        raise ValueError(f"error_type must be one of {list(ERROR_TYPES)}, got {end.error_type!r}")
    if end.model is not None and set(end.model) != MODEL_FIELDS:
        raise ValueError(f"model must have exactly the keys {sorted(MODEL_FIELDS)}, got {sorted(end.model)}")


_END = update(_JOBS).where(_JOBS.c.id == bindparam("job_id_"))
_DROP_CHECKPOINT = delete(_CHECKPOINTS).where(_CHECKPOINTS.c.job_id == bindparam("job_id"))


def finish_run(
    store: Store,
    job_id: str,
    attempt: int,
    *,
    progress: ProgressWrite | None,
    end: Callable[[bool], Ending],
) -> str:
    """A run's last write, in one fenced transaction: its last progress (as :func:`record_progress`),
    then its end (as :func:`finish_job`).

    Parameters
    ----------
    store : Store
    job_id : str
    attempt : int
    progress : ProgressWrite or None
        The epochs not yet recorded, and the job's latest progress; None when there is nothing to add.
    end : callable
        ``end(cancel_requested)`` gives the :class:`Ending`: ``cancel_requested`` is the job's cancel
        flag, read by this transaction's fence, so that a cancel that came as the last epoch ended
        still ends the job cancelled. It may be called more than once, and must not change anything.

    Returns
    -------
    status : str
        The job's terminal status.

    Raises
    ------
    StaleAttempt
        When ``attempt`` no longer owns the job; nothing is written.
    ValueError
        For an invalid progress or ending (nothing is written).
    """
    by_epoch = _by_epoch(progress.rows) if progress is not None else {}
    with store.write_core() as conn:
        fenced = _fence_core(conn, job_id, attempt, progress)
        events = []
        if progress is not None:
            events.append(_write_progress(conn, job_id, attempt, progress, by_epoch))
        ending = end(bool(fenced.cancel_requested))
        _check_end(ending)
        model_id = None
        if ending.model is not None:
            model_id = insert_model(conn, owner=fenced.owner, job_id=job_id, **ending.model).id
        conn.execute(
            _END,
            {
                "job_id_": job_id,
                "status": ending.status,
                "finished_at": utcnow(),
                "error_type": ending.error_type,
                "error_detail": ending.error_detail,
                "model_id": model_id,
            },
        )
        # A finished job is never resumed, so its checkpoint is dead weight.
        conn.execute(_DROP_CHECKPOINT, {"job_id": job_id})
        error = (
            None if ending.error_type is None else {"type": ending.error_type, "detail": ending.error_detail}
        )
        payload = {"status": ending.status, "attempt": attempt, "model_id": model_id, "error": error}
        append_events(conn, job_id, [*events, ("status", payload), ("end", payload)])
        return ending.status


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
