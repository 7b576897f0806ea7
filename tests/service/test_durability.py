"""No job is lost: kill -9 of the whole service or of one worker mid-job, and a burst of 200 submissions.

Each test runs a real ``descent serve`` (see ``test_jobs_e2e.ServiceProcess``) on a SQLite file. A job
that loses its process resumes from its latest checkpoint and must end with the same parameters, bit
for bit, as a run of the same configuration and seed that was never interrupted, with every epoch of
its metric history recorded exactly once.
"""

from __future__ import annotations

import io
import os
import signal
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.processes import wait_until
from tests.service.test_jobs_e2e import ServiceProcess, parse_sse, wait_for_job
from tests.timing import JOB_S, REQUEST_S, STARTUP_S

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EPOCHS = 1000
# An MLP trained with small mini-batches: a second or two of work, checkpointed every 0.1 s.
CONFIG: dict[str, Any] = {
    "model": {"type": "mlp", "hidden_layers": [12], "activation": "tanh"},
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    "batch_size": 8,
    "validation_fraction": 0.2,
    "epochs": EPOCHS,
    "seed": 11,
}


def create_dataset(client: httpx.Client) -> str:
    spec = {"kind": "moons", "n_samples": 300, "noise": 0.2, "seed": 3}
    response = client.post("/v1/datasets", json={"name": "moons", "generator": spec})
    assert response.status_code == 201, response.text
    dataset_id: str = response.json()["id"]
    return dataset_id


def submit(client: httpx.Client, body: dict[str, Any]) -> str:
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def checkpoint_epoch(service: ServiceProcess, job_id: str) -> int | None:
    """The epoch of the job's stored checkpoint, read straight from the database file."""
    path = service.settings["database_url"].removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=REQUEST_S) as db:
        row = db.execute("SELECT epoch FROM checkpoints WHERE job_id = ?", (job_id,)).fetchone()
    return None if row is None else int(row[0])


def wait_for_checkpoint(service: ServiceProcess, client: httpx.Client, job_id: str, at_least: int) -> int:
    """Wait until the job has a checkpoint at ``at_least`` epochs or later, while it still runs."""

    def reached() -> int | None:
        epoch = checkpoint_epoch(service, job_id)
        if epoch is not None and epoch >= at_least:
            return epoch
        status = client.get(f"/v1/jobs/{job_id}").json()["status"]
        if status not in ("queued", "running"):
            pytest.fail(f"job {job_id} ended ({status}) before a checkpoint at epoch {at_least} was seen")
        return None

    epoch: int = wait_until(
        reached, JOB_S, f"a checkpoint of job {job_id} at epoch >= {at_least}", interval=0.05
    )
    return epoch


def exported_parameters(client: httpx.Client, model_id: str) -> dict[str, np.ndarray]:
    response = client.get(f"/v1/models/{model_id}/export", params={"format": "npz"})
    assert response.status_code == 200, response.text
    with np.load(io.BytesIO(response.content), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files if name.startswith(("W", "b"))}


def assert_same_model(client: httpx.Client, resumed: dict[str, Any], reference: dict[str, Any]) -> None:
    """The two jobs' models hold bitwise equal parameters."""
    ours = exported_parameters(client, resumed["model_id"])
    theirs = exported_parameters(client, reference["model_id"])
    assert sorted(ours) == sorted(theirs) and ours
    for name in ours:
        assert ours[name].dtype == theirs[name].dtype
        assert ours[name].tobytes() == theirs[name].tobytes(), f"{name} differs after the resume"
    models = [client.get(f"/v1/models/{job['model_id']}").json() for job in (resumed, reference)]
    assert models[0]["sha256"] == models[1]["sha256"]


def assert_history_complete(client: httpx.Client, job_id: str, reference_id: str) -> None:
    """Every epoch recorded exactly once, with the values of the uninterrupted run."""
    history = client.get(f"/v1/jobs/{job_id}/metrics").json()
    reference = client.get(f"/v1/jobs/{reference_id}/metrics").json()
    assert history["epochs"] == list(range(1, EPOCHS + 1))
    assert history == reference


def assert_resumed_after(client: httpx.Client, job_id: str, checkpoint: int) -> None:
    """The second run's progress starts past ``checkpoint`` (it did not start again from epoch 0)."""
    events = parse_sse(client.get(f"/v1/jobs/{job_id}/events").text)
    second = next(i for i, (_, kind, data) in enumerate(events) if kind == "status" and data["attempt"] == 2)
    epochs = [data["epoch"] for _, kind, data in events[second:] if kind == "progress"]
    assert epochs and min(epochs) > checkpoint, (checkpoint, epochs[:5])


def _alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_kill_9_of_the_whole_service_mid_job_resumes_from_the_checkpoint(tmp_path: Path) -> None:
    service = ServiceProcess(tmp_path, checkpoint_interval_s=0.1).start()
    try:
        with httpx.Client(base_url=service.url, timeout=REQUEST_S) as client:
            dataset_id = create_dataset(client)
            job_id = submit(client, {"dataset_id": dataset_id, **CONFIG})
            wait_for_checkpoint(service, client, job_id, at_least=EPOCHS // 10)
        service.kill_group()
        # Every process of the service is gone: nothing writes the checkpoint until the restart.
        saved = checkpoint_epoch(service, job_id)
        assert saved is not None and saved < EPOCHS

        service.start()
        with httpx.Client(base_url=service.url, timeout=REQUEST_S) as client:
            resumed = wait_for_job(client, job_id)
            assert resumed["status"] == "succeeded", resumed
            assert resumed["attempt"] == 2
            assert_resumed_after(client, job_id, saved)
            reference = wait_for_job(client, submit(client, {"dataset_id": dataset_id, **CONFIG}))
            assert reference["attempt"] == 1
            assert reference["config_hash"] == resumed["config_hash"]
            assert_same_model(client, resumed, reference)
            assert_history_complete(client, job_id, reference["id"])
    finally:
        service.stop()


def test_kill_9_of_a_worker_mid_job_resumes_on_a_new_worker(tmp_path: Path) -> None:
    with (
        ServiceProcess(tmp_path, checkpoint_interval_s=0.1) as service,
        httpx.Client(base_url=service.url, timeout=REQUEST_S) as client,
    ):
        dataset_id = create_dataset(client)
        job_id = submit(client, {"dataset_id": dataset_id, **CONFIG})
        seen = wait_for_checkpoint(service, client, job_id, at_least=EPOCHS // 10)
        (worker,) = service.worker_pids()
        os.kill(worker, signal.SIGKILL)
        wait_until(lambda: not _alive(worker), STARTUP_S, f"worker {worker} to die")
        # The job is resumed by a new worker, without restarting the API.
        resumed = wait_for_job(client, job_id)
        assert resumed["status"] == "succeeded", resumed
        assert resumed["attempt"] == 2
        assert worker not in service.worker_pids() and len(service.worker_pids()) == 1
        # From the killed worker's last checkpoint: at or after the one seen before the kill. (The
        # replacement may have written checkpoints of its own since, so the store's is no witness.)
        assert_resumed_after(client, job_id, seen)
        reference = wait_for_job(client, submit(client, {"dataset_id": dataset_id, **CONFIG}))
        assert_same_model(client, resumed, reference)
        assert_history_complete(client, job_id, reference["id"])


def test_a_burst_of_200_jobs_is_accepted_or_refused_and_every_accepted_one_finishes(tmp_path: Path) -> None:
    max_queued = 40
    with ServiceProcess(tmp_path, workers=2, max_queued_jobs=max_queued) as service:
        with httpx.Client(base_url=service.url, timeout=REQUEST_S) as client:
            spec = {"kind": "blobs", "n_samples": 40, "n_classes": 2, "seed": 1}
            dataset_id = client.post("/v1/datasets", json={"name": "tiny", "generator": spec}).json()["id"]
            body = {
                "dataset_id": dataset_id,
                "model": {"type": "logistic_regression"},
                "epochs": 3,
                "seed": 0,
            }
            limits = httpx.Limits(max_connections=50)
            with httpx.Client(base_url=service.url, timeout=REQUEST_S, limits=limits) as burst:
                with ThreadPoolExecutor(max_workers=50) as pool:
                    responses = list(pool.map(lambda _: burst.post("/v1/jobs", json=body), range(200)))
            codes = [r.status_code for r in responses]
            assert set(codes) <= {202, 429}, [r.text for r in responses if r.status_code not in (202, 429)]
            accepted = {r.json()["id"] for r in responses if r.status_code == 202}
            assert len(accepted) == codes.count(202), "two acceptances returned the same job"
            assert len(accepted) >= max_queued
            refused = [r for r in responses if r.status_code == 429]
            # 200 requests outpace two workers by far: the bound on the queue must have been met.
            assert refused, "no request was refused: the queue bound was never reached"
            for response in refused:
                assert int(response.headers["retry-after"]) > 0
                assert response.headers["content-type"] == "application/problem+json"

            def all_done() -> bool:
                page = client.get("/v1/jobs", params={"status": "succeeded", "limit": 500}).json()
                return len(page["items"]) >= len(accepted)

            wait_until(all_done, JOB_S, f"the {len(accepted)} accepted jobs to succeed", interval=0.2)
            every = client.get("/v1/jobs", params={"limit": 500}).json()
            assert every["next_cursor"] is None
            assert {job["id"] for job in every["items"]} == accepted
            assert {job["status"] for job in every["items"]} == {"succeeded"}
            assert all(job["attempt"] == 1 and job["model_id"] for job in every["items"])
