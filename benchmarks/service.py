"""Service speed against a bare reference app, under the same uvicorn settings, loaded by wrk.

Starts `descent serve` (no job workers) and `benchmarks/reference_app.py` side by side on 127.0.0.1,
and loads them in turn from a separate process with wrk (Debian package `wrk`): after a warm-up,
each case is measured `--repeats` times on each server, alternately, and the medians are reported.
- sigmoid of 10 elements: requests/s and p50/p99 latency, 8 connections (target ≥ 90% of the
  reference's req/s);
- sigmoid of 100,000 elements and gradients of a 10,000 × 20 logistic regression: p50 latency, one
  connection (target ≤ 1.3× the reference).

Run: python benchmarks/service.py [--duration 5] [--repeats 5]. Prints a Markdown table for
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("BODY_FILE"), "rb"); wrk.body = f:read("*a"); f:close()
done = function(summary, latency, requests)
  io.write(string.format('{"rps": %f, "p50_ms": %f, "p99_ms": %f, "errors": %d, "requests": %d}\\n',
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout, summary.requests))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(app: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=1)
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{app} did not start on port {port}")


def wrk(url: str, body: bytes, connections: int, duration: int, tmp: Path) -> dict[str, float]:
    body_file, script = tmp / "body.json", tmp / "post.lua"
    body_file.write_bytes(body)
    script.write_text(LUA)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(script), url],
        env={**os.environ, "BODY_FILE": str(body_file)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    if result["errors"]:
        raise RuntimeError(f"{url}: {result['errors']} failed requests")
    return result


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(url: str, body: bytes, connections: int, duration: int, tmp: Path, pid: int) -> dict[str, float]:
    """wrk's figures, plus the server's CPU time per request: what it costs on a core of its own,
    whatever else the machine runs meanwhile."""
    before = cpu_seconds(pid)
    result = wrk(url, body, connections, duration, tmp)
    result["cpu_us"] = (cpu_seconds(pid) - before) / result["requests"] * 1e6
    return result


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = ("rps", "p50_ms", "p99_ms", "cpu_us")
    return {key: statistics.median(run[key] for run in runs) for key in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds of load per measurement")
    parser.add_argument("--repeats", type=int, default=5, help="measurements of each server, taking turns")
    parser.add_argument("--small-only", action="store_true", help="only the sigmoid of 10 elements")
    parser.add_argument(
        "--log-level",
        default="info",
        help="Descent's log level; the default, info, writes a JSON access line per request",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10_000, 20))
    y = (rng.random(10_000) > 0.5).astype(int)
    model = {"type": "logistic_regression", "weights": rng.normal(size=20).tolist(), "bias": 0.1}
    cases = [
        ("sigmoid, 10 elements", "/v1/activations/sigmoid", {"x": rng.normal(size=10).tolist()}, 8),
        ("sigmoid, 100,000 elements", "/v1/activations/sigmoid", {"x": rng.normal(size=100_000).tolist()}, 1),
        ("gradients, logistic regression 10,000 × 20", "/v1/gradients",
         {"model": model, "X": X.tolist(), "y": y.tolist()}, 1),
    ]  # fmt: skip
    if args.small_only:
        cases = cases[:1]
    runs: dict[str, dict[str, list[dict[str, float]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DESCENT_WORKERS": "0",
            "DESCENT_LOG_LEVEL": args.log_level,
            "DESCENT_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "PYTHONPATH": str(ROOT),
        }
        servers = {}
        try:
            for name, app in (
                ("descent", "service.app:create_app"),
                ("reference", "benchmarks.reference_app:create_app"),
            ):
                port = free_port()
                servers[name] = (port, start(app, port, env))
            for label, path, body, conns in cases:
                payload = json.dumps(body).encode()
                for port, _ in servers.values():  # warm-up
                    wrk(f"http://127.0.0.1:{port}{path}", payload, conns, 2, Path(tmp))
                # The two servers take turns, so a change in the machine's load affects both alike.
                for _ in range(args.repeats):
                    for name, (port, proc) in servers.items():
                        url = f"http://127.0.0.1:{port}{path}"
                        result = measure(url, payload, conns, args.duration, Path(tmp), proc.pid)
                        runs.setdefault(label, {}).setdefault(name, []).append(result)
        finally:
            for _, proc in servers.values():
                proc.terminate()
                proc.wait(10)
    results = {
        label: {name: medians(r) for name, r in by_server.items()} for label, by_server in runs.items()
    }
    ratios = {
        label: [d["rps"] / r["rps"] for d, r in zip(by["descent"], by["reference"], strict=True)]
        for label, by in runs.items()
    }
    cpu_ratios = {
        label: [r["cpu_us"] / d["cpu_us"] for d, r in zip(by["descent"], by["reference"], strict=True)]
        for label, by in runs.items()
    }
    print("| request | Descent | reference | ratio | target |")
    print("|---|---|---|---|---|")
    for label, _, _, conns in cases:
        d, r = results[label]["descent"], results[label]["reference"]
        if conns > 1:
            print(
                f"| {label}, {conns} connections | {d['rps']:.0f} req/s (p50 {d['p50_ms']:.2f} ms, p99 "
                f"{d['p99_ms']:.2f} ms) | {r['rps']:.0f} req/s (p50 {r['p50_ms']:.2f} ms, "
                f"p99 {r['p99_ms']:.2f} ms)"
                f" | {d['rps'] / r['rps']:.0%} of the reference's req/s (each run: "
                f"{', '.join(f'{x:.0%}' for x in ratios[label])}) | ≥ 90% |"
            )
            print(
                f"| same, server CPU time per request | {d['cpu_us']:.0f} µs | {r['cpu_us']:.0f} µs | "
                f"{statistics.median(cpu_ratios[label]):.0%} of the reference's requests per CPU second "
                f"(each run: {', '.join(f'{x:.0%}' for x in cpu_ratios[label])}) | ≥ 90% |"
            )
        else:
            print(
                f"| {label}, 1 connection | p50 {d['p50_ms']:.2f} ms | p50 {r['p50_ms']:.2f} ms | "
                f"{d['p50_ms'] / r['p50_ms']:.2f}× | ≤ 1.3× |"
            )


if __name__ == "__main__":
    main()
