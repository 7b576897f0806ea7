"""A bounded soak: minutes of mixed traffic at fixed rates against a real `descent serve`, then an account
of what broke.

Starts `descent serve` (embedded runner, 2 workers, a fresh SQLite file, the access log on as deployed)
on 127.0.0.1 and, for ``--minutes`` (default 10), offers a fixed load: each class of traffic arrives at
its own rate whether or not earlier requests have been answered (an open loop, as users do; a closed loop
sending as fast as it can from the same machine would saturate any server and measure nothing). The
default rates are what a small team using the lab and the API at once produces:

- compute of every size: sigmoid of 10 numbers and a loss (``--small``, 10/s), tanh of 100,000
  numbers (``--medium``, 1/s), a forward pass of a 400-unit MLP on 2,000 rows with intermediates (a
  28 MB answer; ``--forward``, 0.2/s) and gradients of 10,000 × 20 (``--gradients``, 0.2/s);
- dataset uploads, JSON generators and CSV by turns, half of them deleted (``--uploads``, 0.5/s);
- training jobs (``--jobs``, 0.2/s), each posted twice with one Idempotency-Key, a fifth cancelled while
  they run;
- ``--followers`` (default 200) server-sent-event followers, each following a running job (a finished one
  when none runs) to its end, then pausing ``--follow-pause`` seconds (mean, exponential) before the
  next; a fifth of the streams drop their connection partway and resume with Last-Event-ID;
- every ``--kill-every`` seconds (default 60), kill -9 of one embedded worker process;
- a /healthz probe every 100 ms, from a process of its own (so that the load generator's own work never
  delays it).

Then it waits for every job to end and reports: 5xx answers, jobs lost (never terminal) or duplicated (an
epoch recorded twice or missing, or two jobs for one key), events duplicated or skipped across a resume,
the API's resident memory after warm-up (``--warmup`` minutes of the full load) and at the end, sampled
every minute, and the /healthz latency percentiles. Targets: 0, 0, within 10 %, p99 under 100 ms.
Arrivals that find ``MAX_IN_FLIGHT`` requests of their class still unanswered are not sent and counted
as *shed* (the server is behind its offered load).

Run: python benchmarks/soak.py [--minutes 10]. Prints Markdown tables for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import io
import multiprocessing as mp
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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

TERMINAL = {"succeeded", "failed", "cancelled"}
# Requests of one class allowed unanswered at once; an arrival beyond it is shed, not queued in the client.
MAX_IN_FLIGHT = 50


# `descent serve` with a tracemalloc snapshot written every minute (compare them with tracemalloc's
# Snapshot.compare_to to see which lines' allocations grow).
TRACEMALLOC_SERVE = """
import sys, threading, time, tracemalloc
from pathlib import Path
folder = Path(sys.argv[1])
def snapshots():
    for minute in range(1, 1000):
        time.sleep(60)
        tracemalloc.take_snapshot().dump(str(folder / f"minute-{minute:03d}.snapshot"))
threading.Thread(target=snapshots, daemon=True).start()
from service.cli import main
sys.exit(main(["serve"]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of the process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def probe(port: int, interval_s: float, stop: Any, out: Any) -> None:
    """In a process of its own: GET /healthz every ``interval_s`` on one kept-alive connection; the
    latencies (ms; a failure counts as infinite) go to ``out`` at the end."""
    latencies: list[float] = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    next_at = time.perf_counter()
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            ok = False
        latencies.append((time.perf_counter() - t0) * 1000 if ok else float("inf"))
        next_at += interval_s
        time.sleep(max(0.0, next_at - time.perf_counter()))
    out.put(latencies)


class Soak:
    def __init__(self, base: str, server_pid: int, args: argparse.Namespace) -> None:
        self.base, self.server_pid, self.args = base, server_pid, args
        self.statuses: Counter[int] = Counter()
        self.five_hundreds: list[str] = []
        self.latency: dict[str, list[float]] = {}
        self.sent: Counter[str] = Counter()
        self.shed: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.jobs: dict[str, str] = {}  # idempotency key -> job id
        self.ended: set[str] = set()  # jobs whose 'end' event a follower received
        self.streams = self.resumes = self.events = 0
        self.event_errors: list[str] = []
        self.kills = 0
        self.stop = asyncio.Event()
        self.rng = random.Random(1)
        self.tasks: set[asyncio.Task[None]] = set()

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

    async def paced(self, name: str, rate: float, send: Callable[[], Awaitable[None]]) -> None:
        """Start ``send()`` ``rate`` times a second, at even intervals from a random phase, each in a task
        of its own: a slow answer never delays the next arrival."""
        if rate <= 0:
            return
        interval = 1 / rate
        next_at = time.monotonic() + self.rng.uniform(0, interval)
        while not self.stop.is_set():
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            if self.stop.is_set():
                break
            if self.in_flight[name] >= MAX_IN_FLIGHT:
                self.shed[name] += 1
                continue
            self.sent[name] += 1
            self.in_flight[name] += 1
            task = asyncio.create_task(self._timed(name, send))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _timed(self, name: str, send: Callable[[], Awaitable[None]]) -> None:
        t0 = time.perf_counter()
        try:
            await send()
        finally:
            self.in_flight[name] -= 1
            self.latency.setdefault(name, []).append((time.perf_counter() - t0) * 1000)

    def compute_bodies(self) -> dict[str, tuple[str, dict[str, Any]]]:
        rng = self.rng
        w1 = [[rng.gauss(0, 0.1) for _ in range(400)] for _ in range(20)]
        forward = {
            "model": {
                "type": "mlp",
                "layers": [{"units": 400, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}],
                "parameters": [
                    {"weights": w1, "bias": [0.0] * 400},
                    {"weights": [[0.01]] * 400, "bias": [0.0]},
                ],
            },
            "X": [[rng.gauss(0, 1) for _ in range(20)] for _ in range(2_000)],
            "return_intermediates": True,
        }
        X = [[rng.gauss(0, 1) for _ in range(20)] for _ in range(10_000)]
        return {
            "sigmoid": ("/v1/activations/sigmoid", {"x": [0.1 * i for i in range(10)], "derivative": True}),
            "loss": (
                "/v1/losses/binary_cross_entropy",
                {"y_true": [0, 1, 1], "y_pred": [0.1, 0.8, 0.6], "gradient": True},
            ),
            "medium": ("/v1/activations/tanh", {"x": [rng.uniform(-5, 5) for _ in range(100_000)]}),
            "forward": ("/v1/forward", forward),
            "gradients": (
                "/v1/gradients",
                {
                    "model": {"type": "logistic_regression", "weights": [0.0] * 20, "bias": 0.0},
                    "X": X,
                    "y": [int(row[0] > 0) for row in X],
                },
            ),
        }

    def compute(self, client: httpx.AsyncClient, *names: str) -> Callable[[], Awaitable[None]]:
        """A sender of pre-encoded compute bodies, by turns when there are several."""
        bodies = self.compute_bodies()
        encoded = [(bodies[n][0], httpx.Request("POST", "/", json=bodies[n][1]).read()) for n in names]
        turn = 0

        async def send() -> None:
            nonlocal turn
            path, content = encoded[turn % len(encoded)]
            turn += 1
            await self.request(
                client, "POST", path, content=content, headers={"content-type": "application/json"}
            )

        return send

    def upload(self, client: httpx.AsyncClient) -> Callable[[], Awaitable[None]]:
        kinds = ["xor", "circles", "moons", "spiral", "blobs", "linear"]
        rows = "\n".join(f"{i % 7},{i % 3},{i % 2}" for i in range(2_000))
        turn = 0

        async def send() -> None:
            nonlocal turn
            turn += 1
            if turn % 2:
                body = {"name": "soak", "generator": {"kind": kinds[turn % 6], "n_samples": 500, "seed": 1}}
                r = await self.request(client, "POST", "/v1/datasets", json=body)
            else:
                r = await self.request(
                    client,
                    "POST",
                    "/v1/datasets?label=y",
                    content=f"a,b,y\n{rows}\n",
                    headers={"content-type": "text/csv"},
                )
            if r is not None and r.status_code == 201 and turn % 4 < 2:
                await self.request(client, "DELETE", f"/v1/datasets/{r.json()['id']}")

        return send

    async def job_sender(self, client: httpx.AsyncClient) -> Callable[[], Awaitable[None]]:
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

        async def send() -> None:
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

        return send

    async def follow(self, client: httpx.AsyncClient) -> None:
        """One follower: a running job to its end (resuming once with Last-Event-ID if its connection is
        dropped), a pause, the next job."""
        while not self.stop.is_set():
            if not self.jobs:
                await asyncio.sleep(0.5)
                continue
            running = [j for j in list(self.jobs.values())[-20:] if j not in self.ended]
            job_id = self.rng.choice(running or list(self.jobs.values()))
            drop_after = self.rng.randint(1, 3) if self.rng.random() < 0.2 else None
            last, seen, done = 0, 0, False
            while not done and not self.stop.is_set():
                self.streams += 1
                if last:
                    self.resumes += 1
                try:
                    async with client.stream(
                        "GET", f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": str(last)}, timeout=None
                    ) as r:
                        self.statuses[r.status_code] += 1
                        if r.status_code != 200:
                            break
                        async for line in r.aiter_lines():
                            if line.startswith("id:"):
                                event_id = int(line[3:])
                                if event_id <= last:
                                    self.event_errors.append(f"{job_id}: event {event_id} after {last}")
                                last, seen = event_id, seen + 1
                                self.events += 1
                            elif line == "event: end":
                                self.ended.add(job_id)
                            if self.stop.is_set() or (drop_after is not None and seen >= drop_after):
                                break
                        else:
                            done = True  # the server ended the stream: after 'end'
                    drop_after = None
                except httpx.HTTPError:
                    await asyncio.sleep(0.2)
            pause = self.rng.expovariate(1 / self.args.follow_pause) if self.args.follow_pause else 0
            try:
                await asyncio.wait_for(self.stop.wait(), pause)
            except TimeoutError:
                pass

    async def killer(self) -> None:
        while not self.stop.is_set():
            try:
                await asyncio.wait_for(self.stop.wait(), self.args.kill_every)
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


async def sample_memory(
    pid: int, every_s: float, out: list[tuple[float, float, float]], stop: asyncio.Event
) -> None:
    """(seconds since the start, RSS MiB, CPU seconds) of the API process every ``every_s``."""
    t0 = time.monotonic()
    while not stop.is_set():
        out.append((time.monotonic() - t0, rss_mb(pid), cpu_s(pid)))
        try:
            await asyncio.wait_for(stop.wait(), every_s)
        except TimeoutError:
            pass


def minute_medians(memory: list[tuple[float, float, float]]) -> list[float]:
    """The median RSS of each whole minute of samples (a last minute of under 30 samples is left out)."""
    by_minute: dict[int, list[float]] = {}
    for t, rss, _ in memory:
        by_minute.setdefault(int(t // 60), []).append(rss)
    medians = [statistics.median(by_minute[i]) for i in sorted(by_minute) if len(by_minute[i]) >= 30]
    return medians or [statistics.median(rss for _, rss, _ in memory)]


async def run(args: argparse.Namespace, base: str, pid: int) -> dict[str, Any]:
    soak = Soak(base, pid, args)
    # Idle connections are dropped before the server's 5 s keep-alive ends them: reusing one the server
    # is closing at that moment would fail on the client's side, not the server's.
    limits = httpx.Limits(
        max_connections=args.followers + 400,
        max_keepalive_connections=args.followers + 400,
        keepalive_expiry=2,
    )
    memory: list[tuple[float, float, float]] = []
    sampler_stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        sampler = asyncio.create_task(sample_memory(pid, 1.0, memory, sampler_stop))
        send_job = await soak.job_sender(client)
        classes = [
            ("sigmoid 10 + loss", args.small, soak.compute(client, "sigmoid", "loss")),
            ("tanh 100,000", args.medium, soak.compute(client, "medium")),
            ("forward 2,000 × 400, intermediates", args.forward, soak.compute(client, "forward")),
            ("gradients 10,000 × 20", args.gradients, soak.compute(client, "gradients")),
            ("dataset upload (+ delete)", args.uploads, soak.upload(client)),
            ("job (posted twice)", args.jobs, send_job),
        ]
        tasks = [asyncio.create_task(soak.paced(name, rate, send)) for name, rate, send in classes]
        tasks += [asyncio.create_task(soak.killer())]
        tasks += [asyncio.create_task(soak.follow(client)) for _ in range(args.followers)]
        started = time.monotonic()
        await asyncio.sleep(args.minutes * 60)
        soak.stop.set()
        sampler_stop.set()
        elapsed = time.monotonic() - started
        await asyncio.wait([*tasks, *soak.tasks], timeout=60)
        for task in [*tasks, *soak.tasks]:
            task.cancel()
        audit = await soak.audit(client, wait_s=600)
        sampler_stop.set()
        await sampler
    return {"soak": soak, "classes": classes, "elapsed": elapsed, "memory": memory, **audit}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument(
        "--warmup", type=float, default=2, help="minutes of full load before the memory baseline"
    )
    parser.add_argument("--followers", type=int, default=200)
    parser.add_argument(
        "--follow-pause", type=float, default=5, help="mean seconds between a follower's streams"
    )
    parser.add_argument("--kill-every", type=float, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--small", type=float, default=10, help="sigmoid-of-10 and loss requests per second")
    parser.add_argument("--medium", type=float, default=1, help="tanh-of-100,000 requests per second")
    parser.add_argument(
        "--forward", type=float, default=0.2, help="forward passes (28 MB answers) per second"
    )
    parser.add_argument("--gradients", type=float, default=0.2, help="gradients of 10,000 × 20 per second")
    parser.add_argument("--uploads", type=float, default=0.5, help="dataset uploads per second")
    parser.add_argument("--jobs", type=float, default=0.2, help="training jobs per second")
    parser.add_argument(
        "--log-level", default="info", help="the server's DESCENT_LOG_LEVEL (info: access log on)"
    )
    parser.add_argument(
        "--tracemalloc",
        help="run the server under tracemalloc and write a snapshot each minute into this folder",
    )
    parser.add_argument(
        "--profile", help="sample the API process with py-spy into this file, collapsed stacks per thread"
    )
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DESCENT_PORT": str(port),
            "DESCENT_DATABASE_URL": f"sqlite:///{tmp}/soak.db",
            "DESCENT_WORKERS": str(args.workers),
            "DESCENT_LOG_LEVEL": args.log_level,
        }
        command = [str(Path(sys.executable).with_name("descent")), "serve"]
        if args.tracemalloc:
            Path(args.tracemalloc).mkdir(parents=True, exist_ok=True)
            command = [sys.executable, "-X", "tracemalloc=10", "-c", TRACEMALLOC_SERVE, args.tracemalloc]
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log:
            server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
        base = f"http://127.0.0.1:{port}"
        stop_probe, latencies = mp.Event(), mp.Queue()
        prober = mp.Process(target=probe, args=(port, 0.1, stop_probe, latencies))
        spy = None
        load_start = os.getloadavg()
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            prober.start()
            if args.profile:
                spy = subprocess.Popen(
                    [
                        str(Path(sys.executable).with_name("py-spy")),
                        "record",
                        "-p",
                        str(server.pid),
                        "-o",
                        args.profile,
                        "-r",
                        "50",
                        "--threads",
                        "--format",
                        "raw",
                        "-d",
                        str(int(args.minutes * 60)),
                    ],
                    stdout=subprocess.DEVNULL,
                )
            result = asyncio.run(run(args, base, server.pid))
            load_end = os.getloadavg()
            stop_probe.set()
            health = latencies.get(timeout=60)
            prober.join(10)
            log_lines = sum(1 for _ in log_path.open("rb"))
        finally:
            if spy is not None:
                spy.wait(120)
            if prober.is_alive():
                prober.kill()
            server.send_signal(signal.SIGTERM)
            server.wait(60)
    report(args, result, health, load_start, load_end, log_lines)


def report(
    args: argparse.Namespace,
    result: dict[str, Any],
    health: list[float],
    load_start: tuple[float, float, float],
    load_end: tuple[float, float, float],
    log_lines: int,
) -> None:
    soak: Soak = result["soak"]
    memory: list[tuple[float, float, float]] = result["memory"]
    # Resident memory moves by tens of MB within seconds as large requests come and go, so one sample
    # says little: each figure is the median of the samples of a minute (taken every second).
    minutes = minute_medians(memory)
    warm_minute = min(int(args.warmup), len(minutes) - 1)
    warm, end = minutes[warm_minute], minutes[-1]
    growth = 100 * (end / warm - 1)
    elapsed = result["elapsed"]
    out = io.StringIO()
    out.write(f"Soak: {args.minutes:g} min, {args.followers} followers, {args.workers} workers, ")
    out.write(f"kill -9 of a worker every {args.kill_every:g} s ({soak.kills} kills), ")
    out.write(f"load average {load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end\n\n")
    out.write("| traffic | offered | sent / shed | p50 / p99 |\n|---|---|---|---|\n")
    for name, rate, _ in result["classes"]:
        lat = soak.latency.get(name, [])
        out.write(
            f"| {name} | {rate:g}/s | {soak.sent[name]} / {soak.shed[name]} |"
            f" {percentile(lat, 0.5):.0f} / {percentile(lat, 0.99):.0f} ms |\n"
        )
    out.write(
        f"| event streams ({args.followers} followers, pause {args.follow_pause:g} s) |"
        f" {soak.streams / elapsed:.1f} opened/s | {soak.streams} ({soak.resumes} resumed),"
        f" {soak.events} events | |\n"
    )
    out.write(f"| /healthz (own process) | 10/s | {len(health)} | |\n\n")
    out.write("| measure | result | target |\n|---|---|---|\n")
    requests = sum(soak.statuses.values()) + len(health)
    statuses = dict(sorted(soak.statuses.items()))
    out.write(f"| requests (by status, /healthz apart) | {requests} {statuses} | |\n")
    out.write(f"| 5xx answers (503 excluded) | {len(soak.five_hundreds)} | 0 |\n")
    jobs = f"{result['lost']} / {result['duplicated']}"
    out.write(f"| jobs lost / duplicated, of {len(soak.jobs)} | {jobs} | 0 / 0 |\n")
    out.write(f"| events duplicated or out of order across resumes | {len(soak.event_errors)} | 0 |\n")
    out.write(
        f"| API memory, minute {warm_minute + 1} (after warm-up) → last minute (medians) | {warm:.0f} →"
        f" {end:.0f} MiB"
        f" ({growth:+.1f} %) | within 10 % |\n"
    )
    finite = [h for h in health if h != float("inf")]
    out.write(
        f"| /healthz p50 / p99 / max (failed) | {percentile(health, 0.5):.1f} /"
        f" {percentile(health, 0.99):.1f} /"
        f" {max(finite, default=float('nan')):.1f} ms ({len(health) - len(finite)}) | p99 < 100 ms |\n"
    )
    cpu = 100 * (memory[-1][2] - memory[0][2]) / max(memory[-1][0] - memory[0][0], 1e-9)
    out.write(f"| API process CPU (share of one core) | {cpu:.0f} % | |\n")
    out.write(f"| access-log lines written | {log_lines} | |\n\n")
    peaks = [max(m[1] for m in memory if int(m[0] // 60) == i) for i in range(len(minutes))]
    out.write(
        "API memory by minute, median (max), MiB: "
        + ", ".join(
            f"{i + 1}: {m:.0f} ({p:.0f})" for i, (m, p) in enumerate(zip(minutes, peaks, strict=True))
        )
        + "\n"
    )
    print(out.getvalue())
    for example in soak.five_hundreds[:5]:
        print("5xx:", example)
    for example in soak.event_errors[:5]:
        print("event:", example)


if __name__ == "__main__":
    main()
