"""Service functions of the /v1/jobs resource: create, read, list, metrics, cancel and the event stream.

Every function here that touches the store is synchronous (one short transaction or a few) and is
called from a worker thread by the router, except :func:`event_stream`, an async generator that polls
the store from a thread. Responses are plain dicts whose shape is documented by ``service.http.schemas.jobs``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import numpy as np
import orjson

from engine.datasets import task_of
from service.errors import Conflict, InvalidInput, NotFound, QueueFull, field_error
from service.http.body import JSONBody, validate
from service.http.responses import dumps
from service.http.schemas.training import InlineDataset, TrainingConfig
from service.runners import Runner
from service.runners.artifacts import architecture_from_json
from service.runners.spec import architecture_for, check_task, config_hash, resolve
from service.services import datasets
from service.settings import Settings
from service.store import (
    DatasetRecord,
    EventRecord,
    JobRecord,
    Store,
    delete_dataset,
    events_since,
    get_dataset,
    get_job,
    get_model,
    list_job_metrics,
    list_jobs,
    queue_position,
    queued_job_ids,
    recall,
    remember,
    request_cancel,
)
from service.store import create_job as store_create_job
from service.vocabulary import TERMINAL_STATUSES

Array = np.ndarray[Any, Any]

IDEMPOTENCY_SCOPE = "POST /v1/jobs"
INLINE_PREFIX = "dataset."  # field names of a job's inline data in error messages
# Event stream timing: how often the store is polled for new events, and how long a stream may stay
# silent before a comment line keeps proxies and clients from timing it out.
EVENT_POLL_S = 0.2
KEEPALIVE_S = 10.0
EVENT_BATCH = 500
# Queue positions of a page are looked up in one query while the queue is at most this long.
_POSITION_SCAN = 10_000


def location(job_id: str) -> str:
    """The URL path of a job."""
    return f"/v1/jobs/{job_id}"


# ---- the Job document ------------------------------------------------------------------------------


def job_document(job: JobRecord, position: int | None) -> dict[str, Any]:
    """The Job as the API shows it (see ``service.http.schemas.jobs.Job``)."""
    config = job.config
    progress = job.progress or {
        "epoch": 0,
        "total_epochs": config.get("epochs"),
        "fraction": 0.0,
        "elapsed_s": None,
        "eta_s": None,
    }
    latest = job.metrics or {}
    metrics: dict[str, Any] = {"train_loss": latest.get("train_loss"), "val_loss": latest.get("val_loss")}
    for key in ("train_accuracy", "val_accuracy"):
        if key in latest:
            metrics[key] = latest[key]
    best = job.best or {}
    document: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "config": config,
        "config_hash": job.config_hash,
        "dataset_id": job.dataset_id,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "attempt": job.attempt,
        "queue_position": position,
        "progress": progress,
        "metrics": metrics,
        # The run reports epoch 0 until an epoch has finished; the API says null.
        "best": {"epoch": best.get("epoch") or None, "val_loss": best.get("val_loss")},
    }
    if job.error is not None:
        document["error"] = job.error
    if job.model_id is not None:
        document["model_id"] = job.model_id
    return document


def _document(store: Store, job: JobRecord) -> dict[str, Any]:
    return job_document(job, queue_position(store, job) if job.status == "queued" else None)


# ---- create ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Created:
    """The answer to POST /v1/jobs: status code (202 new, 200 replay or dry run) and body."""

    status_code: int
    body: dict[str, Any]
    job_id: str | None = None


@dataclass(frozen=True)
class _Target:
    """What a job will train on: a stored dataset (``dataset_id``) or inline data still to be stored."""

    task: str
    n_features: int
    n_classes: int | None
    dataset_id: str | None = None
    X: Array | None = None
    y: datasets.Labels | None = None


def request_hash(body: JSONBody) -> str:
    """SHA-256 of the body's JSON content (keys sorted), so that the same body always hashes the same."""
    return hashlib.sha256(orjson.dumps(body.data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def check_idempotency_key(key: str | None) -> str | None:
    """The key, or 422 when it is empty or longer than 255 characters."""
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not key.isprintable():
        msg = f"must be 1 to 255 printable characters, got {len(key)} characters"
        raise InvalidInput(
            f"Idempotency-Key {msg}", errors=[{"loc": ["header", "idempotency-key"], "msg": msg}]
        )
    return key


def create(
    store: Store,
    runner: Runner,
    settings: Settings,
    body: JSONBody,
    *,
    idempotency_key: str | None = None,
    dry_run: bool = False,
) -> Created:
    """Validate a TrainingConfig, store inline data as a dataset, queue the job and hand it to the runner.

    Parameters
    ----------
    store : Store
    runner : Runner
    settings : Settings
    body : JSONBody
        The parsed request body, a TrainingConfig.
    idempotency_key : str, optional
        A replay of a key with the same body answers 200 with the job the key first created (in its
        current state); with a different body, 409. Dry runs neither read nor record keys.
    dry_run : bool
        Validate and resolve only: answer 200 with the resolved configuration, store nothing.

    Returns
    -------
    Created
        202 and the new Job; 200 and the original Job for a replay; 200 and a DryRun for a dry run.

    Raises
    ------
    InvalidInput
        422 for an invalid configuration, a model type that cannot learn the dataset's task, or a warm
        start model of another architecture.
    NotFound
        404 for an unknown dataset or warm start model.
    QueueFull
        429 when ``settings.max_queued_jobs`` jobs are queued.
    Conflict
        409 when the idempotency key was used with a different body.
    """
    owner = settings.owner
    digest = request_hash(body) if idempotency_key is not None and not dry_run else ""
    if idempotency_key is not None and not dry_run:
        entry = recall(store, owner, IDEMPOTENCY_SCOPE, idempotency_key)
        if entry is not None:
            return _replay(store, owner, idempotency_key, digest, entry.request_hash, entry.resource_id)

    config = validate(TrainingConfig, body)
    target = _target(store, settings, config, body)
    _check_task(config.model.type, target)
    resolved = resolve(config, target.dataset_id or "")
    resolved["dataset_id"] = target.dataset_id
    if config.warm_start_model_id is not None:
        _check_warm_start(store, owner, config.warm_start_model_id, resolved, target)
    if dry_run:
        return Created(200, {"config": resolved, "config_hash": config_hash(resolved), "task": target.task})

    inline = config.dataset
    dataset_id = target.dataset_id
    if inline is not None:
        dataset_id = _store_inline(store, settings, inline, target).id
        resolved["dataset_id"] = dataset_id
    try:
        job = store_create_job(
            store,
            owner=owner,
            config=resolved,
            config_hash=config_hash(resolved),
            dataset_id=dataset_id,
            max_retries=config.max_retries,
            max_queued=settings.max_queued_jobs,
        )
    except (QueueFull, NotFound):
        if inline is not None and dataset_id is not None:
            # The inline dataset exists only for this job; a refused job must not leave it behind.
            delete_dataset(store, dataset_id, owner=owner)
        raise
    if idempotency_key is not None:
        try:
            entry = remember(store, owner, IDEMPOTENCY_SCOPE, idempotency_key, digest, job.id, 202)
        except BaseException:
            # The client is told the request failed: the job must not run behind its back.
            request_cancel(store, job.id, owner=owner)
            raise
        if entry.resource_id != job.id:
            # A concurrent request with the same key won the race: withdraw this duplicate (still queued,
            # unless a worker already took it, in which case its run ends it) and answer as a replay.
            request_cancel(store, job.id, owner=owner)
            return _replay(store, owner, idempotency_key, digest, entry.request_hash, entry.resource_id)
    runner.submit(job.id)
    # Read again: a worker may have taken the job already, and the answer shows its current state.
    return Created(202, _document(store, get_job(store, job.id)), job.id)


def _replay(store: Store, owner: str, key: str, digest: str, original_hash: str, job_id: str) -> Created:
    if original_hash != digest:
        raise Conflict(
            f"Idempotency-Key {key!r} was already used with a different request body (for job {job_id}); "
            "use a new key for a new job"
        )
    return Created(200, _document(store, get_job(store, job_id, owner=owner)), job_id)


def _target(store: Store, settings: Settings, config: TrainingConfig, body: JSONBody) -> _Target:
    if config.dataset_id is not None:
        record = get_dataset(store, config.dataset_id, owner=settings.owner)
        return _Target(record.task, record.n_features, _n_classes(record), dataset_id=record.id)
    inline = config.dataset
    if inline is None:  # unreachable: the TrainingConfig validator demands one of the two
        raise field_error("dataset", "is required when dataset_id is not given")
    if inline.generator is not None:
        spec = inline.generator
        try:
            task = task_of(spec.kind, spec.n_classes)
        except ValueError as exc:
            raise field_error("dataset.generator", str(exc)) from None
        if inline.task is not None and inline.task != task:
            raise field_error(
                "dataset.task", f"must be {task!r} or absent for generator {spec.kind!r}, got {inline.task!r}"
            )
        n_classes = None if task == "regression" else spec.n_classes or (2 if task == "binary" else 3)
        return _Target(task, spec.n_features or 2, n_classes)
    raw = body.data["dataset"]
    X, y = datasets.arrays_from_json(
        raw["X"], raw["y"], settings, scan_booleans=body.scan_booleans, field_prefix=INLINE_PREFIX
    )
    if len(y) != len(X):
        raise field_error(f"{INLINE_PREFIX}y", f"has {len(y)} entries but {INLINE_PREFIX}X has {len(X)} rows")
    labels = datasets.encode_labels(y, inline.task, f"{INLINE_PREFIX}y")
    n_classes = len(labels.classes) if labels.classes else None
    return _Target(labels.task, int(X.shape[1]), n_classes, X=X, y=y)


def _n_classes(record: DatasetRecord) -> int | None:
    return len(record.classes) if record.classes else None


def _store_inline(store: Store, settings: Settings, inline: InlineDataset, target: _Target) -> DatasetRecord:
    """Store a job's inline data as a dataset of its own (the job then refers to it by id)."""
    if inline.generator is not None or target.X is None or target.y is None:
        if inline.generator is None:  # unreachable: _target converts inline arrays
            raise field_error(INLINE_PREFIX.rstrip("."), "holds no data")
        return datasets.ingest_generator(
            store,
            settings,
            owner=settings.owner,
            name=inline.name,
            spec=inline.generator,
            field_prefix=INLINE_PREFIX,
        )
    return datasets.ingest_arrays(
        store,
        settings,
        owner=settings.owner,
        name=inline.name,
        X=target.X,
        y=target.y,
        task=inline.task,
        source={"kind": "json", "inline_in": "job"},
        field_prefix=INLINE_PREFIX,
    )


def _check_task(model_type: str, target: _Target) -> None:
    try:
        check_task(model_type, target.task, target.n_classes)
    except ValueError as exc:
        loc = ["body", "model", "type"]
        raise InvalidInput(f"model.type: {exc}", errors=[{"loc": loc, "msg": str(exc)}]) from None


def _check_warm_start(
    store: Store, owner: str, model_id: str, resolved: dict[str, Any], target: _Target
) -> None:
    """The warm start model must exist (404) and have the architecture this job trains (422)."""
    record = get_model(store, model_id, owner=owner)
    wanted = architecture_for(resolved, target.task, target.n_features, target.n_classes)
    try:
        stored = architecture_from_json(record.architecture)
    except ValueError as exc:
        raise field_error(
            "warm_start_model_id", f"names a model whose architecture is unusable: {exc}"
        ) from None
    if stored.layer_sizes != wanted.layer_sizes or stored.activations != wanted.activations:
        raise field_error(
            "warm_start_model_id",
            f"names model {model_id} with layers {list(stored.layer_sizes)} {list(stored.activations)}, "
            f"but this job trains {list(wanted.layer_sizes)} {list(wanted.activations)}",
        )


# ---- read, list, cancel ----------------------------------------------------------------------------


def read(store: Store, settings: Settings, job_id: str) -> dict[str, Any]:
    """The Job ``job_id`` with its queue position; 404 when unknown."""
    return _document(store, get_job(store, job_id, owner=settings.owner))


def list_page(
    store: Store, settings: Settings, *, status: str | None, limit: int, cursor: str | None
) -> dict[str, Any]:
    """One page of jobs, newest first: ``{"items", "next_cursor"}``."""
    try:
        jobs, next_cursor = list_jobs(store, settings.owner, status=status, limit=limit, cursor=cursor)
    except ValueError as exc:
        # status and limit are checked by the query parameters' types; only the cursor is left.
        raise InvalidInput(f"cursor: {exc}", errors=[{"loc": ["query", "cursor"], "msg": str(exc)}]) from None
    queue: dict[str, int] = {}
    if any(job.status == "queued" for job in jobs):
        queue = {job_id: i for i, job_id in enumerate(queued_job_ids(store, limit=_POSITION_SCAN))}

    def position(job: JobRecord) -> int | None:
        if job.status != "queued":
            return None
        if len(queue) >= _POSITION_SCAN:
            return queue_position(store, job)
        # The page and the queue are two reads: a job missing from the queue has started meanwhile.
        return queue.get(job.id)

    return {"items": [job_document(job, position(job)) for job in jobs], "next_cursor": next_cursor}


def cancel(store: Store, settings: Settings, job_id: str) -> dict[str, Any]:
    """Ask a job to stop: a queued one is cancelled at once, a running one becomes 'cancelling'.

    Raises ``NotFound`` (404) and ``Conflict`` (409, the job is already terminal).
    """
    return _document(store, request_cancel(store, job_id, owner=settings.owner))


# ---- metric history ----------------------------------------------------------------------------------


def downsample_indices(n: int, max_points: int | None) -> Array:
    """Indices of ``max_points`` evenly spaced entries of ``n``, the first and last always among them.

    Parameters
    ----------
    n : int
        Length of the history.
    max_points : int or None
        At least 2; None keeps every entry.

    Returns
    -------
    ndarray of int64, of shape (min(n, max_points),)
        Strictly increasing; ends with ``n - 1`` when ``n > 0``.
    """
    if max_points is None or n <= max_points:
        return np.arange(n, dtype=np.int64)
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    # Integer arithmetic: i·(n−1) // (m−1) steps by at least 1 (n > m), so no index repeats, and the
    # last one is exactly n − 1.
    return np.arange(max_points, dtype=np.int64) * (n - 1) // (max_points - 1)


def metrics(
    store: Store, settings: Settings, job_id: str, *, since_epoch: int | None, max_points: int | None
) -> dict[str, Any]:
    """The job's per-epoch history after ``since_epoch``, downsampled to ``max_points``."""
    get_job(store, job_id, owner=settings.owner)
    rows = list_job_metrics(store, job_id, after_epoch=since_epoch)
    keep = downsample_indices(len(rows), max_points)
    chosen = [rows[i] for i in keep.tolist()]
    result: dict[str, Any] = {
        "epochs": [row.epoch for row in chosen],
        "train_loss": [row.train_loss for row in chosen],
        "val_loss": [row.val_loss for row in chosen],
    }
    for key in ("train_accuracy", "val_accuracy"):
        values = [getattr(row, key) for row in chosen]
        if any(value is not None for value in values):
            result[key] = values
    result["total_points"] = len(rows)
    return result


# ---- server-sent events ------------------------------------------------------------------------------


def parse_last_event_id(header: str | None, query: int | None) -> int:
    """Where a stream resumes: the ``Last-Event-ID`` header, else ``?last_event_id=``, else 0."""
    if header is None or not header.strip():
        return query or 0
    value = header.strip()
    if not value.isdigit():
        msg = f"must be a non-negative integer event id, got {value[:40]!r}"
        raise InvalidInput(f"Last-Event-ID {msg}", errors=[{"loc": ["header", "last-event-id"], "msg": msg}])
    return int(value)


def format_event(event: EventRecord) -> bytes:
    """One SSE message: ``id``, ``event`` and a single-line JSON ``data``, then a blank line."""
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.id, event.kind.encode(), dumps(event.data))


KEEPALIVE = b": keep-alive\n\n"


async def event_stream(
    store: Store,
    job_id: str,
    after: int = 0,
    *,
    poll_s: float = EVENT_POLL_S,
    keepalive_s: float = KEEPALIVE_S,
) -> AsyncIterator[bytes]:
    """The job's events after id ``after``, as SSE bytes, until its ``end`` event.

    Parameters
    ----------
    store : Store
    job_id : str
        A job that exists (the caller checks, so that an unknown id gets a 404 and not an empty stream).
    after : int
        The last event id the client has seen (``Last-Event-ID``).
    poll_s : float
        Seconds between polls of the store while no new event is there.
    keepalive_s : float
        A ``: keep-alive`` comment is sent after this many silent seconds.

    Yields
    ------
    bytes
        One or more complete SSE messages (or a keep-alive comment). The generator returns after the
        ``end`` event, or at once when the job is terminal and every event up to its end was seen.
    """
    last_sent = last_check = time.monotonic()
    check_terminal = True
    while True:
        # Read the status before the events: ending a job appends its 'end' event in the same
        # transaction, so a job seen terminal here has every event committed for the read below.
        terminal = False
        if check_terminal:
            job = await anyio.to_thread.run_sync(get_job, store, job_id)
            terminal = job.status in TERMINAL_STATUSES
            check_terminal, last_check = False, time.monotonic()
        events = await anyio.to_thread.run_sync(events_since, store, job_id, after, EVENT_BATCH)
        if events:
            end = next((i for i, e in enumerate(events) if e.kind == "end"), None)
            if end is not None:
                events = events[: end + 1]
            yield b"".join(format_event(event) for event in events)
            after, last_sent = events[-1].id, time.monotonic()
            if end is not None:
                return
            if len(events) == EVENT_BATCH:
                continue  # more are waiting: no pause
        elif terminal:
            return  # resumed after the end: nothing is left to send
        now = time.monotonic()
        if now - last_sent >= keepalive_s:
            yield KEEPALIVE
            last_sent = now
        # Rarely, recheck the status: a stream never ends on its own if its 'end' event is behind it.
        check_terminal = now - last_check >= keepalive_s
        await anyio.sleep(poll_s)
