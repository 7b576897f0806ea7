"""The Python client against a real ``descent serve``: datasets, jobs, models and the errors it raises."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from descent_client import (
    AsyncClient,
    Client,
    Conflict,
    Dataset,
    EndUpdate,
    EpochUpdate,
    InvalidInput,
    Job,
    JobFailed,
    NotFound,
    RateLimited,
    StatusUpdate,
    TransportError,
    _calls,
)
from tests.descent_client.proxy import Proxy
from tests.processes import free_port
from tests.service.test_jobs_e2e import ServiceProcess
from tests.timing import JOB_S

pytestmark = pytest.mark.e2e

MLP = {"type": "mlp", "hidden_layers": [8], "activation": "tanh"}


def small_job(client: Client, dataset: Dataset, **fields: Any) -> Job:
    config = {"model": MLP, "optimizer": {"name": "adam", "learning_rate": 0.05}, "epochs": 60, "seed": 3}
    return client.jobs.create(dataset=dataset, **{**config, **fields})


def test_arrays_round_trip_with_string_labels(client: Client) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    y = np.where(X[:, 0] > 0, "dog", "cat")
    dataset = client.datasets.create(X, y, name="pets")
    assert isinstance(dataset, Dataset)
    assert (dataset.name, dataset.task, dataset.n_samples, dataset.n_features) == ("pets", "binary", 30, 3)
    assert dataset.classes == ["cat", "dog"]
    assert dataset.class_counts == [int((y == "cat").sum()), int((y == "dog").sum())]
    X_back, y_back = dataset.data()
    # .npz carries the float64 bits exactly.
    assert X_back.dtype == np.float64 and X_back.tobytes() == X.tobytes()
    assert y_back.tolist() == y.tolist()
    assert client.datasets.get(dataset.id) == dataset


def test_csv_and_npz_files(client: Client, tmp_path: Path) -> None:
    csv_path = tmp_path / "iris.csv"
    csv_path.write_text("a,b,species\n1.5,2,setosa\n0.5,1,virginica\n3,0.25,setosa\n")
    from_csv = client.datasets.from_csv(csv_path, label="species")
    assert (from_csv.name, from_csv.n_samples, from_csv.classes) == ("iris", 3, ["setosa", "virginica"])
    npz_path = tmp_path / "reg.npz"
    X = np.arange(12.0).reshape(6, 2)
    np.savez(npz_path, X=X, y=X.sum(axis=1) / 3)
    from_npz = client.datasets.from_npz(npz_path, name="sums")
    assert (from_npz.name, from_npz.task, from_npz.classes) == ("sums", "regression", None)
    assert from_npz.data()[0].tolist() == X.tolist()
    labelled = client.datasets.from_npz(npz_path, label="total")
    assert (labelled.name, labelled.source) == (
        "reg",
        {"kind": "npz", "columns": ["x0", "x1", "total"], "label": "total"},
    )


def test_name_label_and_task_go_with_every_kind_of_dataset(client: Client) -> None:
    arrays = client.datasets.create([[0.0], [1.0], [2.0]], [0, 1, 2], task="regression", label="count")
    assert (arrays.task, arrays.source["label"]) == ("regression", "count")
    drawn = client.datasets.generate("xor", n_samples=20, task="regression", label="target")
    assert (drawn.name, drawn.task, drawn.source["columns"]) == (
        "xor-20",
        "regression",
        ["x0", "x1", "target"],
    )
    document = {"name": "in-body", "X": [[0.0], [1.0]], "y": [0, 1], "task": "binary"}
    renamed = client.datasets.from_json(document, name="in-query", task="regression")
    assert (renamed.name, renamed.task) == ("in-query", "regression")
    with pytest.raises(InvalidInput, match="label 'x0' clashes with feature column"):
        client.datasets.from_json(document, label="x0")


def test_listing_pages_through_every_dataset(client: Client) -> None:
    created = {client.datasets.generate("blobs", n_samples=20, seed=s, n_classes=3).id for s in range(3)}
    first = client.datasets.list(limit=2)
    assert len(first.items) == 2 and first.next_cursor is not None
    every = [d.id for d in client.datasets.iter(page_size=2)]
    assert created <= set(every) and len(every) == len(set(every))


def test_job_follow_wait_predict_export_import(client: Client) -> None:
    dataset = client.datasets.generate("xor", n_samples=200, noise=0.05, seed=1)
    job = small_job(client, dataset, batch_size=20)
    assert job.status in ("queued", "running") and job.config["dataset_id"] == dataset.id
    updates = list(job.follow())
    epochs = [u.epoch for u in updates if isinstance(u, EpochUpdate)]
    assert epochs == list(range(1, 61))
    assert [u.status for u in updates if isinstance(u, StatusUpdate)][-2:] == ["running", "succeeded"]
    assert isinstance(updates[-1], EndUpdate) and updates[-1].succeeded
    # The metrics the follow gave are the job's history, epoch by epoch.
    history = job.history()
    losses = [u.metrics.train_loss for u in updates if isinstance(u, EpochUpdate)]
    assert losses == history.train_loss

    done = job.wait()
    assert done.status == "succeeded" and done.model_id == updates[-1].model_id
    model = done.model()
    prediction = model.predict(np.array([[0.5, 0.5], [-0.5, 0.5]]))
    assert prediction.predictions.shape == (2,) and prediction.probabilities.shape == (2,)
    assert set(prediction.predictions.tolist()) <= {0, 1}
    assert np.all((prediction.probabilities >= 0) & (prediction.probabilities <= 1))

    for fmt in ("json", "npz"):
        exported = model.export(fmt)  # type: ignore[arg-type]
        imported = client.models.import_(exported)
        assert imported.id != model.id and imported.sha256 == model.sha256
        again = imported.predict([[0.5, 0.5], [-0.5, 0.5]])
        assert again.probabilities.tolist() == prediction.probabilities.tolist()
        imported.delete()
        with pytest.raises(NotFound):
            client.models.get(imported.id)


def test_wait_raises_job_failed_for_a_cancelled_job(service: ServiceProcess, client: Client) -> None:
    dataset = client.datasets.generate("moons", n_samples=300, seed=2)
    job = small_job(client, dataset, epochs=100_000, batch_size=8)
    job.cancel()
    with pytest.raises(JobFailed) as caught:
        job.wait(timeout=JOB_S)
    assert caught.value.job.status == "cancelled"
    assert client.jobs.wait(job.id, check=False).status == "cancelled"


def test_not_found_conflict_and_invalid_input_carry_the_problem(client: Client) -> None:
    with pytest.raises(NotFound) as missing:
        client.jobs.get("job_missing")
    assert (missing.value.status, missing.value.type) == (404, "urn:descent:problem:not-found")
    assert "job_missing" in missing.value.detail and missing.value.request_id

    dataset = client.datasets.generate("xor", n_samples=50, seed=4)
    with pytest.raises(InvalidInput) as invalid:
        client.jobs.create(dataset=dataset, model={"type": "mlp", "hidden_layers": [0]})
    assert invalid.value.status == 422 and invalid.value.slug == "invalid-input"
    assert invalid.value.errors and invalid.value.errors[0]["loc"][:3] == ["body", "model", "hidden_layers"]

    done = small_job(client, dataset, epochs=5).wait()
    with pytest.raises(Conflict) as conflict:
        done.cancel()
    assert conflict.value.status == 409 and done.id in conflict.value.detail
    # The same Idempotency-Key with another body is a conflict too.
    small_job(client, dataset, epochs=5, idempotency_key="same-key")
    with pytest.raises(Conflict):
        small_job(client, dataset, epochs=6, idempotency_key="same-key")


def test_a_full_queue_raises_rate_limited_with_retry_after(tmp_path: Path) -> None:
    with ServiceProcess(tmp_path, workers=0, max_queued_jobs=1) as idle, Client(idle.url) as client:
        dataset = client.datasets.generate("xor", n_samples=20, seed=0)
        queued = small_job(client, dataset)
        with pytest.raises(RateLimited) as caught:
            small_job(client, dataset)
        assert caught.value.status == 429 and caught.value.retry_after is not None
        assert caught.value.retry_after >= 1
        assert client.jobs.get(queued.id).status == "queued"


def test_a_lost_answer_to_a_submission_is_retried_without_a_second_job(service: ServiceProcess) -> None:
    proxy = Proxy(int(service.url.rsplit(":", 1)[1]))
    try:
        with Client(proxy.url) as client:
            dataset = client.datasets.generate("xor", n_samples=20, seed=5)
            before = {job.id for job in client.jobs.iter()}
            proxy.lose_answer_to(b"POST /v1/jobs")
            seen = len(proxy.requests)
            job = small_job(client, dataset, epochs=3)
            # The POST went twice, with one Idempotency-Key: the first answer was lost on the way.
            posts = [r for r in proxy.requests[seen:] if r.startswith(b"POST /v1/jobs")]
            assert len(posts) == 2
            keys = {re.search(rb"(?im)^idempotency-key: *(\S+)", post).group(1) for post in posts}  # type: ignore[union-attr]
            assert len(keys) == 1
            after = {j.id for j in client.jobs.iter()} - before
            assert after == {job.id}
    finally:
        proxy.close()


def test_a_lost_answer_to_a_model_import_is_retried_without_a_second_model(service: ServiceProcess) -> None:
    proxy = Proxy(int(service.url.rsplit(":", 1)[1]))
    try:
        with Client(proxy.url) as client:
            dataset = client.datasets.generate("xor", n_samples=20, seed=6)
            exported = small_job(client, dataset, epochs=2).wait().model().export("npz")
            before = {model.id for model in client.models.iter()}
            proxy.lose_answer_to(b"POST /v1/models")
            seen = len(proxy.requests)
            imported = client.models.import_(exported)
            posts = [r for r in proxy.requests[seen:] if r.startswith(b"POST /v1/models")]
            assert len(posts) == 2
            assert {m.id for m in client.models.iter()} - before == {imported.id}
    finally:
        proxy.close()


def test_a_409_with_retry_after_is_waited_out_like_a_503() -> None:
    # A request with the same Idempotency-Key is still creating: the retry will answer its resource.
    call = _calls.create_job({}, "key-1")
    problem = {"type": "urn:descent:problem:conflict", "title": "Conflict", "status": 409, "detail": "retry"}
    in_progress = httpx.Response(409, json=problem, headers={"Retry-After": "2"})
    assert _calls.delay_after_response(call, 0, 3, in_progress) == 2.0
    with pytest.raises(Conflict):
        _calls.delay_after_response(call, 3, 3, in_progress)
    with pytest.raises(Conflict):
        _calls.delay_after_response(call, 0, 3, httpx.Response(409, json=problem))


def test_a_service_that_cannot_be_reached_raises_transport_error() -> None:
    with Client(f"http://127.0.0.1:{free_port()}", retries=1) as client, pytest.raises(TransportError):
        client.datasets.list()


def test_url_and_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"items": [], "next_cursor": None})

    monkeypatch.setenv("DESCENT_URL", "http://descent.example:9000/")
    monkeypatch.setenv("DESCENT_API_KEY", "dsk_test")
    with Client(transport=httpx.MockTransport(answer)) as client:
        assert client.url == "http://descent.example:9000"
        client.jobs.list()
    with Client("http://other:1", api_key="dsk_given", transport=httpx.MockTransport(answer)) as client:
        client.jobs.list()
    monkeypatch.delenv("DESCENT_API_KEY")
    with Client("http://other:1", transport=httpx.MockTransport(answer)) as client:
        client.jobs.list()
    assert str(seen[0].url) == "http://descent.example:9000/v1/jobs"
    assert seen[0].headers["authorization"] == "Bearer dsk_test"
    assert str(seen[1].url) == "http://other:1/v1/jobs"
    assert seen[1].headers["authorization"] == "Bearer dsk_given"
    assert "authorization" not in seen[2].headers


def test_bad_arrays_are_refused_before_sending(client: Client) -> None:
    with pytest.raises(ValueError, match=r"X must be finite, got nan at \[1, 0\]"):
        client.datasets.create([[0.0, 1.0], [float("nan"), 2.0]], [0, 1])
    with pytest.raises(ValueError, match="must be 2-D"):
        client.models.predict("mdl_x", np.zeros((2, 2, 2)))


async def _async_tour(url: str) -> dict[str, Any]:
    async with AsyncClient(url) as client:
        dataset = await client.datasets.generate("circles", n_samples=100, noise=0.05, seed=2)
        job = await client.jobs.create(
            dataset=dataset, model=MLP, optimizer={"name": "adam", "learning_rate": 0.05}, epochs=30, seed=1
        )
        epochs = [u.epoch async for u in job.follow() if isinstance(u, EpochUpdate)]
        done = await job.wait()
        model = await done.model()
        prediction = await model.predict([[0.0, 0.0]])
        try:
            await client.datasets.get("ds_missing")
        except NotFound as exc:
            missing = exc.status
        return {"epochs": epochs, "status": done.status, "prediction": prediction, "missing": missing}


def test_async_client_follows_waits_and_predicts(service: ServiceProcess) -> None:
    import asyncio

    result = asyncio.run(_async_tour(service.url))
    assert result["epochs"] == list(range(1, 31)) and result["status"] == "succeeded"
    assert result["prediction"].predictions.shape == (1,) and result["missing"] == 404


def test_dry_run_resolves_without_queueing(client: Client) -> None:
    dataset = client.datasets.generate("xor", n_samples=20, seed=6)
    resolved = client.jobs.dry_run(dataset=dataset, model={"type": "logistic_regression"}, seed=9)
    assert resolved["config"]["seed"] == 9 and resolved["config"]["dataset_id"] == dataset.id
    assert json.loads(json.dumps(resolved)) == resolved
