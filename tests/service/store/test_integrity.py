"""Stored arrays are checked against their sha256 on every read, on SQLite and on PostgreSQL alike.

The bytes are damaged behind the store's back (an UPDATE of the blob column, as a failing disk or a bad
restore would leave them); every read must then raise ``StorageCorrupted`` naming the resource, and never
return other arrays. Also here: the health probes, the mapping of a full disk to ``InsufficientStorage``,
and giving deleted pages back to the file system.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psycopg
import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import OperationalError

from service.errors import InsufficientStorage, StorageCorrupted, StoreUnavailable
from service.store import (
    Store,
    claim_job,
    create_dataset,
    create_model,
    delete_dataset,
    load_checkpoint,
    load_dataset_arrays,
    load_model_parameters,
    load_snapshot,
    open_store,
    record_progress,
    save_checkpoint,
    space,
)
from service.store.db import is_disk_full, unavailable_on_failure
from service.store.tables import BlobRow, CheckpointRow, DatasetRow, JobSnapshotRow, ModelRow
from tests.disks import remount_read_only, tmpfs
from tests.service.store.factories import make_dataset, make_job


def _set_blob(store: Store, blob_id: str, change: Callable[[bytes], bytes]) -> None:
    with store.write() as session:
        data = session.get(BlobRow, blob_id).data  # type: ignore[union-attr]
        session.execute(update(BlobRow).where(BlobRow.id == blob_id).values(data=change(data)))


def _flip(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


DAMAGES: dict[str, Callable[[bytes], bytes]] = {
    "flipped-byte": _flip,
    "truncated": lambda data: data[:-5],
    "empty": lambda data: b"",
}


def _model(store: Store, weight: float) -> str:
    return create_model(
        store,
        architecture={"type": "logistic_regression", "layers": [{"units": 1, "activation": "sigmoid"}]},
        n_features=2,
        task="binary",
        parameters={"W0": np.array([[weight], [1.0]]), "b0": np.array([0.5])},
    ).id


def test_a_model_blob_replaced_by_another_models_valid_bytes_is_corrupted(store: Store) -> None:
    ours, other = _model(store, 1.5), _model(store, -2.0)
    with store.read() as session:
        blob_ids = {row.id: row.blob_id for row in session.query(ModelRow)}
    with store.read() as session:
        other_bytes = session.get(BlobRow, blob_ids[other]).data  # type: ignore[union-attr]
    assert load_model_parameters(store, ours)["W0"][0, 0] == 1.5
    with store.read() as session:
        assert len(session.get(BlobRow, blob_ids[ours]).data) == len(other_bytes)  # type: ignore[union-attr]
    _set_blob(store, blob_ids[ours], lambda _: other_bytes)

    with pytest.raises(StorageCorrupted) as caught:
        load_model_parameters(store, ours)
    assert (caught.value.kind, caught.value.id, caught.value.status) == ("model", ours, 500)
    assert caught.value.extensions == {"resource": {"kind": "model", "id": ours}}
    assert "sha256" in caught.value.detail and ours in caught.value.detail
    assert load_model_parameters(store, other)["W0"][0, 0] == -2.0


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_damaged_dataset_and_model_blobs_are_corrupted(
    store: Store, damage: Callable[[bytes], bytes]
) -> None:
    dataset = make_dataset(store)
    model_id = _model(store, 1.0)
    with store.read() as session:
        model_blob = session.get(ModelRow, model_id).blob_id  # type: ignore[union-attr]
    _set_blob(store, dataset.blob_id, damage)
    _set_blob(store, model_blob, damage)
    with pytest.raises(StorageCorrupted, match=f"dataset '{dataset.id}' is corrupted"):
        load_dataset_arrays(store, dataset.id)
    with pytest.raises(StorageCorrupted, match=f"model '{model_id}' is corrupted"):
        load_model_parameters(store, model_id)


def test_a_missing_blob_row_is_corrupted_not_missing(store: Store) -> None:
    dataset = make_dataset(store)
    with store.write() as session:
        session.execute(text("UPDATE blobs SET data = :d WHERE id = :id"), {"d": b"", "id": dataset.blob_id})
    with pytest.raises(StorageCorrupted):
        load_dataset_arrays(store, dataset.id)


def test_intact_blobs_read_back_bit_for_bit(store: Store) -> None:
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(50, 3)), rng.integers(0, 2, size=50)
    record = create_dataset(store, name="d", X=X, y=y, task="binary", classes=[0, 1])
    got_X, got_y = load_dataset_arrays(store, record.id)
    assert got_X.tobytes() == X.tobytes() and got_y.tobytes() == y.tobytes()


def _running_job(store: Store) -> tuple[str, int]:
    job = make_job(store, make_dataset(store).id)
    attempt = claim_job(store, job.id)
    assert attempt is not None
    return job.id, attempt


def test_checkpoints_and_snapshots_record_and_check_their_sha256(store: Store) -> None:
    job_id, attempt = _running_job(store)
    save_checkpoint(store, job_id, attempt, 3, b"checkpoint bytes")
    record_progress(
        store,
        job_id,
        attempt,
        rows=[{"epoch": 3}],
        progress={"epoch": 3},
        metrics={},
        best=None,
        snapshot=b"snap",
    )
    assert load_checkpoint(store, job_id) == (3, b"checkpoint bytes")
    assert load_snapshot(store, job_id).data == b"snap"  # type: ignore[union-attr]

    with store.write() as session:
        session.execute(update(CheckpointRow).values(blob=b"checkpoint bytez"))
        session.execute(update(JobSnapshotRow).values(blob=b"snaq"))
    with pytest.raises(StorageCorrupted, match=f"checkpoint of job '{job_id}'"):
        load_checkpoint(store, job_id)
    with pytest.raises(StorageCorrupted, match=f"snapshot of job '{job_id}'"):
        load_snapshot(store, job_id)

    # Rows written before the hashes were recorded are read without the check.
    with store.write() as session:
        session.execute(update(CheckpointRow).values(sha256=None))
        session.execute(update(JobSnapshotRow).values(sha256=None))
    assert load_checkpoint(store, job_id) == (3, b"checkpoint bytez")
    assert load_snapshot(store, job_id).data == b"snaq"  # type: ignore[union-attr]


def test_a_healthy_store_reports_no_problem(store: Store) -> None:
    make_dataset(store)
    assert store.health.problems() == []


def test_a_disk_below_the_minimum_free_space_is_reported(store: Store) -> None:
    problems = store.health.problems(min_free_bytes=2**62)
    if store.database_path is None:
        assert problems == []  # PostgreSQL's disk is the server's own
    else:
        assert len(problems) == 1
        assert problems[0].startswith("the disk is full: ") and "DESCENT_MIN_FREE_MB" in problems[0]


def test_a_store_that_cannot_be_written_is_reported(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", size_mb=8) as disk:
        store = open_store(f"sqlite:///{disk / 'store.db'}")
        try:
            make_dataset(store)
            with store.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            assert store.health.problems() == []
            store.engine.dispose()  # no pooled connection holds the file while it is remounted
            remount_read_only(disk)
            problems = store.health.problems()
            assert any(p.startswith("the store cannot be") for p in problems), problems
        finally:
            store.close()


def test_a_damaged_sqlite_file_is_reported_by_its_quick_check(tmp_path: Path) -> None:
    path = tmp_path / "damaged.db"
    store = open_store(f"sqlite:///{path}")
    try:
        for seed in range(3):
            make_dataset(store, n=3000, seed=seed)
        with store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        assert store.health.problems() == []
        # Damage a page far from the tables the probe reads (the first pages): only the file check sees it.
        size = path.stat().st_size
        with open(path, "r+b") as file:
            file.seek(size - 3 * 4096)
            file.write(b"\xff" * 4096)
        store.health._checked_at = None  # the next probe checks the file again, without waiting 5 s
        problems = store.health.problems()
        assert any("damaged" in problem for problem in problems), problems
    finally:
        store.close()


def test_full_disk_errors_are_insufficient_storage_without_class_names() -> None:
    sqlite_full = sqlite3.OperationalError("database or disk is full")
    sqlite_full.sqlite_errorcode = sqlite3.SQLITE_FULL
    pg_full = psycopg.errors.DiskFull("could not extend file: No space left on device")
    for orig in (sqlite_full, pg_full):
        wrapped = OperationalError("INSERT ...", {}, orig)
        assert is_disk_full(wrapped)
        with pytest.raises(InsufficientStorage) as caught, unavailable_on_failure():
            raise wrapped
        assert caught.value.status == 507 and "disk of the store is full" in caught.value.detail
        assert "Error" not in caught.value.detail
    with pytest.raises(StoreUnavailable) as down, unavailable_on_failure():
        raise OperationalError("SELECT 1", {}, psycopg.OperationalError("connection refused"))
    assert down.value.detail == "database unavailable: connection refused"


def _freelist(store: Store) -> int:
    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(conn.exec_driver_sql("PRAGMA freelist_count").scalar() or 0)


@pytest.mark.parametrize("low_on_space", [True, False])
def test_a_delete_on_a_disk_low_on_space_gives_the_pages_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, low_on_space: bool
) -> None:
    monkeypatch.setattr(space, "GIVE_BACK_BELOW_BYTES", 2**62 if low_on_space else 0)
    path = tmp_path / "space.db"
    store = open_store(f"sqlite:///{path}")
    try:
        rng = np.random.default_rng(0)
        X = rng.normal(size=(5000, 40))
        ids = [
            create_dataset(store, name=str(i), X=X + i, y=np.zeros(5000), task="regression").id
            for i in range(3)
        ]
        assert _freelist(store) == 0
        before = path.stat().st_size
        delete_dataset(store, ids[0])  # the first one: its pages are not at the end of the file
        if low_on_space:
            assert _freelist(store) == 0
            assert path.stat().st_size <= before - X.nbytes * 0.9
        else:  # kept for reuse: moving pages costs about as much as writing them
            assert _freelist(store) * 4096 >= X.nbytes * 0.9
            assert path.stat().st_size == before
        for i, kept in enumerate(ids[1:], start=1):
            assert load_dataset_arrays(store, kept)[0].tobytes() == (X + i).tobytes()
    finally:
        store.close()


def test_the_dataset_row_records_the_blob_hash(store: Store) -> None:
    dataset = make_dataset(store)
    with store.read() as session:
        row = session.get(DatasetRow, dataset.id)
        blob = session.get(BlobRow, dataset.blob_id)
        assert row is not None and blob is not None and row.sha256 == blob.sha256 == dataset.sha256
