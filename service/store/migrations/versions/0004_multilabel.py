"""Multilabel and multi-output data: the task 'multilabel', and datasets.n_outputs (columns of y).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TASK_CHECK = "task IN ('binary', 'multiclass', 'multilabel', 'regression')"
OLD_TASK_CHECK = "task IN ('binary', 'multiclass', 'regression')"


def _task_check(table: str, check: str) -> None:
    with op.batch_alter_table(table) as batch:
        batch.drop_constraint(op.f(f"ck_{table}_task"), type_="check")
        batch.create_check_constraint(op.f(f"ck_{table}_task"), check)


def upgrade() -> None:
    _task_check("models", TASK_CHECK)
    _task_check("datasets", TASK_CHECK)
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("n_outputs", sa.Integer(), server_default=sa.text("1"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("n_outputs")
    _task_check("datasets", OLD_TASK_CHECK)
    _task_check("models", OLD_TASK_CHECK)
