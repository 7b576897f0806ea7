"""Reading and cancelling jobs: one job, pages of them (with queue positions), a cancel request."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from service.services.jobs.document import document, job_document
from service.services.pagination import page
from service.store import (
    JobRecord,
    Store,
    delete_job,
    get_job,
    list_jobs,
    queue_position,
    queued_job_ids,
    read_job,
    request_cancel,
)

audit = logging.getLogger("descent.audit")

# Queue positions of a page are looked up in one query while the queue is at most this long.
_POSITION_SCAN = 10_000


def read(store: Store, owner: str | None, job_id: str) -> dict[str, Any]:
    """The Job ``job_id`` with its queue position; 404 when unknown or not ``owner``'s (None: anyone's)."""
    return job_document(*read_job(store, job_id, owner=owner))


def status(store: Store, owner: str | None, job_id: str) -> str:
    """The job's status; 404 when unknown or not ``owner``'s (None: anyone's)."""
    return get_job(store, job_id, owner=owner).status


def list_page(
    store: Store, owner: str | None, *, status: Sequence[str], limit: int, cursor: str | None
) -> dict[str, Any]:
    """One page of ``owner``'s jobs (every owner's when None), newest first, in any of the ``status``
    given (all when empty)."""

    def read_page(n: int, after: str | None) -> tuple[list[JobRecord], str | None]:
        return list_jobs(store, owner, status=status, limit=n, cursor=after)

    return page(read_page, limit, cursor, lambda jobs: _documents(store, jobs))


def _documents(store: Store, jobs: Sequence[JobRecord]) -> list[dict[str, Any]]:
    """The Jobs of a page, their queue positions read in one query."""
    queue: dict[str, int] = {}
    if any(job.status == "queued" for job in jobs):
        queue = {job_id: i for i, job_id in enumerate(queued_job_ids(store, limit=_POSITION_SCAN))}

    def position(job: JobRecord) -> int | None:
        if job.status != "queued":
            return None
        if len(queue) >= _POSITION_SCAN:
            return queue_position(store, job)
        # The page and the queue are two reads: a job missing from the queue has started meanwhile.
        return queue.get(job.id)

    return [job_document(job, position(job)) for job in jobs]


def cancel(store: Store, owner: str | None, job_id: str) -> dict[str, Any]:
    """Ask a job to stop: a queued one is cancelled at once, a running one becomes 'cancelling'.

    Raises ``NotFound`` (404) and ``Conflict`` (409, the job is already terminal).
    """
    return document(store, request_cancel(store, job_id, owner=owner))


def delete(store: Store, owner: str | None, job_id: str) -> None:
    """Delete a job that has ended, with its events and metric history; its model and dataset stay.

    Raises ``NotFound`` (404) and ``Conflict`` (409, the job has not ended).
    """
    delete_job(store, job_id, owner=owner)
    audit.info("job deleted", extra={"job_id": job_id, "owner": owner})
