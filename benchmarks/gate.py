"""What the gate (authentication and rate limits) adds to a small request, in process.

Drives the ASGI application with the same ``POST /v1/activations/sigmoid`` of 10 elements (as
``benchmarks/request_path.py``: no HTTP server, no network) under several settings, taking turns in batches:

- ``DESCENT_AUTH=none``: no key, no bucket (the reference);
- ``keys``, no rate limit: the key checked through the process's cache (DESCENT_KEY_CACHE_S, 2 s: one
  store read every 2 s);
- ``keys`` and a token bucket in memory (embedded mode);
- ``keys`` and a token bucket in Redis (Celery mode), with ``--redis URL``: one round trip per request.

Each figure is the median of the batches' means: the CPU time of this thread per request, and the wall time
(which counts the Redis round trip too). It also times the gate alone (``Gate.admit`` on the same scope).
The bucket never runs out (1,000,000/second), so every request does the same work.

Run: python benchmarks/gate.py [--batches 25] [--requests 200] [--redis redis://127.0.0.1:6379/14]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BODY = json.dumps({"x": [0.1, -0.3, 1.2, 0.5, -2.0, 3.0, 0.0, 0.7, -0.1, 1.5]}).encode()
PATH = "/v1/activations/sigmoid"
UNLIMITED = "1000000/second"


def _scope(key: str | None) -> dict[str, Any]:
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BODY)).encode()),
    ]
    if key is not None:
        headers.append((b"authorization", f"Bearer {key}".encode()))
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
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _requests(app: Any, key: str | None, n: int) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    for _ in range(n):
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
            sent.append(message)

        await app(_scope(key), receive, send)
        if sent[0]["status"] != 200:
            raise RuntimeError(f"{PATH} answered {sent[0]['status']}: {sent[-1].get('body', b'')[:300]!r}")


async def _admissions(app: Any, key: str | None, n: int) -> None:
    gate = app.state.gate
    for _ in range(n):
        scope = _scope(key)
        scope["app"] = app
        await gate.admit(scope)


async def _timed(run: Callable[[], Any], n: int) -> tuple[float, float]:
    """(CPU µs, wall µs) per request of one batch."""
    cpu, wall = time.thread_time(), time.perf_counter()
    await run()
    return (time.thread_time() - cpu) / n * 1e6, (time.perf_counter() - wall) / n * 1e6


async def _main(args: argparse.Namespace, tmp: str) -> None:
    from service.app import create_app
    from service.logs import flush_access_log
    from service.services import identity
    from service.settings import Settings

    key = identity.generate()[1]
    base: dict[str, Any] = {"workers": 0, "log_level": "info"}
    keyed: dict[str, Any] = {**base, "auth": "keys", "bootstrap_key": key}
    configs: dict[str, tuple[dict[str, Any], str | None]] = {
        "none": ({**base, "auth": "none"}, None),
        "keys, no rate limit": ({**keyed, "rate_limit": ""}, key),
        "keys + bucket in memory": ({**keyed, "rate_limit": UNLIMITED}, key),
    }
    if args.redis:
        redis = {**keyed, "rate_limit": UNLIMITED, "rate_limit_url": args.redis}
        configs["keys + bucket in Redis"] = (redis, key)
    async with AsyncExitStack() as stack:
        apps: dict[str, tuple[Any, str | None]] = {}
        for i, (name, (values, presented)) in enumerate(configs.items()):
            app = create_app(Settings(**values, database_url=f"sqlite:///{tmp}/bench{i}.db"))
            await stack.enter_async_context(app.router.lifespan_context(app))
            apps[name] = (app, presented)
            await _requests(app, presented, args.requests)  # warm-up
        # Per settings, one row per batch: request CPU, request wall, Gate.admit CPU, Gate.admit wall.
        rows: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in apps}
        n = args.requests
        for _ in range(args.batches):
            for name, (app, presented) in apps.items():
                request = await _timed(lambda a=app, p=presented: _requests(a, p, n), n)
                admission = await _timed(lambda a=app, p=presented: _admissions(a, p, n), n)
                rows[name].append((*request, *admission))
            flush_access_log()

    medians = {
        name: [statistics.median(column) for column in zip(*batches, strict=True)]
        for name, batches in rows.items()
    }
    none = medians["none"]
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average {load}; median of {args.batches} batches of {n} requests, µs per request")
    print()
    print(
        "| settings | request CPU | over none | request wall | over none | Gate.admit CPU | Gate.admit wall |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, (cpu, wall, gate_cpu, gate_wall) in medians.items():
        print(
            f"| {name} | {cpu:.1f} | {cpu - none[0]:+.1f} | {wall:.1f} | {wall - none[1]:+.1f} "
            f"| {gate_cpu:.1f} | {gate_wall:.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=25)
    parser.add_argument("--requests", type=int, default=200, help="requests per batch")
    parser.add_argument("--redis", default="", help="a Redis URL: time the buckets in Redis too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # Access lines go to stderr in batches, as in the server; keep them out of the report.
        with open(os.devnull, "w") as devnull:
            stderr, sys.stderr = sys.stderr, devnull
            try:
                asyncio.run(_main(args, tmp))
            finally:
                sys.stderr = stderr


if __name__ == "__main__":
    main()
