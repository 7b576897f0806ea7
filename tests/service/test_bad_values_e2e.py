"""Bad values stop at the door, against a real ``descent serve``.

A feature column whose standardisation overflowed used to give a ``succeeded`` job with a model of
scale ``[null]``; an integer label 2^53 + 1 was stored as 2^53; a 10 MB class name was stored and
echoed in every list. Now: the standardisation is finite, a value a run's dtype cannot hold fails the
job ``invalid_data`` naming the column, and labels are checked on the way in, in JSON, CSV and .npz.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from tests.service.test_jobs_e2e import ServiceProcess, wait_for_job
from tests.timing import REQUEST_S

pytestmark = pytest.mark.e2e

# 1e308 − (−1e308) overflows, and so does the square of either's deviation from the mean.
EXTREME = [1e308, -1e308, 5e-324, -0.0]
LABELS_KB = 1
CSV = {"content-type": "text/csv"}
NPZ = {"content-type": "application/x-npz"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with ServiceProcess(tmp_path_factory.mktemp("bad-values"), max_labels_kb=LABELS_KB) as running:
        yield running


@pytest.fixture
def client(service: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=REQUEST_S) as c:
        yield c


def problem(response: httpx.Response, status: int, *fragments: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    for fragment in fragments:
        assert fragment in body["detail"], (fragment, body["detail"])
    return body


def npz(X: Any, y: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, X=np.asarray(X), y=np.asarray(y))
    return buffer.getvalue()


def extreme_dataset(client: httpx.Client) -> str:
    X = [[x, float(i % 2)] for i, x in enumerate(EXTREME)]
    response = client.post("/v1/datasets", json={"name": "extreme", "X": X, "y": [0, 1, 0, 1]})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def train(client: httpx.Client, dataset_id: str, **config: Any) -> dict[str, Any]:
    body = {
        "dataset_id": dataset_id,
        "model": {"type": "logistic_regression"},
        "epochs": 5,
        "seed": 0,
        **config,
    }
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return wait_for_job(client, response.json()["id"])


def test_an_overflowing_standardisation_gives_a_finite_model_that_predicts_and_imports(
    client: httpx.Client,
) -> None:
    job = train(client, extreme_dataset(client), standardize=True)
    assert job["status"] == "succeeded", job

    model = client.get(f"/v1/models/{job['model_id']}").json()
    std = model["standardization"]
    # Worked by hand: divided by the column's largest magnitude 1e308 the column is [1, −1, 0, −0], of
    # mean 0 and standard deviation sqrt(2/4); scaled back, the scale is sqrt(0.5)·1e308.
    assert std["mean"][0] == pytest.approx(0.0, abs=1e-300)
    assert std["scale"][0] == pytest.approx(math.sqrt(0.5) * 1e308, rel=1e-15)
    assert std["scale"][1] == pytest.approx(0.5, rel=1e-15)

    X = [[x, 0.0] for x in EXTREME]
    predicted = client.post(f"/v1/models/{model['id']}/predict", json={"X": X})
    assert predicted.status_code == 200, predicted.text
    assert all(math.isfinite(p) for p in predicted.json()["probabilities"])
    exported = client.get(f"/v1/models/{model['id']}/export", params={"format": "json"})
    imported = client.post(
        "/v1/models", content=exported.content, headers={"content-type": "application/json"}
    )
    assert imported.status_code == 201, imported.text
    assert imported.json()["sha256"] == model["sha256"]


def test_values_a_float32_run_cannot_hold_fail_the_job_invalid_data_naming_the_column(
    client: httpx.Client,
) -> None:
    dataset_id = extreme_dataset(client)
    for standardize in (True, False):
        job = train(client, dataset_id, dtype="float32", standardize=standardize)
        assert (job["status"], job["error"]["type"], job.get("model_id")) == (
            "failed",
            "invalid_data",
            None,
        ), job
        assert "feature column 0" in job["error"]["detail"] and "float32" in job["error"]["detail"], job


def test_an_integer_label_beyond_2_to_the_53_is_refused_naming_its_place(client: httpx.Client) -> None:
    big = 2**53 + 1
    json_body = {"name": "big", "X": [[0.0], [1.0], [2.0]], "y": [0, big, 0]}
    body = problem(client.post("/v1/datasets", json=json_body), 422, "y[1]", str(big), "2^53")
    assert body["errors"][0]["loc"] == ["body", "y", 1]
    inline = {"dataset": json_body, "model": {"type": "logistic_regression"}}
    problem(client.post("/v1/jobs", json=inline), 422, "dataset.y[1]", str(big))
    csv = f"x,label\n0,0\n1,{big}\n2,0\n".encode()
    body = problem(client.post("/v1/datasets", content=csv, headers=CSV), 422, "row 2", str(big), "2^53")
    assert body["errors"][0]["loc"] == ["body", 2, "label"]
    # 2^53 itself is exact, and stays a class.
    exact = client.post("/v1/datasets", json={**json_body, "y": [0, 2**53, 0]})
    assert exact.status_code == 201 and exact.json()["classes"] == [0, 2**53], exact.text


def test_a_class_name_over_256_characters_is_refused_in_json_csv_and_npz(client: httpx.Client) -> None:
    long_name = "n" * (10 * 1024 * 1024)
    X, y = [[0.0], [1.0], [2.0]], ["a", "b", long_name]
    body = problem(client.post("/v1/datasets", json={"name": "long", "X": X, "y": y}), 422, "y[2]", "256")
    assert body["errors"][0]["loc"] == ["body", "y", 2]
    csv = f"x,label\n0,a\n1,b\n2,{'n' * 257}\n".encode()  # (CSV fields stop at 128 KiB)
    problem(client.post("/v1/datasets", content=csv, headers=CSV), 422, "y[2]", "256")
    # A fixed-width NumPy string array holds every name at the longest one's width: keep it small.
    problem(
        client.post("/v1/datasets", content=npz(X, ["a", "b", "n" * 257]), headers=NPZ), 422, "y[2]", "256"
    )
    # 256 characters is the limit itself.
    ok = client.post("/v1/datasets", json={"name": "ok", "X": X, "y": ["a", "b", "c" * 256]})
    assert ok.status_code == 201, ok.text
    assert all(len(d["name"]) < 300 for d in client.get("/v1/datasets").json()["items"])


def test_class_names_over_the_total_label_limit_are_a_413_naming_the_setting(client: httpx.Client) -> None:
    # Six distinct names of 200 characters: 1200 bytes, over the 1 KiB this service allows.
    names = [chr(ord("a") + i) * 200 for i in range(6)]
    X = [[float(i)] for i in range(6)]
    for response in (
        client.post("/v1/datasets", json={"name": "many", "X": X, "y": names}),
        client.post(
            "/v1/datasets",
            content=("x,label\n" + "".join(f"{i},{n}\n" for i, n in enumerate(names))).encode(),
            headers=CSV,
        ),
        client.post("/v1/datasets", content=npz(X, names), headers=NPZ),
    ):
        problem(response, 413, "1200 bytes", f"{LABELS_KB} KiB", "DESCENT_MAX_LABELS_KB")
    fits = client.post("/v1/datasets", json={"name": "five", "X": X[:5], "y": names[:5]})
    assert fits.status_code == 201, fits.text
