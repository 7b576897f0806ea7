"""Cross-site safety: no form or plain-text body changes anything, and CORS is off unless configured."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.service.conftest import Client, assert_problem
from tests.service.identity.conftest import Keys, make_keys

JOB = {
    "dataset": {"generator": {"kind": "xor", "n_samples": 40, "seed": 1}},
    "model": {"type": "logistic_regression"},
    "optimizer": {"name": "sgd", "learning_rate": 0.1},
    "epochs": 2,
}
FORM_TYPES = [
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "text/plain;charset=UTF-8",
]
EVIL = "http://evil.example"


@pytest.mark.parametrize("content_type", FORM_TYPES)
def test_a_cross_site_form_cannot_cancel_or_delete(
    make_client: Callable[..., Client], content_type: str
) -> None:
    client = make_client()  # DESCENT_AUTH=none: the browser's own cookies would not even be needed
    job = client.post("/v1/jobs", json=JOB)
    assert job.status_code == 202, job.text
    job_id, dataset_id = job.json()["id"], job.json()["config"]["dataset_id"]
    headers = {"Origin": EVIL, "content-type": content_type}
    assert_problem(
        client.post(f"/v1/jobs/{job_id}/cancel", headers=headers, content=b"a=b"),
        415,
        content_type.split(";")[0],
    )
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
    assert_problem(
        client.request("DELETE", f"/v1/datasets/{dataset_id}", headers=headers, content=b"a=b"), 415
    )
    assert_problem(client.post("/v1/jobs", headers=headers, content=b"epochs=3"), 415)
    assert client.get("/v1/jobs").json()["items"][0]["id"] == job_id  # nothing new was queued
    # The same calls without a body (or with JSON) still work.
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 202


def test_cors_is_off_by_default(make_client: Callable[..., Client]) -> None:
    client = make_client()
    preflight = client.request(
        "OPTIONS",
        "/v1/datasets",
        headers={
            "Origin": EVIL,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert "access-control-allow-origin" not in preflight.headers
    simple = client.get("/v1/datasets", headers={"Origin": EVIL})
    assert simple.status_code == 200 and "access-control-allow-origin" not in simple.headers


def test_cors_allows_exactly_the_listed_origins(keyed: Callable[..., Client]) -> None:
    client = keyed(cors_origins="https://lab.example, https://other.example")
    keys: Keys = make_keys(client)
    preflight = client.request(
        "OPTIONS",
        "/v1/jobs",
        headers={
            "Origin": "https://lab.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == "https://lab.example"
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in preflight.headers
    call = client.get("/v1/datasets", headers={"Origin": "https://other.example", **Keys.header(keys.alice)})
    assert call.headers["access-control-allow-origin"] == "https://other.example"
    assert "ratelimit-remaining" in call.headers["access-control-expose-headers"].lower()
    refused = client.request(
        "OPTIONS", "/v1/jobs", headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in refused.headers
    answered = client.get("/v1/datasets", headers={"Origin": EVIL, **Keys.header(keys.alice)})
    assert "access-control-allow-origin" not in answered.headers


@pytest.mark.parametrize("content_type", FORM_TYPES)
def test_no_state_changing_operation_takes_a_form_body(
    make_client: Callable[..., Client], content_type: str
) -> None:
    client = make_client()
    job = client.post("/v1/jobs", json=JOB).json()
    ids = {"job_id": job["id"], "dataset_id": job["config"]["dataset_id"], "model_id": "mdl_" + "0" * 24}
    document = client.get("/openapi.json").json()
    for path, item in document["paths"].items():
        for method in item.keys() & {"post", "put", "patch", "delete"}:
            name = "mean_squared_error" if path.startswith("/v1/losses/") else "relu"
            url = path.format(name=name, **ids)
            response = client.request(method, url, headers={"content-type": content_type}, content=b"a=b")
            assert_problem(response, 415)
    assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "queued"
    assert [d["id"] for d in client.get("/v1/datasets").json()["items"]] == [ids["dataset_id"]]
