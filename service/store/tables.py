"""ORM tables of the store (SQLAlchemy 2 typed declarative).

The Alembic migrations under ``migrations/versions/`` are the authority on the schema; these classes mirror
them, and a test checks that the two agree.

Big bytes live only in ``blobs.data``, ``checkpoints.blob`` and ``job_snapshots.blob``, which no list
query selects.
Foreign keys: ``jobs.dataset_id`` and ``jobs.model_id`` are set to NULL when their dataset or model is
deleted (a finished job outlives both); ``models.job_id`` is a plain column because imported models have
no job and a job row must not depend on its model existing first.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from service.vocabulary import EVENT_KINDS, JOB_STATUSES, TASKS

DEFAULT_OWNER = "default"

# Stable constraint names let later migrations (batch mode on SQLite) refer to constraints by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    SQLite has no time zones, so values are stored there as naive UTC and given ``tzinfo=UTC`` back on load;
    naive datetimes are refused on the way in because their zone would be a guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"timestamps must be timezone-aware, got naive {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json() -> JSON:
    # None is stored as SQL NULL rather than the JSON literal null, so "IS NULL" means "absent".
    return JSON(none_as_null=True)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class BlobRow(Base):
    __tablename__ = "blobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    nbytes: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DatasetRow(Base):
    __tablename__ = "datasets"
    __table_args__ = (
        CheckConstraint(_in("task", TASKS), name="task"),
        Index("ix_datasets_owner_id", "owner", "id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(Text, server_default=text(f"'{DEFAULT_OWNER}'"))
    name: Mapped[str] = mapped_column(Text)
    n_samples: Mapped[int] = mapped_column(Integer)
    n_features: Mapped[int] = mapped_column(Integer)
    # Columns of y: 1 for one label or target per sample, more for multilabel or multi-output data.
    n_outputs: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    task: Mapped[str] = mapped_column(String(16))
    classes: Mapped[Any | None] = mapped_column(_json())
    class_counts: Mapped[Any | None] = mapped_column(_json())
    sha256: Mapped[str] = mapped_column(String(64))
    blob_id: Mapped[str] = mapped_column(ForeignKey("blobs.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    source: Mapped[Any] = mapped_column(_json())


class ModelRow(Base):
    __tablename__ = "models"
    __table_args__ = (
        CheckConstraint(_in("task", TASKS), name="task"),
        Index("ix_models_owner_id", "owner", "id"),
        Index("ix_models_job_id", "job_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(Text, server_default=text(f"'{DEFAULT_OWNER}'"))
    job_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    architecture: Mapped[Any] = mapped_column(_json())
    n_features: Mapped[int] = mapped_column(Integer)
    task: Mapped[str] = mapped_column(String(16))
    classes: Mapped[Any | None] = mapped_column(_json())
    metrics: Mapped[Any] = mapped_column(_json())
    standardization: Mapped[Any | None] = mapped_column(_json())
    blob_id: Mapped[str] = mapped_column(ForeignKey("blobs.id"))
    sha256: Mapped[str] = mapped_column(String(64))


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_in("status", JOB_STATUSES), name="status"),
        Index("ix_jobs_owner_id", "owner", "id"),
        Index("ix_jobs_status_id", "status", "id"),
        Index("ix_jobs_dataset_id", "dataset_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(Text, server_default=text(f"'{DEFAULT_OWNER}'"))
    status: Mapped[str] = mapped_column(String(16))
    config: Mapped[Any] = mapped_column(_json())
    config_hash: Mapped[str] = mapped_column(String(64))
    dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempt: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    max_retries: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the job was last handed to the runner (created, requeued or sent again), and how many times.
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dispatch_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    cancel_requested: Mapped[bool] = mapped_column(server_default=false())
    progress: Mapped[Any | None] = mapped_column(_json())
    metrics: Mapped[Any | None] = mapped_column(_json())
    best: Mapped[Any | None] = mapped_column(_json())
    error_type: Mapped[str | None] = mapped_column(String(64))
    error_detail: Mapped[str | None] = mapped_column(Text)
    model_id: Mapped[str | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"))


class JobMetricRow(Base):
    __tablename__ = "job_metrics"

    # The primary key makes "each epoch of a job is recorded exactly once" a database fact.
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    train_loss: Mapped[float | None] = mapped_column(Double())
    val_loss: Mapped[float | None] = mapped_column(Double())
    train_accuracy: Mapped[float | None] = mapped_column(Double())
    val_accuracy: Mapped[float | None] = mapped_column(Double())


class JobEventRow(Base):
    __tablename__ = "job_events"
    __table_args__ = (
        CheckConstraint(_in("kind", EVENT_KINDS), name="kind"),
        Index("ix_job_events_job_id_id", "job_id", "id"),
        # AUTOINCREMENT: SQLite never hands out an id twice, even after the largest row is deleted.
        {"sqlite_autoincrement": True},
    )

    # BIGINT on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is the auto-incrementing rowid.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    data: Mapped[Any] = mapped_column(_json())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CheckpointRow(Base):
    __tablename__ = "checkpoints"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[int] = mapped_column(Integer)
    blob: Mapped[bytes] = mapped_column(LargeBinary)
    # The blob's sha256, checked when it is read back (None for rows older than the column).
    sha256: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class JobSnapshotRow(Base):
    """The parameters of a job's latest progress write (small models only), for following it live."""

    __tablename__ = "job_snapshots"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[int] = mapped_column(Integer)
    blob: Mapped[bytes] = mapped_column(LargeBinary)
    # The blob's sha256, checked when it is read back (None for rows older than the column).
    sha256: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IdempotencyKeyRow(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (CheckConstraint(_in("state", ("pending", "done")), name="state"),)

    owner: Mapped[str] = mapped_column(Text, primary_key=True)
    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # 'pending' while the request that reserved the key creates its resource (resource_id holds the
    # reservation's token), then 'done'.
    state: Mapped[str] = mapped_column(String(16), server_default=text("'done'"))
    request_hash: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(32))
    status_code: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiKeyRow(Base):
    """An API key: only the SHA-256 of the key is stored, never the key itself."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_owner", "owner"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(Text)
    admin: Mapped[bool] = mapped_column(server_default=false())
    note: Mapped[str | None] = mapped_column(Text)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    # Overrides of the owner's quotas and of the key's rate limit: {"jobs": 5, "rate_limit": "10/second"}.
    limits: Mapped[Any | None] = mapped_column(_json())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


def table(row: type[Base]) -> Table:
    """The Core table of an ORM class, for the statements of the hot paths (SQLAlchemy Core, no ORM)."""
    found = row.__table__
    assert isinstance(found, Table)
    return found
