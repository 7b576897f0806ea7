"""service.http.middleware: every answer, refusals and crashes included, gets an id, metrics and a log."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator

import orjson
import pytest

from service.logs import JSONFormatter
from service.services import compute
from tests.service.conftest import Client, assert_problem

JSON = {"content-type": "application/json"}


@pytest.fixture
def access_lines() -> Iterator[list[dict]]:
    lines: list[dict] = []
    formatter = JSONFormatter()
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(orjson.loads(formatter.format(record)))  # type: ignore[method-assign]
    logger = logging.getLogger("descent.access")
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def request_count(client: Client, route: str, status: int) -> float:
    sample = f'descent_http_requests_total{{method="POST",route="{route}",status="{status}"}} '
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(sample):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_body_refused_by_its_length_is_answered_counted_and_logged_with_its_id(
    make_client, access_lines: list[dict]
) -> None:
    client = make_client(max_body_bytes=100)
    response = client.post(
        "/v1/activations/relu", json={"x": [0.125] * 100}, headers={"X-Request-ID": "big-1"}
    )
    body = assert_problem(response, 413, "exceeds the limit of 100 bytes")
    assert response.headers["x-request-id"] == "big-1"
    assert body["request_id"] == "big-1"
    # Refused before any route ran: counted as unmatched.
    assert request_count(client, "<unmatched>", 413) == 1
    [line] = [line for line in access_lines if line["request_id"] == "big-1"]
    assert (line["method"], line["path"], line["status"]) == ("POST", "/v1/activations/relu", 413)


def test_a_chunked_body_refused_midway_is_answered_with_its_id(make_client, access_lines: list[dict]) -> None:
    client = make_client(max_body_bytes=100)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"x": ['
        for _ in range(40):
            yield b"0.125, "
        yield b"0]}"

    headers = {**JSON, "X-Request-ID": "chunky"}
    response = client.run(client.httpx.post("/v1/activations/relu", content=chunks(), headers=headers))
    body = assert_problem(response, 413, "exceeds the limit of 100 bytes")
    assert response.headers["x-request-id"] == body["request_id"] == "chunky"
    assert request_count(client, "/v1/activations/{name}", 413) == 1
    assert [line["status"] for line in access_lines if line["request_id"] == "chunky"] == [413]


def test_a_crash_is_counted_and_logged_as_500(
    client: Client, monkeypatch: pytest.MonkeyPatch, access_lines: list[dict]
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(compute, "evaluate_activation", broken)
    response = client.post("/v1/activations/relu", json={"x": [1.0]}, headers={"X-Request-ID": "crash-1"})
    assert_problem(response, 500, "crash-1")
    assert request_count(client, "/v1/activations/{name}", 500) == 1
    assert [line["status"] for line in access_lines if line["request_id"] == "crash-1"] == [500]


def test_the_first_request_id_header_decides(client: Client) -> None:
    response = client.get("/healthz", headers=[("X-Request-ID", "not valid"), ("X-Request-ID", "valid-2")])
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    response = client.get("/healthz", headers=[("X-Request-ID", "first"), ("X-Request-ID", "second")])
    assert response.headers["x-request-id"] == "first"


def test_nothing_stays_in_progress_after_answers_refusals_and_crashes(
    make_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(max_body_bytes=100)
    client.post("/v1/activations/relu", json={"x": [1.0]})
    client.post("/v1/activations/relu", json={"x": [0.125] * 100})
    monkeypatch.setattr(compute, "evaluate_activation", lambda *a, **k: 1 / 0)
    client.post("/v1/activations/relu", json={"x": [1.0]})
    # Only the /metrics request itself is in progress while it renders.
    assert "descent_http_requests_in_progress 1\n" in client.get("/metrics").text
