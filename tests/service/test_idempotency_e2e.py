"""Idempotency-Key under concurrency, against a real ``descent serve`` on SQLite and on PostgreSQL.

N requests with one key sent at once create exactly one resource (and, for a job with inline data, one
dataset), and every one of them answers with it; a creation that fails uses nothing up.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import pg
from tests.service.test_jobs_e2e import ServiceProcess
from tests.timing import REQUEST_S, limit

pytestmark = pytest.mark.e2e

N = 20
INLINE_JOB = {
    "dataset": {"name": "inline", "X": [[0, 0], [0, 1], [1, 0], [1, 1]], "y": [0, 1, 1, 0]},
    "model": {"type": "logistic_regression"},
    "epochs": 3,
    "seed": 1,
}
GENERATED = {"name": "moons", "generator": {"kind": "moons", "n_samples": 50, "seed": 3}}


@pytest.fixture(params=["sqlite", "postgresql"])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServiceProcess]:
    settings: dict[str, Any] = {"workers": 0, "idempotency_wait_s": limit(60)}
    if request.param == "postgresql":
        database = pg.database_fixture()
        settings["database_url"] = next(database)
    try:
        with ServiceProcess(tmp_path, **settings) as running:
            yield running
    finally:
        if request.param == "postgresql":
            database.close()


def all_at_once(send: Callable[[httpx.Client], httpx.Response]) -> list[httpx.Response]:
    """``send`` from N threads, released together, each with a connection of its own."""
    start = threading.Barrier(N)

    def one(_: int) -> httpx.Response:
        with httpx.Client(timeout=limit(120)) as client:
            start.wait(REQUEST_S)
            return send(client)

    with ThreadPoolExecutor(max_workers=N) as pool:
        return list(pool.map(one, range(N)))


def items(service: ServiceProcess, resource: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{service.url}/v1/{resource}", params={"limit": 500}, timeout=REQUEST_S)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["items"]
    return found


def one_created(responses: list[httpx.Response], created: int) -> str:
    """The id every response names, after checking that exactly one of them created it."""
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * (N - 1) + [created], [(r.status_code, r.text[:200]) for r in responses]
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1, ids
    assert {r.headers["location"].rsplit("/", 1)[1] for r in responses} == ids
    return ids.pop()


def test_concurrent_jobs_with_one_key_create_one_job_and_one_inline_dataset(service: ServiceProcess) -> None:
    headers = {"Idempotency-Key": "twenty-at-once"}

    responses = all_at_once(lambda c: c.post(f"{service.url}/v1/jobs", json=INLINE_JOB, headers=headers))

    job_id = one_created(responses, 202)
    jobs = items(service, "jobs")
    assert [(j["id"], j["status"]) for j in jobs] == [(job_id, "queued")]
    datasets = items(service, "datasets")
    assert [d["id"] for d in datasets] == [jobs[0]["config"]["dataset_id"]]


def test_concurrent_dataset_uploads_with_one_key_store_one_dataset(service: ServiceProcess) -> None:
    headers = {"Idempotency-Key": "upload-once"}

    responses = all_at_once(lambda c: c.post(f"{service.url}/v1/datasets", json=GENERATED, headers=headers))

    dataset_id = one_created(responses, 201)
    assert [d["id"] for d in items(service, "datasets")] == [dataset_id]
    replayed = [r for r in responses if r.status_code == 200]
    assert all(r.headers["idempotent-replayed"] == "true" for r in replayed)


def test_concurrent_model_imports_with_one_key_store_one_model(service: ServiceProcess) -> None:
    document = {
        "format": "descent.model/v1",
        "architecture": {
            "type": "logistic_regression",
            "n_features": 2,
            "layers": [{"units": 1, "activation": "sigmoid"}],
            "loss": "binary_cross_entropy",
        },
        "n_features": 2,
        "task": "binary",
        "classes": [0, 1],
        "dtype": "float64",
        "parameters": {"W0": [[1.5], [-0.5]], "b0": [0.25]},
    }
    headers = {"Idempotency-Key": "import-once"}

    responses = all_at_once(lambda c: c.post(f"{service.url}/v1/models", json=document, headers=headers))

    model_id = one_created(responses, 201)
    assert [m["id"] for m in items(service, "models")] == [model_id]
    other = httpx.post(
        f"{service.url}/v1/models",
        json={**document, "parameters": {"W0": [[1.0], [0.0]], "b0": [0.0]}},
        headers=headers,
        timeout=REQUEST_S,
    )
    assert other.status_code == 409 and "different request" in other.json()["detail"], other.text


def test_refused_concurrent_jobs_leave_nothing_and_the_key_free_for_a_retry(tmp_path: Path) -> None:
    with ServiceProcess(tmp_path, workers=0, max_queued_jobs=1, idempotency_wait_s=limit(60)) as service:
        blocker = httpx.post(f"{service.url}/v1/jobs", json=INLINE_JOB, timeout=REQUEST_S)
        assert blocker.status_code == 202, blocker.text
        headers = {"Idempotency-Key": "after-the-queue-drains"}

        responses = all_at_once(lambda c: c.post(f"{service.url}/v1/jobs", json=INLINE_JOB, headers=headers))

        assert {r.status_code for r in responses} == {429}, [r.text[:200] for r in responses]
        assert [j["id"] for j in items(service, "jobs")] == [blocker.json()["id"]]
        assert len(items(service, "datasets")) == 1  # the blocker's inline dataset only
        cancelled = httpx.post(f"{service.url}/v1/jobs/{blocker.json()['id']}/cancel", timeout=REQUEST_S)
        assert cancelled.status_code == 202, cancelled.text

        retried = httpx.post(f"{service.url}/v1/jobs", json=INLINE_JOB, headers=headers, timeout=REQUEST_S)
        assert retried.status_code == 202, retried.text
        again = httpx.post(f"{service.url}/v1/jobs", json=INLINE_JOB, headers=headers, timeout=REQUEST_S)
        assert (again.status_code, again.json()["id"]) == (200, retried.json()["id"])
