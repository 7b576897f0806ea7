"""What a job will train on: a stored dataset, or inline data (arrays or a generator) to store first.

Checked before anything is stored: the model type must suit the data's task, and a warm start model
must have the architecture the job trains.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.datasets import task_of
from service.errors import InvalidInput, NotFound, field_error
from service.http.body import JSONBody
from service.http.schemas.training import InlineDataset, TrainingConfig
from service.runners.artifacts import architecture_from_json
from service.runners.spec import architecture_for, check_task
from service.services import datasets
from service.settings import Settings
from service.store import DatasetRecord, Store, get_dataset, get_model

Array = np.ndarray[Any, Any]

INLINE_PREFIX = "dataset."  # field names of a job's inline data in error messages


@dataclass(frozen=True)
class Target:
    """What a job will train on: a stored dataset (``dataset_id``) or inline data still to be stored."""

    task: str
    n_features: int
    n_classes: int | None
    dataset_id: str | None = None
    X: Array | None = None
    y: datasets.Labels | None = None
    n_outputs: int = 1  # columns of y
    n_samples: int = 0


def target_of(store: Store, settings: Settings, config: TrainingConfig, body: JSONBody) -> Target:
    """The stored dataset the configuration names, or its inline data checked and converted (not stored)."""
    if config.dataset_id is not None:
        record = _stored_dataset(store, config.dataset_id, settings.owner)
        return Target(
            record.task,
            record.n_features,
            _n_classes(record),
            dataset_id=record.id,
            n_outputs=record.n_outputs,
            n_samples=record.n_samples,
        )
    inline = config.dataset
    if inline is None:  # unreachable: the TrainingConfig validator demands one of the two
        raise field_error("dataset", "is required when dataset_id is not given")
    if inline.generator is not None:
        spec = inline.generator
        try:
            task = task_of(spec.kind, spec.n_classes)
        except ValueError as exc:
            raise field_error("dataset.generator", str(exc)) from None
        if inline.task is not None and inline.task != task:
            raise field_error(
                "dataset.task", f"must be {task!r} or absent for generator {spec.kind!r}, got {inline.task!r}"
            )
        n_classes = None if task == "regression" else spec.n_classes or (2 if task == "binary" else 3)
        return Target(task, spec.n_features or 2, n_classes, n_samples=spec.n_samples)
    raw = body.data["dataset"]
    X, y = datasets.arrays_from_json(
        raw["X"], raw["y"], settings, scan_booleans=body.scan_booleans, field_prefix=INLINE_PREFIX
    )
    # What storing the data would refuse, a dry run refuses too.
    datasets.check_min_samples(len(X), f"{INLINE_PREFIX}X")
    if len(y) != len(X):
        raise field_error(f"{INLINE_PREFIX}y", f"has {len(y)} entries but {INLINE_PREFIX}X has {len(X)} rows")
    labels = datasets.encode_labels(y, inline.task, f"{INLINE_PREFIX}y")
    n_classes = len(labels.classes) if labels.classes else None
    n_outputs = 1 if labels.y.ndim == 1 else int(labels.y.shape[1])
    return Target(
        labels.task, int(X.shape[1]), n_classes, X=X, y=y, n_outputs=n_outputs, n_samples=int(X.shape[0])
    )


# Records of the datasets jobs were submitted on lately. A dataset never changes once stored, and the
# transaction that queues a job checks again that it exists and is the owner's, so a record read once
# serves every later job on it: a submit reads no dataset.
_DATASETS: OrderedDict[tuple[int, str], DatasetRecord] = OrderedDict()
_DATASETS_KEPT = 256
_datasets_lock = threading.Lock()


def _stored_dataset(store: Store, dataset_id: str, owner: str) -> DatasetRecord:
    key = (id(store), dataset_id)
    with _datasets_lock:
        record = _DATASETS.get(key)
    if record is None:
        record = get_dataset(store, dataset_id)
        with _datasets_lock:
            _DATASETS[key] = record
            while len(_DATASETS) > _DATASETS_KEPT:
                _DATASETS.popitem(last=False)
    if record.owner != owner:
        raise NotFound.resource("dataset", dataset_id)
    return record


def _n_classes(record: DatasetRecord) -> int | None:
    return len(record.classes) if record.classes else None


def store_inline(store: Store, settings: Settings, inline: InlineDataset, target: Target) -> DatasetRecord:
    """Store a job's inline data as a dataset of its own (the job then refers to it by id)."""
    if inline.generator is not None or target.X is None or target.y is None:
        if inline.generator is None:  # unreachable: target_of converts inline arrays
            raise field_error(INLINE_PREFIX.rstrip("."), "holds no data")
        return datasets.ingest_generator(
            store,
            settings,
            owner=settings.owner,
            name=inline.name,
            spec=inline.generator,
            field_prefix=INLINE_PREFIX,
        )
    return datasets.ingest_arrays(
        store,
        settings,
        owner=settings.owner,
        name=inline.name,
        X=target.X,
        y=target.y,
        task=inline.task,
        source={"kind": "json", "inline_in": "job"},
        field_prefix=INLINE_PREFIX,
    )


def check_model_task(model_type: str, target: Target) -> None:
    """422 at model.type when the model type cannot learn the target's task."""
    try:
        check_task(model_type, target.task, target.n_classes, target.n_outputs)
    except ValueError as exc:
        loc = ["body", "model", "type"]
        raise InvalidInput(f"model.type: {exc}", errors=[{"loc": loc, "msg": str(exc)}]) from None


def check_warm_start(
    store: Store, owner: str, model_id: str, resolved: dict[str, Any], target: Target
) -> None:
    """The warm start model must exist (404) and have the architecture this job trains (422)."""
    record = get_model(store, model_id, owner=owner)
    wanted = architecture_for(resolved, target.task, target.n_features, target.n_classes, target.n_outputs)
    try:
        stored = architecture_from_json(record.architecture)
    except ValueError as exc:
        raise field_error(
            "warm_start_model_id", f"names a model whose architecture is unusable: {exc}"
        ) from None
    if stored.layer_sizes != wanted.layer_sizes or stored.activations != wanted.activations:
        raise field_error(
            "warm_start_model_id",
            f"names model {model_id} with layers {list(stored.layer_sizes)} {list(stored.activations)}, "
            f"but this job trains {list(wanted.layer_sizes)} {list(wanted.activations)}",
        )
