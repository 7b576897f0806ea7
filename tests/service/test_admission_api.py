"""Admission by cost over HTTP: jobs and compute requests estimated over a limit get 413 naming it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import orjson

from engine.models import build_architecture
from service.services import admission
from service.services.admission import MB
from tests.service.conftest import Client, assert_problem
from tests.service.test_models_api import imported, logistic

_MOONS = {"generator": {"kind": "moons", "n_samples": 200, "seed": 0}}


def _job(hidden: list[int], batch_size: int | None = 32) -> dict[str, Any]:
    return {
        "dataset": _MOONS,
        "model": {"type": "mlp", "hidden_layers": hidden, "activation": "relu"},
        "optimizer": {"name": "adam", "learning_rate": 0.001},
        "batch_size": batch_size,
        "epochs": 1,
    }


def _over_limit(response: httpx.Response, setting: str, mb: float) -> dict[str, Any]:
    """A 413 over-limit problem naming the setting, the limit and an estimate above it."""
    body = assert_problem(response, 413, setting, "over the limit")
    assert body["type"] == "urn:descent:problem:over-limit"
    limit = body["limit"]
    assert limit["setting"] == setting
    assert limit["limit_bytes"] == int(mb * MB)
    assert limit["estimate_bytes"] > limit["limit_bytes"]
    assert limit["estimate"]["total_bytes"] == limit["estimate_bytes"]
    assert sum(v for k, v in limit["estimate"].items() if k != "total_bytes") == limit["estimate_bytes"]
    assert admission.describe(limit["estimate_bytes"]) in body["detail"]
    return body


def test_a_16_by_4096_adam_job_is_refused_before_it_is_queued(client: Client) -> None:
    response = client.post("/v1/jobs", json=_job([4096] * 16))
    body = _over_limit(response, "DESCENT_MAX_JOB_MEMORY_MB", 4096)
    # θ, its gradient, Adam's two moments, the best weights and a checkpoint: 16 × 4096² numbers each.
    assert body["limit"]["estimate"]["parameter_bytes"] > 16 * 4096 * 4096 * 8 * 7
    assert client.get("/v1/jobs").json()["items"] == []
    assert client.get("/v1/datasets").json()["items"] == []


def test_the_job_limit_follows_its_setting(make_client: Callable[..., Client]) -> None:
    small = make_client(max_job_memory_mb=0.5)
    _over_limit(small.post("/v1/jobs", json=_job([256, 256])), "DESCENT_MAX_JOB_MEMORY_MB", 0.5)
    assert small.post("/v1/jobs", json=_job([4])).status_code == 202


def test_a_dry_run_shows_the_estimate_and_the_limit(client: Client) -> None:
    response = client.post("/v1/jobs", params={"dry_run": "true"}, json=_job([64, 32], batch_size=None))
    assert response.status_code == 200, response.text
    estimate = response.json()["estimate"]
    arch = build_architecture(
        "mlp", 2, 1, hidden_layers=[64, 32], activation="relu", output_activation="sigmoid"
    )
    expected = admission.training_job(
        n_samples=200,
        n_features=2,
        layer_sizes=arch.layer_sizes,
        optimizer="adam",
        batch_size=None,
        validation_fraction=0.0,
        itemsize=8,
    )
    assert estimate == {**expected.as_dict(), "limit_bytes": 4096 * MB}
    # A dry run over the limit is refused the same way as the job itself.
    refused = client.post("/v1/jobs", params={"dry_run": "true"}, json=_job([4096] * 16))
    _over_limit(refused, "DESCENT_MAX_JOB_MEMORY_MB", 4096)


def _wide_identity_forward(units: int, rows: int) -> bytes:
    """One layer of ``units`` identity units on ``rows`` rows of one feature (JSON, built without lists)."""
    weights = b"[[" + b",".join([b"1.0"] * units) + b"]]"
    bias = b"[" + b",".join([b"0.0"] * units) + b"]"
    X = orjson.dumps([[float(i)] for i in range(rows)])
    return (
        b'{"model":{"type":"mlp","layers":[{"units":%d,"activation":"identity"}],'
        b'"parameters":[{"weights":%s,"bias":%s}]},"X":%s,"return_intermediates":true}'
        % (units, weights, bias, X)
    )


def test_a_forward_of_a_million_identity_units_on_400_rows_is_refused(client: Client) -> None:
    raw = _wide_identity_forward(1_000_000, 400)
    response = client.post("/v1/forward", content=raw, headers={"content-type": "application/json"})
    body = _over_limit(response, "DESCENT_MAX_COMPUTE_MEMORY_MB", 1024)
    # Every layer's z and a for 400 rows of 10⁶ units, in float64.
    assert body["limit"]["estimate"]["activation_bytes"] >= 2 * 400 * 1_000_000 * 8


def test_a_forward_response_over_its_limit_is_refused(make_client: Callable[..., Client]) -> None:
    small = make_client(max_response_mb=0.05)
    raw = _wide_identity_forward(200, 10)
    # Outputs and z and a of the one layer: 3 × 10 × 200 numbers of 24 bytes, 144,000 bytes.
    body = _over_limit(
        small.post("/v1/forward", content=raw, headers={"content-type": "application/json"}),
        "DESCENT_MAX_RESPONSE_MB",
        0.05,
    )
    assert body["limit"]["estimate_bytes"] == 24 * 3 * 10 * 200
    fewer = _wide_identity_forward(200, 2)
    assert (
        small.post("/v1/forward", content=fewer, headers={"content-type": "application/json"}).status_code
        == 200
    )


def test_gradients_over_the_memory_limit_are_refused(make_client: Callable[..., Client]) -> None:
    small = make_client(max_compute_memory_mb=1)
    rng = np.random.default_rng(0)
    n, d = 2_000, 100
    request = {
        "model": {"type": "logistic_regression", "weights": rng.normal(size=d).tolist(), "bias": 0.0},
        "X": rng.normal(size=(n, d)).tolist(),
        "y": (rng.random(n) > 0.5).astype(int).tolist(),
    }
    body = _over_limit(small.post("/v1/gradients", json=request), "DESCENT_MAX_COMPUTE_MEMORY_MB", 1)
    assert body["limit"]["estimate"]["input_bytes"] == n * d * 8
    request["X"], request["y"] = request["X"][:100], request["y"][:100]
    assert small.post("/v1/gradients", json=request).status_code == 200


def test_predict_over_the_response_limit_is_refused(make_client: Callable[..., Client]) -> None:
    small = make_client(max_response_mb=0.1)
    model = imported(small, logistic())
    url = f"/v1/models/{model['id']}/predict"
    # 100 × 100 points, each answered with a label and a probability: 480,000 bytes.
    grid = {"start": [0, 0], "stop": [1, 1], "num": [100, 100]}
    body = _over_limit(small.post(url, json={"grid": grid}), "DESCENT_MAX_RESPONSE_MB", 0.1)
    assert body["limit"]["estimate_bytes"] == 24 * 2 * 100 * 100
    assert small.post(url, json={"grid": {**grid, "num": [10, 10]}}).status_code == 200


def test_an_activation_curve_over_the_response_limit_is_refused(make_client: Callable[..., Client]) -> None:
    small = make_client(max_response_mb=0.1)
    response = small.get("/v1/activations/tanh/curve", params={"num": 10_000})
    body = _over_limit(response, "DESCENT_MAX_RESPONSE_MB", 0.1)
    assert body["limit"]["estimate_bytes"] == 24 * 3 * 10_000
    assert small.get("/v1/activations/tanh/curve", params={"num": 1_000}).status_code == 200
