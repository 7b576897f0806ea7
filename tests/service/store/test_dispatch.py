"""Dispatch records and the recovery of one dead worker's run (both backends)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from service.store import (
    Store,
    claim_job,
    events_since,
    get_job,
    reap_stale,
    release_lost_run,
    requeue_job,
    take_redispatch,
)
from service.store.db import open_store, utcnow
from tests.service.store.factories import make_dataset, make_job

LATER = timedelta(hours=1)


def test_every_way_into_the_queue_records_a_dispatch(store: Store) -> None:
    job = make_job(store, make_dataset(store).id, max_retries=3)
    assert (job.dispatch_count, job.dispatched_at) == (1, job.created_at)

    attempt = claim_job(store, job.id)
    assert attempt == 1
    assert requeue_job(store, job.id, attempt) == "queued"  # given back at shutdown
    assert get_job(store, job.id).dispatch_count == 2

    assert claim_job(store, job.id) == 2
    assert reap_stale(store, 60, now=utcnow() + LATER) == [job.id]  # lost its worker
    assert get_job(store, job.id).dispatch_count == 3

    assert claim_job(store, job.id) == 3
    assert release_lost_run(store, job.id, 3, "the worker process exited with code -9") == "queued"
    requeued = get_job(store, job.id)
    assert requeued.dispatch_count == 4
    assert requeued.dispatched_at is not None and requeued.dispatched_at > job.dispatched_at


def waiting(n: int) -> Callable[[], int]:
    """A broker holding ``n`` messages."""
    return lambda: n


def test_redispatch_makes_up_for_missing_messages_only(store: Store) -> None:
    dataset = make_dataset(store)
    jobs = [make_job(store, dataset.id) for _ in range(4)]
    claim_job(store, jobs[1].id)  # running: never sent again by the reaper

    # Three queued jobs, just dispatched: their messages may be on their way.
    assert take_redispatch(store, 60, waiting(0)) == []
    later = utcnow() + LATER
    # Long after: as many messages as queued jobs wait, so none is missing.
    assert take_redispatch(store, 60, waiting(3), now=later) == []
    # One message is missing: one job (the first in claim order) is sent again.
    assert take_redispatch(store, 60, waiting(2), now=later) == [jobs[0].id]
    # Its new dispatch makes up for the missing message, whatever the broker says meanwhile.
    assert take_redispatch(store, 60, waiting(2), now=later) == []
    # All three messages lost: the two jobs not just sent again are.
    assert take_redispatch(store, 60, waiting(0), now=later) == [jobs[2].id, jobs[3].id]
    assert [get_job(store, job.id).dispatch_count for job in jobs] == [2, 1, 2, 2]
    assert take_redispatch(store, 60, waiting(0), now=later + LATER) == [jobs[0].id, jobs[2].id, jobs[3].id]


def test_redispatch_follows_the_claim_order(store: Store) -> None:
    dataset = make_dataset(store)
    jobs = [make_job(store, dataset.id) for _ in range(3)]
    attempt = claim_job(store, jobs[2].id)
    assert attempt == 1
    requeue_job(store, jobs[2].id, attempt)

    assert take_redispatch(store, 60, waiting(1), now=utcnow() + LATER) == [jobs[2].id, jobs[0].id]


def test_concurrent_reapers_make_up_for_lost_messages_once(store: Store, database_url: str) -> None:
    dataset = make_dataset(store)
    jobs = {make_job(store, dataset.id).id for _ in range(12)}
    later = utcnow() + LATER
    # Eight reapers, each with its own connection pool as separate processes have, and a broker that
    # lost every message (each reaper reads it before any of them sends anything).
    stores = [open_store(database_url, migrate_schema=False) for _ in range(8)]
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            taken = list(pool.map(lambda s: take_redispatch(s, 60, waiting(0), now=later), stores))
    finally:
        for other in stores:
            other.close()
    every = [job_id for batch in taken for job_id in batch]
    assert sorted(every) == sorted(jobs), "each lost message must be made up for exactly once"
    assert {get_job(store, job_id).dispatch_count for job_id in jobs} == {2}


def test_redispatch_refuses_a_negative_bound(store: Store) -> None:
    with pytest.raises(ValueError, match="older_than_s"):
        take_redispatch(store, -1, waiting(0))


def test_releasing_a_stale_attempt_leaves_the_current_run_alone(store: Store) -> None:
    job = make_job(store, make_dataset(store).id, max_retries=1)
    assert claim_job(store, job.id) == 1
    assert reap_stale(store, 60, now=utcnow() + LATER) == [job.id]
    assert claim_job(store, job.id) == 2
    events = len(events_since(store, job.id))

    # The worker of attempt 1 dies now: its job is somebody else's.
    assert release_lost_run(store, job.id, 1, "the worker process exited with code -9") is None
    current = get_job(store, job.id)
    assert (current.status, current.attempt, current.error_type) == ("running", 2, None)
    assert len(events_since(store, job.id)) == events

    # The worker of attempt 2 dies: that one is released, and with no retry left the job fails.
    assert release_lost_run(store, job.id, 2, "the worker process exited with code -9") == "failed"
    failed = get_job(store, job.id)
    assert failed.error_type == "worker_lost"
    assert failed.error_detail == "the worker process exited with code -9; all 1 retries are used"


def test_a_release_with_an_error_type_fails_the_job_whatever_its_retries(store: Store) -> None:
    job = make_job(store, make_dataset(store).id, max_retries=5)
    assert claim_job(store, job.id) == 1
    detail = "the job needed more memory than the worker may use"

    assert release_lost_run(store, job.id, 1, detail, error_type="resource_exhausted") == "failed"
    failed = get_job(store, job.id)
    assert (failed.status, failed.error_type, failed.error_detail) == ("failed", "resource_exhausted", detail)
    assert [(e.kind, e.data["status"]) for e in events_since(store, job.id)][-2:] == [
        ("status", "failed"),
        ("end", "failed"),
    ]
