"""Frozen records the repository functions return: plain values, detached from any session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from service.store.tables import ApiKeyRow, DatasetRow, JobEventRow, JobMetricRow, JobRow, ModelRow


@dataclass(frozen=True, slots=True)
class DatasetRecord:
    id: str
    owner: str
    name: str
    n_samples: int
    n_features: int
    task: str
    classes: list[Any] | None
    class_counts: list[int] | dict[str, int] | None
    sha256: str
    blob_id: str
    created_at: datetime
    source: dict[str, Any]
    n_outputs: int = 1

    @classmethod
    def from_row(cls, row: DatasetRow) -> DatasetRecord:
        return cls(
            id=row.id,
            owner=row.owner,
            name=row.name,
            n_samples=row.n_samples,
            n_features=row.n_features,
            n_outputs=row.n_outputs,
            task=row.task,
            classes=row.classes,
            class_counts=row.class_counts,
            sha256=row.sha256,
            blob_id=row.blob_id,
            created_at=row.created_at,
            source=row.source,
        )


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    owner: str
    status: str
    config: dict[str, Any]
    config_hash: str
    dataset_id: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempt: int
    max_retries: int
    heartbeat_at: datetime | None
    cancel_requested: bool
    progress: dict[str, Any] | None
    metrics: dict[str, Any] | None
    best: dict[str, Any] | None
    error_type: str | None
    error_detail: str | None
    model_id: str | None
    dispatched_at: datetime | None = None
    dispatch_count: int = 0

    @property
    def error(self) -> dict[str, str | None] | None:
        """``{"type", "detail"}`` as the API shows it, or ``None``."""
        if self.error_type is None:
            return None
        return {"type": self.error_type, "detail": self.error_detail}

    @classmethod
    def from_row(cls, row: JobRow) -> JobRecord:
        return cls(
            id=row.id,
            owner=row.owner,
            status=row.status,
            config=row.config,
            config_hash=row.config_hash,
            dataset_id=row.dataset_id,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            attempt=row.attempt,
            max_retries=row.max_retries,
            heartbeat_at=row.heartbeat_at,
            cancel_requested=row.cancel_requested,
            progress=row.progress,
            metrics=row.metrics,
            best=row.best,
            error_type=row.error_type,
            error_detail=row.error_detail,
            model_id=row.model_id,
            dispatched_at=row.dispatched_at,
            dispatch_count=row.dispatch_count,
        )


@dataclass(frozen=True, slots=True)
class EpochMetrics:
    """One epoch of a job's history; a value is ``None`` when not measured or not finite."""

    epoch: int
    train_loss: float | None
    val_loss: float | None
    train_accuracy: float | None
    val_accuracy: float | None

    @classmethod
    def from_row(cls, row: JobMetricRow) -> EpochMetrics:
        return cls(row.epoch, row.train_loss, row.val_loss, row.train_accuracy, row.val_accuracy)


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A job event; ``id`` is global and increasing, and is the SSE event id."""

    id: int
    job_id: str
    kind: str
    data: dict[str, Any]
    created_at: datetime

    @classmethod
    def from_row(cls, row: JobEventRow) -> EventRecord:
        return cls(id=row.id, job_id=row.job_id, kind=row.kind, data=row.data, created_at=row.created_at)


@dataclass(frozen=True, slots=True)
class ModelRecord:
    id: str
    owner: str
    job_id: str | None
    created_at: datetime
    architecture: dict[str, Any]
    n_features: int
    task: str
    classes: list[Any] | None
    metrics: dict[str, Any]
    standardization: dict[str, Any] | None
    blob_id: str
    sha256: str

    @classmethod
    def from_row(cls, row: ModelRow) -> ModelRecord:
        return cls(
            id=row.id,
            owner=row.owner,
            job_id=row.job_id,
            created_at=row.created_at,
            architecture=row.architecture,
            n_features=row.n_features,
            task=row.task,
            classes=row.classes,
            metrics=row.metrics,
            standardization=row.standardization,
            blob_id=row.blob_id,
            sha256=row.sha256,
        )


class Checkpoint(NamedTuple):
    """The latest checkpoint of a job: unpacks as ``(epoch, data)``."""

    epoch: int
    data: bytes


class Snapshot(NamedTuple):
    """A job's latest parameter snapshot: ``.npz`` bytes taken after ``epoch``, at ``taken_at``."""

    epoch: int
    data: bytes
    taken_at: datetime


class Remembered(NamedTuple):
    """What an idempotency key is used for: unpacks as ``(request_hash, resource_id, status_code)``.

    ``resource_id`` and ``status_code`` are None while the request that reserved the key is still creating
    its resource (the key is *pending*).
    """

    request_hash: str
    resource_id: str | None
    status_code: int | None

    @property
    def pending(self) -> bool:
        return self.resource_id is None


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """An API key as stored: never the key itself, only the SHA-256 of its text."""

    id: str
    owner: str
    admin: bool
    note: str | None
    secret_sha256: str
    limits: dict[str, Any]
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: ApiKeyRow) -> KeyRecord:
        return cls(
            id=row.id,
            owner=row.owner,
            admin=bool(row.admin),
            note=row.note,
            secret_sha256=row.secret_sha256,
            limits=dict(row.limits or {}),
            created_at=row.created_at,
            revoked_at=row.revoked_at,
        )


class Usage(NamedTuple):
    """What one owner uses: active (queued, running, cancelling) jobs, datasets, models, stored bytes."""

    jobs: int
    datasets: int
    models: int
    stored_bytes: int
