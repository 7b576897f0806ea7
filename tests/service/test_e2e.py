"""A real ``descent serve`` (uvicorn, uvloop, httptools) on 127.0.0.1, spoken to over TCP."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.processes import Process, free_port, wait_until
from tests.timing import REQUEST_S, STARTUP_S

DESCENT = Path(sys.executable).with_name("descent")
JSON = {"content-type": "application/json"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "DESCENT_HOST": "127.0.0.1",
        "DESCENT_PORT": str(port),
        "DESCENT_DATABASE_URL": f"sqlite:///{tmp_path / 'descent.db'}",
        "DESCENT_WORKERS": "0",
        "DESCENT_MAX_BODY_BYTES": "10000",
        "DESCENT_LOG_LEVEL": "info",
    }
    process = Process(
        "descent serve", [str(DESCENT), "serve"], env=env, cwd=tmp_path, log_path=tmp_path / "server.log"
    )
    url = f"http://127.0.0.1:{port}"
    process.start()
    try:
        process.wait_for_http(f"{url}/healthz", timeout=STARTUP_S)
        yield url
    finally:
        process.stop(timeout=STARTUP_S)


@pytest.mark.e2e
def test_serve_answers_over_tcp(server: str, tmp_path: Path) -> None:
    with httpx.Client(base_url=server, timeout=REQUEST_S) as client:
        response = client.post(
            "/v1/activations/sigmoid", json={"x": [0.0, 0.0]}, headers={"X-Request-ID": "e2e-1"}
        )
        assert response.status_code == 200
        assert response.json()["y"] == [0.5, 0.5]
        assert response.headers["x-request-id"] == "e2e-1"

        too_big = client.post("/v1/activations/relu", json={"x": [0.5] * 5000})
        assert too_big.status_code == 413
        assert too_big.headers["content-type"] == "application/problem+json"
        assert "10000 bytes" in too_big.json()["detail"]

        def chunks() -> Iterator[bytes]:
            yield b'{"x": ['
            for _ in range(3000):
                yield b"0.5, "
            yield b"0.5]}"

        chunked = client.post("/v1/activations/relu", content=chunks(), headers=JSON)
        assert chunked.status_code == 413

        # Far over the limit: the client still reads the 413 (no reset), and the connection goes on.
        huge = client.post("/v1/activations/relu", content=b" " * 4_000_000, headers=JSON)
        assert huge.status_code == 413

        assert client.get("/healthz").status_code == 200
        assert client.get("/openapi.json").json()["info"]["title"] == "Descent"
    # Access lines are written in batches, soon after the request.
    wait_until(
        lambda: '"request_id":"e2e-1"' in (tmp_path / "server.log").read_text(),
        REQUEST_S,
        "the request's access line in the server's log",
    )
