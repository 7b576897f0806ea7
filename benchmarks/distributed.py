"""Distributed mode speed: Celery workers scaling out, and the queue's latency.

Starts the docker compose deployment as local processes (``tests/deploy/stack.py``: the compose file's
migrate, api and worker commands) against a private Redis and a PostgreSQL database (a fresh database
on the machine's server when it is reachable, else a private cluster), with the compose settings, then:

1. Throughput: 20 identical jobs of about 1 s each, queued at once, on 1 worker and then on 2 workers.
   The time is the makespan from the store's timestamps: first ``created_at`` to last ``finished_at``.
   Target: 2 workers take at most 0.6 × the time of 1 worker. The pair is measured ``--rounds`` times,
   alternating, and the medians are compared, so that a change in the machine's other load between
   the two measurements does not decide the ratio.
2. Queue latency on an idle cluster: 20 tiny jobs one after another (each submitted once the previous
   one has ended); latency is ``started_at − created_at`` (the job written by the API → claimed by a
   worker), both stamped by the store's clients on this machine. Target: p50 ≤ 100 ms.

Run: python benchmarks/distributed.py [--jobs 20] [--job-seconds 1.0] [--rounds 3]. Prints a Markdown
report for docs/benchmarks.md. Needs redis-server and PostgreSQL (see the README). The workers need
the machine's cores to themselves: other load makes two jobs at once slower than one alone, which the
report shows as the per-job slowdown.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import statistics
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from tests import pg
from tests.deploy.stack import (
    PostgresCluster,
    RedisServer,
    Stack,
    postgres_unavailable_reason,
    redis_unavailable_reason,
)
from tests.processes import wait_until

TERMINAL = {"succeeded", "failed", "cancelled"}
CALIBRATION_EPOCHS = 1000
THROUGHPUT_TARGET = 0.6
LATENCY_TARGET_S = 0.100


def job_body(dataset_id: str, epochs: int, seed: int) -> dict[str, Any]:
    return {
        "dataset_id": dataset_id,
        "model": {"type": "mlp", "hidden_layers": [16], "activation": "tanh"},
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "epochs": epochs,
        "batch_size": 32,
        "seed": seed,
    }


def timestamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


@contextlib.contextmanager
def database() -> Iterator[str]:
    """A fresh database: on the machine's PostgreSQL when reachable, else on a private cluster."""
    if pg.unavailable_reason() is None:
        with pg.temp_database() as url:
            yield url
        return
    reason = postgres_unavailable_reason()
    if reason is not None:
        sys.exit(f"no PostgreSQL to run against: {pg.unavailable_reason()}; {reason}")
    with PostgresCluster() as cluster:
        yield cluster.create_database()


class Client:
    """The few API calls the benchmark makes."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)

    def dataset(self) -> str:
        body = {"name": "xor", "generator": {"kind": "xor", "n_samples": 400, "noise": 0.1, "seed": 1}}
        response = self.http.post("/v1/datasets", json=body)
        response.raise_for_status()
        return str(response.json()["id"])

    def submit(self, dataset_id: str, epochs: int, seed: int = 0) -> str:
        response = self.http.post("/v1/jobs", json=job_body(dataset_id, epochs, seed))
        if response.status_code != 202:
            raise RuntimeError(f"POST /v1/jobs answered {response.status_code}: {response.text}")
        return str(response.json()["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.http.get(f"/v1/jobs/{job_id}")
        response.raise_for_status()
        job: dict[str, Any] = response.json()
        return job

    def wait(self, job_ids: list[str], timeout: float, poll_s: float = 0.2) -> list[dict[str, Any]]:
        """The jobs once all are terminal; polls gently, so as not to take CPU from the workers."""
        done: dict[str, dict[str, Any]] = {}

        def finished() -> bool:
            for job_id in job_ids:
                if job_id not in done:
                    job = self.job(job_id)
                    if job["status"] not in TERMINAL:
                        return False
                    done[job_id] = job
            return True

        wait_until(finished, timeout, f"{len(job_ids)} jobs ending", interval=poll_s)
        failed = [job for job in done.values() if job["status"] != "succeeded"]
        if failed:
            raise RuntimeError(f"{len(failed)} jobs did not succeed, e.g. {failed[0]}")
        return [done[job_id] for job_id in job_ids]


def run_seconds(job: dict[str, Any]) -> float:
    return timestamp(job["finished_at"]) - timestamp(job["started_at"])


def makespan(client: Client, dataset_id: str, n_jobs: int, epochs: int) -> tuple[float, float]:
    """Queue n_jobs at once; (first created → last finished, median run time of one job) in seconds."""
    ids = [client.submit(dataset_id, epochs, seed=i) for i in range(n_jobs)]
    jobs = client.wait(ids, timeout=30 + 10 * n_jobs)
    span = max(timestamp(j["finished_at"]) for j in jobs) - min(timestamp(j["created_at"]) for j in jobs)
    return span, statistics.median(run_seconds(j) for j in jobs)


def queue_latencies(client: Client, dataset_id: str, n_jobs: int) -> list[float]:
    """submit → running of tiny jobs sent one after another to an idle cluster, in seconds."""
    latencies = []
    for i in range(n_jobs):
        job_id = client.submit(dataset_id, epochs=5, seed=i)
        (job,) = client.wait([job_id], timeout=30, poll_s=0.02)
        latencies.append(timestamp(job["started_at"]) - timestamp(job["created_at"]))
    return latencies


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


@dataclass(frozen=True)
class Results:
    epochs: int
    # One (makespan, median run time of a job) per round, in seconds.
    one_worker: list[tuple[float, float]]
    two_workers: list[tuple[float, float]]
    latencies_s: list[float]
    load_after: float


def measure(workdir: Path, n_jobs: int, job_seconds: float, rounds: int) -> Results:
    """Start the stack (with the compose file's settings, unchanged) and take every measurement."""
    with (
        database() as database_url,
        RedisServer(workdir / "redis") as redis_server,
        Stack(database_url, redis_server.url, workdir, workers=2) as stack,
    ):
        stack.start()
        client = Client(stack.api_url)
        dataset_id = client.dataset()

        # Calibrate on one worker: the epochs of a job of about job_seconds.
        stack.terminate("worker-2")
        (calibration,) = client.wait([client.submit(dataset_id, CALIBRATION_EPOCHS)], timeout=120)
        epochs = max(1, round(CALIBRATION_EPOCHS * job_seconds / run_seconds(calibration)))

        one, two = [], []
        for i in range(rounds):
            if i > 0:
                stack.terminate("worker-2")
            one.append(makespan(client, dataset_id, n_jobs, epochs))
            stack.start_process("worker-2")
            two.append(makespan(client, dataset_id, n_jobs, epochs))
        latencies = queue_latencies(client, dataset_id, n_jobs)
        return Results(epochs, one, two, latencies, os.getloadavg()[0])


def report(n_jobs: int, load_before: float, r: Results) -> None:
    """The results as Markdown."""
    one = statistics.median(span for span, _ in r.one_worker)
    two = statistics.median(span for span, _ in r.two_workers)
    one_job = statistics.median(job for _, job in r.one_worker)
    two_job = statistics.median(job for _, job in r.two_workers)
    ratio = two / one
    rounds = ", ".join(f"{b[0] / a[0]:.2f}" for a, b in zip(r.one_worker, r.two_workers, strict=True))
    p50, p90 = statistics.median(r.latencies_s), quantile(r.latencies_s, 0.9)
    ok = {True: "yes", False: "**no**"}
    print(f"## Distributed mode ({n_jobs} jobs; Celery workers on Redis, PostgreSQL store)\n")
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}. Job: MLP 2→16→1 (tanh), Adam, batch 32, on 400 XOR "
        f"samples, {r.epochs} epochs (median run time {one_job:.2f} s with 1 worker, "
        f"{two_job:.2f} s with 2 running at once). "
        # Anything else running on the machine takes CPU from the workers: say how busy it was.
        f"Load average (1 min): {load_before:.1f} before, {r.load_after:.1f} after.\n"
    )
    print("| measure | result | target | met |")
    print("|---|---:|---:|:---:|")
    print(f"| {n_jobs} jobs, 1 worker (first submitted → last finished) | {one:.2f} s | | |")
    print(
        f"| {n_jobs} jobs, 2 workers | {two:.2f} s = {ratio:.2f} × 1 worker "
        f"| ≤ {THROUGHPUT_TARGET} × | {ok[ratio <= THROUGHPUT_TARGET]} |"
    )
    print(f"| 2 workers / 1 worker, each of {len(r.one_worker)} rounds | {rounds} | | |")
    # Were two jobs at once as fast as one alone, the ratio would be 0.5; it is at least half the slowdown.
    slowdown = two_job / one_job
    print(f"| run time of a job, 2 at once / alone (machine's share of CPU) | {slowdown:.2f} × | 1.0 × | |")
    print(
        f"| queue latency submit → running, idle cluster, p50 | {p50 * 1000:.0f} ms "
        f"| ≤ {LATENCY_TARGET_S * 1000:.0f} ms | {ok[p50 <= LATENCY_TARGET_S]} |"
    )
    print(f"| queue latency p90 / max | {p90 * 1000:.0f} ms / {max(r.latencies_s) * 1000:.0f} ms | | |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20, help="jobs per measurement (default 20)")
    parser.add_argument("--job-seconds", type=float, default=1.0, help="run time of one job (default 1 s)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of 1 then 2 workers (default 3)")
    args = parser.parse_args(argv)
    reason = redis_unavailable_reason()
    if reason is not None:
        sys.exit(reason)
    workdir = Path(tempfile.mkdtemp(prefix="descent-bench-"))
    load_before = os.getloadavg()[0]
    try:
        results = measure(workdir, args.jobs, args.job_seconds, args.rounds)
    except BaseException:
        print(f"the processes' logs are in {workdir}", file=sys.stderr)
        raise
    shutil.rmtree(workdir, ignore_errors=True)
    report(args.jobs, load_before, results)


if __name__ == "__main__":
    main()
