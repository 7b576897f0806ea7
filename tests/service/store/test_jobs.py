from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.errors import Conflict, NotFound, QueueFull
from service.store import (
    Store,
    claim_job,
    create_job,
    create_model,
    delete_job,
    events_since,
    finish_job,
    get_job,
    get_model,
    list_job_metrics,
    list_jobs,
    queue_position,
    queued_job_ids,
    record_progress,
    request_cancel,
    requeue_job,
)
from service.store.tables import CheckpointRow, JobMetricRow
from tests.service.store.factories import make_dataset, make_job


def _kinds(store: Store, job_id: str) -> list[tuple[str, str | None]]:
    return [(e.kind, e.data.get("status")) for e in events_since(store, job_id)]


def test_a_new_job_is_queued_with_attempt_zero(store: Store) -> None:
    dataset = make_dataset(store)
    job = make_job(store, dataset.id, max_retries=2)

    assert (job.status, job.attempt, job.max_retries, job.cancel_requested) == ("queued", 0, 2, False)
    assert job.started_at is None and job.finished_at is None and job.model_id is None
    assert get_job(store, job.id) == job
    assert job.config["optimizer"] == {"name": "sgd", "learning_rate": 0.1}
    assert _kinds(store, job.id) == [("status", "queued")]


def test_unknown_or_foreign_dataset_is_not_found(store: Store) -> None:
    dataset = make_dataset(store, owner="alice")
    with pytest.raises(NotFound, match="ds_nope"):
        make_job(store, "ds_nope")
    with pytest.raises(NotFound, match=dataset.id):
        make_job(store, dataset.id, owner="bob")
    assert queued_job_ids(store) == []


def test_queue_positions_and_queued_ids_follow_creation_order(store: Store) -> None:
    dataset = make_dataset(store)
    jobs = [make_job(store, dataset.id) for _ in range(3)]

    assert [queue_position(store, job) for job in jobs] == [0, 1, 2]
    assert queued_job_ids(store) == [job.id for job in jobs]
    assert queued_job_ids(store, limit=2) == [jobs[0].id, jobs[1].id]

    claim_job(store, jobs[0].id)
    assert [queue_position(store, job) for job in jobs] == [None, 0, 1]
    assert queued_job_ids(store) == [jobs[1].id, jobs[2].id]


def test_an_interrupted_job_goes_before_every_job_that_never_started(store: Store) -> None:
    dataset = make_dataset(store)
    jobs = [make_job(store, dataset.id) for _ in range(4)]
    # The newest job ran first (say another API process's clock was behind) and was given back.
    attempt = claim_job(store, jobs[3].id)
    assert attempt == 1
    assert requeue_job(store, jobs[3].id, attempt) == "queued"

    assert queued_job_ids(store) == [jobs[3].id, jobs[0].id, jobs[1].id, jobs[2].id]
    assert [queue_position(store, job) for job in jobs] == [1, 2, 3, 0]
    assert queued_job_ids(store, limit=2) == [jobs[3].id, jobs[0].id]

    # Among interrupted jobs, the oldest goes first.
    attempt = claim_job(store, jobs[1].id)
    assert attempt == 1
    assert requeue_job(store, jobs[1].id, attempt) == "queued"
    assert queued_job_ids(store) == [jobs[1].id, jobs[3].id, jobs[0].id, jobs[2].id]
    assert [queue_position(store, job) for job in jobs] == [2, 0, 3, 1]


def test_queue_full_refuses_a_job_over_the_limit(store: Store) -> None:
    dataset = make_dataset(store)
    first = make_job(store, dataset.id, max_queued=2)
    make_job(store, dataset.id, max_queued=2)

    with pytest.raises(QueueFull) as caught:
        make_job(store, dataset.id, max_queued=2)
    assert caught.value.limit == 2
    assert len(queued_job_ids(store)) == 2

    claim_job(store, first.id)  # running jobs do not count against the queue
    assert make_job(store, dataset.id, max_queued=2).status == "queued"


def test_concurrent_creates_never_overfill_the_queue(store: Store) -> None:
    dataset = make_dataset(store)

    def attempt_create(_: int) -> str:
        try:
            return make_job(store, dataset.id, max_queued=3).id
        except QueueFull:
            return "full"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(attempt_create, range(12)))

    assert outcomes.count("full") == 9
    assert len(queued_job_ids(store)) == 3


def test_cancel_of_a_queued_job_ends_it_at_once(store: Store) -> None:
    job = make_job(store, make_dataset(store).id)

    cancelled = request_cancel(store, job.id)

    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    assert _kinds(store, job.id) == [("status", "queued"), ("status", "cancelled"), ("end", "cancelled")]
    assert claim_job(store, job.id) is None
    assert queue_position(store, cancelled) is None


def test_cancel_of_a_running_job_asks_its_run_to_stop(store: Store) -> None:
    job = make_job(store, make_dataset(store).id)
    attempt = claim_job(store, job.id)
    assert attempt == 1
    progress = {"epoch": 0, "total_epochs": 5}
    assert record_progress(store, job.id, attempt, rows=[], progress=progress, metrics={}, best=None) is False

    cancelling = request_cancel(store, job.id)
    again = request_cancel(store, job.id)

    assert (cancelling.status, cancelling.cancel_requested, cancelling.finished_at) == (
        "cancelling",
        True,
        None,
    )
    assert again == cancelling  # asking twice changes nothing and adds no event
    assert record_progress(store, job.id, attempt, rows=[], progress=progress, metrics={}, best=None) is True
    assert [k for k in _kinds(store, job.id) if k[0] == "status"] == [
        ("status", "queued"),
        ("status", "running"),
        ("status", "cancelling"),
    ]


def test_cancel_of_a_terminal_job_is_a_conflict(store: Store) -> None:
    job = make_job(store, make_dataset(store).id)
    request_cancel(store, job.id)
    with pytest.raises(Conflict, match="already cancelled"):
        request_cancel(store, job.id)
    with pytest.raises(NotFound):
        request_cancel(store, "job_missing")


def test_list_jobs_filters_by_owner_and_status_and_pages(store: Store) -> None:
    dataset = make_dataset(store)
    jobs = [make_job(store, dataset.id) for _ in range(5)]
    claim_job(store, jobs[1].id)
    claim_job(store, jobs[3].id)
    make_job(store, make_dataset(store, owner="bob").id, owner="bob")

    running, cursor = list_jobs(store, "default", status="running")
    assert [j.id for j in running] == [jobs[3].id, jobs[1].id] and cursor is None

    first, cursor = list_jobs(store, "default", limit=2)
    assert cursor is not None
    second, cursor = list_jobs(store, "default", limit=2, cursor=cursor)
    assert cursor is not None
    third, cursor = list_jobs(store, "default", limit=2, cursor=cursor)
    assert cursor is None
    assert [j.id for j in first + second + third] == [j.id for j in reversed(jobs)]

    with pytest.raises(ValueError, match="status must be one of"):
        list_jobs(store, "default", status="done")


def test_event_ids_increase_and_resuming_skips_and_repeats_nothing(store: Store) -> None:
    dataset = make_dataset(store)
    job, other = make_job(store, dataset.id), make_job(store, dataset.id)
    attempt = claim_job(store, job.id)
    assert attempt == 1
    claim_job(store, other.id)
    for epoch in range(4):
        row = {"epoch": epoch, "train_loss": 1.0 / (epoch + 1)}
        record_progress(store, job.id, attempt, rows=[row], progress={"epoch": epoch}, metrics=row, best=None)
    request_cancel(store, other.id)

    everything = events_since(store, job.id, 0, limit=1000)
    ids = [e.id for e in everything]
    assert ids == sorted(set(ids)) and len(ids) == 6
    assert all(e.job_id == job.id for e in everything)
    assert [e.kind for e in everything] == [
        "status",
        "status",
        "progress",
        "progress",
        "progress",
        "progress",
    ]
    assert [e.data["epoch"] for e in everything[2:]] == [0, 1, 2, 3]

    resumed, last = [], 0
    while batch := events_since(store, job.id, last, limit=4):
        resumed.extend(batch)
        last = batch[-1].id
    assert resumed == everything
    assert events_since(store, job.id, ids[2], limit=2) == everything[3:5]


def test_invalid_job_arguments_raise_value_error(store: Store) -> None:
    dataset = make_dataset(store)
    with pytest.raises(ValueError, match="max_retries"):
        create_job(store, config={}, config_hash="h", dataset_id=dataset.id, max_retries=-1, max_queued=5)
    with pytest.raises(ValueError, match="after_id"):
        events_since(store, "job_x", -1)


def test_a_job_that_has_ended_is_deleted_with_its_events_and_metrics_but_not_its_model(store: Store) -> None:
    dataset = make_dataset(store)
    job, other = make_job(store, dataset.id), make_job(store, dataset.id)
    attempt = claim_job(store, job.id)
    row = {"epoch": 1, "train_loss": 0.5, "val_loss": None, "train_accuracy": None, "val_accuracy": None}
    record_progress(store, job.id, attempt, rows=[row], progress={"epoch": 1}, metrics={}, best={})
    model = create_model(
        store,
        job_id=job.id,
        architecture={"type": "logistic_regression"},
        n_features=2,
        task="binary",
        parameters={"W0": np.ones((2, 1)), "b0": np.zeros(1)},
    )
    with pytest.raises(Conflict, match="is running; only a job that has ended can be deleted"):
        delete_job(store, job.id)
    finish_job(store, job.id, attempt, status="succeeded")
    assert events_since(store, job.id) and list_job_metrics(store, job.id)

    delete_job(store, job.id)
    with pytest.raises(NotFound):
        get_job(store, job.id)
    assert events_since(store, job.id) == []
    with pytest.raises(NotFound):
        list_job_metrics(store, job.id)
    with Session(store.engine) as session:
        for table in (JobMetricRow, CheckpointRow):
            assert session.scalar(select(func.count()).where(table.job_id == job.id)) == 0
    assert get_model(store, model.id).job_id is None
    assert get_job(store, other.id).status == "queued"
    with pytest.raises(NotFound):
        delete_job(store, job.id)


def test_a_job_is_deleted_only_by_its_owner_and_only_once_ended(store: Store) -> None:
    job = make_job(store, make_dataset(store).id)
    with pytest.raises(Conflict, match="is queued"):
        delete_job(store, job.id)
    request_cancel(store, job.id)
    with pytest.raises(NotFound):
        delete_job(store, job.id, owner="bob")
    delete_job(store, job.id, owner="default")
    with pytest.raises(NotFound):
        get_job(store, job.id)
