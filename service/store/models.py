"""Trained or imported models: metadata rows plus their parameters as one ``.npz`` blob."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from service.errors import NotFound
from service.store.blobs import blob_data, decode_verified, delete_blob, encode_npz, put_blob
from service.store.db import Store, jsonable, new_id, paginate, utcnow
from service.store.idempotency import Claim, complete
from service.store.records import ModelRecord
from service.store.space import freeing
from service.store.tables import DEFAULT_OWNER, ModelRow, table
from service.vocabulary import TASKS

MODEL_FIELDS = frozenset(
    {"architecture", "n_features", "task", "classes", "metrics", "standardization", "parameters"}
)


_INSERT_MODEL = insert(table(ModelRow))


def insert_model(
    conn: Connection,
    *,
    owner: str,
    job_id: str | None,
    architecture: Mapping[str, Any],
    n_features: int,
    task: str,
    classes: list[Any] | None,
    metrics: Mapping[str, Any] | None,
    standardization: Mapping[str, Any] | None,
    parameters: Mapping[str, np.ndarray],
) -> ModelRecord:
    """Insert a model and its parameter blob in the caller's transaction (see :func:`create_model`)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
    if isinstance(n_features, bool) or not isinstance(n_features, int | np.integer) or n_features < 1:
        raise ValueError(f"n_features must be a positive integer, got {n_features!r}")
    if not parameters:
        raise ValueError("parameters must hold at least one array, got none")
    _check_finite(parameters, standardization)
    blob_id, sha256 = put_blob(conn, encode_npz(parameters))
    record = ModelRecord(
        id=new_id("model"),
        owner=owner,
        job_id=job_id,
        created_at=utcnow(),
        architecture=jsonable(architecture),
        n_features=int(n_features),
        task=task,
        classes=jsonable(classes),
        metrics=jsonable(metrics or {}),
        standardization=jsonable(standardization),
        blob_id=blob_id,
        sha256=sha256,
    )
    conn.execute(_INSERT_MODEL, {name: getattr(record, name) for name in _MODEL_COLUMNS})
    return record


_MODEL_COLUMNS = tuple(column.name for column in table(ModelRow).columns)


def _check_finite(parameters: Mapping[str, np.ndarray], standardization: Mapping[str, Any] | None) -> None:
    """``ValueError`` for a NaN or infinity in a parameter or the standardization: no such model is stored.

    JSON would keep a non-finite mean or scale as null, which no prediction can use and no import accepts.
    """
    for name, array in parameters.items():
        values = np.asarray(array)
        if values.dtype.kind in "fc" and not np.isfinite(values).all():
            raise ValueError(f"parameter {name} holds non-finite values; a model must be finite to be stored")
    for name, values in (standardization or {}).items():
        numbers = np.asarray(values, dtype=np.float64)
        if not np.isfinite(numbers).all():
            raise ValueError(
                f"standardization {name} holds non-finite values; a model must be finite to be stored"
            )


def create_model(
    store: Store,
    *,
    owner: str = DEFAULT_OWNER,
    job_id: str | None = None,
    architecture: Mapping[str, Any],
    n_features: int,
    task: str,
    classes: list[Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    standardization: Mapping[str, Any] | None = None,
    parameters: Mapping[str, np.ndarray],
    claim: Claim | None = None,
) -> ModelRecord:
    """Store a model: metadata row and parameters (as ``.npz`` bytes) in one transaction.

    Parameters
    ----------
    store : Store
    owner : str
    job_id : str or None
        The job that trained it; None for an imported model.
    architecture : dict
        E.g. ``{"type": "mlp", "layers": [{"units": 16, "activation": "relu"}, ...]}``.
    n_features : int
        Number of input features.
    task : {"binary", "multiclass", "regression"}
    classes : list or None
    metrics : dict or None
    standardization : dict or None
        E.g. ``{"mean": [...], "scale": [...]}`` (lists of length n_features).
    parameters : mapping of str to ndarray
        Named parameter arrays (e.g. ``W0`` of shape (n_features, units), ``b0`` of shape (units,)),
        stored bit for bit.
    claim : Claim, optional
        A reserved Idempotency-Key, completed with the model's id in the transaction that creates it.

    Returns
    -------
    record : ModelRecord
        ``sha256`` is the hash of the stored parameter bytes.

    Raises
    ------
    ValueError
        For an unknown task, a non-positive ``n_features``, no parameters, or an array of object dtype.
    """
    with store.write() as session:
        record = insert_model(
            session.connection(),
            owner=owner,
            job_id=job_id,
            architecture=architecture,
            n_features=n_features,
            task=task,
            classes=classes,
            metrics=metrics,
            standardization=standardization,
            parameters=parameters,
        )
        if claim is not None:
            complete(session, claim, record.id)
        return record


def _model_row(session: Session, model_id: str, owner: str | None) -> ModelRow:
    row = session.get(ModelRow, model_id)
    if row is None or (owner is not None and row.owner != owner):
        raise NotFound.resource("model", model_id)
    return row


def get_model(store: Store, model_id: str, *, owner: str | None = None) -> ModelRecord:
    """The model ``model_id``; ``NotFound`` when missing or, if ``owner`` is given, someone else's."""
    with store.read() as session:
        return ModelRecord.from_row(_model_row(session, model_id, owner))


def load_model_parameters(store: Store, model_id: str, *, owner: str | None = None) -> dict[str, np.ndarray]:
    """The named parameter arrays of a model, exactly as stored, in their stored order."""
    with store.read() as session:
        row = _model_row(session, model_id, owner)
        data, sha256 = blob_data(session, row.blob_id), row.sha256
    return decode_verified(data, sha256, "model", model_id)


def list_models(
    store: Store, owner: str | None = DEFAULT_OWNER, limit: int = 50, cursor: str | None = None
) -> tuple[list[ModelRecord], str | None]:
    """One page of ``owner``'s models, newest first, and the next page's cursor (None on the last page)."""
    with store.read() as session:
        stmt = select(ModelRow)
        if owner is not None:
            stmt = stmt.where(ModelRow.owner == owner)
        rows, next_cursor = paginate(session, stmt, ModelRow.id, "model", limit, cursor)
        return [ModelRecord.from_row(row) for row in rows], next_cursor


def delete_model(store: Store, model_id: str, *, owner: str | None = None) -> None:
    """Delete a model and its parameters, even on a full disk (``service.store.space``)."""
    return freeing(store, lambda: _delete_model(store, model_id, owner=owner))


def _delete_model(store: Store, model_id: str, *, owner: str | None = None) -> None:
    """Delete a model and its parameters; the job that trained it keeps its history, ``model_id`` None."""
    with store.write() as session:
        row = _model_row(session, model_id, owner)
        blob_id = row.blob_id
        session.execute(delete(ModelRow).where(ModelRow.id == model_id))
        delete_blob(session, blob_id)
