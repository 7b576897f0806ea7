"""Stored models as the API shows them: one, pages of them, loaded for the engine; and deleting one."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.models import Architecture, Parameters
from service.runners.artifacts import architecture_from_json, parameters_from_arrays
from service.services.pagination import page
from service.store import ModelRecord, Store, delete_model, get_model, list_models, load_model_parameters

audit = logging.getLogger("descent.audit")

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class LoadedModel:
    """A stored model ready for the engine.

    Attributes
    ----------
    record : ModelRecord
    architecture : Architecture
    parameters : Parameters
        In the stored dtype.
    arrays : dict of str to ndarray
        The stored arrays W0, b0, … exactly as stored.
    """

    record: ModelRecord
    architecture: Architecture
    parameters: Parameters
    arrays: dict[str, Array]

    @property
    def dtype(self) -> str:
        return str(self.parameters.flat.dtype)


def load_model(store: Store, model_id: str, *, owner: str | None) -> LoadedModel:
    """A stored model's record, architecture and parameters (``NotFound`` for an unknown id)."""
    record = get_model(store, model_id, owner=owner)
    arrays = load_model_parameters(store, model_id, owner=owner)
    architecture = architecture_from_json(record.architecture)
    return LoadedModel(record, architecture, parameters_from_arrays(architecture, arrays), arrays)


def model_json(record: ModelRecord, loaded: LoadedModel | None = None) -> dict[str, Any]:
    """The API's view of a model (the ``Model`` schema); with ``loaded``, its dtype and parameters too."""
    content: dict[str, Any] = {
        "id": record.id,
        "created_at": record.created_at,
        "job_id": record.job_id,
        "architecture": record.architecture,
        "n_features": record.n_features,
        "n_parameters": architecture_from_json(record.architecture).n_parameters,
        "task": record.task,
        "classes": record.classes,
        # How the job that trained it ended is kept with its metrics and shown on its own.
        "job_status": record.metrics.get("job_status"),
        "metrics": {key: value for key, value in record.metrics.items() if key != "job_status"},
        "standardization": record.standardization,
        "sha256": record.sha256,
    }
    if loaded is not None:
        content["dtype"] = loaded.dtype
        content["parameters"] = loaded.arrays
    return content


def read(store: Store, model_id: str, *, owner: str | None, parameters: bool = False) -> dict[str, Any]:
    """The model ``model_id`` as the API shows it, with dtype and parameters if asked; 404 when unknown."""
    if parameters:
        loaded = load_model(store, model_id, owner=owner)
        return model_json(loaded.record, loaded)
    return model_json(get_model(store, model_id, owner=owner))


def list_page(store: Store, *, owner: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
    """One page of models, newest first: ``{"items", "next_cursor"}``."""

    def render(records: Sequence[ModelRecord]) -> list[dict[str, Any]]:
        return [model_json(record) for record in records]

    return page(lambda n, after: list_models(store, owner, n, after), limit, cursor, render)


def delete(store: Store, model_id: str, *, owner: str | None) -> None:
    """Delete the model and its parameters (404 when unknown); the job that trained it keeps its history."""
    delete_model(store, model_id, owner=owner)
    audit.info("model deleted", extra={"model_id": model_id, "owner": owner})
