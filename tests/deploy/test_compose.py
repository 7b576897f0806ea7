"""The docker compose deployment, with real Redis and PostgreSQL, under the faults it must survive.

Each test starts the compose file's ``migrate``, ``api`` and ``worker`` (2 replicas) commands as local
processes (see ``stack.py``) against a database of its own and a private Redis without persistence, so
that a restart of Redis loses every message (the compose Redis keeps them in its append-only file; this is
the harder case). Timings are shortened: heartbeat timeout 4 s (times ``DESCENT_TEST_TIMEOUT_SCALE``),
progress every 0.1 s, checkpoints every 0.3 s. The shared PostgreSQL and Redis of the machine are never
stopped; the PostgreSQL outage runs against a private cluster. Tests wait on the store, on the API and on
the processes' logs, within the bounds of ``tests.timing``; none asserts how long recovery took.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import text

from service.runners.celery_app import QUEUE
from service.store import Store, load_checkpoint, open_store
from service.store import get_job as store_get_job
from tests.deploy.stack import (
    FAST_TIMINGS,
    PostgresCluster,
    RedisServer,
    Stack,
    postgres_unavailable_reason,
)
from tests.processes import wait_until
from tests.requires import missing
from tests.timing import JOB_S, REQUEST_S, STARTUP_S

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("deploy-compose")]

HEARTBEAT_TIMEOUT_S = float(FAST_TIMINGS["DESCENT_HEARTBEAT_TIMEOUT_S"])
TERMINAL = {"succeeded", "failed", "cancelled"}
# About 1 ms per epoch on one core: LONG_EPOCHS is a few seconds, long enough to be hit mid-job (on a
# loaded machine the job and the test slow down alike).
LONG_EPOCHS, SHORT_EPOCHS = 4000, 1200
POLL_S = 0.1


def job_body(dataset_id: str, epochs: int, seed: int = 42) -> dict[str, Any]:
    return {
        "dataset_id": dataset_id,
        "model": {"type": "mlp", "hidden_layers": [16], "activation": "tanh"},
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "epochs": epochs,
        "batch_size": 32,
        "validation_fraction": 0.2,
        "seed": seed,
        "max_retries": 2,
    }


# --- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture
def private_postgres() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster of this test alone, which it may stop."""
    reason = postgres_unavailable_reason()
    if reason is not None:
        missing(reason)
    with PostgresCluster() as cluster:
        yield cluster


@contextmanager
def running_stack(database_url: str, redis_server: RedisServer, workdir: Path) -> Iterator[Stack]:
    with Stack(database_url, redis_server.url, workdir, env=FAST_TIMINGS) as stack:
        try:
            yield stack.start()
        finally:
            # Shown by pytest only when the test fails.
            print(stack.logs(80))


@pytest.fixture
def stack(shared_postgres_url: str, redis_server: RedisServer, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(shared_postgres_url, redis_server, tmp_path / "stack") as started:
        yield started


@pytest.fixture
def private_stack(
    private_postgres: PostgresCluster, redis_server: RedisServer, tmp_path: Path
) -> Iterator[Stack]:
    """A stack whose store is the private cluster."""
    with running_stack(private_postgres.create_database(), redis_server, tmp_path / "stack") as started:
        yield started


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, timeout=REQUEST_S, headers=stack.headers) as http:
        yield http


@pytest.fixture
def store(stack: Stack) -> Iterator[Store]:
    """The stack's store, read directly for what the API does not show (checkpoints, row versions)."""
    opened = open_store(stack.database_url, migrate_schema=False)
    yield opened
    opened.close()


# --- helpers --------------------------------------------------------------------------------------------


def create_dataset(client: httpx.Client) -> str:
    body = {"name": "xor", "generator": {"kind": "xor", "n_samples": 400, "noise": 0.1, "seed": 1}}
    response = client.post("/v1/datasets", json=body)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/v1/datasets/{response.json()['id']}"
    return str(response.json()["id"])


def submit(client: httpx.Client, dataset_id: str, epochs: int, seed: int = 42) -> str:
    response = client.post("/v1/jobs", json=job_body(dataset_id, epochs, seed))
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] in ("queued", "running")
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    return str(job["id"])


def get_job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


def wait_job(
    client: httpx.Client, stack: Stack, job_id: str, timeout: float = JOB_S, until: Any = TERMINAL
) -> dict:
    """The job once ``until(job)`` holds (by default: once it is terminal)."""
    check = until if callable(until) else (lambda job: job["status"] in until)
    last: dict[str, Any] = {}

    def reached() -> bool:
        last.update(get_job(client, job_id))
        return bool(check(last))

    try:
        wait_until(reached, timeout, f"job {job_id}", interval=POLL_S)
    except TimeoutError as exc:
        pytest.fail(f"{exc}; last seen: {last}\n{stack.logs()}")
    return last


def wait_checkpoint(store: Store, stack: Stack, job_id: str, min_epoch: int, timeout: float = JOB_S) -> int:
    """The epoch of the job's checkpoint once it is at least ``min_epoch``."""

    def epoch() -> int | None:
        checkpoint = load_checkpoint(store, job_id)
        return checkpoint.epoch if checkpoint is not None and checkpoint.epoch >= min_epoch else None

    try:
        return int(
            wait_until(epoch, timeout, f"a checkpoint of job {job_id} at epoch >= {min_epoch}", POLL_S)
        )
    except TimeoutError as exc:
        pytest.fail(f"{exc}\n{stack.logs()}")


def read_events(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    """The job's server-sent events from the first, until the stream ends after ``end``."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers={"Accept": "text/event-stream"}) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith(":"):
                continue
            if not line:
                if current:
                    events.append(current)
                    current = {}
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "id":
                current["id"] = int(value)
            elif field == "event":
                current["event"] = value
            elif field == "data":
                current["data"] = httpx.Response(200, content=value).json()
    if current:
        events.append(current)
    return events


def statuses(events: list[dict[str, Any]]) -> list[tuple[str, int, str | None]]:
    """(status, attempt, reason) of each 'status' event."""
    return [
        (e["data"]["status"], e["data"]["attempt"], e["data"].get("reason"))
        for e in events
        if e["event"] == "status"
    ]


def metric_epochs(client: httpx.Client, job_id: str) -> list[int]:
    response = client.get(f"/v1/jobs/{job_id}/metrics")
    assert response.status_code == 200, response.text
    return list(response.json()["epochs"])


def models_of(client: httpx.Client, job_id: str) -> list[str]:
    response = client.get("/v1/models", params={"limit": 500})
    assert response.status_code == 200, response.text
    return [m["id"] for m in response.json()["items"] if m.get("job_id") == job_id]


def exported_parameters(client: httpx.Client, model_id: str) -> dict[str, np.ndarray]:
    response = client.get(f"/v1/models/{model_id}/export", params={"format": "npz"})
    assert response.status_code == 200, response.text
    with np.load(io.BytesIO(response.content), allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def assert_bitwise_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        assert (a[key].dtype, a[key].shape) == (b[key].dtype, b[key].shape), key
        assert a[key].tobytes() == b[key].tobytes(), f"{key} differs"


def assert_complete(client: httpx.Client, job_id: str, epochs: int) -> str:
    """The job succeeded with one model and every epoch's metrics once; returns the model id."""
    job = get_job(client, job_id)
    assert job["status"] == "succeeded", job
    assert metric_epochs(client, job_id) == list(range(1, epochs + 1))
    assert models_of(client, job_id) == [job["model_id"]]
    return str(job["model_id"])


def resumed_from(store: Store, job_id: str, requeue_reason: str) -> int:
    """The epoch the job's next run resumed from, after it was requeued for ``requeue_reason``.

    The epochs up to it were written before the requeue and never again; every later one was written
    after it (a run resuming from a checkpoint first drops the metrics past it). PostgreSQL stamps each
    row with the id of the transaction that wrote it (``xmin``); ids grow with time. A run that started
    over would have rewritten every epoch after the requeue, and resumed from 0.
    """
    with store.engine.connect() as conn:
        marker = conn.execute(
            text(
                "SELECT xmin::text::bigint FROM job_events WHERE job_id = :id AND kind = 'status'"
                " AND data->>'reason' = :reason"
            ),
            {"id": job_id, "reason": requeue_reason},
        ).scalar_one()
        rows = conn.execute(
            text("SELECT epoch, xmin::text::bigint FROM job_metrics WHERE job_id = :id"), {"id": job_id}
        ).all()
    kept = sorted(epoch for epoch, xid in rows if xid < marker)
    resumed = len(kept)
    assert kept == list(range(1, resumed + 1)), "the epochs kept from before the requeue have gaps"
    assert all(xid > marker for epoch, xid in rows if epoch > resumed)
    return resumed


# --- the tests ------------------------------------------------------------------------------------------


def test_the_api_runs_with_keys_and_the_bootstrap_key_is_an_admin_key(
    stack: Stack, client: httpx.Client
) -> None:
    with httpx.Client(base_url=stack.api_url, timeout=REQUEST_S) as anonymous:
        refused = anonymous.get("/v1/jobs")
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        assert anonymous.get("/healthz").status_code == 200
    usage = client.get("/v1/usage")
    assert usage.status_code == 200 and usage.json()["owner"] == "admin"
    # The counters of the rate limit are in the broker's Redis, shared by every API replica.
    assert "ratelimit-remaining" in usage.headers


def test_job_flow_dataset_job_events_predict(stack: Stack, client: httpx.Client) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    # The store and the runner's broker.
    assert len(ready.json()["checks"]) == 2 and ready.json()["checks"]["store"] == "ok"

    dataset_id = create_dataset(client)
    job_id = submit(client, dataset_id, epochs=300)
    events = read_events(client, job_id)

    ids = [e["id"] for e in events]
    assert ids == sorted(set(ids))
    assert statuses(events) == [("queued", 0, None), ("running", 1, None), ("succeeded", 1, None)]
    assert events[-1]["event"] == "end"
    progress = [e["data"]["epoch"] for e in events if e["event"] == "progress"]
    assert progress and progress == sorted(progress) and progress[-1] == 300

    job = get_job(client, job_id)
    model_id = assert_complete(client, job_id, 300)
    assert job["attempt"] == 1
    assert job["metrics"]["val_accuracy"] > 0.9

    data = client.get(f"/v1/datasets/{dataset_id}/data")
    assert data.status_code == 200
    X, y = np.array(data.json()["X"]), np.array(data.json()["y"])
    predicted = client.post(f"/v1/models/{model_id}/predict", json={"X": X.tolist()})
    assert predicted.status_code == 200, predicted.text
    labels = np.array(predicted.json()["predictions"])
    assert labels.shape == y.shape
    assert np.mean(labels == y) > 0.9


def test_worker_killed_mid_job_resumes_on_the_other_worker(
    stack: Stack, client: httpx.Client, store: Store
) -> None:
    dataset_id = create_dataset(client)
    reference = submit(client, dataset_id, LONG_EPOCHS)
    wait_job(client, stack, reference)
    reference_model = assert_complete(client, reference, LONG_EPOCHS)

    job_id = submit(client, dataset_id, LONG_EPOCHS)
    seen = wait_checkpoint(store, stack, job_id, min_epoch=LONG_EPOCHS // 10)
    victim = stack.busy_worker()
    stack.kill(victim)

    # The reaper finds the run silent, requeues the job, and the other worker resumes it. (Celery
    # alone would deliver the message again only after the broker's visibility timeout, a day.)
    job = wait_job(client, stack, job_id)
    assert job["status"] == "succeeded" and job["attempt"] == 2
    assert statuses(read_events(client, job_id)) == [
        ("queued", 0, None),
        ("running", 1, None),
        ("queued", 1, "worker_lost"),
        ("running", 2, None),
        ("succeeded", 2, None),
    ]
    model_id = assert_complete(client, job_id, LONG_EPOCHS)
    # From the killed run's last checkpoint: at or after the one seen before the kill.
    assert seen <= resumed_from(store, job_id, "worker_lost") < LONG_EPOCHS
    assert_bitwise_equal(exported_parameters(client, model_id), exported_parameters(client, reference_model))


def test_worker_sigterm_mid_job_requeues_it_to_another_worker(
    stack: Stack, client: httpx.Client, store: Store
) -> None:
    dataset_id = create_dataset(client)
    job_id = submit(client, dataset_id, LONG_EPOCHS)
    wait_checkpoint(store, stack, job_id, min_epoch=LONG_EPOCHS // 10)
    victim = stack.busy_worker()
    # The worker gives the job back at its next epoch and exits cleanly (the 'shutdown' requeue below
    # shows it did so within the grace period, not cut short by a cold shutdown).
    assert stack.terminate(victim) == 0

    job = wait_job(client, stack, job_id)
    assert job["status"] == "succeeded" and job["attempt"] == 2
    events = read_events(client, job_id)
    assert statuses(events) == [
        ("queued", 0, None),
        ("running", 1, None),
        ("queued", 1, "shutdown"),
        ("running", 2, None),
        ("succeeded", 2, None),
    ]
    requeue = next(i for i, e in enumerate(events) if e["event"] == "status" and e["data"].get("reason"))
    # At shutdown the run records its last epoch and checkpoints it, then gives the job back itself
    # (reason 'shutdown'), rather than leaving it for the reaper.
    last_epoch = [e["data"]["epoch"] for e in events[:requeue] if e["event"] == "progress"][-1]
    assert_complete(client, job_id, LONG_EPOCHS)
    assert resumed_from(store, job_id, "shutdown") == last_epoch


def test_api_killed_mid_job_leaves_the_job_running(stack: Stack, client: httpx.Client, store: Store) -> None:
    dataset_id = create_dataset(client)
    job_id = submit(client, dataset_id, LONG_EPOCHS)
    wait_checkpoint(store, stack, job_id, min_epoch=LONG_EPOCHS // 10)
    stack.kill("api")
    with pytest.raises(httpx.TransportError):
        client.get(f"/v1/jobs/{job_id}")

    # The workers go on: the job's progress keeps moving while no API runs.
    def epoch() -> int:
        job = store_get_job(store, job_id)
        assert job.status == "running" and job.attempt == 1
        return int((job.progress or {}).get("epoch", 0))

    seen = epoch()
    wait_until(lambda: epoch() > seen + 50, JOB_S, "progress while the API is down", POLL_S)

    stack.start_process("api")
    assert get_job(client, job_id)["status"] in ("running", "succeeded")
    assert job_id in [j["id"] for j in client.get("/v1/jobs").json()["items"]]
    job = wait_job(client, stack, job_id)
    assert job["status"] == "succeeded" and job["attempt"] == 1
    assert statuses(read_events(client, job_id)) == [
        ("queued", 0, None),
        ("running", 1, None),
        ("succeeded", 1, None),
    ]
    assert_complete(client, job_id, LONG_EPOCHS)


def test_redis_restart_loses_queued_messages_and_every_job_still_runs(
    stack: Stack, client: httpx.Client, redis_server: RedisServer
) -> None:
    dataset_id = create_dataset(client)
    jobs = [submit(client, dataset_id, SHORT_EPOCHS, seed=seed) for seed in range(6)]
    wait_until(
        lambda: sum(get_job(client, j)["status"] == "running" for j in jobs) == 2,
        JOB_S,
        "two jobs running",
        POLL_S,
    )
    broker = redis_server.client()
    assert broker.llen(QUEUE) > 0, "some jobs should be waiting in the broker"
    broker.set("descent-test-sentinel", 1)

    redis_server.kill()
    down = client.get("/readyz")
    assert down.status_code == 503
    assert "broker" in down.json()["detail"]
    redis_server.start()
    # The restart lost everything, the waiting messages with the sentinel.
    assert broker.get("descent-test-sentinel") is None
    wait_until(lambda: stack.readyz() == 200, STARTUP_S, "/readyz answering 200 again", POLL_S)

    for job_id in jobs:
        job = wait_job(client, stack, job_id)
        assert job["status"] == "succeeded" and job["attempt"] == 1, job
        assert_complete(client, job_id, SHORT_EPOCHS)


def test_postgres_outage_answers_503_and_loses_nothing(
    private_stack: Stack, private_postgres: PostgresCluster
) -> None:
    stack = private_stack
    with httpx.Client(base_url=stack.api_url, timeout=REQUEST_S, headers=stack.headers) as client:
        dataset_id = create_dataset(client)
        jobs = [submit(client, dataset_id, 2500, seed=seed) for seed in range(3)]
        wait_until(
            lambda: sum(get_job(client, j)["status"] == "running" for j in jobs) == 2,
            JOB_S,
            "jobs running",
            POLL_S,
        )

        private_postgres.stop()
        outage_began = time.monotonic()
        answers = []
        # Longer than the heartbeat timeout: every heartbeat is stale when the store comes back.
        while time.monotonic() - outage_began < HEARTBEAT_TIMEOUT_S + 1:
            answers.append(client.get("/readyz").status_code)
            time.sleep(0.25)
        unavailable = client.get(f"/v1/jobs/{jobs[0]}")
        private_postgres.start()

        assert set(answers) == {503}
        assert unavailable.status_code == 503
        assert "retry-after" in unavailable.headers
        wait_until(lambda: stack.readyz() == 200, STARTUP_S, "/readyz answering 200 again", POLL_S)
        for job_id in jobs:
            job = wait_job(client, stack, job_id)
            # The runs kept training through the outage: none was presumed lost.
            assert job["status"] == "succeeded" and job["attempt"] == 1, job
            assert_complete(client, job_id, 2500)
        listed = client.get("/v1/jobs").json()["items"]
        assert sorted(j["id"] for j in listed) == sorted(jobs)
        assert client.get(f"/v1/datasets/{dataset_id}").status_code == 200
