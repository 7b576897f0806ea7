"""A job's snapshot: its latest parameters while it trains, as a model document and for predictions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from service.runners.artifacts import SNAPSHOT_MAX_PARAMETERS
from tests.service.conftest import assert_problem
from tests.service.test_jobs_api import config, create_dataset, serve, settings_for, submit, wait_for

pytestmark = pytest.mark.anyio
GRID = {"start": [-2.0, -1.5], "stop": [3.0, 2.0], "num": [25, 20]}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(settings_for(tmp_path_factory.mktemp("snapshots"))) as (_, running):
        yield running


@pytest.fixture
async def idle(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with serve(settings_for(tmp_path, workers=0)) as pair:
        yield pair


def _long_mlp(dataset_id: str) -> dict[str, object]:
    return config(
        dataset_id,
        model={"type": "mlp", "hidden_layers": [8], "activation": "tanh"},
        optimizer={"name": "sgd", "learning_rate": 0.1},
        batch_size=1,
        epochs=100_000,
        seed=3,
    )


async def _snapshot(client: httpx.AsyncClient, job_id: str) -> dict[str, object]:
    response = await client.get(f"/v1/jobs/{job_id}/snapshot")
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_a_running_jobs_snapshot_moves_with_its_progress(client: httpx.AsyncClient) -> None:
    dataset = await create_dataset(client, "moons", n_samples=200, noise=0.2)
    job = await submit(client, _long_mlp(dataset["id"]))
    running = await wait_for(client, job["id"], ("running",), min_epoch=3)
    first = await _snapshot(client, job["id"])
    # Written before each progress write: the snapshot is never behind the progress a client has seen.
    assert first["epoch"] >= running["progress"]["epoch"] >= 3
    later = await wait_for(client, job["id"], ("running",), min_epoch=int(first["epoch"]) + 3)
    second = await _snapshot(client, job["id"])
    assert second["epoch"] >= later["progress"]["epoch"] > first["epoch"]
    assert second["model"]["parameters"] != first["model"]["parameters"]
    model = second["model"]
    assert model["format"] == "descent.model/v1"
    assert model["architecture"]["layers"] == [
        {"units": 8, "activation": "tanh"},
        {"units": 1, "activation": "sigmoid"},
    ]
    assert (model["task"], model["classes"], model["standardization"]) == ("binary", [0, 1], None)
    assert [np.shape(model["parameters"][k]) for k in ("W0", "b0", "W1", "b1")] == [
        (2, 8),
        (8,),
        (8, 1),
        (1,),
    ]
    await client.post(f"/v1/jobs/{job['id']}/cancel")
    await wait_for(client, job["id"])


async def test_the_last_snapshot_predicts_as_the_model_it_imports_as(client: httpx.AsyncClient) -> None:
    dataset = await create_dataset(client, "moons", n_samples=200, noise=0.2)
    job = await submit(client, _long_mlp(dataset["id"]))
    await wait_for(client, job["id"], ("running",), min_epoch=2)
    await client.post(f"/v1/jobs/{job['id']}/cancel")
    await wait_for(client, job["id"])
    # The job has ended, so its snapshot no longer changes.
    snapshot = await _snapshot(client, job["id"])
    imported = await client.post("/v1/models", json=snapshot["model"])
    assert imported.status_code == 201, imported.text
    with_snapshot = await client.post(f"/v1/jobs/{job['id']}/snapshot/predict", json={"grid": GRID})
    assert with_snapshot.status_code == 200, with_snapshot.text
    with_model = await client.post(f"/v1/models/{imported.json()['id']}/predict", json={"grid": GRID})
    assert with_snapshot.json() == {**with_model.json(), "epoch": snapshot["epoch"]}
    assert len(with_snapshot.json()["probabilities"]) == 25 * 20


async def test_the_final_snapshot_of_a_standardized_job_predicts_as_its_model(
    client: httpx.AsyncClient,
) -> None:
    dataset = await create_dataset(client, "blobs", n_samples=150, noise=1.0, n_classes=3)
    body = config(
        dataset["id"],
        model={"type": "softmax_regression"},
        optimizer={"name": "adam", "learning_rate": 0.05},
        epochs=40,
        standardize=True,
    )
    done = await wait_for(client, (await submit(client, body))["id"])
    assert done["status"] == "succeeded"
    snapshot = await _snapshot(client, done["id"])
    assert snapshot["epoch"] == 40
    stored = (await client.get(f"/v1/models/{done['model_id']}")).json()
    assert snapshot["model"]["standardization"] == stored["standardization"] is not None
    X = {"X": [[-4.0, 2.0], [0.0, 0.0], [3.5, -1.0]]}
    by_snapshot = (await client.post(f"/v1/jobs/{done['id']}/snapshot/predict", json=X)).json()
    by_model = (await client.post(f"/v1/models/{done['model_id']}/predict", json=X)).json()
    assert by_snapshot == {**by_model, "epoch": 40}


async def test_a_model_over_the_size_limit_writes_no_snapshot(client: httpx.AsyncClient) -> None:
    dataset = await create_dataset(client, "xor", n_samples=50)
    layers = [400, 300]  # 2·400 + 400 + 400·300 + 300 + 300 + 1 parameters
    assert 2 * 400 + 400 + 400 * 300 + 300 + 300 + 1 > SNAPSHOT_MAX_PARAMETERS
    body = config(dataset["id"], model={"type": "mlp", "hidden_layers": layers}, epochs=2)
    done = await wait_for(client, (await submit(client, body))["id"])
    assert done["status"] == "succeeded"
    response = await client.get(f"/v1/jobs/{done['id']}/snapshot")
    assert_problem(response, 409, "has no snapshot", f"at most {SNAPSHOT_MAX_PARAMETERS} parameters")
    assert response.json()["type"].endswith(":no-snapshot")


async def test_no_snapshot_before_the_first_progress_write_nor_for_unknown_jobs(
    idle: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = idle
    dataset = await create_dataset(client)
    job = await submit(client, config(dataset["id"]))
    # The job is there (a 404 would say it is not): its state is what stands in the way, a 409.
    assert_problem(
        await client.get(f"/v1/jobs/{job['id']}/snapshot"), 409, f"job {job['id']!r} has no snapshot yet"
    )
    response = await client.post(f"/v1/jobs/{job['id']}/snapshot/predict", json={"X": [[0.0, 0.0]]})
    assert_problem(response, 409, "has no snapshot yet")
    unknown = "job_0000000000000000000000ff"
    assert_problem(await client.get(f"/v1/jobs/{unknown}/snapshot"), 404, unknown)
    # The job before the body: a grid whose start, stop and num disagree is still a 409 or 404 here.
    grid = {"start": [0.0, 0.0], "stop": [1.0, 1.0], "num": [3]}
    for job_id, status in ((job["id"], 409), (unknown, 404)):
        response = await client.post(f"/v1/jobs/{job_id}/snapshot/predict", json={"grid": grid})
        assert_problem(response, status, job_id)


async def test_snapshot_predict_validates_its_request(client: httpx.AsyncClient) -> None:
    dataset = await create_dataset(client, "xor", n_samples=50)
    done = await wait_for(client, (await submit(client, config(dataset["id"], epochs=3)))["id"])
    url = f"/v1/jobs/{done['id']}/snapshot/predict"
    assert_problem(await client.post(url, json={}), 422, "exactly one of X, dataset_id and grid")
    assert_problem(await client.post(url, json={"X": [[1.0, 2.0, 3.0]]}), 422, "has 3 features", "takes 2")
    grid = {"start": [0.0], "stop": [1.0], "num": [5]}
    assert_problem(await client.post(url, json={"grid": grid}), 422, "has 1 features but the model takes 2")
