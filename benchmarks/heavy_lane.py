"""/healthz and small requests while four maximum-size compute requests run: threads against processes.

Starts ``descent serve`` once per heavy-lane mode (``DESCENT_HEAVY_LANE_MODE``), keeps four large
``/v1/gradients`` requests (softmax regression, a body near ``--mb`` MB) in flight for ``--seconds``,
and meanwhile probes ``/healthz`` and a small ``/v1/forward`` every 50 ms from their own clients.
Reports per mode the probes' median, p99 and maximum latency, and the heavy requests answered (200)
and refused (503). Run: ``python -m benchmarks.heavy_lane [--mb 48] [--seconds 30]``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import orjson

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def heavy_body(mb: float) -> bytes:
    """A softmax-regression gradients request of about ``mb`` MB (20 features, 3 classes)."""
    rng = np.random.default_rng(0)
    rows = int(mb * 1e6 / (20 * 21))
    return orjson.dumps(
        {
            "model": {"type": "softmax_regression", "weights": rng.normal(size=(20, 3)), "bias": [0.0] * 3},
            "X": rng.normal(size=(rows, 20)),
            "y": rng.integers(0, 3, size=rows),
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


SMALL = {"model": {"type": "logistic_regression", "weights": [0.5, -0.25], "bias": 0.1}, "X": [[1.0, 2.0]]}


def _percentiles(samples: list[float]) -> str:
    a = np.asarray(samples) * 1000
    return f"{np.median(a):.1f} / {np.percentile(a, 99):.1f} / {a.max():.1f} ms (n={a.size})"


def run_mode(mode: str, body: bytes, seconds: float) -> dict[str, str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DESCENT_PORT": str(port),
            "DESCENT_DATABASE_URL": f"sqlite:///{tmp}/descent.db",
            "DESCENT_WORKERS": "0",
            "DESCENT_LOG_LEVEL": "warning",
            "DESCENT_HEAVY_LANE_MODE": mode,
            "DESCENT_COMPUTE_THREADS": "2",
            "DESCENT_HEAVY_LANE_QUEUE": "4",
            "DESCENT_HEAVY_LANE_WAIT_S": "30",
        }
        server = subprocess.Popen([str(BIN / "descent"), "serve"], env=env, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(url + "/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("descent serve did not start")
                time.sleep(0.2)
            return _measure(url, body, seconds)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)


def _measure(url: str, body: bytes, seconds: float) -> dict[str, str]:
    stop = threading.Event()
    statuses: list[int] = []
    probes: dict[str, list[float]] = {"healthz": [], "small forward": []}

    def heavy() -> None:
        with httpx.Client(base_url=url, timeout=300) as client:
            while not stop.is_set():
                r = client.post("/v1/gradients", content=body, headers={"content-type": "application/json"})
                statuses.append(r.status_code)

    def probe(name: str) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            while not stop.is_set():
                start = time.perf_counter()
                if name == "healthz":
                    client.get("/healthz")
                else:
                    client.post("/v1/forward", json=SMALL)
                probes[name].append(time.perf_counter() - start)
                time.sleep(0.05)

    # Warm-up: one heavy request alone (imports, worker processes), not measured.
    httpx.post(url + "/v1/gradients", content=body, headers={"content-type": "application/json"}, timeout=300)
    threads = [threading.Thread(target=heavy) for _ in range(4)]
    threads += [threading.Thread(target=probe, args=(name,)) for name in probes]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    result = {name: _percentiles(samples) for name, samples in probes.items()}
    result["heavy"] = f"{statuses.count(200)} answered, {statuses.count(503)} refused (503)"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=48.0, help="size of each heavy request body")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the heavy requests run")
    parser.add_argument("--modes", default="threads,processes")
    args = parser.parse_args()
    body = heavy_body(args.mb)
    print(f"heavy body: {len(body) / 1e6:.1f} MB; probes every 50 ms; median / p99 / max")
    print("| heavy lane | /healthz | small /v1/forward | heavy requests |")
    print("|---|---|---|---|")
    for mode in args.modes.split(","):
        r = run_mode(mode, body, args.seconds)
        print(f"| {mode} | {r['healthz']} | {r['small forward']} | {r['heavy']} |", flush=True)


if __name__ == "__main__":
    main()
