"""Predictions of a stored model, on rows of X, a stored dataset or a grid, with the original class labels."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.models import predict as engine_predict
from engine.preparation import Standardization
from service.errors import NotFound, field_error
from service.http.arrays import to_array
from service.http.body import JSONBody, validate
from service.http.responses import ensure_finite
from service.http.schemas.models import GridSpec, PredictRequest
from service.services import admission
from service.services.models.access import Array, LoadedModel, load_model
from service.settings import Settings
from service.store import ModelRecord, Store, get_dataset, load_dataset_arrays


def predict(
    store: Store, settings: Settings, model_id: str, body: JSONBody, *, owner: str | None
) -> dict[str, Any]:
    """POST /v1/models/{id}/predict: predictions (original class labels) and probabilities for classifiers.

    X is cast to the parameters' dtype, standardized with the stored mean and scale, and run through
    ``engine.models.predict``, exactly as the training job's own evaluation does.
    """
    # The model first: an unknown id is a 404 whatever the body.
    model = load_model(store, model_id, owner=owner)
    request = validate(PredictRequest, body)
    X = predict_inputs(store, settings, request, body, model.record, owner=owner)
    admission.admit_predict(settings, n_rows=X.shape[0], layer_sizes=model.architecture.layer_sizes)
    return predict_arrays(model, X)


def predict_inputs(
    store: Store,
    settings: Settings,
    request: PredictRequest,
    body: JSONBody,
    record: ModelRecord,
    *,
    owner: str | None,
) -> Array:
    """The rows a PredictRequest names (X, a dataset's X, or a grid), checked against the model's features."""
    if request.dataset_id is not None:
        return _dataset_inputs(store, request.dataset_id, record, owner)
    if request.grid is not None:
        return grid_points(request.grid, record.n_features, settings.max_array_elements)
    X = to_array(
        request.X, "X", ndim=2, max_elements=settings.max_array_elements, scan_booleans=body.scan_booleans
    )
    if X.shape[1] != record.n_features:
        raise field_error(
            "X", f"has {X.shape[1]} features (columns) but model {record.id!r} takes {record.n_features}"
        )
    return X


def grid_points(grid: GridSpec, n_features: int, max_elements: int) -> Array:
    """The points of ``grid`` as rows, shape (prod(num), n_features), the first feature varying fastest."""
    if len(grid.num) != n_features:
        raise field_error("grid", f"has {len(grid.num)} features but the model takes {n_features}")
    if grid.n_points * n_features > max_elements:
        raise field_error(
            "grid",
            f"has {grid.n_points} points of {n_features} features, more than the limit of {max_elements}"
            " numbers (DESCENT_MAX_ARRAY_ELEMENTS)",
        )
    axes = [np.linspace(a, b, n) for a, b, n in zip(grid.start, grid.stop, grid.num, strict=True)]
    # meshgrid over the reversed axes with "ij" indexing makes the last of them, the first feature,
    # vary fastest when raveled.
    mesh = np.meshgrid(*axes[::-1], indexing="ij")
    return np.stack([m.ravel() for m in mesh[::-1]], axis=1)


def _dataset_inputs(store: Store, dataset_id: str, record: ModelRecord, owner: str | None) -> Array:
    try:
        dataset = get_dataset(store, dataset_id, owner=owner)
        X, _ = load_dataset_arrays(store, dataset_id, owner=owner)
    except NotFound:
        raise field_error("dataset_id", f"names no dataset: {dataset_id!r} was not found") from None
    if dataset.n_features != record.n_features:
        raise field_error(
            "dataset_id",
            f"dataset {dataset_id!r} has {dataset.n_features} features but model {record.id!r} takes"
            f" {record.n_features}",
        )
    return X


def predict_arrays(model: LoadedModel, X: Array) -> dict[str, Any]:
    """Predict on raw X of shape (n_samples, n_features).

    Returns
    -------
    content : dict
        ``predictions`` (class labels or values) and, for classifiers, ``probabilities`` (binary: of
        classes[1], shape (n_samples,); multiclass: shape (n_samples, n_classes)) and ``classes``.
    """
    record = model.record
    dtype = model.parameters.flat.dtype
    with np.errstate(all="ignore"):
        X = np.asarray(X, dtype=dtype)
        if not np.isfinite(X).all():
            raise field_error("X", f"has values beyond the range of {dtype}, the model's dtype")
        std = record.standardization
        if std is not None:
            mean, scale = (np.asarray(std[k], dtype=dtype) for k in ("mean", "scale"))
            X = Standardization(mean, scale).apply(X)
        outputs, probabilities = engine_predict(model.architecture, model.parameters, X)
    content: dict[str, Any]
    if record.classes is None:
        # Regression values; multilabel: 0 or 1 per label, with each label's probability.
        content = {"predictions": outputs}
        if probabilities is not None:
            content["probabilities"] = probabilities
    else:
        classes = record.classes
        if all(isinstance(c, str) for c in classes):
            labels: Any = [classes[i] for i in outputs.tolist()]
        else:
            labels = np.asarray(classes)[outputs]
        if probabilities is not None and record.task == "binary" and probabilities.ndim == 2:
            probabilities = probabilities[:, 1]
        content = {"predictions": labels, "probabilities": probabilities, "classes": classes}
    ensure_finite(content)
    return content
