"""/healthz, /readyz, /metrics, request ids and the access log."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.to_thread
import httpx
import orjson
import pytest

from service.logs import JSONFormatter
from tests.service.conftest import Client, assert_problem
from tests.service.test_jobs_api import parse_sse
from tests.timing import REQUEST_S


def test_healthz(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_and_event_streams_answer_while_every_worker_thread_is_taken(client: Client) -> None:
    # Other requests' store calls can hold every thread of the default pool at once: liveness needs
    # none, and event streams read the store through a limiter of their own.
    job = client.post(
        "/v1/jobs",
        json={
            "dataset": {"generator": {"kind": "xor", "n_samples": 40, "seed": 1}},
            "model": {"type": "logistic_regression"},
            "optimizer": {"name": "gd", "learning_rate": 0.5},
            "epochs": 5,
        },
    ).json()
    assert client.post(f"/v1/jobs/{job['id']}/cancel").json()["status"] == "cancelled"  # no workers: queued
    release = threading.Event()

    async def take_every_thread() -> list[asyncio.Task[Any]]:
        default = anyio.to_thread.current_default_thread_limiter()
        loop = asyncio.get_running_loop()
        holders = [
            loop.create_task(anyio.to_thread.run_sync(release.wait)) for _ in range(int(default.total_tokens))
        ]
        with anyio.fail_after(REQUEST_S):
            while default.available_tokens:
                await anyio.sleep(0.01)
        return holders

    async def bounded(url: str) -> httpx.Response:
        with anyio.fail_after(REQUEST_S):
            return await client.httpx.get(url)

    async def release_threads(holders: list[asyncio.Task[Any]]) -> None:
        release.set()
        await asyncio.gather(*holders)

    holders = client.run(take_every_thread())
    try:
        health = client.run(bounded("/healthz"))
        events = client.run(bounded(f"/v1/jobs/{job['id']}/events"))
    finally:
        client.run(release_threads(holders))
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert events.status_code == 200, events.text
    assert [kind for _, kind, _ in parse_sse(events.text)][-1] == "end"


def test_readyz_is_ready_when_every_check_passes(client: Client) -> None:
    async def database() -> None:
        return None

    client.app.state.readiness_checks.append(database)
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == "ok"


def test_readyz_is_503_with_retry_after_naming_the_failed_check(client: Client) -> None:
    async def broker() -> None:
        raise ConnectionError("connection refused")

    client.app.state.readiness_checks.append(broker)
    response = client.get("/readyz")
    body = assert_problem(response, 503, "broker: connection refused")
    assert "ConnectionError" not in body["detail"]
    assert response.headers["retry-after"] == "5"
    assert body["errors"] == [{"loc": ["dependency", "broker"], "msg": "connection refused"}]
    assert client.get("/healthz").status_code == 200


def test_request_id_is_made_when_absent(client: Client) -> None:
    first = client.get("/healthz").headers["x-request-id"]
    second = client.get("/healthz").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second


def test_incoming_request_id_is_honoured(client: Client) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "abc-123.x:y_z"})
    assert response.headers["x-request-id"] == "abc-123.x:y_z"


@pytest.mark.parametrize("bad", ["has space", "x" * 129, "new\\nline", 'quote"'])
def test_unsafe_incoming_request_id_is_replaced(client: Client, bad: str) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": bad})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_error_responses_carry_the_request_id(client: Client) -> None:
    response = client.get("/nowhere", headers={"X-Request-ID": "trace-7"})
    assert response.headers["x-request-id"] == "trace-7"
    assert response.json()["request_id"] == "trace-7"


@pytest.fixture
def access_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    formatter = JSONFormatter()
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(formatter.format(record))  # type: ignore[method-assign]
    logger = logging.getLogger("descent.access")
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def test_one_json_log_line_per_request(client: Client, access_lines: list[str]) -> None:
    client.post("/v1/activations/sigmoid", json={"x": [0.0]}, headers={"X-Request-ID": "log-me"})
    client.get("/nowhere")
    assert len(access_lines) == 2
    first, second = (orjson.loads(line) for line in access_lines)
    assert first["method"] == "POST"
    assert first["path"] == "/v1/activations/sigmoid"
    assert first["status"] == 200
    assert first["request_id"] == "log-me"
    assert first["level"] == "info" and first["logger"] == "descent.access"
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert (second["method"], second["status"]) == ("GET", 404)


def _samples(text: str) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_metrics_count_requests_by_route_and_status(client: Client) -> None:
    for _ in range(3):
        client.post("/v1/activations/relu", json={"x": [1.0]})
    client.post("/v1/activations/relu", json={"x": []})
    client.post("/v1/activations/sigmoid", json={"x": [1.0]})
    client.get("/no/such/path")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.text
    assert "# TYPE descent_http_requests_total counter" in text
    assert "# TYPE descent_http_request_duration_seconds histogram" in text
    samples = _samples(text)
    # Routes are labelled by their template, so each activation counts under /v1/activations/{name}.
    ok = 'descent_http_requests_total{method="POST",route="/v1/activations/{name}",status="200"}'
    assert samples[ok] == 4
    assert samples[ok.replace('"200"', '"422"')] == 1
    assert samples['descent_http_requests_total{method="GET",route="<unmatched>",status="404"}'] == 1
    labels = 'method="POST",route="/v1/activations/{name}"'
    assert samples[f"descent_http_request_duration_seconds_count{{{labels}}}"] == 5
    assert samples[f'descent_http_request_duration_seconds_bucket{{{labels},le="+Inf"}}'] == 5
    buckets = [
        v
        for k, v in samples.items()
        if k.startswith(f"descent_http_request_duration_seconds_bucket{{{labels}")
    ]
    assert buckets == sorted(buckets)
    assert samples[f"descent_http_request_duration_seconds_sum{{{labels}}}"] > 0
    assert samples["descent_http_requests_in_progress"] == 1
