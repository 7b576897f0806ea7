"""Dispatch records of jobs: when a job was last handed to the runner, and how many times.

The reaper of the distributed runner reads them to send again only the jobs whose message may really
be lost (queued, unclaimed, last dispatched long enough ago), with this state shared by every process.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("dispatch_count", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("dispatch_count")
        batch.drop_column("dispatched_at")
