"""Idempotency keys are reserved before their resource is created: idempotency_keys.state.

A key's row is inserted 'pending' (resource_id holds the reservation's token) before anything is
created, and becomes 'done' in the transaction that creates the resource. Rows written before this
revision are completed ones: 'done'.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 03:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.add_column(sa.Column("state", sa.String(16), server_default=sa.text("'done'"), nullable=False))
        batch.create_check_constraint(op.f("ck_idempotency_keys_state"), "state IN ('pending', 'done')")


def downgrade() -> None:
    # Pending reservations name no resource: they go with the column.
    op.execute("DELETE FROM idempotency_keys WHERE state = 'pending'")
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_constraint(op.f("ck_idempotency_keys_state"), type_="check")
        batch.drop_column("state")
