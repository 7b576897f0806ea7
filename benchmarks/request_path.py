"""The application's share of a small request, in process, against the bare reference app.

Drives both ASGI applications (``service.app`` and ``benchmarks/reference_app.py``) directly with the same
``POST /v1/activations/sigmoid`` of 10 elements, with no HTTP server and no network: what remains is each
application's own CPU time per request (middleware, routing, body parsing, the computation, rendering and,
for Descent, its access log at the default level). The two take turns in batches, and the figures are the CPU
time of this thread, so a machine busy with other work changes them less than it changes wrk's requests per
second (``benchmarks/service.py``). An HTTP server adds the same cost per request to both.

Run: python benchmarks/request_path.py [--batches 25] [--requests 200] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BODY = json.dumps({"x": [0.1, -0.3, 1.2, 0.5, -2.0, 3.0, 0.0, 0.7, -0.1, 1.5]}).encode()
PATH = "/v1/activations/sigmoid"


def _scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _requests(app: Any, n: int) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    for _ in range(n):
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
            sent.append(message)

        await app(_scope(), receive, send)
        if sent[0]["status"] != 200:
            raise RuntimeError(f"{PATH} answered {sent[0]['status']}: {sent[-1].get('body', b'')[:300]!r}")


async def _main(args: argparse.Namespace) -> None:
    from benchmarks.reference_app import create_app as reference_app
    from service.app import create_app
    from service.logs import flush_access_log

    apps = {"descent": create_app(), "reference": reference_app()}
    for app in apps.values():
        await _requests(app, args.requests)  # warm-up
    cpu: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(args.batches):
        for name, app in apps.items():
            start = time.thread_time()
            await _requests(app, args.requests)
            cpu[name].append((time.thread_time() - start) / args.requests * 1e6)
        flush_access_log()
    d, r = statistics.median(cpu["descent"]), statistics.median(cpu["reference"])
    print("| application CPU per request (in process, no server) | Descent | reference | ratio |")
    print("|---|---|---|---|")
    print(
        f"| sigmoid of 10 elements, access log on, median (min) of {args.batches} batches of "
        f"{args.requests} | {d:.1f} µs ({min(cpu['descent']):.1f}) | {r:.1f} µs "
        f"({min(cpu['reference']):.1f}) | {d / r:.2f}× |"
    )
    if args.profile:
        profile = cProfile.Profile(time.thread_time)
        profile.enable()
        await _requests(apps["descent"], 2000)
        profile.disable()
        pstats.Stats(profile, stream=sys.stdout).sort_stats("tottime").print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=25)
    parser.add_argument("--requests", type=int, default=200, help="requests per batch")
    parser.add_argument("--profile", action="store_true", help="then profile Descent's path")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("DESCENT_WORKERS", "0")
        os.environ["DESCENT_DATABASE_URL"] = f"sqlite:///{tmp}/bench.db"
        # Access lines go to stderr in batches, as in the server; keep them out of the report.
        with open(os.devnull, "w") as devnull:
            stderr, sys.stderr = sys.stderr, devnull
            try:
                asyncio.run(_main(args))
            finally:
                sys.stderr = stderr


if __name__ == "__main__":
    main()
