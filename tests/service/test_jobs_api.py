"""The /v1/jobs resource in-process: httpx over ASGI against the real app, a real worker process.

Two kinds of app: ``served`` (one per module, one worker process) runs jobs; ``idle`` (one per test,
``workers=0``) leaves them queued, for queue positions, the queue bound, pagination and cancel of a
queued job. The ASGI transport buffers a response, so an event stream read through it returns when
the stream closes (after ``end``); reading a stream part-way uses ``api.event_stream`` directly.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st

from engine.datasets import make_dataset
from engine.models import build_architecture, loss_and_gradient, targets
from engine.optimizers import OPTIMIZERS
from engine.training import EarlyStopping, FitConfig, fit, train_validation_split
from service.app import create_app
from service.errors import StoreUnavailable
from service.http.schemas.jobs import Job, JobMetrics
from service.runners.artifacts import parameters_from_arrays
from service.services import jobs as api
from service.services.jobs import creation
from service.settings import Settings
from service.store import request_cancel
from service.vocabulary import MIN_SAMPLES
from tests.service.conftest import BAD_IDEMPOTENCY_KEYS, assert_bad_cursor, assert_bad_idempotency_key
from tests.timing import JOB_S, REQUEST_S

pytestmark = pytest.mark.anyio

SEED_CLAIM_LINEAR_CEILING = 0.65
SEED_CLAIM_MLP_FLOOR = 0.98
TERMINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def settings_for(path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{path / 'descent.db'}",
        "workers": 1,
        "progress_interval_s": 0.05,
        "checkpoint_interval_s": 0.2,
        "log_level": "warning",
        **overrides,
    }
    return Settings(**values)


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with its lifespan (store, runner) running, and a client talking to it over ASGI."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client


@pytest.fixture(scope="module")
async def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with serve(settings_for(tmp_path_factory.mktemp("served"))) as pair:
        yield pair


@pytest.fixture
async def client(served: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return served[1]


@pytest.fixture
async def idle(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with serve(settings_for(tmp_path, workers=0, max_queued_jobs=5)) as pair:
        yield pair


# ---- helpers -------------------------------------------------------------------------------------------


async def create_dataset(client: httpx.AsyncClient, kind: str = "xor", **generator: Any) -> dict[str, Any]:
    spec = {"kind": kind, "n_samples": 200, "noise": 0.0, "seed": 0, **generator}
    response = await client.post("/v1/datasets", json={"name": f"{kind}-test", "generator": spec})
    assert response.status_code == 201, response.text
    return response.json()


def config(dataset_id: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "dataset_id": dataset_id,
        "model": {"type": "logistic_regression"},
        "optimizer": {"name": "gd", "learning_rate": 0.5},
        "epochs": 20,
        "seed": 7,
    }
    body.update(fields)
    return body


async def submit(client: httpx.AsyncClient, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    response = await client.post("/v1/jobs", json=body, **kwargs)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/jobs/{response.json()['id']}"
    return response.json()


async def wait_for(
    client: httpx.AsyncClient, job_id: str, statuses: tuple[str, ...] = TERMINAL, *, min_epoch: int = 0
) -> dict[str, Any]:
    """Poll the job until its status is one of ``statuses`` (and it reached ``min_epoch``), or fail."""
    deadline = time.monotonic() + JOB_S
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = await client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job = response.json()
        if job["status"] in statuses and job["progress"]["epoch"] >= min_epoch:
            return job
        if job["status"] in TERMINAL:
            break
        await anyio.sleep(0.05)
    pytest.fail(f"job {job_id} did not reach {statuses} (epoch >= {min_epoch}) within {JOB_S:g} s: {job}")


def parse_sse(text: str) -> list[tuple[int, str, dict[str, Any]]]:
    """The events of an SSE body as (id, event, data); comments are skipped."""
    events = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":") or not line:
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if fields:
            events.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
    return events


async def read_events(
    client: httpx.AsyncClient, job_id: str, **kwargs: Any
) -> list[tuple[int, str, dict[str, Any]]]:
    with anyio.fail_after(JOB_S):
        response = await client.get(f"/v1/jobs/{job_id}/events", **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return parse_sse(response.text)


async def model_accuracy(client: httpx.AsyncClient, model_id: str, dataset_id: str) -> float:
    data = (await client.get(f"/v1/datasets/{dataset_id}/data")).json()
    response = await client.post(f"/v1/models/{model_id}/predict", json={"X": data["X"]})
    assert response.status_code == 200, response.text
    return float(np.mean(np.asarray(response.json()["predictions"]) == np.asarray(data["y"])))


def assert_problem(response: httpx.Response, status: int, *needles: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    for needle in needles:
        assert needle in problem["detail"], problem
    return problem


# ---- the lesson's claim (README.md), through the API -------------------------------------------------------


async def test_logistic_regression_stays_near_chance_on_xor_while_an_mlp_separates_it(
    client: httpx.AsyncClient,
) -> None:
    dataset = await create_dataset(client, "xor", n_samples=400)
    linear = await submit(
        client,
        config(dataset["id"], optimizer={"name": "gd", "learning_rate": 1.0}, epochs=2000, seed=0),
    )
    mlp = await submit(
        client,
        config(
            dataset["id"],
            model={"type": "mlp", "hidden_layers": [16], "activation": "tanh"},
            optimizer={"name": "adam", "learning_rate": 0.05},
            epochs=300,
            seed=0,
        ),
    )
    linear, mlp = await wait_for(client, linear["id"]), await wait_for(client, mlp["id"])
    assert (linear["status"], mlp["status"]) == ("succeeded", "succeeded"), (linear, mlp)
    assert await model_accuracy(client, linear["model_id"], dataset["id"]) <= SEED_CLAIM_LINEAR_CEILING
    assert await model_accuracy(client, mlp["model_id"], dataset["id"]) >= SEED_CLAIM_MLP_FLOOR
    assert linear["progress"]["epoch"] == 2000
    assert linear["progress"]["fraction"] == 1.0


# ---- create --------------------------------------------------------------------------------------------


async def test_create_answers_202_with_location_and_the_queued_job(
    idle: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = idle
    dataset = await create_dataset(client)
    first = await submit(client, config(dataset["id"]))
    second = await submit(client, config(dataset["id"], seed=None))
    Job.model_validate(first)
    assert first["status"] == "queued"
    assert first["attempt"] == 0
    assert (first["started_at"], first["finished_at"]) == (None, None)
    assert first["progress"] == {
        "epoch": 0,
        "total_epochs": 20,
        "fraction": 0.0,
        "elapsed_s": None,
        "eta_s": None,
    }
    assert first["best"] == {"epoch": None, "metric": None, "value": None, "val_loss": None}
    assert "error" not in first and "model_id" not in first
    # The resolved configuration: defaults filled, the dataset by id, a seed chosen when none was given.
    assert first["config"]["seed"] == 7
    assert first["config"]["dataset_id"] == dataset["id"]
    assert first["config"]["lr_schedule"] == {"name": "constant"}
    assert isinstance(second["config"]["seed"], int)
    assert second["config_hash"] != first["config_hash"]
    # Queue positions count the queued jobs created earlier.
    assert (first["queue_position"], second["queue_position"]) == (0, 1)
    again = (await client.get(f"/v1/jobs/{second['id']}")).json()
    assert again["queue_position"] == 1
    await client.post(f"/v1/jobs/{first['id']}/cancel")
    assert (await client.get(f"/v1/jobs/{second['id']}")).json()["queue_position"] == 0


async def test_dry_run_resolves_the_config_and_stores_nothing(
    idle: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = idle
    dataset = await create_dataset(client)
    body = config(dataset["id"], optimizer={"name": "adam", "learning_rate": 0.01}, batch_size=16, seed=None)
    first = await client.post("/v1/jobs", params={"dry_run": "true"}, json=body)
    second = await client.post("/v1/jobs", params={"dry_run": "true"}, json=body)
    assert first.status_code == second.status_code == 200
    assert "location" not in first.headers
    resolved = first.json()["config"]
    assert resolved["optimizer"] == {
        "name": "adam",
        "learning_rate": 0.01,
        "beta1": 0.9,
        "beta2": 0.999,
        "eps": 1e-8,
    }
    assert resolved["max_retries"] == 2 and resolved["dtype"] == "float64" and resolved["l2"] == 0.0
    assert first.json()["task"] == "binary"
    # A seed is chosen per request (two draws of 63 bits never collide in practice).
    assert isinstance(resolved["seed"], int)
    assert resolved["seed"] != second.json()["config"]["seed"]
    # With the seed fixed, the dry run's hash is the one the created job gets.
    pinned = {**body, "seed": resolved["seed"]}
    dry = (await client.post("/v1/jobs?dry_run=true", json=pinned)).json()
    assert dry["config"] == resolved
    inline = {**body, "dataset_id": None, "dataset": {"generator": {"kind": "moons", "n_samples": 50}}}
    del inline["dataset_id"]
    inline_dry = await client.post("/v1/jobs?dry_run=true", json=inline)
    assert inline_dry.status_code == 200, inline_dry.text
    assert inline_dry.json()["config"]["dataset_id"] is None
    assert (await client.get("/v1/jobs")).json()["items"] == []
    assert [d["id"] for d in (await client.get("/v1/datasets")).json()["items"]] == [dataset["id"]]
    job = await submit(client, pinned)
    assert job["config_hash"] == dry["config_hash"]
    assert job["config"] == dry["config"]


async def test_a_schedule_floor_above_the_learning_rate_is_a_422_not_a_500(
    idle: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    # Found by a conformance run: the engine refused the settings while the job's memory was estimated.
    _, client = idle
    dataset = await create_dataset(client)
    body = config(
        dataset["id"],
        optimizer={"name": "sgd", "learning_rate": 0.1},
        lr_schedule={"name": "cosine", "min_lr": 6.0},
    )
    for dry_run in ("true", "false"):
        response = await client.post("/v1/jobs", params={"dry_run": dry_run}, json=body)
        assert_problem(response, 422, "min_lr must be in [0, base_lr=0.1], got 6.0")
    assert (await client.get("/v1/jobs")).json()["items"] == []


async def test_inline_arrays_are_stored_as_a_dataset_the_job_refers_to(client: httpx.AsyncClient) -> None:
    X = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]] * 5
    y = ["no", "yes", "yes", "yes"] * 5
    body = {
        "dataset": {"name": "or", "X": X, "y": y},
        "model": {"type": "logistic_regression"},
        "epochs": 300,
        "optimizer": {"name": "gd", "learning_rate": 2.0},
        "seed": 1,
    }
    job = await submit(client, body)
    dataset = (await client.get(f"/v1/datasets/{job['dataset_id']}")).json()
    assert (dataset["name"], dataset["n_samples"], dataset["task"], dataset["classes"]) == (
        "or",
        20,
        "binary",
        ["no", "yes"],
    )
    assert job["config"]["dataset_id"] == dataset["id"]
    assert "dataset" not in job["config"]
    done = await wait_for(client, job["id"])
    assert done["status"] == "succeeded"
    predicted = await client.post(f"/v1/models/{done['model_id']}/predict", json={"X": X[:4]})
    assert predicted.json()["predictions"] == ["no", "yes", "yes", "yes"]


async def test_inline_data_of_one_sample_is_refused_by_the_dry_run_as_by_the_job(
    idle: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = idle
    inline = app.openapi()["components"]["schemas"]["InlineDataset"]["properties"]
    assert inline["X"]["minItems"] == MIN_SAMPLES
    assert [branch["minItems"] for branch in inline["y"]["anyOf"]] == [MIN_SAMPLES] * 2
    body = {
        "dataset": {"X": [[1.0]], "y": [0.5], "task": "regression"},
        "model": {"type": "linear_regression"},
        "epochs": 1,
    }
    for query in ("?dry_run=true", ""):
        response = await client.post(f"/v1/jobs{query}", json=body)
        assert response.status_code == 422, response.text
        assert response.json()["errors"] == [
            {"loc": ["body", "dataset", "X"], "msg": "must hold at least 2 samples, got 1"}
        ]
    assert (await client.get("/v1/datasets")).json()["items"] == []


async def test_inline_generator_is_stored_with_its_spec(client: httpx.AsyncClient) -> None:
    spec = {"kind": "blobs", "n_samples": 90, "n_classes": 3, "noise": 0.3, "seed": 4}
    body = {"dataset": {"generator": spec}, "model": {"type": "softmax_regression"}, "epochs": 5, "seed": 0}
    job = await submit(client, body)
    dataset = (await client.get(f"/v1/datasets/{job['dataset_id']}")).json()
    assert (dataset["task"], dataset["classes"], dataset["source"]["generator"]["seed"]) == (
        "multiclass",
        [0, 1, 2],
        4,
    )
    assert (await wait_for(client, job["id"]))["status"] == "succeeded"


# ---- idempotency ---------------------------------------------------------------------------------------


async def test_idempotency_key_replays_the_original_job_and_refuses_another_body(
    idle: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = idle
    body = {
        "dataset": {"generator": {"kind": "xor", "n_samples": 40}},
        "model": {"type": "mlp", "hidden_layers": [4]},
    }
    headers = {"Idempotency-Key": "create-once-1"}
    created = await client.post("/v1/jobs", json=body, headers=headers)
    replayed = await client.post("/v1/jobs", json=body, headers=headers)
    assert (created.status_code, replayed.status_code) == (202, 200)
    assert replayed.json()["id"] == created.json()["id"]
    assert replayed.headers["location"] == created.headers["location"]
    # The chosen seed is not drawn again: the replay is the original job, config and all.
    assert replayed.json()["config"] == created.json()["config"]
    # The same key with the keys of the body in another order is the same body.
    reordered = dict(reversed(list(body.items())))
    assert (await client.post("/v1/jobs", json=reordered, headers=headers)).json()["id"] == created.json()[
        "id"
    ]
    different = await client.post("/v1/jobs", json={**body, "epochs": 3}, headers=headers)
    assert_problem(different, 409, "create-once-1", created.json()["id"])
    other_key = await client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "create-once-2"})
    assert other_key.status_code == 202 and other_key.json()["id"] != created.json()["id"]
    # One job and one inline dataset per accepted key.
    assert len((await client.get("/v1/jobs")).json()["items"]) == 2
    assert len((await client.get("/v1/datasets")).json()["items"]) == 2
    too_long = await client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "k" * 256})
    assert_problem(too_long, 422, "Idempotency-Key")


async def test_queue_full_answers_429_with_retry_after_and_leaves_no_dataset(
    idle: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = idle  # max_queued_jobs=5, no workers
    dataset = await create_dataset(client)
    jobs = [await submit(client, config(dataset["id"])) for _ in range(5)]
    full = await client.post("/v1/jobs", json=config(dataset["id"]))
    problem = assert_problem(full, 429, "5")
    assert int(full.headers["retry-after"]) > 0
    assert problem["type"].endswith("queue-full")
    inline = {"dataset": {"X": [[0.0], [1.0]], "y": [0, 1]}, "model": {"type": "logistic_regression"}}
    assert (await client.post("/v1/jobs", json=inline)).status_code == 429
    assert [d["id"] for d in (await client.get("/v1/datasets")).json()["items"]] == [dataset["id"]]
    # Room again once a queued job leaves the queue.
    await client.post(f"/v1/jobs/{jobs[0]['id']}/cancel")
    assert (await client.post("/v1/jobs", json=config(dataset["id"]))).status_code == 202


# ---- list and pagination -------------------------------------------------------------------------------


async def test_list_pages_newest_first_with_cursors_and_filters_by_status(
    idle: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = idle
    dataset = await create_dataset(client)
    ids = [(await submit(client, config(dataset["id"], epochs=i + 1)))["id"] for i in range(5)]
    pages, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/jobs", params=params)).json()
        pages.append([job["id"] for job in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [ids[4:2:-1], ids[2:0:-1], ids[:1]]
    listed = (await client.get("/v1/jobs")).json()["items"]
    assert [job["queue_position"] for job in listed] == [4, 3, 2, 1, 0]
    await client.post(f"/v1/jobs/{ids[1]}/cancel")
    cancelled = (await client.get("/v1/jobs", params={"status": "cancelled"})).json()
    assert [job["id"] for job in cancelled["items"]] == [ids[1]]
    queued = (await client.get("/v1/jobs", params={"status": "queued"})).json()
    assert [job["id"] for job in queued["items"]] == [ids[4], ids[3], ids[2], ids[0]]
    assert [job["queue_position"] for job in queued["items"]] == [3, 2, 1, 0]
    # A repeated status lists the jobs in any of them.
    both = await client.get("/v1/jobs", params=[("status", "cancelled"), ("status", "queued")])
    assert [job["id"] for job in both.json()["items"]] == [ids[4], ids[3], ids[2], ids[1], ids[0]]
    repeated = await client.get("/v1/jobs", params=[("status", "succeeded"), ("status", "cancelled")])
    assert [job["id"] for job in repeated.json()["items"]] == [ids[1]]
    assert_problem(
        await client.get("/v1/jobs", params=[("status", "queued"), ("status", "sleeping")]), 422, "status"
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"epochs": "10"},
        {"epochs": 10.5},
        {"seed": "7"},
        {"optimizer": {"name": "gd", "learning_rate": "0.5"}},
    ],
)
async def test_numbers_sent_as_strings_are_refused(
    idle: tuple[FastAPI, httpx.AsyncClient], fields: dict
) -> None:
    _, client = idle
    dataset = await create_dataset(client)
    response = await client.post("/v1/jobs", json=config(dataset["id"], **fields))
    [name] = fields
    body = assert_problem(response, 422, f"body.{name}")
    assert len(body["errors"]) == 1
    assert (await client.get("/v1/jobs")).json()["items"] == []


async def test_an_integral_number_written_with_a_fraction_is_an_integer(
    idle: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    # JSON Schema's integer: 10.0 is one, as the document's generated clients and testers send it.
    _, client = idle
    dataset = await create_dataset(client)
    body = config(dataset["id"], epochs=10.0, seed=7.0, model={"type": "mlp", "hidden_layers": [4.0, 3]})
    response = await client.post("/v1/jobs?dry_run=true", json=body)
    assert response.status_code == 200, response.text
    resolved = response.json()["config"]
    assert (resolved["epochs"], resolved["seed"], resolved["model"]["hidden_layers"]) == (10, 7, [4, 3])
    assert all(type(value) is int for value in (resolved["epochs"], resolved["seed"]))
    # A fraction stays a 422, and only it is named.
    body = config(dataset["id"], epochs=10.0, model={"type": "mlp", "hidden_layers": [4.5]})
    problem = assert_problem(await client.post("/v1/jobs", json=body), 422, "hidden_layers.0")
    assert len(problem["errors"]) == 1


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"status": "sleeping"}, "queued"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "ds_0661234567890abcdef01234"}, "cursor"),
    ],
)
async def test_list_refuses_bad_parameters(
    idle: tuple[FastAPI, httpx.AsyncClient], params: dict[str, Any], needle: str
) -> None:
    assert_problem(await idle[1].get("/v1/jobs", params=params), 422, needle)


async def test_a_bad_cursor_is_the_422_every_list_gives(idle: tuple[FastAPI, httpx.AsyncClient]) -> None:
    cursor = "ds_0661234567890abcdef01234"
    assert_bad_cursor(await idle[1].get("/v1/jobs", params={"cursor": cursor}), "job", cursor)


@pytest.mark.parametrize("key", BAD_IDEMPOTENCY_KEYS)
async def test_a_bad_idempotency_key_is_the_422_every_create_gives(
    idle: tuple[FastAPI, httpx.AsyncClient], key: str
) -> None:
    _, client = idle
    body = {"dataset": {"generator": {"kind": "xor", "n_samples": 40}}, "model": {"type": "mlp"}}
    for params in ({}, {"dry_run": "true"}):
        response = await client.post("/v1/jobs", json=body, params=params, headers={"Idempotency-Key": key})
        assert_bad_idempotency_key(response, key)
    assert (await client.get("/v1/jobs")).json()["items"] == []  # nothing was queued


# ---- events --------------------------------------------------------------------------------------------


async def test_events_follow_a_job_from_queued_to_end(client: httpx.AsyncClient) -> None:
    dataset = await create_dataset(client)
    job = await submit(
        client,
        config(dataset["id"], epochs=400, batch_size=8, optimizer={"name": "sgd", "learning_rate": 0.1}),
    )
    events = await read_events(client, job["id"])
    ids = [event_id for event_id, _, _ in events]
    assert ids == sorted(set(ids)), "event ids must strictly increase"
    kinds = [kind for _, kind, _ in events]
    assert set(kinds) <= {"status", "progress", "end"}
    statuses = [data["status"] for _, kind, data in events if kind == "status"]
    assert statuses[:2] == ["queued", "running"] and statuses[-1] == "succeeded"
    assert kinds[-1] == "end" and kinds.count("end") == 1
    final = await wait_for(client, job["id"])
    assert events[-1][2]["model_id"] == final["model_id"]
    epochs = [data["epoch"] for _, kind, data in events if kind == "progress"]
    assert epochs == sorted(epochs) and epochs[-1] == 400
    progress = next(data for _, kind, data in events if kind == "progress")
    assert set(progress) == {"epoch", "progress", "metrics", "best"}
    assert {"train_loss", "train_accuracy"} <= set(progress["metrics"])


async def test_events_resume_after_last_event_id_without_gaps_or_repeats(client: httpx.AsyncClient) -> None:
    dataset = await create_dataset(client)
    job = await submit(
        client,
        config(dataset["id"], epochs=300, batch_size=4, optimizer={"name": "sgd", "learning_rate": 0.1}),
    )
    await wait_for(client, job["id"])
    full = await read_events(client, job["id"])
    assert len(full) >= 5, full
    for cut in (0, 1, len(full) // 2, len(full) - 2):
        after = str(full[cut][0])
        assert await read_events(client, job["id"], headers={"Last-Event-ID": after}) == full[cut + 1 :]
        assert await read_events(client, job["id"], params={"last_event_id": after}) == full[cut + 1 :]
    # The header wins over the query parameter.
    both = await read_events(
        client, job["id"], headers={"Last-Event-ID": str(full[1][0])}, params={"last_event_id": full[0][0]}
    )
    assert both == full[2:]
    # Resuming after the end: nothing is left, and the stream closes at once.
    assert await read_events(client, job["id"], headers={"Last-Event-ID": str(full[-1][0])}) == []
    bad = await client.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": "seven"})
    assert_problem(bad, 422, "header.last-event-id")
    # An id beyond what the store can number (and compare) is a 422, not a stream that fails.
    huge = "9" * 19
    bad = await client.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": huge})
    assert_problem(bad, 422, "header.last-event-id")
    bad = await client.get(f"/v1/jobs/{job['id']}/events", params={"last_event_id": huge})
    assert_problem(bad, 422, "last_event_id")
    most = "9" * 18
    assert await read_events(client, job["id"], headers={"Last-Event-ID": most}) == []


async def test_event_stream_read_part_way_then_resumed_live_sees_every_event_once(
    served: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = served
    store = app.state.store
    dataset = await create_dataset(client)
    # Far more epochs than the test waits for: the job runs until the test cancels it.
    job = await submit(
        client,
        config(
            dataset["id"], epochs=1_000_000, batch_size=4, optimizer={"name": "sgd", "learning_rate": 0.05}
        ),
    )
    first: list[tuple[int, str, dict[str, Any]]] = []
    with anyio.fail_after(JOB_S):
        stream = api.event_stream(store, job["id"], 0, poll_s=0.01)
        async for chunk in stream:
            first += parse_sse(chunk.decode())
            if sum(kind == "progress" for _, kind, _ in first) >= 2:
                break
        await stream.aclose()
    assert first[-1][1] != "end"
    cancelled = await client.post(f"/v1/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    rest: list[tuple[int, str, dict[str, Any]]] = []
    with anyio.fail_after(JOB_S):
        async for chunk in api.event_stream(store, job["id"], first[-1][0], poll_s=0.01):
            rest += parse_sse(chunk.decode())
    assert rest[-1][1] == "end" and rest[-1][2]["status"] == "cancelled"
    assert first + rest == await read_events(client, job["id"])


async def test_event_stream_sends_keepalives_while_idle_and_ends_with_the_job(
    idle: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = idle
    dataset = await create_dataset(client)
    job = await submit(client, config(dataset["id"]))
    chunks: list[bytes] = []
    with anyio.fail_after(JOB_S):
        stream = api.event_stream(app.state.store, job["id"], 0, poll_s=0.01, keepalive_s=0.05)
        chunks.append(await stream.__anext__())
        assert parse_sse(chunks[0].decode())[0][1:] == ("status", {"status": "queued", "attempt": 0})
        chunks.append(await stream.__anext__())
        assert chunks[1] == api.KEEPALIVE
        request_cancel(app.state.store, job["id"])
        chunks += [chunk async for chunk in stream]
    events = parse_sse(b"".join(chunks).decode())
    assert [(kind, data["status"]) for _, kind, data in events] == [
        ("status", "queued"),
        ("status", "cancelled"),
        ("end", "cancelled"),
    ]


async def test_event_stream_stops_when_the_client_disconnects(
    idle: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = idle
    dataset = await create_dataset(client)
    job = await submit(client, config(dataset["id"]))  # stays queued: the stream would never end by itself
    received: list[dict[str, Any]] = []
    first_body = anyio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await first_body.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        received.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            first_body.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": f"/v1/jobs/{job['id']}/events",
        "raw_path": f"/v1/jobs/{job['id']}/events".encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
        "app": app,
    }
    with anyio.fail_after(REQUEST_S):
        await app(scope, receive, send)
    assert received[0]["status"] == 200
    assert b"event: status" in received[1]["body"]


# ---- metrics -------------------------------------------------------------------------------------------


@given(n=st.integers(0, 3000), max_points=st.integers(2, 500))
def test_downsample_indices_are_even_increasing_and_keep_both_ends(n: int, max_points: int) -> None:
    keep = api.downsample_indices(n, max_points)
    assert len(keep) == min(n, max_points)
    if n:
        assert keep[0] == 0 and keep[-1] == n - 1
        steps = np.diff(keep)
        assert (steps >= 1).all()
        # Evenly spaced: the steps differ by at most one.
        if len(steps):
            assert steps.max() - steps.min() <= 1


def test_downsample_indices_worked_example() -> None:
    assert api.downsample_indices(10, 4).tolist() == [0, 3, 6, 9]
    assert api.downsample_indices(3, 5).tolist() == [0, 1, 2]
    assert api.downsample_indices(7, None).tolist() == list(range(7))


async def test_metrics_history_since_epoch_and_downsampled(client: httpx.AsyncClient) -> None:
    dataset = await create_dataset(client)
    job = await submit(client, config(dataset["id"], epochs=50, validation_fraction=0.2))
    done = await wait_for(client, job["id"])
    full = (await client.get(f"/v1/jobs/{job['id']}/metrics")).json()
    JobMetrics.model_validate(full)
    assert full["epochs"] == list(range(1, 51))
    assert full["total_points"] == 50
    for key in ("train_loss", "val_loss", "train_accuracy", "val_accuracy"):
        assert len(full[key]) == 50 and all(v is not None for v in full[key])
    assert full["train_loss"][-1] == done["metrics"]["train_loss"]
    assert full["val_loss"][-1] == done["metrics"]["val_loss"]
    assert done["best"]["val_loss"] == min(full["val_loss"])
    assert full["val_loss"][done["best"]["epoch"] - 1] == done["best"]["val_loss"]
    thin = (await client.get(f"/v1/jobs/{job['id']}/metrics", params={"max_points": 8})).json()
    assert thin["epochs"] == [1, 8, 15, 22, 29, 36, 43, 50]
    assert thin["val_loss"] == [full["val_loss"][e - 1] for e in thin["epochs"]]
    since = (await client.get(f"/v1/jobs/{job['id']}/metrics", params={"since_epoch": 45})).json()
    assert since["epochs"] == [46, 47, 48, 49, 50]
    assert since["train_loss"] == full["train_loss"][45:]
    assert_problem(
        await client.get(f"/v1/jobs/{job['id']}/metrics", params={"max_points": 1}), 422, "max_points"
    )
    assert_problem(
        await client.get(f"/v1/jobs/{job['id']}/metrics", params={"since_epoch": -1}), 422, "since_epoch"
    )
    # Beyond the most epochs a job runs (and the store's integers): a 422, never a 500.
    huge = {"since_epoch": 85144625224155168768}
    assert_problem(await client.get(f"/v1/jobs/{job['id']}/metrics", params=huge), 422, "since_epoch")
    last = (await client.get(f"/v1/jobs/{job['id']}/metrics", params={"since_epoch": 1_000_000})).json()
    assert last["epochs"] == []


async def test_metrics_of_a_regression_have_no_accuracy(client: httpx.AsyncClient) -> None:
    dataset = await create_dataset(client, "linear", n_samples=100, noise=0.1)
    job = await submit(client, config(dataset["id"], model={"type": "linear_regression"}, epochs=10))
    assert (await wait_for(client, job["id"]))["status"] == "succeeded"
    history = (await client.get(f"/v1/jobs/{job['id']}/metrics")).json()
    assert set(history) == {"epochs", "train_loss", "val_loss", "total_points"}
    assert history["val_loss"] == [None] * 10
    assert history["train_loss"][-1] < history["train_loss"][0]


# ---- cancel --------------------------------------------------------------------------------------------


async def test_cancel_of_a_queued_job_is_immediate(idle: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = idle
    dataset = await create_dataset(client)
    job = await submit(client, config(dataset["id"]))
    response = await client.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    assert response.json()["finished_at"] is not None
    assert "model_id" not in response.json()
    events = await read_events(client, job["id"])
    assert [(kind, data["status"]) for _, kind, data in events] == [
        ("status", "queued"),
        ("status", "cancelled"),
        ("end", "cancelled"),
    ]
    again = await client.post(f"/v1/jobs/{job['id']}/cancel")
    assert_problem(again, 409, "cancelled")


# ---- delete --------------------------------------------------------------------------------------------


async def test_a_finished_job_is_deleted_with_its_history_and_its_model_stays(
    client: httpx.AsyncClient,
) -> None:
    dataset = await create_dataset(client)
    job = await wait_for(client, (await submit(client, config(dataset["id"])))["id"])
    assert job["status"] == "succeeded" and job["model_id"]
    response = await client.delete(f"/v1/jobs/{job['id']}")
    assert response.status_code == 204 and response.content == b""
    for path in ("", "/events", "/metrics"):
        assert_problem(await client.get(f"/v1/jobs/{job['id']}{path}"), 404, job["id"])
    assert_problem(await client.delete(f"/v1/jobs/{job['id']}"), 404, job["id"])
    model = await client.get(f"/v1/models/{job['model_id']}")
    assert model.status_code == 200 and model.json()["job_id"] is None
    assert (await client.get(f"/v1/datasets/{dataset['id']}")).status_code == 200
    assert job["id"] not in [j["id"] for j in (await client.get("/v1/jobs")).json()["items"]]


async def test_a_job_is_deleted_only_once_it_has_ended(idle: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = idle
    dataset = await create_dataset(client)
    job = await submit(client, config(dataset["id"]), headers={"Idempotency-Key": "delete-me"})
    assert_problem(await client.delete(f"/v1/jobs/{job['id']}"), 409, "is queued", "cancel it first")
    assert (await client.post(f"/v1/jobs/{job['id']}/cancel")).status_code == 202
    assert (await client.delete(f"/v1/jobs/{job['id']}")).status_code == 204
    # The key that created it cannot bring it back, nor silently create another.
    replay = await client.post(
        "/v1/jobs", json=config(dataset["id"]), headers={"Idempotency-Key": "delete-me"}
    )
    body = assert_problem(replay, 409, "which has since been deleted")
    assert body["errors"] == [{"loc": ["header", "idempotency-key"], "msg": "its job was deleted"}]
    assert (await client.get("/v1/jobs")).json()["items"] == []


async def test_a_dataset_in_use_names_its_jobs_and_jobs_that_ended_outlive_it(
    idle: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = idle
    dataset = await create_dataset(client)
    job = await submit(client, config(dataset["id"]))
    refused = await client.delete(f"/v1/datasets/{dataset['id']}")
    assert_problem(refused, 409, f"used by 1 queued or running job(s): {job['id']}")
    await client.post(f"/v1/jobs/{job['id']}/cancel")
    assert (await client.delete(f"/v1/datasets/{dataset['id']}")).status_code == 204
    kept = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert kept["dataset_id"] is None and kept["config"]["dataset_id"] == dataset["id"]


async def test_cancel_of_a_running_job_keeps_a_model_with_the_best_weights(client: httpx.AsyncClient) -> None:
    dataset = await create_dataset(client, "moons", n_samples=200, noise=0.3)
    body = config(
        dataset["id"],
        model={"type": "mlp", "hidden_layers": [8], "activation": "tanh"},
        optimizer={"name": "sgd", "learning_rate": 0.3},
        batch_size=1,
        validation_fraction=0.3,
        epochs=100_000,
        seed=3,
    )
    job = await submit(client, body)
    await wait_for(client, job["id"], ("running",), min_epoch=5)
    response = await client.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 202, response.text
    assert response.json()["status"] in ("cancelling", "cancelled")
    done = await wait_for(client, job["id"])
    assert done["status"] == "cancelled", done
    assert done["progress"]["epoch"] < 100_000
    # The kept model is the best epoch's: its loss on the validation part is the best validation loss.
    model = (await client.get(f"/v1/models/{done['model_id']}", params={"include": "parameters"})).json()
    assert model["job_id"] == job["id"]
    data = (await client.get(f"/v1/datasets/{dataset['id']}/data")).json()
    X, y = np.asarray(data["X"]), np.asarray(data["y"])
    split_rng = np.random.default_rng(3).spawn(3)[0]
    _, val_idx = train_validation_split(y, 0.3, split_rng, stratify=True)
    arch = build_architecture("mlp", 2, 1, hidden_layers=[8], activation="tanh", output_activation="sigmoid")
    params = parameters_from_arrays(arch, {k: np.asarray(v) for k, v in model["parameters"].items()})
    loss, _, _ = loss_and_gradient(arch, params, X[val_idx], targets(arch, y[val_idx]))
    assert loss == pytest.approx(done["best"]["val_loss"], rel=1e-12)
    assert_problem(await client.post(f"/v1/jobs/{job['id']}/cancel"), 409, "already cancelled")


# ---- failures ------------------------------------------------------------------------------------------


async def test_a_huge_learning_rate_diverges_and_keeps_the_best_finite_epoch(
    client: httpx.AsyncClient,
) -> None:
    dataset = await create_dataset(client, "linear", n_samples=100, noise=0.1)
    job = await submit(
        client,
        config(
            dataset["id"],
            model={"type": "linear_regression"},
            optimizer={"name": "gd", "learning_rate": 1000.0},
            epochs=500,
        ),
    )
    done = await wait_for(client, job["id"])
    assert done["status"] == "failed"
    assert done["error"]["type"] == "diverged"
    assert "non-finite" in done["error"]["detail"]
    history = (await client.get(f"/v1/jobs/{job['id']}/metrics")).json()["train_loss"]
    best_epoch = int(np.argmin(history)) + 1 if history else 0
    assert (
        f"the weights kept are those of epoch {best_epoch}, the best by train_loss" in done["error"]["detail"]
    )
    model = (await client.get(f"/v1/models/{done['model_id']}", params={"include": "parameters"})).json()
    assert model["job_status"] == "failed"
    assert model["metrics"]["weights_epoch"] == best_epoch
    assert model["metrics"]["stop_reason"] == "diverged"
    assert all(np.isfinite(np.asarray(v, dtype=float)).all() for v in model["parameters"].values())
    # The model's loss on the data is the best epoch's (the history holds the loss before each step).
    data = (await client.get(f"/v1/datasets/{dataset['id']}/data")).json()
    X, y = np.asarray(data["X"]), np.asarray(data["y"])
    arch = build_architecture("linear_regression", X.shape[1])
    params = parameters_from_arrays(arch, {k: np.asarray(v) for k, v in model["parameters"].items()})
    loss, _, _ = loss_and_gradient(arch, params, X, targets(arch, y))
    if best_epoch < len(history):
        assert loss == pytest.approx(history[best_epoch], rel=1e-9)
    events = await read_events(client, job["id"])
    assert events[-1][2]["error"] == done["error"]


async def test_adamw_clipping_and_layer_parameters_train_as_the_engine_does(
    client: httpx.AsyncClient,
) -> None:
    dataset = await create_dataset(client, "moons", n_samples=120, noise=0.2)
    body = config(
        dataset["id"],
        model={
            "type": "mlp",
            "hidden_layers": [6],
            "activation": "leaky_relu",
            "activation_params": {"alpha": 0.2},
        },
        optimizer={"name": "adamw", "learning_rate": 0.05, "max_grad_norm": 0.5},
        batch_size=16,
        validation_fraction=0.25,
        early_stopping={"patience": 5, "min_delta": 0.001},
        epochs=40,
        seed=11,
    )
    dry = (await client.post("/v1/jobs?dry_run=true", json=body)).json()
    assert dry["config"]["optimizer"] == {
        "name": "adamw",
        "learning_rate": 0.05,
        "beta1": 0.9,
        "beta2": 0.999,
        "eps": 1e-8,
        "weight_decay": 0.01,
        "max_grad_norm": 0.5,
    }
    assert dry["config"]["model"]["activation_params"] == {"alpha": 0.2}
    done = await wait_for(client, (await submit(client, body))["id"])
    assert done["status"] == "succeeded", done
    model = (await client.get(f"/v1/models/{done['model_id']}", params={"include": "parameters"})).json()
    assert model["architecture"]["layers"][0] == {
        "units": 6,
        "activation": "leaky_relu",
        "params": {"alpha": 0.2},
    }
    data = (await client.get(f"/v1/datasets/{dataset['id']}/data")).json()
    arch = build_architecture(
        "mlp",
        2,
        1,
        hidden_layers=[6],
        activation="leaky_relu",
        activation_params={"alpha": 0.2},
        output_activation="sigmoid",
    )
    fit_config = FitConfig(
        epochs=40,
        optimizer="adamw",
        learning_rate=0.05,
        optimizer_params={"weight_decay": 0.01},
        batch_size=16,
        validation_fraction=0.25,
        early_stopping=EarlyStopping(patience=5, min_delta=0.001),
        max_grad_norm=0.5,
    )
    result = fit(arch, np.asarray(data["X"]), np.asarray(data["y"]), fit_config, np.random.default_rng(11))
    stored = parameters_from_arrays(arch, {k: np.asarray(v) for k, v in model["parameters"].items()})
    np.testing.assert_array_equal(stored.flat, result.params.flat)
    assert model["metrics"]["weights_epoch"] == result.weights_epoch


@pytest.mark.parametrize(
    ("model", "loc"),
    [
        (
            {
                "type": "mlp",
                "hidden_layers": [4],
                "activation": "leaky_relu",
                "activation_params": {"beta": 1},
            },
            "model",
        ),
        (
            {"type": "mlp", "hidden_layers": [4], "activation": "elu", "activation_params": {"alpha": -1}},
            "model",
        ),
        ({"type": "logistic_regression", "activation_params": {"alpha": 0.1}}, "model"),
    ],
)
async def test_bad_activation_params_are_422(
    client: httpx.AsyncClient, model: dict[str, Any], loc: str
) -> None:
    dataset = await create_dataset(client)
    response = await client.post("/v1/jobs", json=config(dataset["id"], model=model))
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"][:2] == ["body", loc]


async def test_best_names_the_training_loss_without_a_validation_set(client: httpx.AsyncClient) -> None:
    dataset = await create_dataset(client)
    done = await wait_for(client, (await submit(client, config(dataset["id"], epochs=20)))["id"])
    history = (await client.get(f"/v1/jobs/{done['id']}/metrics")).json()
    assert done["best"]["metric"] == "train_loss"
    assert done["best"]["val_loss"] is None
    assert done["best"]["value"] == min(history["train_loss"])
    assert history["train_loss"][done["best"]["epoch"] - 1] == done["best"]["value"]
    model = (await client.get(f"/v1/models/{done['model_id']}")).json()
    assert model["job_status"] == "succeeded"
    assert model["metrics"]["weights_epoch"] == 20


async def test_a_tiny_time_budget_fails_deadline_exceeded(client: httpx.AsyncClient) -> None:
    dataset = await create_dataset(client)
    # Full-batch: the budget is checked between epochs, so the first epoch is always done, however
    # slow the machine; a million epochs take far longer than the budget.
    body = config(dataset["id"], epochs=1_000_000, max_runtime_s=0.3)
    done = await wait_for(client, (await submit(client, body))["id"])
    assert done["status"] == "failed"
    assert done["error"]["type"] == "deadline_exceeded"
    assert "max_runtime_s=0.3" in done["error"]["detail"]
    assert 0 < done["progress"]["epoch"] < 1_000_000
    assert f"after {done['progress']['epoch']} epochs" in done["error"]["detail"]


async def test_data_the_configuration_cannot_split_fails_invalid_data(client: httpx.AsyncClient) -> None:
    body = {
        "dataset": {"X": [[0.0], [1.0]], "y": [0, 1]},
        "model": {"type": "logistic_regression"},
        "validation_fraction": 0.9,
    }
    done = await wait_for(client, (await submit(client, body))["id"])
    assert done["status"] == "failed"
    assert done["error"]["type"] == "invalid_data"
    assert "validation_fraction" in done["error"]["detail"]


async def test_a_warm_start_begins_from_the_given_model(client: httpx.AsyncClient) -> None:
    dataset = await create_dataset(client, "moons", n_samples=100, noise=0.2)
    first = await wait_for(client, (await submit(client, config(dataset["id"], epochs=30)))["id"])
    warm = await submit(client, config(dataset["id"], epochs=1, warm_start_model_id=first["model_id"]))
    assert warm["config"]["warm_start_model_id"] == first["model_id"]
    done = await wait_for(client, warm["id"])
    assert done["status"] == "succeeded", done
    # Full-batch gd reports the loss before its step: epoch 1 of the warm run is measured at the
    # first model's weights.
    model = (await client.get(f"/v1/models/{first['model_id']}", params={"include": "parameters"})).json()
    data = (await client.get(f"/v1/datasets/{dataset['id']}/data")).json()
    X, y = np.asarray(data["X"]), np.asarray(data["y"])
    arch = build_architecture("logistic_regression", 2)
    params = parameters_from_arrays(arch, {k: np.asarray(v) for k, v in model["parameters"].items()})
    loss, _, _ = loss_and_gradient(arch, params, X, targets(arch, y))
    assert done["metrics"]["train_loss"] == pytest.approx(loss, rel=1e-12)
    assert done["metrics"]["train_loss"] < first["metrics"]["train_loss"]


# ---- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/jobs/job_0000000000000000000000ff"),
        ("GET", "/v1/jobs/nope"),
        ("GET", "/v1/jobs/nope/metrics"),
        ("GET", "/v1/jobs/nope/events"),
        ("POST", "/v1/jobs/nope/cancel"),
    ],
)
async def test_unknown_job_ids_are_404_problems(
    idle: tuple[FastAPI, httpx.AsyncClient], method: str, path: str
) -> None:
    response = await idle[1].request(method, path)
    assert_problem(response, 404, path.split("/")[3])


async def test_unknown_dataset_and_warm_start_model_are_404(idle: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = idle
    missing = await client.post("/v1/jobs", json=config("ds_0000000000000000000000ff"))
    assert_problem(missing, 404, "ds_0000000000000000000000ff")
    dataset = await create_dataset(client)
    warm = await client.post(
        "/v1/jobs", json=config(dataset["id"], warm_start_model_id="mdl_0000000000000000000000ff")
    )
    assert_problem(warm, 404, "mdl_0000000000000000000000ff")
    assert (await client.get("/v1/jobs")).json()["items"] == []


@pytest.mark.parametrize(
    ("model_type", "kind", "task"),
    [
        ("linear_regression", "xor", "binary"),
        ("logistic_regression", "linear", "regression"),
        ("logistic_regression", "spiral", "multiclass"),
        ("softmax_regression", "linear", "regression"),
    ],
)
async def test_a_model_type_that_cannot_learn_the_task_is_422_naming_both(
    idle: tuple[FastAPI, httpx.AsyncClient], model_type: str, kind: str, task: str
) -> None:
    _, client = idle
    dataset = await create_dataset(client, kind, n_samples=30)
    response = await client.post("/v1/jobs", json=config(dataset["id"], model={"type": model_type}))
    problem = assert_problem(response, 422, model_type, task)
    assert problem["errors"][0]["loc"] == ["body", "model", "type"]
    inline = {"dataset": {"generator": {"kind": kind, "n_samples": 30}}, "model": {"type": model_type}}
    assert_problem(await client.post("/v1/jobs?dry_run=true", json=inline), 422, model_type, task)


async def test_a_warm_start_model_of_another_architecture_is_422(client: httpx.AsyncClient) -> None:
    dataset = await create_dataset(client)
    first = await wait_for(client, (await submit(client, config(dataset["id"], epochs=2)))["id"])
    mlp = config(
        dataset["id"], model={"type": "mlp", "hidden_layers": [3]}, warm_start_model_id=first["model_id"]
    )
    assert_problem(await client.post("/v1/jobs", json=mlp), 422, "warm_start_model_id", first["model_id"])


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        ({"optimizer": {"name": "rmsprop"}}, OPTIMIZERS),
        ({"optimizer": {"name": "gd"}, "batch_size": 32}, ("gd", "batch_size", "32")),
        ({"optimizer": {"name": "sgd", "beta1": 0.9}}, ("beta1",)),
        ({"model": {"type": "perceptron"}}, ("mlp", "logistic_regression")),
        ({"model": {"type": "mlp"}}, ("hidden layer",)),
        ({"epochs": 0}, ("epochs",)),
        ({"learning_rate": 0.1}, ("learning_rate",)),
        ({"dataset": {"generator": {"kind": "xor"}}}, ("dataset_id", "dataset")),
        ({"dataset_id": None}, ("dataset_id", "dataset")),
        ({"validation_fraction": 1.0}, ("validation_fraction",)),
    ],
)
async def test_invalid_configurations_are_422(
    idle: tuple[FastAPI, httpx.AsyncClient], change: dict[str, Any], needles: tuple[str, ...]
) -> None:
    response = await idle[1].post("/v1/jobs", json={**config("ds_0000000000000000000000ff"), **change})
    problem = assert_problem(response, 422, *needles)
    assert problem["errors"]


@pytest.mark.parametrize(
    ("dataset", "needle"),
    [
        ({"X": [[0.0, 1.0], [1.0]], "y": [0, 1]}, "dataset.X"),
        ({"X": [[0.0], [1.0]], "y": [0, 1, 1]}, "dataset.y"),
        ({"X": [[0.0], [1.0]], "y": [0, 0]}, "dataset.y"),
        ({"X": [[0.0], [1.0]]}, "X and y"),
        ({"generator": {"kind": "xor", "n_classes": 3}}, "dataset.generator"),
    ],
)
async def test_invalid_inline_data_is_422_naming_the_field(
    idle: tuple[FastAPI, httpx.AsyncClient], dataset: dict[str, Any], needle: str
) -> None:
    body = {"dataset": dataset, "model": {"type": "logistic_regression"}}
    assert_problem(await idle[1].post("/v1/jobs", json=body), 422, needle)
    assert (await idle[1].get("/v1/datasets")).json()["items"] == []


async def test_a_body_that_is_not_json_is_refused(idle: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = idle
    assert_problem(
        await client.post("/v1/jobs", content=b"{", headers={"content-type": "application/json"}),
        422,
        "malformed JSON",
    )
    assert_problem(
        await client.post("/v1/jobs", content=b"epochs=3", headers={"content-type": "text/plain"}),
        415,
        "JSON",
    )


async def test_an_unreachable_store_is_503_with_retry_after(
    idle: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, client = idle
    dataset = await create_dataset(client)

    def unreachable(*args: Any, **kwargs: Any) -> None:
        raise StoreUnavailable("database unavailable (OperationalError: could not connect)")

    monkeypatch.setattr(creation, "queue_job", unreachable)
    response = await client.post("/v1/jobs", json=config(dataset["id"]))
    assert_problem(response, 503, "database unavailable")
    assert int(response.headers["retry-after"]) > 0


# ---- multilabel and multi-output data ------------------------------------------------------------------


def _multilabel_data() -> tuple[np.ndarray, np.ndarray]:
    """Two moons features with three labels per sample: the moon, x0 > 0, and x1 > 0.25."""
    X, moon = make_dataset("moons", 90, noise=0.1, rng=np.random.default_rng(2))
    Y = np.column_stack([moon, X[:, 0] > 0, X[:, 1] > 0.25]).astype(np.int64)
    return X, Y


async def test_a_multilabel_job_trains_one_sigmoid_per_label_as_the_engine_does(
    client: httpx.AsyncClient,
) -> None:
    X, Y = _multilabel_data()
    response = await client.post("/v1/datasets", json={"name": "tags", "X": X.tolist(), "y": Y.tolist()})
    dataset = response.json()
    assert (dataset["task"], dataset["n_outputs"]) == ("multilabel", 3)
    body = config(
        dataset["id"],
        model={"type": "mlp", "hidden_layers": [8], "activation": "tanh"},
        optimizer={"name": "adam", "learning_rate": 0.05},
        epochs=60,
        seed=5,
    )
    done = await wait_for(client, (await submit(client, body))["id"])
    assert done["status"] == "succeeded", done
    history = (await client.get(f"/v1/jobs/{done['id']}/metrics")).json()
    assert "train_accuracy" not in history
    model = (await client.get(f"/v1/models/{done['model_id']}", params={"include": "parameters"})).json()
    assert model["task"] == "multilabel" and model["classes"] is None
    assert model["architecture"]["layers"][-1] == {"units": 3, "activation": "sigmoid"}
    assert model["architecture"]["loss"] == "binary_cross_entropy"
    arch = build_architecture("mlp", 2, 3, hidden_layers=[8], activation="tanh", output_activation="sigmoid")
    result = fit(
        arch, X, Y, FitConfig(epochs=60, optimizer="adam", learning_rate=0.05), np.random.default_rng(5)
    )
    stored = parameters_from_arrays(arch, {k: np.asarray(v) for k, v in model["parameters"].items()})
    np.testing.assert_array_equal(stored.flat, result.params.flat)
    # The loss is the mean over all 90 × 3 labels; it fell well below that of chance, log 2.
    assert history["train_loss"][-1] < 0.4 < np.log(2) < history["train_loss"][0] + 0.1
    predicted = (
        await client.post(f"/v1/models/{done['model_id']}/predict", json={"X": X[:5].tolist()})
    ).json()
    labels, probabilities = result.predict(X[:5])
    assert predicted["predictions"] == labels.tolist()
    np.testing.assert_allclose(predicted["probabilities"], probabilities, rtol=1e-15)
    assert set(np.ravel(predicted["predictions"])) <= {0, 1}
    assert "classes" not in predicted or predicted["classes"] is None
    exported = (await client.get(f"/v1/models/{done['model_id']}/export")).json()
    imported = await client.post("/v1/models", json=exported)
    assert imported.status_code == 201, imported.text
    assert imported.json()["task"] == "multilabel"


async def test_logistic_regression_cannot_learn_three_labels(client: httpx.AsyncClient) -> None:
    X, Y = _multilabel_data()
    dataset = (
        await client.post("/v1/datasets", json={"name": "tags", "X": X.tolist(), "y": Y.tolist()})
    ).json()
    response = await client.post("/v1/jobs", json=config(dataset["id"]))
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == ["body", "model", "type"]
    assert "3 columns of y" in response.json()["detail"]


async def test_linear_regression_learns_several_targets(client: httpx.AsyncClient) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    Y = X @ np.array([[1.0, -2.0], [0.5, 0.0], [0.0, 3.0]]) + 0.25
    inline = {"dataset": {"X": X.tolist(), "y": Y.tolist()}, "model": {"type": "linear_regression"}}
    body = {**inline, "optimizer": {"name": "gd", "learning_rate": 0.3}, "epochs": 400, "seed": 1}
    done = await wait_for(client, (await submit(client, body))["id"])
    assert done["status"] == "succeeded", done
    model = (await client.get(f"/v1/models/{done['model_id']}", params={"include": "parameters"})).json()
    assert model["task"] == "regression"
    np.testing.assert_allclose(model["parameters"]["W0"], [[1.0, -2.0], [0.5, 0.0], [0.0, 3.0]], atol=1e-6)
    np.testing.assert_allclose(model["parameters"]["b0"], [0.25, 0.25], atol=1e-6)
    predicted = (
        await client.post(f"/v1/models/{done['model_id']}/predict", json={"X": X[:3].tolist()})
    ).json()
    np.testing.assert_allclose(predicted["predictions"], Y[:3], atol=1e-5)
    assert "probabilities" not in predicted
