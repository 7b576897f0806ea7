"""The /v1/datasets resource: upload (JSON, CSV, .npz) or generate, list, read, delete."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Header, Path, Query, Request
from starlette.responses import Response, StreamingResponse

from service.errors import UnsupportedMediaType
from service.http import binary
from service.http.deps import OwnerFilterDep, ScopeDep, SettingsDep, StoreDep
from service.http.media import (
    CSV_MEDIA_TYPE,
    JSON_MEDIA_TYPE,
    NPZ_MEDIA_TYPE,
    OCTET_STREAM_MEDIA_TYPE,
    content_kind,
    preferred_media_type,
)
from service.http.responses import JSONResponse
from service.http.routers.params import CursorQuery, IdempotencyKeyHeader, LimitQuery
from service.http.schemas.common import links, problem_responses, request_body
from service.http.schemas.datasets import (
    DATASET_ID_EXAMPLE,
    DEFAULT_NAME,
    LABEL_PATTERN,
    Dataset,
    DatasetCreate,
    DatasetData,
    DatasetPage,
)
from service.services import datasets
from service.services.pagination import DEFAULT_LIMIT
from service.vocabulary import Task

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

NPZ_MEDIA_TYPES = (NPZ_MEDIA_TYPE, OCTET_STREAM_MEDIA_TYPE)
_CSV_CHARSETS = ("utf-8", "utf8", "us-ascii", "ascii")

DatasetIdPath = Annotated[
    str, Path(description="The dataset's id, as returned when it was created.", examples=[DATASET_ID_EXAMPLE])
]

_BINARY_SCHEMA = {"type": "string", "format": "binary"}
_CREATE_BODY = request_body(
    DatasetCreate,
    {
        "arrays (task inferred: binary)": {
            "name": "and",
            "X": [[0, 0], [0, 1], [1, 0], [1, 1]],
            "y": [0, 0, 0, 1],
        },
        "string labels": {"name": "pets", "X": [[4.1, 30], [9.5, 60], [3.8, 25]], "y": ["cat", "dog", "cat"]},
        "integer targets as regression": {
            "name": "counts",
            "X": [[1], [2], [3]],
            "y": [2, 4, 7],
            "task": "regression",
        },
        "generator": {
            "name": "moons",
            "generator": {"kind": "moons", "n_samples": 400, "noise": 0.1, "seed": 7},
        },
    },
)
_CREATE_BODY["requestBody"]["content"].update(
    {
        CSV_MEDIA_TYPE: {
            "schema": {"type": "string"},
            "example": "sepal_length,sepal_width,species\n5.1,3.5,setosa\n7.0,3.2,versicolor\n",
        },
        **{media: {"schema": _BINARY_SCHEMA} for media in NPZ_MEDIA_TYPES},
    }
)
_CREATE_BODY["requestBody"]["description"] = (
    "One of: JSON (`X`/`y` arrays or a `generator`); `text/csv` (UTF-8, a header row, one sample per row,"
    " numeric feature columns; the label column is `?label=`, by default the last); an `.npz` archive"
    " (`numpy.savez`) holding arrays `X` and `y`, as `application/x-npz` or `application/octet-stream`."
    " The query parameters `name`, `label` and `task` apply to every kind of body."
)
_LOCATION = {
    "description": "The dataset's URL.",
    "schema": {"type": "string"},
    "example": "/v1/datasets/ds_06231f0e9d8c7b6a5f4e3d2c",
}
_REPLAYED = {
    "description": "'true': the Idempotency-Key had already created this dataset.",
    "schema": {"type": "string"},
    "example": "true",
}


_BODY_FORMATS = {
    JSON_MEDIA_TYPE: "json",
    CSV_MEDIA_TYPE: "csv",
    NPZ_MEDIA_TYPE: "npz",
    OCTET_STREAM_MEDIA_TYPE: "npz",
}


def _body_kind(content_type: str | None) -> str:
    kind, params = content_kind(content_type, _BODY_FORMATS)
    if kind == "csv":
        charset = params.get("charset", "utf-8")
        if charset not in _CSV_CHARSETS:
            raise UnsupportedMediaType(f"CSV must be UTF-8 (charset=utf-8), got charset={charset}")
    return kind


@router.post(
    "",
    operation_id="datasets-create",
    status_code=201,
    response_model=Dataset,
    summary="Create a dataset",
    responses={
        201: {
            "description": "The stored dataset.",
            "headers": {"Location": _LOCATION},
            "links": links(
                "dataset_id",
                "/id",
                {"get": "datasets-get", "data": "datasets-data", "delete": "datasets-delete"},
            ),
        },
        200: {
            "description": "A replay: the Idempotency-Key was already used with the same request, and this"
            " is the dataset it created then (no second copy is made).",
            "model": Dataset,
            "headers": {"Location": _LOCATION, "Idempotent-Replayed": _REPLAYED},
        },
        **problem_responses(409, 413, 415, 422, 507),
    },
    openapi_extra=_CREATE_BODY,
)
async def create_dataset(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    name: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="The dataset's name, for every kind of body. A JSON body may name its dataset in"
            " its `name` field instead: this parameter, when given, takes that field's place. Without"
            f" either the name is {DEFAULT_NAME!r}.",
            examples=["iris"],
        ),
    ] = None,
    label: Annotated[
        str | None,
        Query(
            min_length=1,
            # Documented, and checked by the service, which says what is wrong in words.
            json_schema_extra={"pattern": LABEL_PATTERN},
            description="The name of the label column, for every kind of body. CSV: the column that"
            " holds the labels (default: the last column); it keeps its name. JSON (X and y, or a"
            " generator) and `.npz`: the name of the label column in the dataset's CSV form"
            " (`GET /v1/datasets/{id}/data` with `Accept: text/csv`, whose feature columns are x0 …"
            " x{D-1}; default 'y'), or of its columns `<label>0` … `<label>{k-1}` when each sample has"
            " k labels or targets; it is shown in the dataset's `source`. A label column that would"
            " take a feature column's name (such as x0) is a 422.",
            examples=["species"],
        ),
    ] = None,
    task: Annotated[
        Task | None,
        Query(
            description="Override the inferred task, for every kind of body: of the labels of a CSV or"
            " `.npz` upload, of a JSON body's y (in place of the body's `task` field), or of the labels"
            " a generator draws (e.g. 'regression' makes xor's 0/1 labels targets). Labels that do not"
            " fit it are a 422, as in the body (e.g. 'binary' for 3 classes).",
            examples=["multiclass"],
        ),
    ] = None,
    idempotency_key: Annotated[
        IdempotencyKeyHeader,
        Header(
            alias="Idempotency-Key",
            description="Sending the same key again with the same request (content type, query and body)"
            " answers 200 with the dataset the key first created, and `Idempotent-Replayed: true`,"
            " instead of storing a second copy; the same key with a different request is a 409. Use a"
            " new key (a UUID, say) for each dataset; the document gives no example value to copy.",
        ),
    ] = None,
) -> Response:
    """Store a dataset sent as JSON arrays, CSV or `.npz`, or drawn from a seeded generator.

    Classification labels may be numbers or strings; they are stored as class indices into the sorted
    `classes`. Without a `task`, strings and integers with at most 100 distinct values make a
    classification dataset (binary for 2 classes), anything else regression.
    """
    content_type = request.headers.get("content-type")
    kind = _body_kind(content_type)
    datasets.check_query(request.query_params.keys())
    upload = datasets.Upload(
        kind,
        content_type or "",
        await request.body(),
        request.query_params.multi_items(),
        name=name,
        label=label,
        task=task,
    )

    def work() -> Response:
        record, replayed = datasets.create(store, settings, upload, idempotency_key=idempotency_key)
        headers = {"Location": f"{router.prefix}/{record.id}"}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(
            datasets.dataset_json(record), status_code=200 if replayed else 201, headers=headers
        )

    return await anyio.to_thread.run_sync(work, limiter=request.app.state.compute_limiter)


@router.get(
    "",
    operation_id="datasets-list",
    response_model=DatasetPage,
    summary="List datasets",
    responses=problem_responses(403, 422),
)
async def list_datasets(
    store: StoreDep,
    owner: OwnerFilterDep,
    limit: Annotated[int, LimitQuery("Most datasets on the page.")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        CursorQuery("`next_cursor` of the previous page; omit for the first page.", DATASET_ID_EXAMPLE),
    ] = None,
) -> Response:
    """Datasets, newest first, a page at a time: follow `next_cursor` until it is null."""

    def page() -> Response:
        return JSONResponse(datasets.list_page(store, owner=owner, limit=limit, cursor=cursor))

    return await anyio.to_thread.run_sync(page)


@router.get(
    "/{dataset_id}",
    operation_id="datasets-get",
    response_model=Dataset,
    summary="Get a dataset",
    responses=problem_responses(404, 422),
)
async def get_dataset(dataset_id: DatasetIdPath, store: StoreDep, owner: ScopeDep) -> Response:
    """The dataset's description: size, task, classes and their counts, hash, origin."""
    document = await anyio.to_thread.run_sync(lambda: datasets.read(store, dataset_id, owner=owner))
    return JSONResponse(document)


_DATA_MEDIA_TYPES = (JSON_MEDIA_TYPE, CSV_MEDIA_TYPE, NPZ_MEDIA_TYPE)


@router.get(
    "/{dataset_id}/data",
    operation_id="datasets-data",
    response_model=DatasetData,
    summary="Get a dataset's arrays",
    responses={
        200: {
            "description": "X and y: as JSON; as CSV (header row, label column as uploaded or named) with"
            " `Accept: text/csv`; as an `.npz` archive of arrays `X` and `y` (string labels as a"
            " string array) with `Accept: application/x-npz`, which uploads again as it is.",
            "content": {
                CSV_MEDIA_TYPE: {"schema": {"type": "string"}, "example": "x0,x1,y\r\n0.0,1.0,cat\r\n"},
                NPZ_MEDIA_TYPE: {"schema": _BINARY_SCHEMA},
            },
        },
        **problem_responses(404, 422, 500),
    },
)
async def dataset_data(
    dataset_id: DatasetIdPath,
    request: Request,
    store: StoreDep,
    owner: ScopeDep,
) -> Response:
    """The dataset's X and y, y as the original labels (class names, not indices).

    `Accept: text/csv` gives CSV: a CSV upload's own header and column order, otherwise columns
    x0 … x{D-1} then the label column, named by the upload's `?label=` (default y; with several
    outputs y0 … y{k-1}, or label0 …). Uploading that CSV again with that `?label=` gives an identical
    dataset (same sha256).
    """
    answer = preferred_media_type(request.headers.get("accept"), _DATA_MEDIA_TYPES)

    def load() -> Response:
        record, X, labels = datasets.load_data(store, dataset_id, owner=owner)
        if answer == NPZ_MEDIA_TYPE:
            return Response(
                binary.npz_bytes({"X": X, "y": labels}),
                media_type=NPZ_MEDIA_TYPE,
                headers={"Content-Disposition": f'attachment; filename="{record.id}.npz"'},
            )
        if answer == CSV_MEDIA_TYPE:
            return StreamingResponse(
                datasets.csv_chunks(record, X, labels),
                media_type=f"{CSV_MEDIA_TYPE}; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{record.id}.csv"'},
            )
        return JSONResponse({"X": X, "y": labels})

    return await anyio.to_thread.run_sync(load, limiter=request.app.state.compute_limiter)


@router.delete(
    "/{dataset_id}",
    operation_id="datasets-delete",
    status_code=204,
    response_class=Response,
    summary="Delete a dataset",
    responses={204: {"description": "Deleted."}, **problem_responses(404, 409, 422)},
)
async def delete_dataset(dataset_id: DatasetIdPath, store: StoreDep, owner: ScopeDep) -> Response:
    """Delete the dataset and its arrays; 409 while a queued, running or cancelling job uses it (the
    detail names those jobs).

    Jobs that have ended keep their history and models: their `dataset_id` becomes null, and their
    resolved `config.dataset_id` still names the deleted dataset, as a record of what they trained on.
    """
    await anyio.to_thread.run_sync(lambda: datasets.delete(store, dataset_id, owner=owner))
    return Response(status_code=204)
