"""Schemathesis's SSE checks on a real job's event stream: every event validates against the document.

The document describes ``GET /v1/jobs/{id}/events`` event by event (``itemSchema``: the ``id``,
``event`` and ``data`` fields, the JSON of ``data`` by ``contentSchema``), and schemathesis's response
conformance check parses the stream and validates each event.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.processes import Process, free_port

DESCENT = Path(sys.executable).with_name("descent")
WAIT_S = 120.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp_path = tmp_path_factory.mktemp("sse")
    port = free_port()
    env = {
        **os.environ,
        "DESCENT_PORT": str(port),
        "DESCENT_DATABASE_URL": f"sqlite:///{tmp_path / 'descent.db'}",
        "DESCENT_WORKERS": "1",
        "DESCENT_PROGRESS_INTERVAL_S": "0.01",
        "DESCENT_LOG_LEVEL": "warning",
    }
    process = Process(
        "descent serve", [str(DESCENT), "serve"], env=env, cwd=tmp_path, log_path=tmp_path / "server.log"
    )
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        process.wait_for_http(f"{url}/healthz", timeout=60)
        yield url
    finally:
        process.stop(timeout=30)


def finished_job(url: str, **config: object) -> str:
    body = {
        "dataset": {"generator": {"kind": "xor", "n_samples": 200, "noise": 0.1, "seed": 1}},
        "model": {"type": "mlp", "hidden_layers": [8], "activation": "tanh"},
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "epochs": 300,
        "batch_size": 16,
        "validation_fraction": 0.2,
        **config,
    }
    with httpx.Client(base_url=url, timeout=30) as client:
        job_id: str = client.post("/v1/jobs", json=body).json()["id"]
        deadline = time.monotonic() + WAIT_S
        while client.get(f"/v1/jobs/{job_id}").json()["status"] not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, f"job {job_id} did not end within {WAIT_S} s"
            time.sleep(0.1)
    return job_id


@pytest.mark.e2e
def test_every_event_of_a_stream_validates_against_the_document(server: str) -> None:
    job_id = finished_job(server)
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    # Schemathesis reads 20 events of a stream by default; this one is read to its end.
    schema.config.max_stream_events = 100_000
    case = schema["/v1/jobs/{job_id}/events"]["GET"].Case(path_parameters={"job_id": job_id})
    response = case.call(timeout=60)
    assert response.status_code == 200
    kinds = [line for line in response.text.splitlines() if line.startswith("event: ")]
    assert kinds[0] == "event: status" and kinds[-1] == "event: end", response.text[-500:]
    assert "event: progress" in kinds
    case.validate_response(response, checks=[response_schema_conformance])


@pytest.mark.e2e
def test_an_event_the_document_does_not_describe_fails_the_check(server: str) -> None:
    job_id = finished_job(server, epochs=5)
    document = httpx.get(f"{server}/openapi.json").json()
    # The same document, but saying a status event's data carries a field the service does not send.
    status_data = document["components"]["schemas"]["StatusEventData"]
    status_data["required"] = [*status_data["required"], "phase"]
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=server)
    case = schema["/v1/jobs/{job_id}/events"]["GET"].Case(path_parameters={"job_id": job_id})
    with pytest.raises(FailureGroup, match="SSE event violates schema"):
        case.validate_response(case.call(timeout=60), checks=[response_schema_conformance])
