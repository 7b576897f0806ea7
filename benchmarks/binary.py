"""Binary arrays against JSON, and the service against a bare Starlette endpoint, for 10⁶ float64 numbers.

Starts ``descent serve``'s app (no job workers, the JSON access log on, as deployed) and the bare
references of ``benchmarks/reference_app.py:create_binary_app`` under the same uvicorn settings, then
sends sigmoid of 10⁶ float64 numbers from one client connection:

- full round trip, JSON against ``.npy``, on the service's ``POST /v1/activations/sigmoid``: encode
  the request in the client (orjson / the Python client's ``.npy`` writer), send, receive, decode the
  answer to an ndarray (orjson + ``np.asarray`` / the client's ``.npy`` reader). Target: ``.npy``
  ≥ 10× faster;
- the server's share with the bodies already encoded (send, compute, receive), ``.npy`` in and out:
  the service against the bare endpoint that loads with ``np.load``, applies the engine's sigmoid and
  answers ``np.save``'s bytes (and, for scale, one that only loads and saves). Target: ≤ 1.2×.

Every figure is the median of ``--repeats`` requests after ``--warmup`` unmeasured ones.
Run: ``python -m benchmarks.binary [--n 1000000] [--repeats 15]``. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable

import httpx
import numpy as np
import orjson

from benchmarks.service import ROOT, free_port, start
from descent_client import _arrays

NPY = "application/x-npy"
JSON_HEADERS = {"content-type": "application/json", "accept": "application/json"}
NPY_HEADERS = {"content-type": NPY, "accept": NPY}


def npy_encode(x: np.ndarray) -> bytes:
    """What the Python client sends (``np.save``'s bytes, written in one copy)."""
    return _arrays.npy_bytes(x)


def median_ms(fn: Callable[[], object], warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="float64 numbers per request")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    x = np.random.default_rng(0).normal(size=args.n)
    expected = 1 / (1 + np.exp(-x))
    npy_body = npy_encode(x)
    json_body = orjson.dumps({"x": x}, option=orjson.OPT_SERIALIZE_NUMPY)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DESCENT_WORKERS": "0",
            "DESCENT_LOG_LEVEL": "info",
            "DESCENT_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "PYTHONPATH": str(ROOT),
        }
        for name, app in (
            ("descent", "service.app:create_app"),
            ("reference", "benchmarks.reference_app:create_binary_app"),
        ):
            port = free_port()
            proc: subprocess.Popen[bytes] = start(app, port, env)
            try:
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
                    results.update(measure(name, client, x, expected, npy_body, json_body, args))
            finally:
                proc.terminate()
                proc.wait(10)
    report(results, args.n, len(npy_body), len(json_body))


def measure(
    name: str,
    client: httpx.Client,
    x: np.ndarray,
    expected: np.ndarray,
    npy_body: bytes,
    json_body: bytes,
    args: argparse.Namespace,
) -> dict[str, float]:
    path = "/v1/activations/sigmoid"

    def post(body: bytes, headers: dict[str, str], route: str = path) -> bytes:
        response = client.post(route, content=body, headers=headers)
        response.raise_for_status()
        return response.content

    # Both answers are checked once against NumPy before anything is timed.
    np.testing.assert_allclose(np.load(io.BytesIO(post(npy_body, NPY_HEADERS))), expected, rtol=1e-12)
    out: dict[str, float] = {}
    if name == "descent":
        y = np.asarray(orjson.loads(post(json_body, JSON_HEADERS))["y"])
        np.testing.assert_allclose(y, expected, rtol=1e-12)

        def json_round_trip() -> None:
            body = orjson.dumps({"x": x}, option=orjson.OPT_SERIALIZE_NUMPY)
            np.asarray(orjson.loads(post(body, JSON_HEADERS))["y"], dtype=np.float64)

        def npy_round_trip() -> None:
            _arrays.npy_array(post(npy_encode(x), NPY_HEADERS))

        out["json round trip"] = median_ms(json_round_trip, args.warmup, args.repeats)
        out["npy round trip"] = median_ms(npy_round_trip, args.warmup, args.repeats)
        out["descent server"] = median_ms(lambda: post(npy_body, NPY_HEADERS), args.warmup, args.repeats)
    else:
        out["reference server"] = median_ms(lambda: post(npy_body, NPY_HEADERS), args.warmup, args.repeats)
        out["echo server"] = median_ms(
            lambda: post(npy_body, NPY_HEADERS, "/echo"), args.warmup, args.repeats
        )
        # The floor of any .npy round trip over this client and server stack: encode, carry the bytes
        # there and back untouched, decode.
        out["bytes round trip"] = median_ms(
            lambda: _arrays.npy_array(post(npy_encode(x), NPY_HEADERS, "/bytes")), args.warmup, args.repeats
        )
    return out


def report(results: dict[str, float], n: int, npy_bytes: int, json_bytes: int) -> None:
    load = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    sizes = f".npy body {npy_bytes / 1e6:.1f} MB, JSON body {json_bytes / 1e6:.1f} MB"
    print(f"sigmoid of {n:,} float64 numbers; {sizes}")
    print(f"uptime: {load}")
    print("| measurement | median | ratio | target |")
    print("|---|---|---|---|")
    j, b = results["json round trip"], results["npy round trip"]
    print(f"| full round trip, JSON | {j:.1f} ms | | |")
    print(f"| full round trip, .npy | {b:.1f} ms | {j / b:.1f}× faster than JSON | ≥ 10× |")
    d, r, e = results["descent server"], results["reference server"], results["echo server"]
    print(f"| server, .npy in and out: Descent | {d:.1f} ms | {d / r:.2f}× the bare endpoint | ≤ 1.2× |")
    print(f"| server, .npy in and out: bare Starlette (np.load, sigmoid, np.save) | {r:.1f} ms | | |")
    print(f"| server, .npy in and out: bare Starlette, load and save only | {e:.1f} ms | | |")
    f = results["bytes round trip"]
    print(
        f"| floor: full round trip to a bare endpoint answering the body untouched | {f:.1f} ms |"
        f" JSON is {j / f:.1f}× this floor | |"
    )


if __name__ == "__main__":
    main()
