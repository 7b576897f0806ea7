"""A real ``descent serve`` (uvicorn, uvloop, httptools) on 127.0.0.1, spoken to over TCP."""

from __future__ import annotations

import json
import os
import socket
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


def _raw(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=REQUEST_S) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.e2e
@pytest.mark.parametrize(
    "request_bytes",
    [b"GARBAGE\r\n\r\n", b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"],
    ids=["not-http", "bad-header"],
)
def test_a_request_the_server_cannot_parse_is_a_problem_too(server: str, request_bytes: bytes) -> None:
    head, _, body = _raw(server, request_bytes).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0] == "HTTP/1.1 400 Bad Request"
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    assert headers["content-type"] == "application/problem+json"
    assert int(headers["content-length"]) == len(body)
    problem = json.loads(body)
    assert problem["type"] == "urn:descent:problem:bad-request" and problem["status"] == 400
    assert problem["title"] == "Bad Request" and "not valid HTTP/1.1" in problem["detail"]
    assert problem["instance"] == ""
    with httpx.Client(base_url=server, timeout=REQUEST_S) as client:
        assert client.get("/healthz").status_code == 200
