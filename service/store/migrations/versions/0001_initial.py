"""Initial schema: blobs, datasets, models, jobs, job_metrics, job_events, checkpoints, idempotency_keys.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TASK_CHECK = "task IN ('binary', 'multiclass', 'regression')"
STATUS_CHECK = "status IN ('queued', 'running', 'cancelling', 'succeeded', 'failed', 'cancelled')"
KIND_CHECK = "kind IN ('status', 'progress', 'end')"


def _id(name: str = "id") -> sa.Column[Any]:
    return sa.Column(name, sa.String(32), nullable=False)


def _timestamp(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _json(name: str, nullable: bool) -> sa.Column[Any]:
    return sa.Column(name, sa.JSON(none_as_null=True), nullable=nullable)


def _owner() -> sa.Column[Any]:
    return sa.Column("owner", sa.Text(), server_default=sa.text("'default'"), nullable=False)


def upgrade() -> None:
    _blobs()
    _datasets()
    _models()
    _jobs()
    _job_metrics()
    _job_events()
    _checkpoints()
    _idempotency_keys()


def _blobs() -> None:
    op.create_table(
        "blobs",
        _id(),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("nbytes", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_blobs"),
    )


def _datasets() -> None:
    op.create_table(
        "datasets",
        _id(),
        _owner(),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("n_samples", sa.Integer(), nullable=False),
        sa.Column("n_features", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(16), nullable=False),
        _json("classes", nullable=True),
        _json("class_counts", nullable=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        _id("blob_id"),
        _timestamp("created_at"),
        _json("source", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
        sa.ForeignKeyConstraint(["blob_id"], ["blobs.id"], name="fk_datasets_blob_id_blobs"),
        sa.CheckConstraint(TASK_CHECK, name=op.f("ck_datasets_task")),
    )
    op.create_index("ix_datasets_owner_id", "datasets", ["owner", "id"])


def _models() -> None:
    op.create_table(
        "models",
        _id(),
        _owner(),
        sa.Column("job_id", sa.String(32), nullable=True),
        _timestamp("created_at"),
        _json("architecture", nullable=False),
        sa.Column("n_features", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(16), nullable=False),
        _json("classes", nullable=True),
        _json("metrics", nullable=False),
        _json("standardization", nullable=True),
        _id("blob_id"),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_models"),
        sa.ForeignKeyConstraint(["blob_id"], ["blobs.id"], name="fk_models_blob_id_blobs"),
        sa.CheckConstraint(TASK_CHECK, name=op.f("ck_models_task")),
    )
    op.create_index("ix_models_owner_id", "models", ["owner", "id"])
    op.create_index("ix_models_job_id", "models", ["job_id"])


def _jobs() -> None:
    op.create_table(
        "jobs",
        _id(),
        _owner(),
        sa.Column("status", sa.String(16), nullable=False),
        _json("config", nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("dataset_id", sa.String(32), nullable=True),
        _timestamp("created_at"),
        _timestamp("started_at", nullable=True),
        _timestamp("finished_at", nullable=True),
        sa.Column("attempt", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("max_retries", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _timestamp("heartbeat_at", nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), server_default=sa.false(), nullable=False),
        _json("progress", nullable=True),
        _json("metrics", nullable=True),
        _json("best", nullable=True),
        sa.Column("error_type", sa.String(64), nullable=True),
        sa.Column("error_detail", sa.Text(), nullable=True),
        sa.Column("model_id", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name="fk_jobs_dataset_id_datasets", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name="fk_jobs_model_id_models", ondelete="SET NULL"
        ),
        sa.CheckConstraint(STATUS_CHECK, name=op.f("ck_jobs_status")),
    )
    op.create_index("ix_jobs_owner_id", "jobs", ["owner", "id"])
    op.create_index("ix_jobs_status_id", "jobs", ["status", "id"])
    op.create_index("ix_jobs_dataset_id", "jobs", ["dataset_id"])


def _job_metrics() -> None:
    op.create_table(
        "job_metrics",
        _id("job_id"),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("train_loss", sa.Double(), nullable=True),
        sa.Column("val_loss", sa.Double(), nullable=True),
        sa.Column("train_accuracy", sa.Double(), nullable=True),
        sa.Column("val_accuracy", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("job_id", "epoch", name="pk_job_metrics"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_job_metrics_job_id_jobs", ondelete="CASCADE"
        ),
    )


def _job_events() -> None:
    op.create_table(
        "job_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        _id("job_id"),
        sa.Column("kind", sa.String(16), nullable=False),
        _json("data", nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_job_events"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_job_events_job_id_jobs", ondelete="CASCADE"
        ),
        sa.CheckConstraint(KIND_CHECK, name=op.f("ck_job_events_kind")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_job_events_job_id_id", "job_events", ["job_id", "id"])


def _checkpoints() -> None:
    op.create_table(
        "checkpoints",
        _id("job_id"),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("job_id", name="pk_checkpoints"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_checkpoints_job_id_jobs", ondelete="CASCADE"
        ),
    )


def _idempotency_keys() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        _id("resource_id"),
        sa.Column("status_code", sa.Integer(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("owner", "scope", "key", name="pk_idempotency_keys"),
    )


def downgrade() -> None:
    for table in (
        "idempotency_keys",
        "checkpoints",
        "job_events",
        "job_metrics",
        "jobs",
        "models",
        "datasets",
        "blobs",
    ):
        op.drop_table(table)
