"""A bounded soak: minutes of mixed traffic against a real `descent serve`, then an account of what broke.

Starts `descent serve` (embedded runner, 2 workers, a fresh SQLite file) on 127.0.0.1 and, for
``--minutes`` (default 10), runs at once:

- compute requests of every size: sigmoid of 10 and of 100,000 numbers, a forward pass of a
  400-unit MLP on 2,000 rows with intermediates, gradients of 10,000 × 20, a loss;
- dataset uploads (JSON generators and CSV) and deletions;
- training jobs, each with an Idempotency-Key (a fifth cancelled while they run);
- ``--followers`` (default 200) server-sent-event followers, each resuming with Last-Event-ID;
- every ``--kill-every`` seconds (default 60), kill -9 of one embedded worker process;
- a /healthz probe every 100 ms.

Then it waits for every job to end and reports: 5xx answers, jobs lost (never terminal) or duplicated (an
epoch recorded twice or missing, or two jobs for one key), the API's resident memory after warm-up and at
the end, and the /healthz latency percentiles. Targets: 0, 0, within 10 %, p99 under 100 ms.

Run: python benchmarks/soak.py [--minutes 10]. Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

TERMINAL = {"succeeded", "failed", "cancelled"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def workers(pid: int) -> list[int]:
    """The server's job worker processes (multiprocessing children; not the resource tracker, not the
    heavy lane's worker processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                cmdline = (entry / "cmdline").read_bytes()
                if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
                    found.append(int(entry.name))
    return found


class Soak:
    def __init__(self, base: str, server_pid: int, followers: int, kill_every: float) -> None:
        self.base, self.server_pid = base, server_pid
        self.followers, self.kill_every = followers, kill_every
        self.statuses: Counter[int] = Counter()
        self.five_hundreds: list[str] = []
        self.health_ms: list[float] = []
        self.jobs: dict[str, str] = {}  # idempotency key -> job id
        self.kills = 0
        self.stop = asyncio.Event()
        self.rng = random.Random(1)

    async def request(
        self, client: httpx.AsyncClient, method: str, url: str, **kw: Any
    ) -> httpx.Response | None:
        try:
            r = await client.request(method, url, **kw)
        except httpx.HTTPError as exc:
            self.five_hundreds.append(f"{method} {url}: {type(exc).__name__}")
            return None
        self.statuses[r.status_code] += 1
        if r.status_code >= 500 and r.status_code != 503:
            self.five_hundreds.append(f"{method} {url}: {r.status_code} {r.text[:200]}")
        return r

    async def health(self, client: httpx.AsyncClient) -> None:
        while not self.stop.is_set():
            t0 = time.perf_counter()
            r = await self.request(client, "GET", "/healthz")
            if r is not None:
                self.health_ms.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.1)

    async def compute(self, client: httpx.AsyncClient) -> None:
        small = {"x": [0.1 * i for i in range(10)], "derivative": True}
        medium = {"x": [self.rng.uniform(-5, 5) for _ in range(100_000)]}
        w1 = [[self.rng.gauss(0, 0.1) for _ in range(400)] for _ in range(20)]
        forward = {
            "model": {
                "type": "mlp",
                "layers": [{"units": 400, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}],
                "parameters": [
                    {"weights": w1, "bias": [0.0] * 400},
                    {"weights": [[0.01]] * 400, "bias": [0.0]},
                ],
            },
            "X": [[self.rng.gauss(0, 1) for _ in range(20)] for _ in range(2_000)],
            "return_intermediates": True,
        }
        X = [[self.rng.gauss(0, 1) for _ in range(20)] for _ in range(10_000)]
        gradients = {
            "model": {"type": "logistic_regression", "weights": [0.0] * 20, "bias": 0.0},
            "X": X,
            "y": [int(row[0] > 0) for row in X],
        }
        loss = {"y_true": [0, 1, 1], "y_pred": [0.1, 0.8, 0.6], "gradient": True}
        choices = [
            ("/v1/activations/sigmoid", small, 10),
            ("/v1/activations/tanh", medium, 2),
            ("/v1/forward", forward, 1),
            ("/v1/gradients", gradients, 1),
            ("/v1/losses/binary_cross_entropy", loss, 5),
        ]
        weights = [c[2] for c in choices]
        while not self.stop.is_set():
            path, body, _ = self.rng.choices(choices, weights)[0]
            await self.request(client, "POST", path, json=body)

    async def datasets(self, client: httpx.AsyncClient) -> None:
        kinds = ["xor", "circles", "moons", "spiral", "blobs", "linear"]
        while not self.stop.is_set():
            if self.rng.random() < 0.5:
                body = {
                    "name": "soak",
                    "generator": {"kind": self.rng.choice(kinds), "n_samples": 500, "seed": 1},
                }
                r = await self.request(client, "POST", "/v1/datasets", json=body)
            else:
                rows = "\n".join(f"{i % 7},{i % 3},{i % 2}" for i in range(2_000))
                r = await self.request(
                    client,
                    "POST",
                    "/v1/datasets?label=y",
                    content=f"a,b,y\n{rows}\n",
                    headers={"content-type": "text/csv"},
                )
            if r is not None and r.status_code == 201 and self.rng.random() < 0.5:
                await self.request(client, "DELETE", f"/v1/datasets/{r.json()['id']}")
            await asyncio.sleep(0.5)

    async def submit_jobs(self, client: httpx.AsyncClient) -> None:
        r = await self.request(
            client,
            "POST",
            "/v1/datasets",
            json={
                "name": "soak-xor",
                "generator": {"kind": "xor", "n_samples": 400, "noise": 0.1, "seed": 1},
            },
        )
        assert r is not None and r.status_code == 201, r and r.text
        dataset_id = r.json()["id"]
        while not self.stop.is_set():
            key = str(uuid.uuid4())
            body = {
                "dataset_id": dataset_id,
                "model": {"type": "mlp", "hidden_layers": [16], "activation": "tanh"},
                "optimizer": {"name": "adam", "learning_rate": 0.01},
                "epochs": self.rng.choice([50, 200, 1000]),
                "batch_size": 32,
                "seed": 1,
            }
            # Twice with one key: the second must answer the same job.
            answers = [
                await self.request(client, "POST", "/v1/jobs", json=body, headers={"Idempotency-Key": key})
                for _ in range(2)
            ]
            ids = {a.json()["id"] for a in answers if a is not None and a.status_code in (200, 202)}
            if len(ids) > 1:
                self.five_hundreds.append(f"idempotency key {key} answered {ids}")
            if ids:
                job_id = ids.pop()
                self.jobs[key] = job_id
                if self.rng.random() < 0.2:
                    await asyncio.sleep(self.rng.uniform(0.1, 2))
                    await self.request(client, "POST", f"/v1/jobs/{job_id}/cancel")
            await asyncio.sleep(1.0)

    async def follow(self, client: httpx.AsyncClient) -> None:
        while not self.stop.is_set():
            if not self.jobs:
                await asyncio.sleep(0.5)
                continue
            job_id = self.rng.choice(list(self.jobs.values()))
            last = "0"
            try:
                async with client.stream(
                    "GET", f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": last}, timeout=None
                ) as r:
                    self.statuses[r.status_code] += 1
                    async for line in r.aiter_lines():
                        if line.startswith("id:"):
                            last = line[3:].strip()
                        if self.stop.is_set():
                            break
            except httpx.HTTPError:
                await asyncio.sleep(0.2)

    async def killer(self) -> None:
        while not self.stop.is_set():
            try:
                await asyncio.wait_for(self.stop.wait(), self.kill_every)
            except TimeoutError:
                pids = workers(self.server_pid)
                if pids:
                    os.kill(self.rng.choice(pids), signal.SIGKILL)
                    self.kills += 1

    async def audit(self, client: httpx.AsyncClient, wait_s: float) -> dict[str, int]:
        deadline = time.monotonic() + wait_s
        lost = duplicated = 0
        for job_id in self.jobs.values():
            while True:
                job = (await client.get(f"/v1/jobs/{job_id}")).json()
                if job["status"] in TERMINAL or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            if job["status"] not in TERMINAL:
                lost += 1
                continue
            epochs = (await client.get(f"/v1/jobs/{job_id}/metrics")).json()["epochs"]
            if epochs != list(range(1, len(epochs) + 1)):
                duplicated += 1
        return {"lost": lost, "duplicated": duplicated}


async def run(args: argparse.Namespace, base: str, pid: int) -> dict[str, Any]:
    soak = Soak(base, pid, args.followers, args.kill_every)
    limits = httpx.Limits(max_connections=args.followers + 50, max_keepalive_connections=args.followers + 50)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        tasks = [asyncio.create_task(soak.health(client)), asyncio.create_task(soak.submit_jobs(client))]
        await asyncio.sleep(5)  # warm-up
        rss_start = rss_mb(pid)
        tasks += [asyncio.create_task(soak.compute(client)) for _ in range(3)]
        tasks += [asyncio.create_task(soak.datasets(client)), asyncio.create_task(soak.killer())]
        tasks += [asyncio.create_task(soak.follow(client)) for _ in range(args.followers)]
        await asyncio.sleep(args.minutes * 60)
        soak.stop.set()
        await asyncio.wait(tasks, timeout=60)
        for task in tasks:
            task.cancel()
        audit = await soak.audit(client, wait_s=600)
        rss_end = rss_mb(pid)
    health = sorted(soak.health_ms)
    return {
        "requests": sum(soak.statuses.values()),
        "statuses": dict(sorted(soak.statuses.items())),
        "5xx": len(soak.five_hundreds),
        "5xx_examples": soak.five_hundreds[:5],
        "jobs": len(soak.jobs),
        "kills": soak.kills,
        **audit,
        "rss_start_mb": rss_start,
        "rss_end_mb": rss_end,
        "healthz_p50_ms": statistics.median(health),
        "healthz_p99_ms": health[int(0.99 * (len(health) - 1))],
        "healthz_max_ms": health[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--followers", type=int, default=200)
    parser.add_argument("--kill-every", type=float, default=60)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DESCENT_PORT": str(port),
            "DESCENT_DATABASE_URL": f"sqlite:///{tmp}/soak.db",
            "DESCENT_WORKERS": str(args.workers),
            "DESCENT_LOG_LEVEL": "warning",
        }
        descent = Path(sys.executable).with_name("descent")
        server = subprocess.Popen([str(descent), "serve"], env=env, stdout=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            result = asyncio.run(run(args, base, server.pid))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
    growth = 100 * (result["rss_end_mb"] / result["rss_start_mb"] - 1)
    out = io.StringIO()
    out.write(f"Soak: {args.minutes:g} min, {args.followers} followers, {args.workers} workers, ")
    out.write(f"kill -9 of a worker every {args.kill_every:g} s ({result['kills']} kills)\n\n")
    out.write("| measure | result | target |\n|---|---|---|\n")
    out.write(f"| requests (by status) | {result['requests']} {result['statuses']} | |\n")
    out.write(f"| 5xx answers (503 excluded) | {result['5xx']} | 0 |\n")
    jobs = f"{result['lost']} / {result['duplicated']}"
    out.write(f"| jobs lost / duplicated, of {result['jobs']} | {jobs} | 0 / 0 |\n")
    out.write(
        f"| API memory after warm-up → end | {result['rss_start_mb']:.0f} → {result['rss_end_mb']:.0f} MiB"
        f" ({growth:+.1f} %) | within 10 % |\n"
    )
    out.write(
        f"| /healthz p50 / p99 / max | {result['healthz_p50_ms']:.1f} / {result['healthz_p99_ms']:.1f} /"
        f" {result['healthz_max_ms']:.1f} ms | p99 < 100 ms |\n"
    )
    print(out.getvalue())
    for example in result["5xx_examples"]:
        print("5xx:", example)


if __name__ == "__main__":
    main()
