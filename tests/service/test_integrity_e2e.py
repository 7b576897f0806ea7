"""Stored bytes are checked, the store's health is reported, and a full disk can be recovered through the API.

Each test runs a real ``descent serve`` on a SQLite file and damages the store behind its back, as a
failing disk or an operator's mistake would: a model blob replaced by other valid weights of the same
size, a flipped byte, a truncated blob, random bytes over the database file, a full file system (a
tmpfs mounted for the test).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.disks import fill, tmpfs
from tests.processes import wait_until
from tests.service.test_durability import CONFIG as DURABLE_CONFIG
from tests.service.test_durability import create_dataset as durable_dataset
from tests.service.test_durability import submit, wait_for_checkpoint
from tests.service.test_jobs_e2e import ServiceProcess, wait_for_job
from tests.timing import REQUEST_S, STARTUP_S

pytestmark = [pytest.mark.e2e]

CORRUPTED = "urn:descent:problem:storage-corrupted"
LOGISTIC = {"type": "logistic_regression"}


def logistic(w: list[float], b: float) -> dict[str, Any]:
    """A descent.model/v1 document of a 2-feature logistic regression."""
    return {
        "format": "descent.model/v1",
        "architecture": {"type": "logistic_regression", "layers": [{"units": 1, "activation": "sigmoid"}]},
        "n_features": 2,
        "task": "binary",
        "classes": [0, 1],
        "dtype": "float64",
        "parameters": {"W0": [[w[0]], [w[1]]], "b0": [b]},
    }


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServiceProcess]:
    running = ServiceProcess(tmp_path, workers=1).start()
    yield running
    running.stop()


@pytest.fixture
def client(service: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=REQUEST_S) as http:
        yield http


def database(service: ServiceProcess) -> sqlite3.Connection:
    path = service.settings["database_url"].removeprefix("sqlite:///")
    return sqlite3.connect(path, timeout=REQUEST_S, isolation_level=None)


def blob_of(service: ServiceProcess, table: str, resource_id: str) -> bytes:
    with contextlib.closing(database(service)) as db:
        row = db.execute(
            f"SELECT data FROM blobs WHERE id = (SELECT blob_id FROM {table} WHERE id = ?)", (resource_id,)
        ).fetchone()
    return bytes(row[0])


def overwrite_blob(
    service: ServiceProcess, table: str, resource_id: str, change: Callable[[bytes], bytes]
) -> None:
    """Replace the stored bytes of a dataset or model with ``change(bytes)``, as a damaged disk would."""
    data = change(blob_of(service, table, resource_id))
    with contextlib.closing(database(service)) as db:
        db.execute(
            f"UPDATE blobs SET data = ? WHERE id = (SELECT blob_id FROM {table} WHERE id = ?)",
            (data, resource_id),
        )


def flip_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


def assert_corrupted(response: httpx.Response, kind: str, resource_id: str) -> dict[str, Any]:
    assert response.status_code == 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == CORRUPTED
    assert body["resource"] == {"kind": kind, "id": resource_id}
    assert resource_id in body["detail"] and "corrupted" in body["detail"]
    for name in ("BadZipFile", "Error", "Exception"):
        assert name not in body["detail"]
    return body


def test_a_model_blob_replaced_by_other_valid_weights_is_refused_not_used(
    service: ServiceProcess, client: httpx.Client
) -> None:
    ours = client.post("/v1/models", json=logistic([1.5, -0.5], 0.25)).json()["id"]
    other = client.post("/v1/models", json=logistic([-3.0, 2.0], -1.0)).json()["id"]
    rows = {"X": [[1.0, 2.0], [-1.0, 0.5]]}
    before = client.post(f"/v1/models/{ours}/predict", json=rows)
    assert before.status_code == 200, before.text
    assert len(blob_of(service, "models", ours)) == len(blob_of(service, "models", other))

    overwrite_blob(service, "models", ours, lambda _: blob_of(service, "models", other))

    assert_corrupted(client.post(f"/v1/models/{ours}/predict", json=rows), "model", ours)
    assert_corrupted(client.get(f"/v1/models/{ours}/export"), "model", ours)
    # The model the bytes came from is untouched, and the damaged one can still be deleted.
    assert client.post(f"/v1/models/{other}/predict", json=rows).status_code == 200
    assert client.get(f"/v1/models/{ours}").status_code == 200
    assert client.delete(f"/v1/models/{ours}").status_code == 204


@pytest.mark.parametrize(
    "damage", [flip_byte, lambda data: data[: len(data) - 7]], ids=["flipped-byte", "truncated"]
)
def test_a_damaged_model_blob_is_a_storage_corrupted_problem(
    service: ServiceProcess, client: httpx.Client, damage: Callable[[bytes], bytes]
) -> None:
    model_id = client.post("/v1/models", json=logistic([1.5, -0.5], 0.25)).json()["id"]
    overwrite_blob(service, "models", model_id, damage)
    assert_corrupted(
        client.post(f"/v1/models/{model_id}/predict", json={"X": [[1.0, 2.0]]}), "model", model_id
    )
    assert_corrupted(client.get(f"/v1/models/{model_id}/export", params={"format": "npz"}), "model", model_id)


def test_a_job_on_a_corrupted_dataset_fails_storage_corrupted(
    service: ServiceProcess, client: httpx.Client
) -> None:
    spec = {"kind": "moons", "n_samples": 60, "noise": 0.2, "seed": 3}
    dataset_id = client.post("/v1/datasets", json={"name": "moons", "generator": spec}).json()["id"]
    overwrite_blob(service, "datasets", dataset_id, flip_byte)

    assert_corrupted(client.get(f"/v1/datasets/{dataset_id}/data"), "dataset", dataset_id)
    job = client.post("/v1/jobs", json={"dataset_id": dataset_id, "model": LOGISTIC, "epochs": 3, "seed": 1})
    assert job.status_code == 202, job.text
    ended = wait_for_job(client, job.json()["id"])
    assert ended["status"] == "failed"
    assert ended["error"]["type"] == "storage_corrupted"
    assert dataset_id in ended["error"]["detail"] and "sha256" in ended["error"]["detail"]


def test_random_bytes_over_the_database_file_make_readyz_503(
    service: ServiceProcess, client: httpx.Client
) -> None:
    for seed in range(3):
        spec = {"kind": "blobs", "n_samples": 200, "n_features": 8, "seed": seed}
        assert client.post("/v1/datasets", json={"name": f"d{seed}", "generator": spec}).status_code == 201
    assert client.get("/readyz").status_code == 200
    path = Path(service.settings["database_url"].removeprefix("sqlite:///"))
    with contextlib.closing(database(service)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the file, none left in the log
    assert path.stat().st_size > 4096 + 65536
    with open(path, "r+b") as file:
        file.seek(4096)  # past the header page: the file still opens, its tables are damaged
        file.write(os.urandom(65536))

    def not_ready() -> httpx.Response | None:
        response = client.get("/readyz")
        return response if response.status_code == 503 else None

    response = wait_until(not_ready, STARTUP_S, "/readyz to report the damaged file", interval=0.2)
    body = response.json()
    # The probe's read, or the file check, names the damage (which one depends on the pages hit).
    assert "store" in body["detail"] and ("damaged" in body["detail"] or "malformed" in body["detail"]), body
    assert "Error" not in body["detail"]
    assert client.get("/healthz").status_code == 200


# ---- a full disk ------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs the test can fill; skipped (failed in CI) where mounting is impossible."""
    with tmpfs(tmp_path / "disk", size_mb=24) as mount:
        yield mount


def test_a_full_disk_is_reported_and_deletes_still_free_space(small_disk: Path) -> None:
    service = ServiceProcess(small_disk, workers=0, min_free_mb=2).start()
    try:
        with httpx.Client(base_url=service.url, timeout=REQUEST_S) as client:
            run_full_disk(service, client, small_disk)
    finally:
        service.stop()


def run_full_disk(service: ServiceProcess, client: httpx.Client, disk: Path) -> None:
    big = {"kind": "blobs", "n_samples": 20_000, "n_features": 20, "n_classes": 2, "seed": 1}  # 3.2 MB
    first = client.post("/v1/datasets", json={"name": "first", "generator": big})
    assert first.status_code == 201, first.text
    last = client.post("/v1/datasets", json={"name": "last", "generator": {**big, "seed": 2}})
    assert last.status_code == 201, last.text
    job = client.post(
        "/v1/jobs", json={"dataset_id": first.json()["id"], "model": LOGISTIC, "epochs": 1, "seed": 1}
    )
    assert job.status_code == 202, job.text
    assert client.get("/readyz").status_code == 200

    fill(disk)
    assert shutil.disk_usage(disk).free < 2 * 1024 * 1024

    ready = client.get("/readyz")
    assert ready.status_code == 503, ready.text
    assert "disk is full" in ready.json()["detail"] and "DESCENT_MIN_FREE_MB" in ready.json()["detail"]
    # The write-ahead log may still hold room for a write or two; then the store refuses.
    for seed in range(3, 13):
        refused = client.post("/v1/datasets", json={"name": "more", "generator": {**big, "seed": seed}})
        if refused.status_code != 201:
            break
    assert refused.status_code == 507, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "disk" in refused.json()["detail"] and "full" in refused.json()["detail"]
    assert "Error" not in refused.json()["detail"]

    # Cancelling and deleting work on the full disk, and give the space back to the file system.
    free_before = shutil.disk_usage(disk).free
    cancelled = client.post(f"/v1/jobs/{job.json()['id']}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled", cancelled.text
    for dataset in (last, first):
        assert client.delete(f"/v1/datasets/{dataset.json()['id']}").status_code == 204
        assert client.get(f"/v1/datasets/{dataset.json()['id']}").status_code == 404
    assert shutil.disk_usage(disk).free >= free_before + 4 * 1024 * 1024
    wait_until(lambda: client.get("/readyz").status_code == 200, STARTUP_S, "/readyz once space is free")
    # The filler still takes its share of the disk: the room for this write is what the deletes freed.
    assert client.post("/v1/datasets", json={"name": "again", "generator": big}).status_code == 201


def test_a_job_resumed_from_a_corrupted_checkpoint_fails_storage_corrupted(tmp_path: Path) -> None:
    service = ServiceProcess(tmp_path, workers=1).start()
    try:
        with httpx.Client(base_url=service.url, timeout=REQUEST_S) as client:
            job_id = submit(client, {"dataset_id": durable_dataset(client), **DURABLE_CONFIG})
            wait_for_checkpoint(service, client, job_id, at_least=1)
        service.kill_group()
        with contextlib.closing(database(service)) as db:
            db.execute(
                "UPDATE checkpoints SET blob = substr(blob, 1, length(blob) - 9) WHERE job_id = ?", (job_id,)
            )
        service.start()
        with httpx.Client(base_url=service.url, timeout=REQUEST_S) as client:
            ended = wait_for_job(client, job_id)
        assert ended["status"] == "failed", ended
        assert ended["error"]["type"] == "storage_corrupted"
        assert f"checkpoint of job '{job_id}'" in ended["error"]["detail"]
    finally:
        service.stop()
