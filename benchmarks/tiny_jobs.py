"""Tiny jobs by the hundred on the embedded runner with 2 workers.

Starts `descent serve` (embedded runner, `DESCENT_WORKERS=2`, a fresh SQLite file) on 127.0.0.1 and measures,
after a warm-up, in each of `--repeats` rounds:
- throughput: 200 one-epoch jobs submitted from 8 concurrent connections, from the first submit to the last
  `succeeded` (the store's `finished_at`; target >= 200 jobs/s);
- latency: 20 jobs one after another on the idle service, submit (client clock, before the POST) to
  `succeeded` (the store's `finished_at`; target p50 <= 20 ms);
- CPU per job over the throughput rounds: the server's process, its worker processes, and this client
  (which runs on the same cores), from `/proc` and `time.process_time`.

The job is tiny on purpose: a logistic regression, or an MLP 2→8→1, on 200 XOR points, one epoch, so that
the figures measure the service's cost per job rather than the engine's. `--model mlp64` runs the MLP
2→64→64→3 on 3,000 spiral points of `benchmarks/jobs.py` instead (one epoch of it takes ~24 ms of engine
time, so two workers cannot go beyond ~80 jobs/s there).

Run: python benchmarks/tiny_jobs.py [--repeats 5] [--model tiny|mlp64]. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
N_JOBS, N_LATENCY, CONNECTIONS = 200, 20, 8
DATASETS = {
    "tiny": {"kind": "xor", "n_samples": 200, "noise": 0.1, "seed": 1},
    "mlp64": {"kind": "spiral", "n_samples": 3000, "noise": 0.2, "n_classes": 3, "seed": 1},
}
MODELS = {
    "tiny": {"type": "mlp", "hidden_layers": [8], "activation": "tanh"},
    "mlp64": {"type": "mlp", "hidden_layers": [64, 64], "activation": "relu"},
}


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The child processes of ``pid``, whichever of its threads started them (the runner starts its
    workers from a thread of the server's, not from its main thread)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except FileNotFoundError:
            pass  # a thread that ended meanwhile
    return found


def cpu_split(pid: int) -> tuple[float, float]:
    """CPU seconds so far of the API process and of its worker processes."""
    workers = 0.0
    for child in children(pid):
        try:
            workers += cpu_seconds(child)
        except FileNotFoundError:
            pass
    return cpu_seconds(pid), workers


def start_server(tmp: str, port: int, extra: dict[str, str]) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DESCENT_PORT": str(port),
        "DESCENT_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
        "DESCENT_LOG_LEVEL": "warning",
        "DESCENT_MAX_QUEUED_JOBS": "1000",
        "DESCENT_QUOTA_JOBS": "1000",
        "DESCENT_WORKERS": "2",
        **extra,
    }
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "descent"), "serve"], env=env, start_new_session=True
    )  # the workers are the server's child processes (spawned): their CPU time is read from /proc


async def wait_all(client: httpx.AsyncClient, ids: list[str], timeout: float = 300) -> list[dict[str, Any]]:
    """The jobs once all have ended (the figures come from the store, not from when this client sees them).

    Looks every 0.1 s whether any job is still active (one small list request), then reads the jobs in
    pages: the client watching costs the service little next to the jobs it measures.
    """
    deadline = time.monotonic() + timeout
    active = {"status": ["queued", "running", "cancelling"], "limit": 1}
    while (await client.get("/v1/jobs", params=active)).json()["items"]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs did not end in {timeout} s")
        await asyncio.sleep(0.1)
    wanted, found = set(ids), {}
    cursor = None
    while wanted - found.keys():
        params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/jobs", params=params)).json()
        found.update((job["id"], job) for job in page["items"] if job["id"] in wanted)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    return [found[i] for i in ids]


async def throughput(client: httpx.AsyncClient, config: dict[str, Any]) -> tuple[float, int]:
    """Jobs per second from the first submit to the last finished_at, and how many succeeded."""
    queue = list(range(N_JOBS))
    ids: list[str] = []

    async def submitter() -> None:
        while queue:
            queue.pop()
            response = await client.post("/v1/jobs", json=config)
            ids.append(response.json()["id"])

    t0 = time.time()
    await asyncio.gather(*(submitter() for _ in range(CONNECTIONS)))
    jobs = await wait_all(client, ids)
    last = max(ts(job["finished_at"]) for job in jobs)
    return N_JOBS / (last - t0), sum(job["status"] == "succeeded" for job in jobs)


async def latencies(client: httpx.AsyncClient, config: dict[str, Any]) -> list[float]:
    """Submit -> succeeded (ms) of jobs sent one after another, each once the previous one ended."""
    out = []
    for _ in range(N_LATENCY):
        t0 = time.time()
        job_id = (await client.post("/v1/jobs", json=config)).json()["id"]
        (job,) = await wait_all(client, [job_id])
        out.append((ts(job["finished_at"]) - t0) * 1000)
        await asyncio.sleep(0.2)  # idle again
    return out


async def run(port: int, model: str, repeats: int, pid: int) -> list[str]:
    load0 = os.getloadavg()
    limits = httpx.Limits(max_connections=CONNECTIONS)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60, limits=limits) as client:
        deadline = time.monotonic() + 180  # a loaded machine starts the server slowly
        while True:
            try:
                if (await client.get("/readyz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not become ready")
            await asyncio.sleep(0.2)
        body = {"name": "tiny", "generator": DATASETS[model]}
        ds = (await client.post("/v1/datasets", json=body)).json()["id"]
        config = {
            "dataset_id": ds,
            "model": MODELS[model],
            "optimizer": {"name": "adam", "learning_rate": 0.01},
            "epochs": 1,
            "batch_size": 32 if model == "tiny" else 64,
            "seed": 7,
        }
        await latencies(client, config)  # warm-up: imports, caches, the first blobs
        rates, ok_counts, p50s, maxes, api_ms, worker_ms, client_ms = [], [], [], [], [], [], []
        for _ in range(repeats):
            api0, workers0 = cpu_split(pid)
            client0 = time.process_time()
            rate, ok = await throughput(client, config)
            api1, workers1 = cpu_split(pid)
            client_ms.append((time.process_time() - client0) / N_JOBS * 1000)
            api_ms.append((api1 - api0) / N_JOBS * 1000)
            worker_ms.append((workers1 - workers0) / N_JOBS * 1000)
            rates.append(rate)
            ok_counts.append(ok)
            await asyncio.sleep(0.5)
            lat = await latencies(client, config)
            p50s.append(statistics.median(lat))
            maxes.append(max(lat))
    fmt = ", ".join
    return [
        f"| {N_JOBS} one-epoch jobs ({model}), 2 workers, first submit → last succeeded | "
        f"median {statistics.median(rates):.0f} jobs/s (runs: {fmt(f'{r:.0f}' for r in rates)}); "
        f"succeeded {min(ok_counts)}/{N_JOBS} or more | ≥ 200 jobs/s |",
        f"| submit → succeeded, idle service, {N_LATENCY} jobs one after another ({model}) | "
        f"median p50 {statistics.median(p50s):.1f} ms (runs: {fmt(f'{p:.1f}' for p in p50s)}; "
        f"max {max(maxes):.1f} ms) | p50 ≤ 20 ms |",
        f"| CPU per job in the throughput rounds ({model}) | API process {statistics.median(api_ms):.1f} ms, "
        f"workers {statistics.median(worker_ms):.1f} ms: two cores allow at most "
        f"{2000 / (statistics.median(api_ms) + statistics.median(worker_ms)):.0f} jobs/s "
        f"(and this client {statistics.median(client_ms):.1f} ms, on the same cores) | |",
        f"| load average at the start | {load0[0]:.1f}, {load0[1]:.1f}, {load0[2]:.1f} | |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", choices=sorted(MODELS), default="tiny")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        server = start_server(tmp, port, {})
        try:
            rows = asyncio.run(run(port, args.model, args.repeats, server.pid))
        finally:
            server.terminate()
            server.wait(30)
    print(f"load average at the end: {os.getloadavg()}")
    print("| benchmark | Descent | target |")
    print("|---|---|---|")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
