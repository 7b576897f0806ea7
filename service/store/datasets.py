"""Datasets: metadata rows plus their X/y arrays as one ``.npz`` blob."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.errors import Conflict, NotFound, StorageCorrupted
from service.store.blobs import blob_data, decode_verified, delete_blob, encode_npz, put_blob
from service.store.db import Store, jsonable, new_id, paginate, utcnow
from service.store.idempotency import Claim, complete
from service.store.records import DatasetRecord
from service.store.space import freeing
from service.store.tables import DEFAULT_OWNER, DatasetRow, JobRow
from service.vocabulary import ACTIVE_STATUSES, TASKS


def create_dataset(
    store: Store,
    *,
    owner: str = DEFAULT_OWNER,
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    task: str,
    classes: list[Any] | None = None,
    class_counts: list[int] | dict[str, int] | None = None,
    source: dict[str, Any] | None = None,
    claim: Claim | None = None,
) -> DatasetRecord:
    """Store a dataset: its arrays as ``.npz`` bytes and its metadata, in one transaction.

    Parameters
    ----------
    store : Store
    owner : str
    name : str
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        Stored with the dtypes given, bit for bit.
    task : {"binary", "multiclass", "multilabel", "regression"}
    classes : list or None
        Class labels in the order the model's outputs use (classification), else None.
    class_counts : list of int, dict or None
        Samples per class, as the API reports them.
    source : dict or None
        How the data came to be, e.g. ``{"kind": "generator", "generator": {...}}``.
    claim : Claim, optional
        A reserved Idempotency-Key, completed with the dataset's id in the transaction that creates it.

    Returns
    -------
    record : DatasetRecord
        ``sha256`` is the hash of the stored ``.npz`` bytes.

    Raises
    ------
    ValueError
        When the shapes do not agree, ``task`` is unknown or an array has object dtype.
    """
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must have shape (n_samples >= 1, n_features >= 1), got {X.shape}")
    if y.ndim not in (1, 2) or y.shape[0] != X.shape[0] or (y.ndim == 2 and y.shape[1] < 1):
        raise ValueError(
            f"y must have shape ({X.shape[0]},) or ({X.shape[0]}, n_outputs) to match X, got {y.shape}"
        )
    if task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
    data = encode_npz({"X": X, "y": y})
    with store.write() as session:
        blob_id, sha256 = put_blob(session, data)
        row = DatasetRow(
            id=new_id("dataset"),
            owner=owner,
            name=name,
            n_samples=int(X.shape[0]),
            n_features=int(X.shape[1]),
            n_outputs=1 if y.ndim == 1 else int(y.shape[1]),
            task=task,
            classes=jsonable(classes),
            class_counts=jsonable(class_counts),
            sha256=sha256,
            blob_id=blob_id,
            created_at=utcnow(),
            source=jsonable(source or {}),
        )
        session.add(row)
        session.flush()
        if claim is not None:
            complete(session, claim, row.id)
        return DatasetRecord.from_row(row)


def _dataset_row(session: Session, dataset_id: str, owner: str | None, *, lock: bool = False) -> DatasetRow:
    stmt = select(DatasetRow).where(DatasetRow.id == dataset_id)
    if lock:
        stmt = stmt.with_for_update()
    row = session.scalar(stmt)
    if row is None or (owner is not None and row.owner != owner):
        raise NotFound.resource("dataset", dataset_id)
    return row


def get_dataset(store: Store, dataset_id: str, *, owner: str | None = None) -> DatasetRecord:
    """The dataset ``dataset_id``; ``NotFound`` when missing or, if ``owner`` is given, someone else's."""
    with store.read() as session:
        return DatasetRecord.from_row(_dataset_row(session, dataset_id, owner))


def load_dataset_arrays(
    store: Store, dataset_id: str, *, owner: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The stored arrays of a dataset.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
        Exactly as given to :func:`create_dataset` (same dtypes and bits).
    """
    with store.read() as session:
        row = _dataset_row(session, dataset_id, owner)
        data, sha256 = blob_data(session, row.blob_id), row.sha256
    arrays = decode_verified(data, sha256, "dataset", dataset_id)
    if set(arrays) != {"X", "y"}:
        raise StorageCorrupted("dataset", dataset_id, f"its stored arrays are {sorted(arrays)}, not X and y")
    return arrays["X"], arrays["y"]


def list_datasets(
    store: Store, owner: str | None = DEFAULT_OWNER, limit: int = 50, cursor: str | None = None
) -> tuple[list[DatasetRecord], str | None]:
    """One page of ``owner``'s datasets, newest first.

    Returns
    -------
    items : list of DatasetRecord
        At most ``limit``, all created before the dataset ``cursor`` (when given).
    next_cursor : str or None
        The cursor of the next page, or None on the last page.

    Raises
    ------
    ValueError
        When ``limit`` is not positive or ``cursor`` is not a dataset id.
    """
    with store.read() as session:
        stmt = select(DatasetRow)
        if owner is not None:
            stmt = stmt.where(DatasetRow.owner == owner)
        rows, next_cursor = paginate(session, stmt, DatasetRow.id, "dataset", limit, cursor)
        return [DatasetRecord.from_row(row) for row in rows], next_cursor


def delete_dataset(store: Store, dataset_id: str, *, owner: str | None = None) -> None:
    """Delete a dataset and its blob, even on a full disk (``service.store.space``); see below."""
    return freeing(store, lambda: _delete_dataset(store, dataset_id, owner=owner))


def _delete_dataset(store: Store, dataset_id: str, *, owner: str | None = None) -> None:
    """Delete a dataset and its blob.

    Finished jobs that used it keep their history with ``dataset_id`` set to None (their resolved
    configuration still names it, as a record).

    Raises
    ------
    NotFound
    Conflict
        While a queued, running or cancelling job uses it, naming those jobs.
    """
    with store.write() as session:
        # FOR UPDATE (PostgreSQL) conflicts with the key-share lock a concurrent job insert takes on this
        # row, so no job can start using the dataset between the check below and the delete.
        row = _dataset_row(session, dataset_id, owner, lock=True)
        users = list(
            session.scalars(
                select(JobRow.id)
                .where(JobRow.dataset_id == dataset_id, JobRow.status.in_(ACTIVE_STATUSES))
                .order_by(JobRow.id)
            )
        )
        if users:
            shown = ", ".join(users[:10]) + (f" and {len(users) - 10} more" if len(users) > 10 else "")
            raise Conflict(
                f"dataset {dataset_id!r} is used by {len(users)} queued or running job(s): {shown};"
                " cancel them or let them end first"
            )
        blob_id = row.blob_id
        session.execute(delete(DatasetRow).where(DatasetRow.id == dataset_id))
        delete_blob(session, blob_id)
