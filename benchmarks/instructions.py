"""Instructions and cache misses per small request, Descent against the bare reference, under cachegrind.

Wall-clock and CPU-time figures (``benchmarks/service.py``) move with whatever else the machine runs;
instruction counts do not. Each server (uvicorn with the same settings as ``service.py``) runs under
``valgrind --tool=cachegrind --cache-sim=yes`` twice: it starts, answers ``--few`` or ``--many``
sigmoid-of-10 requests on one keep-alive connection, and stops. The difference between the two runs,
divided by the difference in requests, is what one request costs the server's process, startup and
shutdown cancelling out: instructions executed (Ir), first-level instruction and data cache misses
(I1mr, D1mr, D1mw) and last-level misses, as cachegrind simulates them for this machine's caches.
The kernel's share (sockets, epoll) is not counted; it is the same for both servers.

Needs Debian's ``valgrind``. A run takes several minutes (the servers' imports run 50 times slower).

Run: python benchmarks/instructions.py [--few 200] [--many 2200]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = {"descent": "service.app:create_app", "reference": "benchmarks.reference_app:create_app"}
BODY = json.dumps({"x": [0.1, -0.3, 1.2, 0.5, -2.0, 3.0, 0.0, 0.7, -0.1, 1.5]})
EVENTS = ("Ir", "I1mr", "ILmr", "Dr", "D1mr", "DLmr", "Dw", "D1mw", "DLmw")
SHOWN = (("Ir", "instructions"), ("I1mr", "L1 instruction misses"), ("D1mr", "L1 data read misses"),
         ("D1mw", "L1 data write misses"), ("ILmr", "last-level instruction misses"),
         ("DLmr", "last-level data read misses"))  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(app: str, requests: int, tmp: Path) -> dict[str, int]:
    """Cachegrind's totals for a server that started, answered ``requests`` requests and stopped."""
    port, out = free_port(), tmp / f"cachegrind.{os.getpid()}.{time.monotonic_ns()}"
    env = {
        **os.environ,
        "DESCENT_WORKERS": "0",
        "DESCENT_LOG_LEVEL": "info",
        "DESCENT_DATABASE_URL": f"sqlite:///{tmp}/bench-{port}.db",
        "PYTHONPATH": str(ROOT),
    }
    cmd = [
        "valgrind", "--tool=cachegrind", "--cache-sim=yes", "--branch-sim=no", f"--cachegrind-out-file={out}",
        sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        connection = _connect(port, proc)
        for _ in range(requests):
            connection.request("POST", "/v1/activations/sigmoid", BODY, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"{app} answered {response.status}")
        connection.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(600)
    for line in out.read_text().splitlines():
        if line.startswith("summary:"):
            return dict(zip(EVENTS, map(int, line.split()[1:]), strict=True))
    raise RuntimeError(f"no summary in {out}")


def _connect(port: int, proc: subprocess.Popen[bytes]) -> http.client.HTTPConnection:
    """A connection to the server once it answers (it starts slowly under valgrind)."""
    deadline = time.monotonic() + 1200
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited while starting")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        try:
            connection.request("GET", "/openapi.json")
            connection.getresponse().read()
            return connection
        except OSError:
            connection.close()
            time.sleep(1)
    raise RuntimeError("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--few", type=int, default=200, help="requests in the first run of each server")
    parser.add_argument("--many", type=int, default=2200, help="requests in the second run")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is needed: apt-get install valgrind")
    per_request: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, app in APPS.items():
            few, many = run(app, args.few, Path(tmp)), run(app, args.many, Path(tmp))
            per_request[name] = {e: (many[e] - few[e]) / (args.many - args.few) for e in EVENTS}
    d, r = per_request["descent"], per_request["reference"]
    print("| per small request (sigmoid of 10 elements), server process | Descent | reference | ratio |")
    print("|---|---|---|---|")
    for event, label in SHOWN:
        ratio = f"{d[event] / r[event]:.2f}×" if r[event] >= 1 else "(none)"
        print(f"| {label} ({event}) | {d[event]:,.0f} | {r[event]:,.0f} | {ratio} |")


if __name__ == "__main__":
    main()
