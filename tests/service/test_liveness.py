"""Liveness of jobs in the embedded runner, against a real ``descent serve`` on a SQLite file.

A job's heartbeat comes from a thread of its own, so a long epoch is not a dead worker; a run whose
attempt went stale stops at once; the death of a stale run's worker leaves the current run alone; an
interrupted job runs before jobs that never started; a job over the worker memory cap fails
``resource_exhausted`` and the next job runs; SIGTERM leaves no process behind.

Every wait is on the store or the API, with bounds far above what the behaviour needs; where a test
needs the absence of something, the bound stays well below what the broken behaviour would take.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.store import Store, claim_job, get_job, load_checkpoint, open_store, reap_stale
from service.store.db import utcnow
from tests.processes import group_members, wait_until
from tests.service.test_jobs_e2e import ServiceProcess, parse_sse, wait_for_job
from tests.timing import JOB_S, REQUEST_S, STARTUP_S, limit

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# About 100 GFLOP of float64 matrix products per full-batch epoch: seconds on an idle core, more on a
# busy one; far longer, in any case, than the 1 s heartbeat timeout of these tests.
BIG = {"kind": "blobs", "n_samples": 20_000, "n_features": 2, "n_classes": 2, "seed": 0}
FULL_BATCH: dict[str, Any] = {
    "model": {"type": "mlp", "hidden_layers": [1024, 1024], "activation": "tanh"},
    "optimizer": {"name": "gd", "learning_rate": 0.01},
    "validation_fraction": 0,
    "seed": 0,
}
# Mini-batches of a few milliseconds, for minutes: a run that only ends when it is stopped.
ENDLESS: dict[str, Any] = {
    "model": {"type": "mlp", "hidden_layers": [16], "activation": "tanh"},
    "optimizer": {"name": "sgd", "learning_rate": 0.01},
    "batch_size": 8,
    "epochs": 100_000,
    "seed": 0,
}
FAST_HEARTBEATS = {"heartbeat_interval_s": 0.2, "heartbeat_timeout_s": limit(1.0)}
AN_HOUR = timedelta(hours=1)


@contextlib.contextmanager
def service_store(service: ServiceProcess) -> Iterator[Store]:
    store = open_store(service.settings["database_url"], migrate_schema=False)
    try:
        yield store
    finally:
        store.close()


def checkpoint_epoch(store: Store, job_id: str) -> int:
    checkpoint = load_checkpoint(store, job_id)
    return 0 if checkpoint is None else checkpoint.epoch


def log(service: ServiceProcess) -> str:
    """What the service and its workers wrote so far."""
    return service.log_path.read_text(errors="replace")


def create_dataset(client: httpx.Client, spec: dict[str, Any]) -> str:
    response = client.post("/v1/datasets", json={"name": spec["kind"], "generator": spec})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def small_dataset(client: httpx.Client) -> str:
    return create_dataset(client, {"kind": "moons", "n_samples": 200, "noise": 0.2, "seed": 1})


def submit(client: httpx.Client, body: dict[str, Any]) -> str:
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def wait_status(client: httpx.Client, job_id: str, status: str, attempt: int, timeout: float = JOB_S) -> None:
    def reached() -> bool:
        seen = job(client, job_id)
        if seen["status"] in ("succeeded", "failed", "cancelled") and seen["status"] != status:
            pytest.fail(f"job {job_id} ended {seen['status']} while waiting for {status}: {seen}")
        return bool(seen["status"] == status and seen["attempt"] == attempt)

    wait_until(reached, timeout, f"job {job_id} {status} in attempt {attempt}", interval=0.05)


def events(client: httpx.Client, job_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    """The events of a job that has ended (the stream of a live job does not end)."""
    return parse_sse(client.get(f"/v1/jobs/{job_id}/events").text)


def status_events(client: httpx.Client, job_id: str) -> list[tuple[int, str, int, str | None]]:
    """(event id, status, attempt, reason) of the job's 'status' events."""
    return [
        (event_id, data["status"], data["attempt"], data.get("reason"))
        for event_id, kind, data in events(client, job_id)
        if kind == "status"
    ]


def cancel(client: httpx.Client, *job_ids: str) -> None:
    for job_id in job_ids:
        client.post(f"/v1/jobs/{job_id}/cancel")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # clock ticks; only compared with each other


def busy_worker(service: ServiceProcess, sample_s: float = 1.0) -> int:
    """The worker process that computes, told by its CPU use (the others sleep)."""
    pids = service.worker_pids()
    before = {pid: cpu_seconds(pid) for pid in pids}
    time.sleep(sample_s)
    used = {pid: cpu_seconds(pid) - before[pid] for pid in pids}
    ranked = sorted(used, key=used.__getitem__, reverse=True)
    assert used[ranked[0]] > 0 and all(used[pid] * 3 < used[ranked[0]] for pid in ranked[1:]), used
    return ranked[0]


def test_a_full_batch_epoch_longer_than_the_heartbeat_timeout_is_not_requeued(tmp_path: Path) -> None:
    with (
        ServiceProcess(tmp_path, **FAST_HEARTBEATS) as service,
        httpx.Client(base_url=service.url, timeout=REQUEST_S) as client,
    ):
        job_id = submit(client, {"dataset_id": create_dataset(client, BIG), **FULL_BATCH, "epochs": 1})
        done = wait_for_job(client, job_id, timeout=JOB_S)

        assert done["status"] == "succeeded", done
        assert done["attempt"] == 1
        assert [(s, a, r) for _, s, a, r in status_events(client, job_id)] == [
            ("queued", 0, None),
            ("running", 1, None),
            ("succeeded", 1, None),
        ]
        # The test means something only if an epoch did outlast the timeout.
        first = next(data for _, kind, data in events(client, job_id) if kind == "progress")
        assert first["progress"]["elapsed_s"] > 2 * FAST_HEARTBEATS["heartbeat_timeout_s"], first


def test_a_run_whose_attempt_went_stale_stops_within_a_heartbeat(tmp_path: Path) -> None:
    # Progress is written rarely, so the stale run cannot learn it lost the job from a refused
    # progress write: only its heartbeat tells it.
    settings = {"workers": 2, "progress_interval_s": 3600, "checkpoint_interval_s": 3600}
    with (
        ServiceProcess(
            tmp_path, heartbeat_interval_s=0.2, heartbeat_timeout_s=limit(30), **settings
        ) as service,
        httpx.Client(base_url=service.url, timeout=REQUEST_S) as client,
        service_store(service) as store,
    ):
        dataset_id = small_dataset(client)
        endless = submit(client, {"dataset_id": dataset_id, **ENDLESS})
        wait_status(client, endless, "running", 1)
        # Presume the run lost, as the reaper does when heartbeats stop (say the store was cut off).
        assert reap_stale(store, 0, now=utcnow() + AN_HOUR) == [endless]
        wait_status(client, endless, "running", 2)

        # Both workers are taken, unless the stale run stopped: then this job runs to its end.
        quick = submit(client, {"dataset_id": dataset_id, **ENDLESS, "epochs": 5})
        finished = wait_for_job(client, quick, timeout=JOB_S)
        assert finished["status"] == "succeeded", finished
        assert job(client, endless)["status"] == "running" and job(client, endless)["attempt"] == 2
        assert f"job {endless} attempt 1: another run owns the job now" in log(service)
        cancel(client, endless)
        assert wait_for_job(client, endless)["status"] == "cancelled"


def test_killing_the_worker_of_a_stale_attempt_leaves_the_current_attempt_alone(tmp_path: Path) -> None:
    with (
        ServiceProcess(
            tmp_path, workers=2, heartbeat_interval_s=0.2, heartbeat_timeout_s=limit(30)
        ) as service,
        httpx.Client(base_url=service.url, timeout=REQUEST_S) as client,
        service_store(service) as store,
    ):
        body = {"dataset_id": create_dataset(client, BIG), **FULL_BATCH, "epochs": 2, "max_retries": 1}
        job_id = submit(client, body)
        wait_status(client, job_id, "running", 1)
        # Right after epoch 1 is checkpointed (the run's last write of that epoch), so that the stale
        # run is in the middle of epoch 2 (seconds long) when its worker dies: it cannot have
        # noticed yet that it lost the job.
        wait_until(lambda: checkpoint_epoch(store, job_id) >= 1, JOB_S, "epoch 1's checkpoint", interval=0.2)
        stale_worker = busy_worker(service)
        assert reap_stale(store, 0, now=utcnow() + AN_HOUR) == [job_id]
        wait_status(client, job_id, "running", 2)
        os.kill(stale_worker, signal.SIGKILL)

        wait_until(lambda: f"job {job_id} attempt 1 lost its worker" in log(service), JOB_S, "the release")
        assert "but the job had already moved on" in log(service)
        done = wait_for_job(client, job_id, timeout=JOB_S)
        assert (done["status"], done["attempt"], done.get("error")) == ("succeeded", 2, None), done


def test_an_interrupted_job_runs_before_jobs_that_never_started(tmp_path: Path) -> None:
    with (
        ServiceProcess(tmp_path, **FAST_HEARTBEATS) as service,
        httpx.Client(base_url=service.url, timeout=REQUEST_S) as client,
        service_store(service) as store,
    ):
        dataset_id = small_dataset(client)
        blocker = submit(client, {"dataset_id": dataset_id, **ENDLESS})
        wait_status(client, blocker, "running", 1)
        waiting = [submit(client, {"dataset_id": dataset_id, **ENDLESS, "epochs": 3}) for _ in range(2)]
        interrupted = submit(client, {"dataset_id": dataset_id, **ENDLESS, "epochs": 3, "max_retries": 1})
        # The newest job starts elsewhere (another service on this store) and that run dies: the
        # reaper finds its heartbeat stale and puts it back in the queue.
        assert claim_job(store, interrupted) == 1
        wait_status(client, interrupted, "queued", 1, timeout=JOB_S)

        cancel(client, blocker)
        for job_id in (interrupted, *waiting):
            assert wait_for_job(client, job_id, timeout=JOB_S)["status"] == "succeeded"
        started = {
            job_id: next(i for i, s, a, _ in status_events(client, job_id) if s == "running" and a == attempt)
            for job_id, attempt in ((interrupted, 2), (waiting[0], 1), (waiting[1], 1))
        }
        assert started[interrupted] < started[waiting[0]] < started[waiting[1]], started
        assert get_job(store, interrupted).attempt == 2


def test_a_job_over_the_worker_memory_cap_fails_and_the_next_job_runs(tmp_path: Path) -> None:
    with (
        ServiceProcess(tmp_path, worker_memory_mb=256) as service,
        httpx.Client(base_url=service.url, timeout=REQUEST_S) as client,
    ):
        (first_worker,) = service.worker_pids()
        # One hidden layer of 4096 units over 20,000 rows: 655 MB per activation array.
        body = {
            **FULL_BATCH,
            "model": {"type": "mlp", "hidden_layers": [4096]},
            "epochs": 1,
            "max_retries": 3,
        }
        greedy = submit(client, {"dataset_id": create_dataset(client, BIG), **body})
        failed = wait_for_job(client, greedy, timeout=JOB_S)

        assert (failed["status"], failed["attempt"]) == ("failed", 1), failed
        assert failed["error"]["type"] == "resource_exhausted"
        assert "DESCENT_WORKER_MEMORY_MB" in failed["error"]["detail"]
        assert "256 MiB" in failed["error"]["detail"]
        # The worker is replaced, and the next job runs on the new one.
        wait_until(lambda: first_worker not in service.worker_pids(), STARTUP_S, "the worker to be replaced")
        modest = submit(client, {"dataset_id": small_dataset(client), **ENDLESS, "epochs": 3})
        assert wait_for_job(client, modest, timeout=JOB_S)["status"] == "succeeded"
        assert len(service.worker_pids()) == 1


def test_sigterm_ends_a_worker_in_a_long_epoch_within_the_grace_plus_two_seconds(tmp_path: Path) -> None:
    # A full-batch epoch of seconds: the run cannot stop at a mini-batch within the grace, so the
    # shutdown has to end its worker; the other worker is idle. Everything is gone by grace + 2 s.
    grace = 1.0
    service = ServiceProcess(tmp_path, workers=2, shutdown_grace_s=grace).start()
    try:
        with httpx.Client(base_url=service.url, timeout=REQUEST_S) as client:
            body = {"dataset_id": create_dataset(client, BIG), **FULL_BATCH, "epochs": 1000}
            running = submit(client, body)
            wait_status(client, running, "running", 1)
        pgid = service.pid
        assert len(group_members(pgid)) >= 3  # the server and its two workers (at least)
        assert service.process is not None
        service.process.send(signal.SIGTERM)
        wait_until(lambda: not group_members(pgid), limit(grace + 2), "every process of the service to exit")
    finally:
        service.kill_group()


def test_sigterm_ends_every_process_of_the_service_within_the_grace(tmp_path: Path) -> None:
    grace = 3.0
    service = ServiceProcess(tmp_path, workers=2, shutdown_grace_s=grace).start()
    followed = threading.Event()
    try:
        with httpx.Client(base_url=service.url, timeout=REQUEST_S) as client:
            running = submit(client, {"dataset_id": small_dataset(client), **ENDLESS})
            wait_status(client, running, "running", 1)

        def follow() -> None:
            # A client following the running job: its stream must not hold the shutdown up.
            with (
                contextlib.suppress(httpx.HTTPError),
                httpx.stream("GET", f"{service.url}/v1/jobs/{running}/events", timeout=JOB_S) as stream,
            ):
                for _ in stream.iter_lines():
                    pass
            followed.set()

        threading.Thread(target=follow, daemon=True).start()
        time.sleep(0.5)
        pgid = service.pid
        assert len(group_members(pgid)) >= 3  # the server and its two workers (at least)
        assert service.process is not None
        service.process.send(signal.SIGTERM)
        # Generous, yet far below what the old behaviour took (it waited for the stream to end).
        wait_until(lambda: not group_members(pgid), limit(grace + 15), "every process of the service to exit")
        assert followed.wait(REQUEST_S), "the event stream was not closed"
    finally:
        service.kill_group()

    with service, httpx.Client(base_url=service.url, timeout=REQUEST_S) as client:
        cancel(client, running)
        assert wait_for_job(client, running)["status"] == "cancelled"
        # The running job checkpointed and went back to the queue in good order.
        assert ("queued", 1, "shutdown") in [e[1:] for e in status_events(client, running)]
