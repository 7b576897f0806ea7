"""checkpoints.sha256 and job_snapshots.sha256: every stored array is checked when it is read back.

Datasets and models already record the sha256 of their blob. Rows written before this revision have a
NULL hash, which skips the check (their bytes are still checked to decode).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("checkpoints", "job_snapshots")


def upgrade() -> None:
    # A plain ADD COLUMN: a batch operation would copy every checkpoint's bytes on SQLite.
    for table in TABLES:
        op.add_column(table, sa.Column("sha256", sa.String(64), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("sha256")
