from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from service.errors import Conflict, NotFound, StaleAttempt
from service.store import (
    Store,
    claim_job,
    events_since,
    finish_job,
    get_job,
    get_model,
    heartbeat,
    list_job_metrics,
    list_models,
    load_checkpoint,
    load_model_parameters,
    load_snapshot,
    reap_stale,
    record_progress,
    request_cancel,
    requeue_job,
    save_checkpoint,
    truncate_metrics_after,
)
from service.store.db import utcnow
from tests.service.store.factories import make_dataset, make_job


def _history(store: Store, job_id: str) -> list[tuple[int, float | None]]:
    return [(m.epoch, m.train_loss) for m in list_job_metrics(store, job_id)]


def _rows(epochs: range, offset: float) -> list[dict[str, Any]]:
    return [{"epoch": e, "train_loss": offset + e, "val_loss": offset + e + 0.5} for e in epochs]


def _progress(store: Store, job_id: str, attempt: int, rows: list[dict[str, Any]]) -> bool:
    last = rows[-1]
    return record_progress(
        store,
        job_id,
        attempt,
        rows=rows,
        progress={"epoch": last["epoch"], "total_epochs": 10},
        metrics={"train_loss": last["train_loss"], "val_loss": last["val_loss"]},
        best={"epoch": last["epoch"], "val_loss": last["val_loss"]},
    )


def _model(n_features: int = 3) -> dict[str, Any]:
    return {
        "architecture": {"type": "logistic_regression"},
        "n_features": n_features,
        "task": "binary",
        "classes": [0, 1],
        "metrics": {"val_loss": 0.25},
        "standardization": {"mean": [0.0] * n_features, "scale": [1.0] * n_features},
        "parameters": {"weights": np.array([0.5, -1.25, 2.0]), "bias": np.array(0.125)},
    }


LATER = timedelta(hours=1)


def test_claim_is_exclusive(store: Store) -> None:
    job = make_job(store, make_dataset(store).id)

    assert claim_job(store, job.id) == 1
    assert claim_job(store, job.id) is None

    claimed = get_job(store, job.id)
    assert (claimed.status, claimed.attempt) == ("running", 1)
    assert claimed.started_at is not None and claimed.heartbeat_at is not None
    assert claim_job(store, "job_missing") is None


def test_concurrent_claims_have_exactly_one_winner(store: Store) -> None:
    job = make_job(store, make_dataset(store).id)
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: claim_job(store, job.id), range(6)))
    assert sorted(results, key=str) == [1, None, None, None, None, None]
    assert [e.data["status"] for e in events_since(store, job.id)] == ["queued", "running"]


def test_a_stale_attempt_can_write_nothing(store: Store) -> None:
    job = make_job(store, make_dataset(store).id, max_retries=1)
    first = claim_job(store, job.id)
    assert first == 1
    _progress(store, job.id, first, _rows(range(2), 0.0))
    save_checkpoint(store, job.id, first, 1, b"first")
    requeue_job(store, job.id, first)
    second = claim_job(store, job.id)
    assert second == 2
    before = (
        get_job(store, job.id),
        _history(store, job.id),
        events_since(store, job.id),
        load_checkpoint(store, job.id),
    )

    stale_writes: list[Callable[[], object]] = [
        lambda: _progress(store, job.id, first, _rows(range(2, 4), 9.0)),
        lambda: heartbeat(store, job.id, first),
        lambda: save_checkpoint(store, job.id, first, 3, b"stale"),
        lambda: truncate_metrics_after(store, job.id, first, 0),
        lambda: requeue_job(store, job.id, first),
        lambda: finish_job(store, job.id, first, status="succeeded", model=_model()),
    ]
    for write in stale_writes:
        with pytest.raises(StaleAttempt) as caught:
            write()
        assert (caught.value.job_id, caught.value.attempt) == (job.id, 1)

    after = (
        get_job(store, job.id),
        _history(store, job.id),
        events_since(store, job.id),
        load_checkpoint(store, job.id),
    )
    assert after == before
    assert list_models(store) == ([], None)
    assert heartbeat(store, job.id, second) is False


def test_resumed_run_leaves_each_epoch_exactly_once(store: Store) -> None:
    job = make_job(store, make_dataset(store).id, max_retries=1)
    first = claim_job(store, job.id)
    assert first == 1
    _progress(store, job.id, first, _rows(range(0, 3), 0.0))
    save_checkpoint(store, job.id, first, 2, b"after epoch 2")
    _progress(store, job.id, first, _rows(range(3, 5), 0.0))  # epochs 3-4 are lost with the worker

    assert reap_stale(store, 60, now=utcnow() + LATER) == [job.id]
    second = claim_job(store, job.id)
    assert second == 2
    checkpoint = load_checkpoint(store, job.id)
    assert checkpoint is not None
    epoch, data = checkpoint
    assert (epoch, data) == (2, b"after epoch 2")
    assert truncate_metrics_after(store, job.id, second, epoch) == 2
    _progress(store, job.id, second, _rows(range(3, 6), 100.0))

    assert _history(store, job.id) == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 103.0), (4, 104.0), (5, 105.0)]


def test_progress_replaces_epochs_already_recorded(store: Store) -> None:
    job = make_job(store, make_dataset(store).id)
    attempt = claim_job(store, job.id)
    assert attempt == 1
    _progress(store, job.id, attempt, _rows(range(0, 3), 0.0))
    _progress(store, job.id, attempt, _rows(range(1, 4), 10.0))

    assert _history(store, job.id) == [(0, 0.0), (1, 11.0), (2, 12.0), (3, 13.0)]
    job_now = get_job(store, job.id)
    assert job_now.progress == {"epoch": 3, "total_epochs": 10}
    assert job_now.metrics == {"train_loss": 13.0, "val_loss": 13.5}
    assert job_now.best == {"epoch": 3, "val_loss": 13.5}
    assert [m.val_loss for m in list_job_metrics(store, job.id, after_epoch=1)] == [12.5, 13.5]


def test_progress_stores_non_finite_values_as_null(store: Store) -> None:
    job = make_job(store, make_dataset(store).id)
    attempt = claim_job(store, job.id)
    assert attempt == 1
    row = {
        "epoch": np.int64(0),
        "train_loss": np.float32(np.inf),
        "val_loss": float("nan"),
        "train_accuracy": np.float64(0.5),
    }
    record_progress(store, job.id, attempt, rows=[row], progress={"epoch": 0}, metrics=row, best=None)

    (stored,) = list_job_metrics(store, job.id)
    assert (stored.train_loss, stored.val_loss, stored.train_accuracy, stored.val_accuracy) == (
        None,
        None,
        0.5,
        None,
    )
    assert get_job(store, job.id).metrics == {
        "epoch": 0,
        "train_loss": None,
        "val_loss": None,
        "train_accuracy": 0.5,
    }
    with pytest.raises(ValueError, match="unknown metric names"):
        record_progress(
            store, job.id, attempt, rows=[{"epoch": 1, "loss": 1.0}], progress={}, metrics={}, best=None
        )


def test_checkpoint_is_replaced_and_dropped_at_the_end(store: Store) -> None:
    job = make_job(store, make_dataset(store).id)
    attempt = claim_job(store, job.id)
    assert attempt == 1
    assert load_checkpoint(store, job.id) is None

    save_checkpoint(store, job.id, attempt, 3, b"three")
    save_checkpoint(store, job.id, attempt, 7, b"seven")
    assert load_checkpoint(store, job.id) == (7, b"seven")

    finish_job(store, job.id, attempt, status="succeeded", model=_model())
    assert load_checkpoint(store, job.id) is None


def test_finish_writes_model_and_status_together(store: Store) -> None:
    job = make_job(store, make_dataset(store).id)
    attempt = claim_job(store, job.id)
    assert attempt == 1

    finished = finish_job(store, job.id, attempt, status="succeeded", model=_model())

    assert finished.status == "succeeded" and finished.finished_at is not None and finished.error is None
    assert finished.model_id is not None
    model = get_model(store, finished.model_id)
    assert (model.job_id, model.owner, model.n_features, model.classes) == (job.id, "default", 3, [0, 1])
    params = load_model_parameters(store, model.id)
    assert params["weights"].tobytes() == np.array([0.5, -1.25, 2.0]).tobytes()
    assert params["bias"].shape == () and float(params["bias"]) == 0.125
    tail = events_since(store, job.id)[-2:]
    assert [(e.kind, e.data["status"], e.data["model_id"]) for e in tail] == [
        ("status", "succeeded", model.id),
        ("end", "succeeded", model.id),
    ]


def test_a_failing_model_write_leaves_the_job_running(store: Store) -> None:
    job = make_job(store, make_dataset(store).id)
    attempt = claim_job(store, job.id)
    assert attempt == 1
    bad = _model() | {"parameters": {"weights": np.array([object()], dtype=object)}}
    events_before = events_since(store, job.id)

    with pytest.raises(ValueError, match="dtype object"):
        finish_job(store, job.id, attempt, status="succeeded", model=bad)

    assert get_job(store, job.id).status == "running"
    assert events_since(store, job.id) == events_before
    assert list_models(store) == ([], None)


def test_terminal_states_never_change(store: Store) -> None:
    job = make_job(store, make_dataset(store).id, max_retries=3)
    attempt = claim_job(store, job.id)
    assert attempt == 1
    failed = finish_job(
        store, job.id, attempt, status="failed", error_type="diverged", error_detail="loss is inf"
    )
    assert failed.error == {"type": "diverged", "detail": "loss is inf"}

    with pytest.raises(StaleAttempt):
        finish_job(store, job.id, attempt, status="succeeded")
    with pytest.raises(Conflict):
        finish_job(store, job.id, attempt, status="cancelled")
    with pytest.raises(Conflict):
        request_cancel(store, job.id)
    assert claim_job(store, job.id) is None
    with pytest.raises(StaleAttempt):
        requeue_job(store, job.id, attempt)
    assert reap_stale(store, 0, now=utcnow() + LATER) == []
    assert get_job(store, job.id) == failed


def test_finish_validates_its_arguments(store: Store) -> None:
    job = make_job(store, make_dataset(store).id)
    attempt = claim_job(store, job.id)
    assert attempt == 1
    with pytest.raises(ValueError, match="status must be one of"):
        finish_job(store, job.id, attempt, status="running")
    with pytest.raises(ValueError, match="needs an error_type"):
        finish_job(store, job.id, attempt, status="failed")
    # The API documents the error types as an enum: the store refuses any other.
    with pytest.raises(ValueError, match="error_type must be one of"):
        finish_job(store, job.id, attempt, status="failed", error_type="exploded")
    with pytest.raises(ValueError, match="exactly the keys"):
        finish_job(store, job.id, attempt, status="succeeded", model={"parameters": {}})
    with pytest.raises(NotFound):
        finish_job(store, "job_missing", 1, status="succeeded")
    assert get_job(store, job.id).status == "running"


def test_cancelled_run_ends_cancelled_with_its_best_model(store: Store) -> None:
    job = make_job(store, make_dataset(store).id)
    attempt = claim_job(store, job.id)
    assert attempt == 1
    request_cancel(store, job.id)
    assert heartbeat(store, job.id, attempt) is True

    ended = finish_job(store, job.id, attempt, status="cancelled", model=_model())

    assert ended.status == "cancelled" and ended.model_id is not None
    assert [e.kind for e in events_since(store, job.id)][-2:] == ["status", "end"]


def test_requeue_on_shutdown_returns_a_running_job_to_the_queue(store: Store) -> None:
    job = make_job(store, make_dataset(store).id)
    attempt = claim_job(store, job.id)
    assert attempt == 1

    started_at = get_job(store, job.id).started_at

    assert requeue_job(store, job.id, attempt) == "queued"
    assert get_job(store, job.id).status == "queued"
    assert events_since(store, job.id)[-1].data == {"status": "queued", "attempt": 1, "reason": "shutdown"}
    assert claim_job(store, job.id) == 2
    reclaimed = get_job(store, job.id)
    assert (reclaimed.status, reclaimed.started_at) == ("running", started_at)
    assert (
        reclaimed.heartbeat_at is not None and started_at is not None and reclaimed.heartbeat_at > started_at
    )


def test_requeue_of_a_cancelling_job_ends_it_cancelled(store: Store) -> None:
    job = make_job(store, make_dataset(store).id)
    attempt = claim_job(store, job.id)
    assert attempt == 1
    request_cancel(store, job.id)

    assert requeue_job(store, job.id, attempt) == "cancelled"
    assert get_job(store, job.id).finished_at is not None
    assert events_since(store, job.id)[-1].kind == "end"


def test_reaper_requeues_then_fails_with_worker_lost(store: Store) -> None:
    job = make_job(store, make_dataset(store).id, max_retries=1)
    assert claim_job(store, job.id) == 1

    assert reap_stale(store, 60) == []  # the heartbeat is fresh
    assert reap_stale(store, 60, now=utcnow() + LATER) == [job.id]
    requeued = get_job(store, job.id)
    assert (requeued.status, requeued.attempt, requeued.finished_at) == ("queued", 1, None)
    assert events_since(store, job.id)[-1].data["reason"] == "worker_lost"

    assert claim_job(store, job.id) == 2
    assert reap_stale(store, 60, now=utcnow() + LATER) == []
    failed = get_job(store, job.id)
    assert (failed.status, failed.error_type) == ("failed", "worker_lost")
    assert failed.finished_at is not None
    assert [(e.kind, e.data["status"]) for e in events_since(store, job.id)][-2:] == [
        ("status", "failed"),
        ("end", "failed"),
    ]


def test_reaper_ends_a_cancelling_job_whose_worker_died(store: Store) -> None:
    job = make_job(store, make_dataset(store).id, max_retries=5)
    assert claim_job(store, job.id) == 1
    request_cancel(store, job.id)

    assert reap_stale(store, 60, now=utcnow() + LATER) == []
    ended = get_job(store, job.id)
    assert (ended.status, ended.error_type) == ("cancelled", None)


def test_reaper_leaves_queued_and_fresh_jobs_alone(store: Store) -> None:
    dataset = make_dataset(store)
    queued = make_job(store, dataset.id)
    running = make_job(store, dataset.id)
    attempt = claim_job(store, running.id)
    assert attempt == 1
    heartbeat(store, running.id, attempt)

    assert reap_stale(store, 3600) == []
    assert get_job(store, queued.id).status == "queued"
    assert get_job(store, running.id).status == "running"
    with pytest.raises(ValueError, match="stale_after_s"):
        reap_stale(store, -1)


def _snapshot_progress(store: Store, job_id: str, attempt: int, epoch: int, blob: bytes) -> None:
    record_progress(
        store,
        job_id,
        attempt,
        rows=[{"epoch": epoch, "train_loss": 1.0 / epoch}],
        progress={"epoch": epoch, "total_epochs": 10},
        metrics={"train_loss": 1.0 / epoch},
        best=None,
        snapshot=blob,
    )


def test_snapshot_comes_with_its_progress_is_fenced_and_outlives_the_run(store: Store) -> None:
    job = make_job(store, make_dataset(store).id)
    first = claim_job(store, job.id)
    assert first == 1
    _progress(store, job.id, first, _rows(range(1, 3), 0.0))
    assert load_snapshot(store, job.id) is None  # progress without a snapshot writes none

    _snapshot_progress(store, job.id, first, 3, b"three")
    _snapshot_progress(store, job.id, first, 7, b"seven")
    snapshot = load_snapshot(store, job.id)
    assert snapshot is not None
    assert (snapshot.epoch, snapshot.data) == (7, b"seven")
    assert snapshot.taken_at.tzinfo is not None
    progress = [e for e in events_since(store, job.id, 0) if e.kind == "progress"]
    assert progress[-1].data["epoch"] == snapshot.epoch

    requeue_job(store, job.id, first)
    second = claim_job(store, job.id)
    assert second == 2
    with pytest.raises(StaleAttempt):
        _snapshot_progress(store, job.id, first, 9, b"stale")
    assert load_snapshot(store, job.id) == snapshot

    finish_job(store, job.id, second, status="succeeded", model=_model())
    # The last snapshot outlives the run: a client that saw its last progress event can still read it.
    assert load_snapshot(store, job.id) == snapshot
