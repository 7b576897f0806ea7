"""Reading datasets back (the API's view of one, pages of them, their arrays with the original labels)
and deleting them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from service.services.datasets.labels import Array
from service.services.pagination import page
from service.store import (
    DatasetRecord,
    Store,
    delete_dataset,
    get_dataset,
    list_datasets,
    load_dataset_arrays,
)

audit = logging.getLogger("descent.audit")


def dataset_json(record: DatasetRecord) -> dict[str, Any]:
    """The API's view of a dataset (the ``Dataset`` schema)."""
    return {
        "id": record.id,
        "name": record.name,
        "n_samples": record.n_samples,
        "n_features": record.n_features,
        "n_outputs": record.n_outputs,
        "task": record.task,
        "classes": record.classes,
        "class_counts": record.class_counts,
        "sha256": record.sha256,
        "created_at": record.created_at,
        "source": record.source,
    }


def original_labels(record: DatasetRecord, y: Array) -> Array | list[Any]:
    """The stored y as the labels it was uploaded with: ``classes[y]`` for classification, else y."""
    if record.classes is None:
        return y
    if all(isinstance(c, str) for c in record.classes):
        return [record.classes[i] for i in y.tolist()]
    return np.asarray(record.classes)[y]


def load_data(
    store: Store, dataset_id: str, *, owner: str | None
) -> tuple[DatasetRecord, Array, Array | list[Any]]:
    """A dataset's record, its X and its y as original labels."""
    record = get_dataset(store, dataset_id, owner=owner)
    X, y = load_dataset_arrays(store, dataset_id, owner=owner)
    return record, X, original_labels(record, y)


def read(store: Store, dataset_id: str, *, owner: str | None) -> dict[str, Any]:
    """The dataset ``dataset_id`` as the API shows it; 404 when unknown."""
    return dataset_json(get_dataset(store, dataset_id, owner=owner))


def list_page(store: Store, *, owner: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
    """One page of datasets, newest first: ``{"items", "next_cursor"}``."""

    def render(records: Sequence[DatasetRecord]) -> list[dict[str, Any]]:
        return [dataset_json(record) for record in records]

    return page(lambda n, after: list_datasets(store, owner, n, after), limit, cursor, render)


def delete(store: Store, dataset_id: str, *, owner: str | None) -> None:
    """Delete the dataset and its arrays: 404 when unknown, 409 while a queued or running job uses it."""
    delete_dataset(store, dataset_id, owner=owner)
    audit.info("dataset deleted", extra={"dataset_id": dataset_id, "owner": owner})
