"""Liveness in the distributed runner: the compose services' commands, real Redis and PostgreSQL.

A job requeued after its worker was killed runs before jobs that never started (a message is a
wake-up; the worker claims in claim order); reapers in several processes send a lost message again
once, not once each; a job over the worker memory cap fails ``resource_exhausted`` and the worker
replaces itself. Timings are the fast ones of ``stack.FAST_TIMINGS``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.runners.celery_app import QUEUE
from service.store import Store, events_since, get_job, open_store
from tests.deploy.stack import FAST_TIMINGS, RedisServer, Stack
from tests.processes import wait_until
from tests.timing import JOB_S, REQUEST_S, STARTUP_S

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("deploy-liveness")]

TERMINAL = {"succeeded", "failed", "cancelled"}
ENDLESS: dict[str, Any] = {
    "model": {"type": "mlp", "hidden_layers": [16], "activation": "tanh"},
    "optimizer": {"name": "sgd", "learning_rate": 0.01},
    "batch_size": 8,
    "epochs": 100_000,
    "seed": 0,
}


@contextmanager
def started(stack: Stack) -> Iterator[Stack]:
    with stack:
        try:
            yield stack.start()
        finally:
            print(stack.logs(80))  # shown by pytest only when the test fails


@contextmanager
def stack_store(stack: Stack) -> Iterator[Store]:
    store = open_store(stack.database_url, migrate_schema=False)
    try:
        yield store
    finally:
        store.close()


def create_dataset(client: httpx.Client) -> str:
    body = {"name": "moons", "generator": {"kind": "moons", "n_samples": 200, "noise": 0.2, "seed": 1}}
    response = client.post("/v1/datasets", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def submit(client: httpx.Client, body: dict[str, Any]) -> str:
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def wait_job(client: httpx.Client, stack: Stack, job_id: str, until: Any, timeout: float = JOB_S) -> dict:
    last: dict[str, Any] = {}

    def reached() -> bool:
        last.update(job(client, job_id))
        return bool(until(last))

    try:
        wait_until(reached, timeout, f"job {job_id}", interval=0.1)
    except TimeoutError as exc:
        pytest.fail(f"{exc}; last seen: {last}\n{stack.logs()}")
    return last


def running_event_ids(store: Store, job_id: str) -> dict[int, int]:
    """The id of the job's 'running' event of each attempt."""
    return {
        event.data["attempt"]: event.id
        for event in events_since(store, job_id, limit=1000)
        if event.kind == "status" and event.data["status"] == "running"
    }


def test_a_job_requeued_after_kill_9_runs_before_jobs_that_never_started(
    shared_postgres_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    stack = Stack(shared_postgres_url, redis_server.url, tmp_path / "stack", env=FAST_TIMINGS)
    with (
        started(stack),
        httpx.Client(base_url=stack.api_url, timeout=REQUEST_S, headers=stack.headers) as client,
        stack_store(stack) as store,
    ):
        dataset_id = create_dataset(client)
        busy = [submit(client, {"dataset_id": dataset_id, **ENDLESS, "max_retries": 1}) for _ in range(2)]
        for job_id in busy:
            wait_job(client, stack, job_id, lambda j: j["status"] == "running")
        waiting = [submit(client, {"dataset_id": dataset_id, **ENDLESS, "epochs": 3}) for _ in range(2)]
        assert redis_server.client().llen(QUEUE) == 2  # their messages wait for a free worker

        stack.kill("worker-1")  # kill -9 of one busy worker
        # The reaper finds that worker's job silent and puts it back in the queue, with a message at
        # the back of the broker's list, behind the two that never started.
        lost = wait_until(
            lambda: next((j for j in busy if job(client, j)["status"] == "queued"), None),
            JOB_S,
            "the job of the killed worker to be requeued",
        )
        stack.start_process("worker-1")
        wait_job(client, stack, lost, lambda j: j["status"] == "running" and j["attempt"] == 2)

        for job_id in busy:
            client.post(f"/v1/jobs/{job_id}/cancel")
        for job_id in waiting:
            assert wait_job(client, stack, job_id, lambda j: j["status"] in TERMINAL)["status"] == "succeeded"
        requeued_start = running_event_ids(store, lost)[2]
        assert all(requeued_start < running_event_ids(store, j)[1] for j in waiting)


def test_reapers_in_two_processes_send_a_lost_message_again_once(
    shared_postgres_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    # No workers: messages stay in the broker, where the test can count them.
    stack = Stack(shared_postgres_url, redis_server.url, tmp_path / "stack", workers=0, env=FAST_TIMINGS)
    stack.add_api("api-2")
    bound = float(FAST_TIMINGS["DESCENT_REDISPATCH_AFTER_S"])
    broker = redis_server.client()
    with (
        started(stack),
        httpx.Client(base_url=stack.api_url, timeout=REQUEST_S, headers=stack.headers) as client,
        stack_store(stack) as store,
    ):
        dataset_id = create_dataset(client)
        jobs = [submit(client, {"dataset_id": dataset_id, **ENDLESS, "epochs": 3}) for _ in range(5)]
        assert broker.llen(QUEUE) == 5
        # Nothing is missing: however long the jobs wait, nobody sends them again.
        time.sleep(3 * bound)
        assert broker.llen(QUEUE) == 5

        broker.rpop(QUEUE)  # one message lost
        wait_until(lambda: broker.llen(QUEUE) >= 5, JOB_S, "the lost message to be sent again")
        # Several rounds of both reapers, each past the bound: still exactly one message per job.
        time.sleep(3 * bound)
        assert broker.llen(QUEUE) == 5
        assert sum(get_job(store, job_id).dispatch_count for job_id in jobs) == 6


def test_a_job_over_the_memory_cap_fails_and_the_celery_worker_replaces_itself(
    shared_postgres_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    env = {**FAST_TIMINGS, "DESCENT_WORKER_MEMORY_MB": "256"}
    stack = Stack(shared_postgres_url, redis_server.url, tmp_path / "stack", workers=1, env=env)
    with (
        started(stack),
        httpx.Client(base_url=stack.api_url, timeout=REQUEST_S, headers=stack.headers) as client,
    ):
        worker = stack.processes["worker-1"]
        pid, mark = worker.pid, len(worker.output())
        spec = {"kind": "blobs", "n_samples": 20_000, "n_features": 2, "n_classes": 2, "seed": 0}
        big = client.post("/v1/datasets", json={"name": "big", "generator": spec}).json()["id"]
        greedy = submit(
            client,
            {
                "dataset_id": big,
                # One hidden layer of 4096 units over 20,000 rows: 655 MB per activation array.
                "model": {"type": "mlp", "hidden_layers": [4096]},
                "optimizer": {"name": "gd", "learning_rate": 0.01},
                "epochs": 1,
                "max_retries": 3,
            },
        )
        failed = wait_job(client, stack, greedy, lambda j: j["status"] in TERMINAL)
        assert (failed["status"], failed["attempt"]) == ("failed", 1), failed
        assert failed["error"]["type"] == "resource_exhausted"
        assert "DESCENT_WORKER_MEMORY_MB" in failed["error"]["detail"]

        # The same process (exec keeps the pid) starts afresh, and runs the next job.
        worker.wait_for_output("restarting the worker process", JOB_S, after=mark)
        worker.wait_for_output(
            " ready.", STARTUP_S, after=worker.output().index("restarting the worker process", mark)
        )
        assert worker.running and worker.pid == pid
        modest = submit(client, {"dataset_id": create_dataset(client), **ENDLESS, "epochs": 3})
        assert wait_job(client, stack, modest, lambda j: j["status"] in TERMINAL)["status"] == "succeeded"
        # The failed job's message was acknowledged: it never ran again.
        assert job(client, greedy)["attempt"] == 1
