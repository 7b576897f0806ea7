"""job_snapshots: the latest parameters of a running job, written with its progress.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_snapshots",
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job_id", name="pk_job_snapshots"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_job_snapshots_job_id_jobs", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    op.drop_table("job_snapshots")
