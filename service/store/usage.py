"""What one owner uses: active jobs, datasets, models and the bytes they store (for quotas)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.store.db import Store
from service.store.records import Usage
from service.store.tables import BlobRow, DatasetRow, JobRow, ModelRow
from service.vocabulary import ACTIVE_STATUSES


def owner_usage(session: Session, owner: str) -> Usage:
    """The owner's usage, read in the caller's transaction."""
    jobs = session.scalar(
        select(func.count())
        .select_from(JobRow)
        .where(JobRow.owner == owner, JobRow.status.in_(ACTIVE_STATUSES))
    )
    counts = []
    stored = 0
    for table in (DatasetRow, ModelRow):
        n, nbytes = session.execute(
            select(func.count(table.id), func.coalesce(func.sum(BlobRow.nbytes), 0))
            .select_from(table)
            .join(BlobRow, BlobRow.id == table.blob_id)
            .where(table.owner == owner)
        ).one()
        counts.append(int(n))
        stored += int(nbytes)
    return Usage(jobs=int(jobs or 0), datasets=counts[0], models=counts[1], stored_bytes=stored)


def get_usage(store: Store, owner: str) -> Usage:
    """What ``owner`` uses now."""
    with store.read() as session:
        return owner_usage(session, owner)
