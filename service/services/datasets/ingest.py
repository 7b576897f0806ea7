"""Ingestion: validate a dataset's arrays (or draw them from a generator), encode its labels, store it.

Every upload format (JSON, CSV, ``.npz``) and a job's inline data end here, so one set of checks and
one stored form apply to all of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.datasets import make_dataset, task_of
from service.errors import InvalidInput, field_error, field_loc
from service.http.schemas.training import GeneratorSpec
from service.services.datasets.csv_format import named_columns
from service.services.datasets.labels import Array, Labels, check_class_names, encode_labels
from service.services.datasets.limits import (
    check_dataset_size,
    check_generator_size,
    check_min_samples,
    check_name,
)
from service.services.identity.quotas import check_room, estimate_stored_bytes
from service.settings import Settings
from service.store import Claim, DatasetRecord, Store, create_dataset


def ingest_arrays(
    store: Store,
    settings: Settings,
    *,
    owner: str,
    name: str,
    X: Array,
    y: Labels,
    task: str | None,
    source: dict[str, Any],
    label: str | None = None,
    field_prefix: str = "",
    claim: Claim | None = None,
) -> DatasetRecord:
    """Validate a dataset's arrays, put them in stored form and store them.

    Parameters
    ----------
    store : Store
    settings : Settings
        Its ``max_dataset_rows``, ``max_dataset_features`` and ``max_dataset_elements`` apply.
    owner : str
    name : str
        1 to 200 characters.
    X : ndarray of shape (n_samples, n_features)
        Real or boolean dtype, finite; stored as float64.
    y : ndarray of shape (n_samples,) or (n_samples, n_outputs), or sequence of str
        Labels or targets: numbers, or strings (class names); several columns for multilabel or
        multi-output data.
    task : {"binary", "multiclass", "multilabel", "regression"} or None
        None infers it from y (see :func:`encode_labels`).
    source : dict
        How the data came to be, stored with it (e.g. ``{"kind": "json"}``).
    label : str, optional
        The name of the label column of data that is not a CSV upload (which names its own columns in
        ``source``): stored in ``source`` as ``label``, with ``columns`` x0 .. x{D-1} then ``label`` (or
        label0 .. label{k-1} for k outputs), the header of the dataset's CSV form.
    field_prefix : str
        Prefix of the field names in error messages, e.g. ``"dataset."`` for data inside a job.
    claim : Claim, optional
        The request's reserved Idempotency-Key, completed in the transaction that stores the dataset.

    Returns
    -------
    DatasetRecord

    Raises
    ------
    QuotaExceeded
        403 when the owner's datasets or stored bytes would pass their quota.
    PayloadTooLarge
        413 when the rows, features or numbers exceed their limit (named in the detail).
    InvalidInput
        422 for a bad shape, dtype or name, non-finite values, fewer than 2 samples, labels that do
        not fit the task (fewer than 2 classes for classification), or a ``label`` that names a feature
        column.
    """
    check_name(name)
    X = _features(X, f"{field_prefix}X", settings)
    y_name = f"{field_prefix}y"
    if isinstance(y, np.ndarray) and y.ndim not in (1, 2):
        raise field_error(
            y_name, f"must have shape (n_samples,) or (n_samples, n_outputs), got shape {list(y.shape)}"
        )
    n_labels = len(y)
    if n_labels != X.shape[0]:
        raise field_error(y_name, f"has {n_labels} entries but X has {X.shape[0]} rows")
    check_class_names(y, y_name, settings.max_labels_kb)
    labels = encode_labels(y, task, y_name)
    if label is not None:
        n_outputs = 1 if labels.y.ndim == 1 else int(labels.y.shape[1])
        source = {**source, "columns": named_columns(label, X.shape[1], n_outputs), "label": label}
    check_room(store, settings, datasets=1, nbytes=estimate_stored_bytes(X, labels.y))
    return create_dataset(
        store,
        owner=owner,
        name=name,
        X=X,
        y=labels.y,
        task=labels.task,
        classes=labels.classes,
        class_counts=labels.class_counts,
        source=source,
        claim=claim,
    )


def _features(X: Array, x_name: str, settings: Settings) -> Array:
    """X checked (shape, dtype, limits, finiteness) and converted to C-contiguous float64."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise field_error(
            x_name, f"must have 2 dimensions (n_samples, n_features), got shape {list(X.shape)}"
        )
    if X.dtype.kind not in "biuf":
        raise field_error(x_name, f"must hold real numbers, got dtype {X.dtype}")
    n_samples, n_features = X.shape
    check_dataset_size(settings, n_samples, n_features)
    check_min_samples(n_samples, x_name)
    if n_features < 1:
        raise field_error(x_name, "must have at least one feature column, got 0")
    X = np.ascontiguousarray(X, dtype=np.float64)
    finite = np.isfinite(X)
    if not finite.all():
        row, col = (int(i) for i in np.argwhere(~finite)[0])
        raise field_error(f"{x_name}[{row}][{col}]", f"must be a finite number, got {X[row, col]}")
    return X


def ingest_generator(
    store: Store,
    settings: Settings,
    *,
    owner: str,
    name: str,
    spec: GeneratorSpec,
    task: str | None = None,
    label: str | None = None,
    field_prefix: str = "",
    claim: Claim | None = None,
) -> DatasetRecord:
    """Draw a dataset with ``make_dataset`` and ``np.random.default_rng(spec.seed)``, and store it.

    Parameters
    ----------
    store : Store
    settings : Settings
    owner : str
    name : str
    spec : GeneratorSpec
        kind, n_samples, noise, n_classes, n_features and seed.
    task : {"binary", "multiclass", "multilabel", "regression"} or None
        The task of the drawn labels, as for uploaded labels (see :func:`ingest_arrays`); None takes the
        generator's (see ``engine.datasets.task_of``).
    label : str, optional
        The label column's name (see :func:`ingest_arrays`).
    field_prefix : str
        Prefix of the field names in error messages.
    claim : Claim, optional
        The request's reserved Idempotency-Key (see :func:`ingest_arrays`).

    Returns
    -------
    DatasetRecord
        Task from the generator's kind unless ``task`` is given; for classification ``classes`` are
        0..K-1.

    Raises
    ------
    InvalidInput
        422 when the generator's settings are inconsistent (e.g. n_classes for 'xor') or ask for more
        rows, features or numbers than the dataset limits allow (the limit is named), or its labels do
        not fit ``task`` (e.g. 'binary' for 3 classes).
    """
    where = f"{field_prefix}generator"
    check_generator_size(settings, spec, where)
    try:
        generated_task = task_of(spec.kind, spec.n_classes)
        X, y = make_dataset(
            spec.kind,
            spec.n_samples,
            noise=spec.noise,
            n_classes=spec.n_classes,
            n_features=spec.n_features,
            rng=np.random.default_rng(spec.seed),
        )
    except ValueError as exc:
        raise InvalidInput(f"{where}: {exc}", errors=[{"loc": field_loc(where), "msg": str(exc)}]) from None
    source = {"kind": "generator", "generator": spec.model_dump(mode="json")}
    return ingest_arrays(
        store,
        settings,
        owner=owner,
        name=name,
        X=X,
        y=y,
        task=task or generated_task,
        source=source,
        label=label,
        # The drawn labels are the generator's y: a task they do not fit is named there.
        field_prefix=f"{where}.",
        claim=claim,
    )
