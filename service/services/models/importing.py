"""Imports of a model's export (JSON or ``.npz``, never pickle), checked in full before it is stored.

Format marker, architecture (known activations, consistent layers), task and classes, standardization,
and every parameter's name, shape, dtype and finiteness. The parameters are kept bit for bit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import orjson
from pydantic import ValidationError

from engine.architecture import MODEL_TYPES
from engine.losses import LOSSES
from engine.models import Architecture, build_architecture
from service.errors import field_error, validation_error
from service.http.arrays import to_array
from service.http.body import JSONBody, parse_json, validate
from service.http.npz import read_npz
from service.http.schemas.models import ModelDocument, ModelMeta
from service.runners.artifacts import architecture_json, parameter_arrays, parameters_from_arrays
from service.services.datasets.labels import check_class_names
from service.services.idempotency import Scope, check_key, create_once
from service.services.identity.quotas import check_room, estimate_stored_bytes
from service.services.models.access import Array
from service.services.models.export import NPZ_META
from service.settings import Settings
from service.store import Claim, ModelRecord, Store, create_model, get_model

IDEMPOTENCY_SCOPE = "POST /v1/models"
_DTYPES = {"float32": np.float32, "float64": np.float64}


def import_model(
    store: Store,
    settings: Settings,
    kind: Literal["json", "npz"],
    content_type: str,
    raw: bytes,
    *,
    owner: str,
    idempotency_key: str | None = None,
) -> tuple[ModelRecord, bool]:
    """POST /v1/models: store the export in ``raw``, unless the Idempotency-Key already did.

    Returns
    -------
    record : ModelRecord
    replayed : bool
        True when the key had already imported ``record`` with the same request (content type and body).

    Raises
    ------
    InvalidInput, PayloadTooLarge
        For an export that does not make a model, or a bad key.
    Conflict
        409 when the key was used with a different request, its model has since been deleted, or a
        concurrent request with the key is still importing.
    """
    key = check_key(idempotency_key)
    fingerprint = ""
    if key is not None:
        fingerprint = hashlib.sha256(content_type.strip().lower().encode() + b"\n\n" + raw).hexdigest()

    def create(claim: Claim | None) -> ModelRecord:
        if kind == "json":
            return import_json(store, settings, parse_json(raw), owner=owner, claim=claim)
        return import_npz(store, settings, raw, owner=owner, claim=claim)

    scope = Scope(IDEMPOTENCY_SCOPE, "model", lambda model_id: get_model(store, model_id, owner=owner))
    return create_once(
        store, owner, scope, key, fingerprint, create, status_code=201, wait_s=settings.idempotency_wait_s
    )


def import_json(
    store: Store, settings: Settings, body: JSONBody, *, owner: str, claim: Claim | None = None
) -> ModelRecord:
    """POST /v1/models with a JSON ``descent.model/v1`` document."""
    document = validate(ModelDocument, body)
    architecture = _architecture(document, settings)
    _check_names(architecture, document.parameters)
    dtype = _DTYPES[document.dtype]
    limit, scan = settings.max_array_elements, body.scan_booleans
    arrays: dict[str, Array] = {}
    for name, value in document.parameters.items():
        where = f"parameters.{name}"
        values = to_array(value, where, ndim=(1, 2), max_elements=limit, scan_booleans=scan)
        with np.errstate(over="ignore"):
            array = values.astype(dtype)
        if not np.isfinite(array).all():
            raise field_error(where, f"has values beyond the range of {document.dtype}")
        arrays[name] = array
    check_room(store, settings, models=1, nbytes=estimate_stored_bytes(*arrays.values()))
    return _store_import(store, settings, document, architecture, arrays, owner=owner, claim=claim)


def import_npz(
    store: Store, settings: Settings, raw: bytes, *, owner: str, claim: Claim | None = None
) -> ModelRecord:
    """POST /v1/models with the ``.npz`` export: member ``meta`` (JSON) and the parameter arrays."""
    arrays = read_npz(raw, max_elements=settings.max_array_elements)
    meta_bytes = arrays.pop(NPZ_META, None)
    if meta_bytes is None or meta_bytes.dtype != np.uint8 or meta_bytes.ndim != 1:
        raise field_error(NPZ_META, "must be a member holding the model's JSON description as uint8 bytes")
    try:
        data = orjson.loads(meta_bytes.tobytes())
        meta = ModelMeta.model_validate(data)
    except orjson.JSONDecodeError as exc:
        raise field_error(NPZ_META, f"is not valid JSON: {exc.msg}") from None
    except ValidationError as exc:
        raise validation_error(
            exc.errors(include_input=False, include_url=False), prefix=("body", NPZ_META)
        ) from None
    for name, array in arrays.items():
        if array.dtype != _DTYPES[meta.dtype]:
            raise field_error(name, f"has dtype {array.dtype} but the model's dtype is {meta.dtype}")
        if not np.isfinite(array).all():
            raise field_error(name, "must hold finite numbers only, found NaN or infinity")
    architecture = _architecture(meta, settings)
    _check_names(architecture, arrays)
    check_room(store, settings, models=1, nbytes=estimate_stored_bytes(*arrays.values()))
    return _store_import(store, settings, meta, architecture, arrays, owner=owner, claim=claim)


def _architecture(meta: ModelMeta, settings: Settings) -> Architecture:
    arch = meta.architecture
    if arch.n_features is not None and arch.n_features != meta.n_features:
        raise field_error(
            "architecture.n_features", f"is {arch.n_features} but the model's n_features is {meta.n_features}"
        )
    units = [layer.units for layer in arch.layers]
    activations = [layer.activation for layer in arch.layers]
    model_type = MODEL_TYPES[arch.type]
    if model_type.output is not None:  # a single-layer type: its one layer is fixed by the type
        activation, fewest, most = model_type.output, model_type.min_outputs, model_type.max_outputs
        wanted = f"{fewest} unit" if fewest == most else f"at least {fewest} unit(s)"
        if (
            len(units) != 1
            or activations[0] != activation
            or units[0] < fewest
            or units[0] > (most or units[0])
        ):
            raise field_error(
                "architecture.layers",
                f"of a {arch.type} must be one {activation} layer with {wanted}, got"
                f" {[layer.model_dump(exclude_none=True) for layer in arch.layers]}",
            )
    try:
        # build_architecture gives the loss the output activation pairs with, for when none is given.
        paired = build_architecture(
            "mlp",
            meta.n_features,
            units[-1],
            hidden_layers=units[:-1],
            activation=activations[:-1],
            activation_params=[layer.params or {} for layer in arch.layers[:-1]],
            output_activation=activations[-1],
            output_params=arch.layers[-1].params,
        )
        architecture = Architecture(
            arch.type,
            paired.layer_sizes,
            paired.activations,
            arch.loss or paired.loss,
            paired.activation_params,
        )
    except ValueError as exc:
        raise field_error("architecture", str(exc)) from None
    # Classification losses read the output as probabilities, so they need the activation that makes them.
    output = LOSSES[architecture.loss].output
    if output is not None and activations[-1] != output:
        raise field_error(
            "architecture.loss",
            f"{architecture.loss} needs a {output} output layer, got {activations[-1]}",
        )
    if architecture.n_parameters > settings.max_array_elements:
        raise field_error(
            "architecture",
            f"has {architecture.n_parameters} parameters; the limit is {settings.max_array_elements}"
            " (setting max_array_elements)",
        )
    return architecture


def _check_task(meta: ModelMeta, architecture: Architecture) -> list[Any] | None:
    """Check task, output layer and classes agree; return the classes."""
    loss, k = architecture.loss, architecture.n_outputs
    if meta.task == "binary":
        fits = (loss == "binary_cross_entropy" and k == 1) or (loss == "cross_entropy" and k == 2)
        want = "one binary_cross_entropy output or two cross_entropy (softmax) outputs"
        n_classes = 2
    elif meta.task == "multiclass":
        fits = loss == "cross_entropy" and k >= 2
        want = "a cross_entropy (softmax) output with one unit per class"
        n_classes = k
    elif meta.task == "multilabel":
        fits = loss == "binary_cross_entropy"
        want = "binary_cross_entropy (sigmoid) outputs, one per label"
        n_classes = 0
    else:
        fits = not architecture.is_classifier
        want = "an output trained without a classification loss"
        n_classes = 0
    if not fits:
        raise field_error("task", f"{meta.task!r} needs {want}; the architecture has {k} {loss} output(s)")
    classes = meta.classes
    if n_classes == 0:
        if classes is not None:
            raise field_error("classes", f"must be null for a {meta.task} model, got {classes}")
        return None
    if classes is None or len(classes) != n_classes:
        got = "null" if classes is None else f"{len(classes)}"
        raise field_error(
            "classes", f"must list the {n_classes} class labels of a {meta.task} model, got {got}"
        )
    if len({(type(c) is str, c) for c in classes}) != len(classes):
        raise field_error("classes", f"must be distinct, got {classes}")
    if len({type(c) is str for c in classes}) != 1:
        raise field_error("classes", f"must be all numbers or all strings, got {classes}")
    return list(classes)


def _standardization(meta: ModelMeta) -> dict[str, list[float]] | None:
    std = meta.standardization
    if std is None:
        return None
    for name in ("mean", "scale"):
        values = getattr(std, name)
        if len(values) != meta.n_features:
            raise field_error(
                f"standardization.{name}",
                f"has {len(values)} entries but the model has {meta.n_features} features",
            )
    if any(s == 0 for s in std.scale):
        raise field_error("standardization.scale", "must not contain 0 (features are divided by it)")
    for name in ("mean", "scale"):
        with np.errstate(over="ignore"):
            values = np.asarray(getattr(std, name), dtype=np.float64).astype(meta.dtype)
        if not np.isfinite(values).all():
            index = int(np.flatnonzero(~np.isfinite(values))[0])
            raise field_error(
                f"standardization.{name}[{index}]",
                f"must be a finite number within the range of {meta.dtype}",
            )
    return {"mean": [float(v) for v in std.mean], "scale": [float(v) for v in std.scale]}


def _check_names(architecture: Architecture, parameters: Mapping[str, Any]) -> None:
    expected = [f"{p}{i}" for i in range(len(architecture.shapes)) for p in "Wb"]
    if set(parameters) != set(expected):
        missing = [n for n in expected if n not in parameters]
        unexpected = sorted(set(parameters) - set(expected))
        raise field_error(
            "parameters",
            f"must be exactly {expected} for this architecture; missing {missing}, unexpected {unexpected}",
        )


def _store_import(
    store: Store,
    settings: Settings,
    meta: ModelMeta,
    architecture: Architecture,
    arrays: Mapping[str, Array],
    *,
    owner: str,
    claim: Claim | None,
) -> ModelRecord:
    classes = _check_task(meta, architecture)
    if classes is not None:
        check_class_names(classes, "classes", settings.max_labels_kb)
    standardization = _standardization(meta)
    try:
        params = parameters_from_arrays(architecture, dict(arrays))
    except ValueError as exc:
        raise field_error("parameters", str(exc)) from None
    return create_model(
        store,
        owner=owner,
        job_id=None,
        architecture=architecture_json(architecture),
        n_features=meta.n_features,
        task=meta.task,
        classes=classes,
        metrics=meta.metrics or {},
        standardization=standardization,
        parameters=parameter_arrays(architecture, params),
        claim=claim,
    )
