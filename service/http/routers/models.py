"""The /v1/models resource: list, inspect, predict, export, import, delete."""

from __future__ import annotations

from typing import Annotated, Literal

import anyio.to_thread
from fastapi import APIRouter, Header, Path, Query, Request
from starlette.responses import Response

from service.http.binary import ArrayFields
from service.http.deps import OwnerFilterDep, ScopeDep, SettingsDep, StoreDep
from service.http.media import JSON_MEDIA_TYPE, NPZ_MEDIA_TYPE, OCTET_STREAM_MEDIA_TYPE, content_kind
from service.http.offload import heavy, negotiate
from service.http.responses import JSONResponse
from service.http.routers.params import CursorQuery, IdempotencyKeyHeader, LimitQuery
from service.http.schemas.common import binary_answers, binary_request, links, problem_responses, request_body
from service.http.schemas.models import (
    MODEL_ID_EXAMPLE,
    Model,
    ModelDocument,
    ModelPage,
    Prediction,
    PredictRequest,
)
from service.services import models
from service.services.pagination import DEFAULT_LIMIT

router = APIRouter(prefix="/v1/models", tags=["models"])

_NPZ_MEDIA_TYPES = (NPZ_MEDIA_TYPE, OCTET_STREAM_MEDIA_TYPE)
_IMPORT_FORMATS = {JSON_MEDIA_TYPE: "json", NPZ_MEDIA_TYPE: "npz", OCTET_STREAM_MEDIA_TYPE: "npz"}
_BINARY_SCHEMA = {"type": "string", "format": "binary"}
_PREDICT_ARRAYS = ArrayFields(request="X", response="predictions")

ModelIdPath = Annotated[
    str,
    Path(
        description="The model's id (a job's model_id, or returned by an import).",
        examples=[MODEL_ID_EXAMPLE],
    ),
]

_DOCUMENT_EXAMPLE = {
    "format": "descent.model/v1",
    "architecture": {
        "type": "logistic_regression",
        "n_features": 2,
        "layers": [{"units": 1, "activation": "sigmoid"}],
        "loss": "binary_cross_entropy",
    },
    "n_features": 2,
    "task": "binary",
    "classes": ["cat", "dog"],
    "standardization": {"mean": [0.5, 10.0], "scale": [2.0, 4.0]},
    "dtype": "float64",
    "parameters": {"W0": [[1.5], [-0.5]], "b0": [0.25]},
    "metrics": {},
}
_LINEAR_EXAMPLE = {
    "format": "descent.model/v1",
    "architecture": {
        "type": "linear_regression",
        "n_features": 2,
        "layers": [{"units": 2, "activation": "identity"}],
        "loss": "mean_squared_error",
    },
    "n_features": 2,
    "task": "regression",
    "classes": None,
    "standardization": None,
    "dtype": "float32",
    "parameters": {"W0": [[0.5, -1.0], [1.25, 0.0]], "b0": [0.125, -0.25]},
    "metrics": {"train_loss": 0.02},
}
_SOFTMAX_EXAMPLE = {
    "format": "descent.model/v1",
    "architecture": {
        "type": "softmax_regression",
        "n_features": 2,
        "layers": [{"units": 3, "activation": "softmax"}],
        "loss": "cross_entropy",
    },
    "n_features": 2,
    "task": "multiclass",
    "classes": ["red", "green", "blue"],
    "standardization": None,
    "dtype": "float64",
    "parameters": {"W0": [[1.0, -0.5, -0.5], [0.0, 1.0, -1.0]], "b0": [0.0, 0.1, -0.1]},
    "metrics": {},
}
_LOCATION = {"description": "The model's URL.", "schema": {"type": "string"}, "example": "/v1/models/mdl_…"}
_IMPORT_BODY = request_body(
    ModelDocument,
    {
        "logistic regression with string classes": _DOCUMENT_EXAMPLE,
        "linear regression with two targets, float32": _LINEAR_EXAMPLE,
        "softmax regression over three classes": _SOFTMAX_EXAMPLE,
    },
)
_IMPORT_BODY["requestBody"]["content"].update(
    {media: {"schema": _BINARY_SCHEMA} for media in _NPZ_MEDIA_TYPES}
)
_IMPORT_BODY["requestBody"]["description"] = (
    "The export of GET /v1/models/{id}/export: the JSON document, or the `.npz` archive as"
    " `application/x-npz` (or `application/octet-stream`)."
)


@router.get(
    "",
    operation_id="models-list",
    response_model=ModelPage,
    summary="List models",
    responses=problem_responses(422),
)
async def list_models(
    store: StoreDep,
    owner: OwnerFilterDep,
    limit: Annotated[int, LimitQuery("Most models on the page.")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        CursorQuery("`next_cursor` of the previous page; omit for the first page.", MODEL_ID_EXAMPLE),
    ] = None,
) -> Response:
    """Models, newest first, a page at a time (without parameters): follow `next_cursor` until it is null."""

    def page() -> Response:
        return JSONResponse(models.list_page(store, owner=owner, limit=limit, cursor=cursor))

    return await anyio.to_thread.run_sync(page)


@router.post(
    "",
    operation_id="models-import",
    status_code=201,
    response_model=Model,
    summary="Import a model",
    responses={
        201: {
            "description": "The stored model.",
            "links": links(
                "model_id",
                "/id",
                {
                    "get": "models-get",
                    "predict": "models-predict",
                    "export": "models-export",
                    "delete": "models-delete",
                },
            ),
            "headers": {"Location": _LOCATION},
        },
        200: {
            "description": "A replay: the Idempotency-Key was already used with the same request, and this"
            " is the model it imported then (no second copy is made).",
            "model": Model,
            "headers": {
                "Location": _LOCATION,
                "Idempotent-Replayed": {
                    "description": "'true': the Idempotency-Key had already imported this model.",
                    "schema": {"type": "string"},
                    "example": "true",
                },
            },
        },
        **problem_responses(409, 413, 415, 422, 507),
    },
    openapi_extra=_IMPORT_BODY,
)
async def import_model(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    idempotency_key: Annotated[
        IdempotencyKeyHeader,
        Header(
            alias="Idempotency-Key",
            description="Sending the same key again with the same request (content type and body) answers"
            " 200 with the model the key first imported, and `Idempotent-Replayed: true`, instead of storing"
            " a second copy; the same key with a different request is a 409. Use a new key (a UUID, say)"
            " for each model; the document gives no example value to copy.",
        ),
    ] = None,
) -> Response:
    """Store a model from its export (JSON or `.npz`), checked in full: format marker, architecture
    (known activations, consistent layers), task and classes, standardization, and every parameter's
    name, shape, dtype and finiteness. The parameters are kept bit for bit.
    """
    content_type = request.headers.get("content-type")
    kind: Literal["json", "npz"] = (
        "json" if content_kind(content_type, _IMPORT_FORMATS)[0] == "json" else "npz"
    )
    raw = await request.body()
    owner = settings.owner

    def work() -> Response:
        record, replayed = models.import_model(
            store, settings, kind, content_type or "", raw, owner=owner, idempotency_key=idempotency_key
        )
        headers = {"Location": f"{router.prefix}/{record.id}"}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(models.model_json(record), status_code=200 if replayed else 201, headers=headers)

    return await anyio.to_thread.run_sync(work, limiter=request.app.state.compute_limiter)


@router.get(
    "/{model_id}",
    operation_id="models-get",
    response_model=Model,
    summary="Get a model",
    responses=problem_responses(404, 422),
)
async def get_model(
    model_id: ModelIdPath,
    store: StoreDep,
    owner: ScopeDep,
    include: Annotated[
        Literal["parameters"] | None,
        Query(description="`parameters` adds the dtype and every weight and bias.", examples=["parameters"]),
    ] = None,
) -> Response:
    """The model's architecture, task, classes, metrics, standardization and the job that trained it."""

    document = await anyio.to_thread.run_sync(
        lambda: models.read(store, model_id, owner=owner, parameters=include == "parameters")
    )
    return JSONResponse(document)


@router.delete(
    "/{model_id}",
    operation_id="models-delete",
    status_code=204,
    response_class=Response,
    summary="Delete a model",
    responses={204: {"description": "Deleted."}, **problem_responses(404, 422)},
)
async def delete_model(model_id: ModelIdPath, store: StoreDep, owner: ScopeDep) -> Response:
    """Delete the model and its parameters; the job that trained it keeps its history."""
    await anyio.to_thread.run_sync(lambda: models.delete(store, model_id, owner=owner))
    return Response(status_code=204)


@router.post(
    "/{model_id}/predict",
    operation_id="models-predict",
    response_model=Prediction,
    summary="Predict with a model",
    responses={
        **binary_answers(
            "Predictions, and probabilities and classes for classifiers.", npy_field="predictions"
        ),
        **problem_responses(404, 406, 413, 415, 422, 500, 503),
    },
    openapi_extra=binary_request(
        request_body(
            PredictRequest,
            {
                "rows of X": {"X": [[0.5, 1.0], [-1.0, 0.0]]},
                "a stored dataset": {"dataset_id": "ds_06231f0e9d8c7b6a5f4e3d2c"},
            },
        ),
        members="`X`",
        npy_field="X",
    ),
)
async def predict(
    model_id: ModelIdPath, request: Request, store: StoreDep, settings: SettingsDep, owner: ScopeDep
) -> Response:
    """Predictions for rows of X (raw features: the stored standardization is applied) or a stored dataset.

    Classifiers answer class labels (as in `classes`) and probabilities: for binary models the
    probability of `classes[1]` per row, for multiclass one column per class. A dataset_id that names
    no dataset is a 422.
    """
    exchange = negotiate(request, _PREDICT_ARRAYS)
    raw = await request.body()

    def work() -> Response:
        return exchange.encode(models.predict(store, settings, model_id, exchange.decode(raw), owner=owner))

    return await heavy(request, work)


@router.get(
    "/{model_id}/export",
    operation_id="models-export",
    summary="Export a model",
    response_model=ModelDocument,
    responses={
        200: {
            "description": "The model as a `descent.model/v1` JSON document, or `.npz` with format=npz;"
            " POST /v1/models imports either.",
            "content": {NPZ_MEDIA_TYPE: {"schema": _BINARY_SCHEMA}},
        },
        **problem_responses(404, 422, 500),
    },
)
async def export_model(
    model_id: ModelIdPath,
    store: StoreDep,
    owner: ScopeDep,
    format: Annotated[
        Literal["json", "npz"],
        Query(
            description="json: one JSON document; npz: a numpy archive with the arrays in their dtype.",
            examples=["npz"],
        ),
    ] = "json",
) -> Response:
    """Everything needed to predict elsewhere or import again: architecture, task, classes,
    standardization, dtype and parameters. Import gives back exactly the same model (same sha256).
    """

    def export() -> Response:
        loaded = models.load_model(store, model_id, owner=owner)
        disposition = {"Content-Disposition": f'attachment; filename="{model_id}.{format}"'}
        if format == "npz":
            return Response(models.export_npz(loaded), media_type=NPZ_MEDIA_TYPE, headers=disposition)
        return JSONResponse(models.export_document(loaded), headers=disposition)

    return await anyio.to_thread.run_sync(export)
