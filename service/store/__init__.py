"""Persistence of the service: datasets, jobs and their runs, models, idempotency keys.

SQLAlchemy 2 (sync) over a SQLite file by default or PostgreSQL; the schema is managed by Alembic and
brought up to date by :func:`open_store`. Repository functions take the :class:`Store` first, run one
transaction each, return frozen records and raise the domain errors of :mod:`service.errors`
(``NotFound``, ``Conflict``, ``StaleAttempt``, ``QueueFull``, ``StoreUnavailable``).

Where things are: ``db.py`` (engine, sessions, migrations, ids), ``tables.py`` (schema), ``records.py``
(returned values), ``blobs.py`` (``.npz`` bytes), ``datasets.py``, ``jobs.py`` (client side of jobs),
``runs.py`` (what a run writes, fenced on its attempt, and the reaper), ``dispatch.py`` (which
queued jobs may have lost their message), ``models.py``, ``idempotency.py``.
"""

from service.store.blobs import decode_npz, encode_npz
from service.store.datasets import (
    create_dataset,
    delete_dataset,
    get_dataset,
    list_datasets,
    load_dataset_arrays,
)
from service.store.db import DEFAULT_URL, Store, open_store
from service.store.dispatch import take_redispatch
from service.store.idempotency import Claim, recall, release, reserve
from service.store.jobs import (
    count_queued,
    create_job,
    delete_job,
    events_after,
    events_since,
    get_job,
    job_statuses,
    list_job_metrics,
    list_jobs,
    queue_job,
    queue_position,
    queued_job_ids,
    read_job,
    request_cancel,
)
from service.store.keys import create_key, find_key, list_keys, revoke_key
from service.store.models import create_model, delete_model, get_model, list_models, load_model_parameters
from service.store.notify import EventWatcher
from service.store.records import (
    Checkpoint,
    DatasetRecord,
    EpochMetrics,
    EventRecord,
    JobRecord,
    KeyRecord,
    ModelRecord,
    Remembered,
    Snapshot,
    Usage,
)
from service.store.runs import (
    Claimed,
    Ending,
    ProgressWrite,
    claim,
    claim_job,
    finish_job,
    finish_run,
    heartbeat,
    load_checkpoint,
    read_claimed,
    reap_stale,
    record_progress,
    release_lost_run,
    requeue_job,
    save_checkpoint,
    truncate_metrics_after,
)
from service.store.snapshots import load_snapshot
from service.store.usage import get_usage

__all__ = [
    "DEFAULT_URL",
    "Checkpoint",
    "Claim",
    "Claimed",
    "DatasetRecord",
    "Ending",
    "EpochMetrics",
    "EventRecord",
    "EventWatcher",
    "JobRecord",
    "KeyRecord",
    "ModelRecord",
    "ProgressWrite",
    "Remembered",
    "Snapshot",
    "Store",
    "Usage",
    "claim",
    "claim_job",
    "count_queued",
    "create_dataset",
    "create_job",
    "create_key",
    "create_model",
    "decode_npz",
    "delete_dataset",
    "delete_job",
    "delete_model",
    "encode_npz",
    "events_after",
    "events_since",
    "find_key",
    "finish_job",
    "finish_run",
    "get_dataset",
    "get_job",
    "get_model",
    "get_usage",
    "heartbeat",
    "job_statuses",
    "list_datasets",
    "list_job_metrics",
    "list_jobs",
    "list_keys",
    "list_models",
    "load_checkpoint",
    "load_dataset_arrays",
    "load_model_parameters",
    "load_snapshot",
    "open_store",
    "queue_job",
    "queue_position",
    "queued_job_ids",
    "read_claimed",
    "read_job",
    "reap_stale",
    "recall",
    "record_progress",
    "release",
    "release_lost_run",
    "request_cancel",
    "requeue_job",
    "reserve",
    "revoke_key",
    "save_checkpoint",
    "take_redispatch",
    "truncate_metrics_after",
]
