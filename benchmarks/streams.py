"""A thousand event-stream followers over ten running jobs: the shared reader against a poll per stream.

For each mode (`DESCENT_EVENT_FEED=shared`, then `poll`, the former way), in each of `--repeats` rounds,
it starts `descent serve` (no job workers: a fresh SQLite file) and, in processes of their own:
- a writer that claims 10 jobs and writes each one's progress every 0.5 s and its heartbeat every
  second, as running jobs do (the default `DESCENT_PROGRESS_INTERVAL_S`), through the store functions
  the workers use; each progress carries the wall-clock time taken just before its write;
- 1,000 followers (100 per job) on raw asyncio connections, each reading its job's event stream and
  recording, per progress event, delivery latency = time received − time written (an upper bound on
  the delay after the store write: it also counts the write itself, whose own p99 is reported);
- a prober asking `GET /healthz` every 50 ms.

Once every stream has connected and replayed, and after a short warm-up, it measures for `--duration`
seconds: the /healthz latency (p50, p99), the delivery latency (p50, p99, and the share of events
delivered), and the API process's CPU time (from /proc) over the window, as a share of one core.
Targets (shared): /healthz p99 ≤ 100 ms, delivery p99 ≤ 500 ms, API CPU ≤ 50 % of one core.

Run: python benchmarks/streams.py [--repeats 5] [--duration 15] [--followers 1000] [--jobs 10]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing as mp
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WRITTEN = re.compile(rb'"written_at":([0-9.]+)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(port: int, method: str, path: str, body: Any = None) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"content-type": "application/json"} if body is not None else {}
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, json.loads(data) if data else None


def writer_main(url: str, job_ids: list[str], window: Any, interval: float, out: Any) -> None:
    """Claim the jobs, then write progress every ``interval`` and heartbeats every second, per job."""
    from service.store import claim_job, heartbeat, open_store, record_progress

    store = open_store(url, migrate_schema=False)
    attempts = {job_id: claim_job(store, job_id) for job_id in job_ids}
    epoch, next_beat = 0, time.monotonic() + 1.0
    offsets = {job_id: i * interval / len(job_ids) for i, job_id in enumerate(job_ids)}
    start = time.monotonic()
    tick, writes = 0, []
    while not (window[1] > 0 and time.time() > window[1] + 1):
        epoch += 1
        for job_id, attempt in attempts.items():
            due = start + tick * interval + offsets[job_id]
            time.sleep(max(0.0, due - time.monotonic()))
            written_at = time.time()
            progress = {"epoch": epoch, "total_epochs": 10**6, "written_at": written_at}
            metrics = {"train_loss": 1.0 / epoch}
            record_progress(
                store,
                job_id,
                int(attempt or 0),
                rows=[{"epoch": epoch, "train_loss": 1.0 / epoch}],
                progress=progress,
                metrics=metrics,
                best=None,
            )
            if window[0] and window[0] <= written_at <= window[1]:
                writes.append(time.time() - written_at)
        tick += 1
        if time.monotonic() >= next_beat:
            for job_id, attempt in attempts.items():
                heartbeat(store, job_id, int(attempt or 0))
            next_beat += 1.0
    store.close()
    out.put(("writes", writes))


async def follow(port: int, job_id: str, latencies: list[float], window: Any, ready: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /v1/jobs/{job_id}/events HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    await writer.drain()
    buffer, counted = b"", False
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                return
            now = time.time()
            buffer += data
            lines = buffer.split(b"\n")
            buffer = lines.pop()
            for line in lines:
                if line.startswith(b"event: status") and not counted:
                    counted = True
                    ready[0] += 1
                match = WRITTEN.search(line) if line.startswith(b"data:") else None
                if match and window[0] <= now <= window[1]:
                    latencies.append(now - float(match.group(1)))
    finally:
        writer.close()


def followers_main(
    port: int, job_ids: list[str], n: int, window: Any, times: tuple[float, float], out: Any
) -> None:
    """Connect ``n`` streams; once every one has replayed, open the measurement window for all."""
    warmup, duration = times

    async def run() -> None:
        latencies: list[float] = []
        ready = [0]
        tasks = []
        for i in range(n):
            tasks.append(
                asyncio.ensure_future(follow(port, job_ids[i % len(job_ids)], latencies, window, ready))
            )
            if i % 50 == 49:
                await asyncio.sleep(0.05)  # connect in waves, as clients arrive
        deadline = time.time() + 120
        while ready[0] < n and time.time() < deadline:
            await asyncio.sleep(0.1)
        start = time.time() + warmup
        window[0], window[1] = start, start + duration
        await asyncio.sleep(max(0.0, window[1] - time.time()))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        out.put({"latencies": latencies, "ready": ready[0]})

    asyncio.run(run())


def prober_main(port: int, window: Any, out: Any) -> None:
    samples = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while window[1] == 0 or time.time() < window[1]:
        t0 = time.perf_counter()
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        elapsed = time.perf_counter() - t0
        if window[0] and window[0] <= time.time() <= window[1]:
            samples.append(elapsed)
        time.sleep(0.05)
    out.put(samples)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def one_round(mode: str, n_followers: int, n_jobs: int, duration: float, warmup: float) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        port, url = free_port(), f"sqlite:///{tmp}/bench.db"
        env = {
            **os.environ,
            "DESCENT_PORT": str(port),
            "DESCENT_DATABASE_URL": url,
            "DESCENT_LOG_LEVEL": "warning",
            "DESCENT_WORKERS": "0",
            "DESCENT_EVENT_FEED": mode,
        }
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "descent"), "serve"], env=env, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 180  # a loaded machine starts the server slowly
            while True:
                try:
                    if request(port, "GET", "/readyz")[0] == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("the server did not become ready")
                time.sleep(0.2)
            generator = {"kind": "xor", "n_samples": 50, "noise": 0.1, "seed": 1}
            ds = request(port, "POST", "/v1/datasets", {"name": "s", "generator": generator})[1]["id"]
            config = {"dataset_id": ds, "model": {"type": "logistic_regression"}, "epochs": 10**6}
            job_ids = [request(port, "POST", "/v1/jobs", config)[1]["id"] for _ in range(n_jobs)]
            window: Any = ctx.Array("d", [0.0, 0.0], lock=False)
            out: Any = ctx.Queue()
            writer = ctx.Process(target=writer_main, args=(url, job_ids, window, 0.5, out))
            followers = ctx.Process(
                target=followers_main, args=(port, job_ids, n_followers, window, (warmup, duration), out)
            )
            prober = ctx.Process(target=prober_main, args=(port, window, out))
            for process in (followers, writer, prober):
                process.start()
            while window[0] == 0:
                time.sleep(0.05)
            time.sleep(max(0.0, window[0] - time.time()))
            cpu0, wall0 = cpu_seconds(server.pid), time.monotonic()
            time.sleep(duration)
            cpu = (cpu_seconds(server.pid) - cpu0) / (time.monotonic() - wall0)
            results = [out.get(timeout=120) for _ in range(3)]
            for process in (followers, writer, prober):
                process.join(60)
        finally:
            server.terminate()
            server.wait(30)
    stream = next(r for r in results if isinstance(r, dict))
    probes = next(r for r in results if isinstance(r, list))
    writes = next(r[1] for r in results if isinstance(r, tuple))
    expected = n_followers * duration / 0.5
    lat = stream["latencies"]
    return {
        "healthz_p50_ms": 1000 * pct(probes, 0.5),
        "healthz_p99_ms": 1000 * pct(probes, 0.99),
        "delivery_p50_ms": 1000 * pct(lat, 0.5),
        "delivery_p99_ms": 1000 * pct(lat, 0.99),
        "write_p99_ms": 1000 * pct(writes, 0.99),
        "delivered": len(lat) / expected,
        "connected": stream["ready"],
        "cpu": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after every stream has replayed")
    parser.add_argument("--followers", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--modes", default="shared,poll")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in args.modes.split(",")}
    for _ in range(args.repeats):
        for mode in runs:
            result = one_round(mode, args.followers, args.jobs, args.duration, args.warmup)
            print(mode, {k: round(v, 3) for k, v in result.items()}, "load", os.getloadavg()[0], flush=True)
            runs[mode].append(result)
    print(f"load average after: {os.getloadavg()}")
    print(
        f"| {args.followers} followers over {args.jobs} jobs | /healthz p99 | delivery p50 | delivery p99 "
        "| delivered | API CPU (one core) | store write p99 |"
    )
    print("|---|---|---|---|---|---|---|")
    for mode, results in runs.items():

        def med(key: str, results: list[dict[str, float]] = results) -> float:
            return statistics.median(r[key] for r in results)

        print(
            f"| `{mode}` (median of {len(results)}) | {med('healthz_p99_ms'):.0f} ms | "
            f"{med('delivery_p50_ms'):.0f} ms | {med('delivery_p99_ms'):.0f} ms | "
            f"{100 * med('delivered'):.0f} % | {100 * med('cpu'):.0f} % | {med('write_p99_ms'):.0f} ms |"
        )


if __name__ == "__main__":
    main()
