"""Decision-boundary grid: predict on points the page sends, against a grid the service builds.

The lab shades a model's output on a 100 × 100 grid. Two ways to ask POST /v1/models/{id}/predict:
- ``{"X": [...]}``: the page sends the 10,000 points;
- ``{"grid": {"start", "stop", "num"}}``: the page sends the grid's corners and size, and the service
  builds the same points. Both run the same predict code, so the difference is exactly the cost of
  sending and parsing the points. (The grid was added to the API because of this measurement.)

Both are timed over one kept-alive HTTP connection to a real uvicorn, from sending the request to
reading the whole answer (the JSON is not decoded: the browser's decode is the same for both).
Median of 25 after 5 warm-up requests each, the two taking turns; 100 × 100 and 200 × 200.

Run: python benchmarks/boundary.py. Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.service import free_port, start  # noqa: E402


def _call(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None) -> bytes:
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.status >= 300:
        raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
    return data


def _medians_ms(
    conn: http.client.HTTPConnection, path: str, bodies: list[bytes], repeats: int
) -> list[float]:
    """Median time of each body, the bodies taking turns so that a busy moment hits them alike."""
    for _ in range(5):
        for body in bodies:
            _call(conn, "POST", path, body)
    times: list[list[float]] = [[] for _ in bodies]
    for _ in range(repeats):
        for i, body in enumerate(bodies):
            began = time.perf_counter()
            _call(conn, "POST", path, body)
            times[i].append((time.perf_counter() - began) * 1000)
    return [statistics.median(t) for t in times]


def _train(conn: http.client.HTTPConnection) -> str:
    config = {
        "dataset": {"generator": {"kind": "xor", "n_samples": 400, "noise": 0.1, "seed": 1}},
        "model": {"type": "mlp", "hidden_layers": [16, 16], "activation": "tanh"},
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "epochs": 100,
        "batch_size": 32,
        "seed": 1,
    }
    job = json.loads(_call(conn, "POST", "/v1/jobs", json.dumps(config).encode()))
    while True:
        job = json.loads(_call(conn, "GET", f"/v1/jobs/{job['id']}"))
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return str(job["model_id"])
        time.sleep(0.1)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DESCENT_WORKERS": "1",
            "DESCENT_LOG_LEVEL": "warning",
            "DESCENT_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "PYTHONPATH": str(ROOT),
        }
        port = free_port()
        proc: subprocess.Popen[bytes] = start("service.app:create_app", port, env)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.connect()
            # Headers and body go out as two writes: without TCP_NODELAY, Nagle's algorithm and the
            # server's delayed ACK would add tens of milliseconds to every request.
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            model_id = _train(conn)
            print("| grid | page sends the points (X) | service builds the grid | request body | answer |")
            print("|---|---|---|---|---|")
            for n in (100, 200):
                axis = np.linspace(-1.2, 1.2, n)
                rows = [[float(a), float(b)] for b in axis for a in axis]
                sent = json.dumps({"X": rows}).encode()
                grid = {"start": [-1.2, -1.2], "stop": [1.2, 1.2], "num": [n, n]}
                spec = json.dumps({"grid": grid}).encode()
                path = f"/v1/models/{model_id}/predict"
                size = len(_call(conn, "POST", path, spec))
                page, server = _medians_ms(conn, path, [sent, spec], repeats=25)
                print(
                    f"| {n} × {n} | {page:.1f} ms | {server:.1f} ms ({server / page:.0%}) | "
                    f"{len(sent) / 1024:.0f} KiB vs {len(spec)} B | {size / 1024:.0f} KiB |"
                )
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
