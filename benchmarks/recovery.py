"""Recovery times: a worker killed or stopped mid-job, and the stop of ``descent serve``.

With the settings of docker-compose.yml (heartbeat every 1 s, timeout 10 s, re-dispatch after 10 s):

1. kill -9 of a Celery worker running a job, the other worker idle: the time from the kill to the
   job's next attempt running (its 'running' event), and from the requeue to that start.
2. The same with the other worker busy and two jobs that never started waiting in the broker ahead of
   the requeued job's message; the killed worker is started again at once. Reported: requeue → start of
   the requeued job, and whether it started before the two that were waiting.
3. SIGTERM (``docker stop``) of the worker running a job, in the setting of 2: requeue → start.
4. SIGTERM of ``descent serve`` (embedded, 2 workers, one job running, one client following its event
   stream): the time until every process of the service has exited (the grace is 10 s).

Each is measured ``--rounds`` times; the report gives the median and the range. Event times come from
the store (``job_events.created_at``), stamped on this machine like the kill.

Run: python benchmarks/recovery.py [--rounds 5]. Needs redis-server and PostgreSQL.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from service.store import Store, events_since, get_job, open_store
from tests import pg
from tests.deploy.stack import RedisServer, Stack
from tests.processes import group_members, wait_until
from tests.service.test_jobs_e2e import ServiceProcess

ENDLESS: dict[str, Any] = {
    "model": {"type": "mlp", "hidden_layers": [16], "activation": "tanh"},
    "optimizer": {"name": "sgd", "learning_rate": 0.01},
    "batch_size": 8,
    "epochs": 100_000,
    "seed": 0,
    "max_retries": 5,
}
SHORT = {**ENDLESS, "epochs": 20}


def event_time(store: Store, job_id: str, status: str, attempt: int, reason: str | None = None) -> float:
    """When the job's 'status' event with this status and attempt (and reason) was written."""
    for event in events_since(store, job_id, limit=1000):
        data = event.data
        if event.kind == "status" and data["status"] == status and data["attempt"] == attempt:
            if reason is None or data.get("reason") == reason:
                return event.created_at.timestamp()
    raise LookupError(f"job {job_id} has no event {status} attempt {attempt}")


def submit(client: httpx.Client, body: dict[str, Any]) -> str:
    response = client.post("/v1/jobs", json=body)
    response.raise_for_status()
    return str(response.json()["id"])


def wait_running(store: Store, job_id: str, attempt: int, timeout: float = 120) -> None:
    def running() -> bool:
        job = get_job(store, job_id)
        return job.status == "running" and job.attempt == attempt

    wait_until(running, timeout, f"job {job_id} running attempt {attempt}", interval=0.05)


def worker_of(stack: Stack) -> str:
    """The one worker that computes (the job just started), told by its CPU use."""
    for _ in range(20):
        with contextlib.suppress(RuntimeError):
            return stack.busy_worker(1.0)
    raise RuntimeError("could not tell which worker runs the job")


@contextlib.contextmanager
def celery_stack(workdir: Path) -> Iterator[tuple[Stack, Store, httpx.Client]]:
    with (
        RedisServer(workdir / "redis") as redis_server,
        pg.temp_database() as url,
        Stack(url, redis_server.url, workdir / "stack", workers=2) as stack,
    ):
        stack.start()
        store = open_store(url, migrate_schema=False)
        try:
            with httpx.Client(base_url=stack.api_url, timeout=30) as client:
                yield stack, store, client
        finally:
            store.close()


def kill_9_idle_peer(stack: Stack, store: Store, client: httpx.Client, dataset_id: str) -> dict[str, float]:
    job_id = submit(client, {"dataset_id": dataset_id, **ENDLESS})
    wait_running(store, job_id, 1)
    victim = worker_of(stack)
    killed_at = time.time()
    stack.kill(victim)
    wait_running(store, job_id, 2)
    started = event_time(store, job_id, "running", 2)
    requeued = event_time(store, job_id, "queued", 1, "worker_lost")
    client.post(f"/v1/jobs/{job_id}/cancel")
    stack.start_process(victim)
    return {"kill → running": started - killed_at, "requeue → running": started - requeued}


def requeued_behind_waiting(
    stack: Stack, store: Store, client: httpx.Client, dataset_id: str, how: str
) -> dict[str, float]:
    first = submit(client, {"dataset_id": dataset_id, **ENDLESS})
    wait_running(store, first, 1)
    first_worker = worker_of(stack)
    second = submit(client, {"dataset_id": dataset_id, **ENDLESS})
    wait_running(store, second, 1)
    waiting = [submit(client, {"dataset_id": dataset_id, **SHORT}) for _ in range(2)]
    time.sleep(1.0)
    if how == "kill -9":
        stack.kill(first_worker)
        stack.start_process(first_worker, wait=False)
        reason = "worker_lost"
    else:
        stack.terminate(first_worker, timeout=60)
        stack.start_process(first_worker, wait=False)
        reason = "shutdown"
    wait_running(store, first, 2, timeout=300)
    started = event_time(store, first, "running", 2)
    requeued = event_time(store, first, "queued", 1, reason)
    for job_id in (first, second):
        client.post(f"/v1/jobs/{job_id}/cancel")
    wait_until(lambda: all(get_job(store, j).status == "succeeded" for j in waiting), 300, "the waiting jobs")
    before = all(started < event_time(store, j, "running", 1) for j in waiting)
    stack.wait_started(first_worker)
    return {"requeue → running": started - requeued, "ran first": float(before)}


def serve_stop(workdir: Path) -> dict[str, float]:
    service = ServiceProcess(workdir, workers=2, shutdown_grace_s=10, log_level="warning").start()
    try:
        with httpx.Client(base_url=service.url, timeout=30) as client:
            spec = {"kind": "moons", "n_samples": 200, "noise": 0.2, "seed": 1}
            dataset_id = client.post("/v1/datasets", json={"name": "m", "generator": spec}).json()["id"]
            job_id = submit(client, {"dataset_id": dataset_id, **ENDLESS})
            wait_until(lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == "running", 60, "running")

        def follow() -> None:
            with (
                contextlib.suppress(httpx.HTTPError),
                httpx.stream("GET", f"{service.url}/v1/jobs/{job_id}/events", timeout=120) as stream,
            ):
                for _ in stream.iter_lines():
                    pass

        threading.Thread(target=follow, daemon=True).start()
        time.sleep(1.0)
        pgid = service.pid
        sent = time.monotonic()
        os.kill(pgid, signal.SIGTERM)
        wait_until(lambda: not group_members(pgid), 120, "the service to exit", interval=0.02)
        return {"SIGTERM → no process left": time.monotonic() - sent}
    finally:
        service.kill_group()


def summarize(name: str, samples: list[dict[str, float]]) -> list[str]:
    lines = []
    for key in samples[0]:
        values = [s[key] for s in samples]
        if key == "ran first":
            lines.append(
                f"| {name}: requeued job started before the 2 waiting | {int(sum(values))}/{len(values)} |"
            )
            continue
        lines.append(
            f"| {name}: {key} | {statistics.median(values):.1f} s ({min(values):.1f}–{max(values):.1f} s) |"
        )
    return lines


def collect(rounds: int, run: Callable[[], dict[str, float]]) -> list[dict[str, float]]:
    samples = []
    for i in range(rounds):
        samples.append(run())
        print(f"  round {i + 1}: {samples[-1]}", file=sys.stderr)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    lines = ["| measure | median (range) |", "|---|---|"]
    with tempfile.TemporaryDirectory(prefix="descent-recovery-") as tmp:
        workdir = Path(tmp)
        with celery_stack(workdir / "celery") as (stack, store, client):
            spec = {"kind": "moons", "n_samples": 200, "noise": 0.2, "seed": 1}
            dataset_id = client.post("/v1/datasets", json={"name": "m", "generator": spec}).json()["id"]
            print("kill -9, idle peer", file=sys.stderr)
            lines += summarize(
                "kill -9, other worker idle",
                collect(args.rounds, lambda: kill_9_idle_peer(stack, store, client, dataset_id)),
            )
            for how in ("kill -9", "SIGTERM"):
                print(f"{how}, 2 jobs waiting", file=sys.stderr)
                lines += summarize(
                    f"{how}, 2 never-started jobs waiting",
                    collect(
                        args.rounds,
                        lambda how=how: requeued_behind_waiting(stack, store, client, dataset_id, how),
                    ),
                )
        print("descent serve SIGTERM", file=sys.stderr)
        stops = []
        for i in range(args.rounds):
            round_dir = workdir / f"serve-{i}"
            round_dir.mkdir()
            stops.append(serve_stop(round_dir))
            print(f"  round {i + 1}: {stops[-1]}", file=sys.stderr)
        lines += summarize("descent serve (embedded, grace 10 s)", stops)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
