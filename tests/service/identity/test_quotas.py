"""Quotas per owner: reached (403 quota-exceeded naming the quota, the usage and the limit) and recovered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from service.settings import MiB
from tests.deploy.stack import RedisServer
from tests.service.conftest import Client, assert_problem
from tests.service.identity.conftest import Keys, make_keys
from tests.service.test_models_api import logistic

JOB = {
    "dataset": {"generator": {"kind": "xor", "n_samples": 40, "seed": 1}},
    "model": {"type": "logistic_regression"},
    "optimizer": {"name": "sgd", "learning_rate": 0.1},
    "epochs": 2,
}


def xor(n: int = 40) -> dict[str, Any]:
    return {"name": "xor", "generator": {"kind": "xor", "n_samples": n, "seed": 1}}


def assert_quota(response: Any, name: str, usage: int, limit: int) -> None:
    body = assert_problem(response, 403, f"quota {name} exceeded")
    assert body["type"] == "urn:descent:problem:quota-exceeded"
    assert body["quota"]["name"] == name
    assert (body["quota"]["usage"], body["quota"]["limit"]) == (usage, limit)


def usage(client: Client, key: str) -> dict[str, Any]:
    response = client.get("/v1/usage", headers=Keys.header(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def client(keyed: Callable[..., Client]) -> Client:
    # Settings give everyone 2 jobs; alice's key overrides datasets and models.
    return keyed(quota_jobs=2)


@pytest.fixture
def keys(client: Client) -> Keys:
    return make_keys(client, datasets=2, models=1)


def test_usage_shows_the_quotas_of_the_settings_and_the_key(client: Client, keys: Keys) -> None:
    alice, bob = usage(client, keys.alice), usage(client, keys.bob)
    assert alice["owner"] == "alice" and bob["owner"] == "bob"
    assert alice["usage"] == {"jobs": 0, "datasets": 0, "models": 0, "stored_bytes": 0}
    assert alice["quotas"]["jobs"] == bob["quotas"]["jobs"] == 2
    assert (alice["quotas"]["datasets"], alice["quotas"]["models"]) == (2, 1)
    assert (bob["quotas"]["datasets"], bob["quotas"]["models"]) == (1000, 1000)
    assert alice["quotas"]["stored_bytes"] == 4096 * MiB


def test_active_jobs_quota_is_reached_and_recovered(client: Client, keys: Keys) -> None:
    check_jobs_quota(client, keys)


def test_active_jobs_quota_with_the_celery_runner(
    keyed: Callable[..., Client], redis_server: RedisServer
) -> None:
    client = keyed(quota_jobs=2, runner="celery", broker_url=redis_server.url)
    check_jobs_quota(client, make_keys(client))


def check_jobs_quota(client: Client, keys: Keys) -> None:
    headers = Keys.header(keys.bob)
    jobs = [client.post("/v1/jobs", json=JOB, headers=headers) for _ in range(2)]
    assert [j.status_code for j in jobs] == [202, 202]
    datasets_before = usage(client, keys.bob)["usage"]["datasets"]
    assert_quota(client.post("/v1/jobs", json=JOB, headers=headers), "jobs", 2, 2)
    # The refused job's inline dataset is not left behind.
    assert usage(client, keys.bob)["usage"] == {
        **usage(client, keys.bob)["usage"],
        "datasets": datasets_before,
    }
    # Alice's quota is her own.
    assert client.post("/v1/jobs", json=JOB, headers=Keys.header(keys.alice)).status_code == 202
    assert client.post(f"/v1/jobs/{jobs[0].json()['id']}/cancel", headers=headers).status_code == 202
    assert usage(client, keys.bob)["usage"]["jobs"] == 1
    assert client.post("/v1/jobs", json=JOB, headers=headers).status_code == 202


def test_datasets_quota_is_reached_and_recovered(client: Client, keys: Keys) -> None:
    headers = Keys.header(keys.alice)
    first = client.post("/v1/datasets", json=xor(), headers=headers)
    assert client.post("/v1/datasets", json=xor(), headers=headers).status_code == 201
    assert_quota(client.post("/v1/datasets", json=xor(), headers=headers), "datasets", 2, 2)
    # Inline data of a job is a dataset too.
    assert_quota(client.post("/v1/jobs", json=JOB, headers=headers), "datasets", 2, 2)
    assert client.request("DELETE", f"/v1/datasets/{first.json()['id']}", headers=headers).status_code == 204
    assert client.post("/v1/datasets", json=xor(), headers=headers).status_code == 201


def test_models_quota_is_reached_and_recovered(client: Client, keys: Keys) -> None:
    headers = Keys.header(keys.alice)
    first = client.post("/v1/models", json=logistic(), headers=headers)
    assert first.status_code == 201, first.text
    assert_quota(client.post("/v1/models", json=logistic(), headers=headers), "models", 1, 1)
    assert client.request("DELETE", f"/v1/models/{first.json()['id']}", headers=headers).status_code == 204
    assert client.post("/v1/models", json=logistic(), headers=headers).status_code == 201


def test_stored_bytes_quota_is_reached_and_recovered(keyed: Callable[..., Client]) -> None:
    client = keyed(quota_stored_mb=0.05)  # 52,428 bytes
    keys = make_keys(client)
    headers = Keys.header(keys.alice)
    small = client.post("/v1/datasets", json=xor(1000), headers=headers)  # 1000 × 2 float64 + labels
    assert small.status_code == 201, small.text
    stored = usage(client, keys.alice)["usage"]["stored_bytes"]
    assert 24_000 <= stored < 52_428
    response = client.post("/v1/datasets", json=xor(1500), headers=headers)
    body = assert_problem(response, 403, "quota stored_bytes exceeded", f"{stored} bytes in use")
    assert body["quota"] == {"name": "stored_bytes", "usage": stored, "limit": 52_428, "requested": 36_000}
    assert client.request("DELETE", f"/v1/datasets/{small.json()['id']}", headers=headers).status_code == 204
    assert client.post("/v1/datasets", json=xor(1500), headers=headers).status_code == 201


def test_quotas_apply_to_keys_only(make_client: Callable[..., Client]) -> None:
    client = make_client(quota_datasets=1)  # DESCENT_AUTH=none: the single user
    assert [client.post("/v1/datasets", json=xor()).status_code for _ in range(2)] == [201, 201]
    body = client.get("/v1/usage").json()
    assert body == {
        "owner": "default",
        "usage": {"jobs": 0, "datasets": 2, "models": 0, "stored_bytes": body["usage"]["stored_bytes"]},
        "quotas": None,
    }
