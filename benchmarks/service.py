"""Service speed against a bare reference app, under the same uvicorn settings, loaded by wrk.

Starts `descent serve` (no job workers) and `benchmarks/reference_app.py`, one after the other, on
127.0.0.1, and loads each from a separate process with wrk (Debian package `wrk`):
- sigmoid of 10 elements: requests/s and p50/p99 latency, 8 connections (target ≥ 80% of the
  reference's req/s);
- sigmoid of 100,000 elements and gradients of a 10,000 × 20 logistic regression: p50 latency, one
  connection (target ≤ 1.3× the reference).

Run: python benchmarks/service.py [--duration 10]. Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
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
    # Warm up, then measure.
    for seconds in (2, duration):
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), url],
            env={**os.environ, "BODY_FILE": str(body_file)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    if result["errors"]:
        raise RuntimeError(f"{url}: {result['errors']} failed requests")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per measurement")
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
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DESCENT_WORKERS": "0",
            "DESCENT_LOG_LEVEL": args.log_level,
            "DESCENT_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "PYTHONPATH": str(ROOT),
        }
        for name, app in (
            ("descent", "service.app:create_app"),
            ("reference", "benchmarks.reference_app:create_app"),
        ):
            port = free_port()
            proc = start(app, port, env)
            try:
                for label, path, body, conns in cases:
                    payload = json.dumps(body).encode()
                    results.setdefault(label, {})[name] = wrk(
                        f"http://127.0.0.1:{port}{path}", payload, conns, args.duration, Path(tmp)
                    )
            finally:
                proc.terminate()
                proc.wait(10)
    print("| request | Descent | reference | ratio | target |")
    print("|---|---|---|---|---|")
    for label, _, _, conns in cases:
        d, r = results[label]["descent"], results[label]["reference"]
        if conns > 1:
            print(
                f"| {label}, {conns} connections | {d['rps']:.0f} req/s (p50 {d['p50_ms']:.2f} ms, p99 "
                f"{d['p99_ms']:.2f} ms) | {r['rps']:.0f} req/s (p50 {r['p50_ms']:.2f} ms, "
                f"p99 {r['p99_ms']:.2f} ms)"
                f" | {d['rps'] / r['rps']:.0%} of the reference's req/s | ≥ 80% |"
            )
        else:
            print(
                f"| {label}, 1 connection | p50 {d['p50_ms']:.2f} ms | p50 {r['p50_ms']:.2f} ms | "
                f"{d['p50_ms'] / r['p50_ms']:.2f}× | ≤ 1.3× |"
            )


if __name__ == "__main__":
    main()
