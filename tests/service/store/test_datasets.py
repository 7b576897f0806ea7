from __future__ import annotations

import hashlib
from datetime import UTC

import numpy as np
import pytest
from sqlalchemy import select

from service.errors import Conflict, NotFound
from service.store import (
    Store,
    claim_job,
    create_dataset,
    delete_dataset,
    finish_job,
    get_dataset,
    get_job,
    list_datasets,
    load_dataset_arrays,
)
from service.store.tables import BlobRow
from tests.service.store.factories import make_dataset, make_job


def _blob_bytes(store: Store, blob_id: str) -> bytes | None:
    with store.read() as session:
        return session.scalar(select(BlobRow.data).where(BlobRow.id == blob_id))


def test_arrays_round_trip_bit_exact_with_their_dtypes(store: Store) -> None:
    X = np.array([[0.1, -0.0, 5e-324], [np.finfo(np.float64).max, 1 / 3, -2.5]], dtype=np.float64)
    y = np.array([1.25, -7.0], dtype=np.float32)
    record = create_dataset(store, name="edge", X=X, y=y, task="regression")

    X_back, y_back = load_dataset_arrays(store, record.id)

    assert X_back.dtype == np.float64 and y_back.dtype == np.float32
    assert X_back.tobytes() == X.tobytes() and y_back.tobytes() == y.tobytes()
    assert (record.n_samples, record.n_features, record.task) == (2, 3, "regression")


def test_sha256_is_the_hash_of_the_stored_bytes_and_stable(store: Store) -> None:
    first = make_dataset(store, seed=3)
    same = make_dataset(store, seed=3)
    other = make_dataset(store, seed=4)

    stored = _blob_bytes(store, first.blob_id)
    assert stored is not None
    assert first.sha256 == hashlib.sha256(stored).hexdigest()
    assert same.sha256 == first.sha256 and same.id != first.id
    assert other.sha256 != first.sha256


def test_get_dataset_returns_the_metadata_as_created(store: Store) -> None:
    created = make_dataset(store, owner="alice", n=5, seed=1)
    got = get_dataset(store, created.id)
    assert got == created
    assert got.created_at.tzinfo is UTC
    assert got.source == {"kind": "test", "seed": 1}
    assert isinstance(got.class_counts, list) and sum(got.class_counts) == 5
    assert get_dataset(store, created.id, owner="alice") == created
    with pytest.raises(NotFound):
        get_dataset(store, created.id, owner="bob")
    with pytest.raises(NotFound, match="ds_missing"):
        get_dataset(store, "ds_missing")


def test_pagination_returns_every_item_once_newest_first(store: Store) -> None:
    created = [make_dataset(store, seed=i).id for i in range(7)]
    make_dataset(store, owner="someone-else")

    pages, cursor = [], None
    while True:
        items, cursor = list_datasets(store, "default", limit=3, cursor=cursor)
        pages.append([item.id for item in items])
        if cursor is None:
            break

    assert [len(page) for page in pages] == [3, 3, 1]
    assert [i for page in pages for i in page] == created[::-1]


def test_a_full_last_page_has_no_next_cursor(store: Store) -> None:
    created = [make_dataset(store, seed=i).id for i in range(3)]
    items, cursor = list_datasets(store, "default", limit=3)
    assert [item.id for item in items] == created[::-1]
    assert cursor is None


def test_bad_list_arguments_raise_value_error(store: Store) -> None:
    with pytest.raises(ValueError, match="limit"):
        list_datasets(store, "default", limit=0)
    with pytest.raises(ValueError, match="cursor must be a dataset id"):
        list_datasets(store, "default", cursor="job_0123456789abcdef01234567")


@pytest.mark.parametrize(
    ("X", "y", "task", "message"),
    [
        (np.zeros(3), np.zeros(3), "binary", "X must have shape"),
        (np.zeros((3, 2)), np.zeros(2), "binary", r"y must have shape \(3,\)"),
        (np.zeros((3, 2)), np.zeros(3), "ranking", "task must be one of"),
        (np.zeros((3, 2)), np.array([None, 1, 2], dtype=object), "binary", "dtype object"),
    ],
)
def test_invalid_datasets_are_refused(
    store: Store, X: np.ndarray, y: np.ndarray, task: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        create_dataset(store, name="bad", X=X, y=y, task=task)
    assert list_datasets(store, "default") == ([], None)


def test_delete_removes_the_row_and_its_blob(store: Store) -> None:
    record = make_dataset(store)
    delete_dataset(store, record.id)
    with pytest.raises(NotFound):
        get_dataset(store, record.id)
    assert _blob_bytes(store, record.blob_id) is None
    with pytest.raises(NotFound):
        delete_dataset(store, record.id)


def test_delete_of_a_dataset_in_use_is_a_conflict(store: Store) -> None:
    record = make_dataset(store)
    job = make_job(store, record.id)

    with pytest.raises(Conflict, match=f"used by 1 queued or running job\\(s\\): {job.id};"):
        delete_dataset(store, record.id)
    attempt = claim_job(store, job.id)
    assert attempt == 1
    with pytest.raises(Conflict):
        delete_dataset(store, record.id)

    finish_job(store, job.id, attempt, status="failed", error_type="internal", error_detail="boom")
    delete_dataset(store, record.id)
    assert get_job(store, job.id).dataset_id is None
    with pytest.raises(NotFound):
        load_dataset_arrays(store, record.id)


def test_another_owner_cannot_delete(store: Store) -> None:
    record = make_dataset(store, owner="alice")
    with pytest.raises(NotFound):
        delete_dataset(store, record.id, owner="bob")
    assert get_dataset(store, record.id).owner == "alice"
