"""Models shared by every resource: the problem document, array fields, error responses for the docs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

REF_PREFIX = "#/components/schemas/"
NESTED_NUMBERS = "NestedNumbers"

# A number, or an array of NestedNumbers: any depth. Rectangularity is checked by the service.
NESTED_NUMBERS_SCHEMA: dict[str, Any] = {
    "title": NESTED_NUMBERS,
    "description": "A number, or a rectangular nested array of numbers of any depth.",
    "anyOf": [
        {"type": "number"},
        {"type": "array", "items": {"$ref": REF_PREFIX + NESTED_NUMBERS}, "minItems": 1},
    ],
    "examples": [[[0.5, -1.0], [2.0, 0.0]]],
}
# Extra component schemas that are not pydantic models.
EXTRA_SCHEMAS: dict[str, dict[str, Any]] = {NESTED_NUMBERS: NESTED_NUMBERS_SCHEMA}

_NUMBER = {"type": "number"}
_VECTOR = {"type": "array", "items": _NUMBER, "minItems": 1}
_MATRIX = {"type": "array", "items": _VECTOR, "minItems": 1}


def array_schema(ndim: int | tuple[int, ...] | None, min_items: int = 1) -> dict[str, Any]:
    """JSON schema of a numeric array field: 1-D, 2-D, either, or any depth (None, numbers included).

    ``min_items`` is the least length of the outer array (e.g. a dataset's samples); inner ones hold at
    least one number.
    """
    if ndim is None:
        # NestedNumbers inlined one level (a top-level $ref beside a description confuses pydantic).
        return {"anyOf": NESTED_NUMBERS_SCHEMA["anyOf"]}
    shapes = {1: _VECTOR, 2: _MATRIX}
    dims = (ndim,) if isinstance(ndim, int) else ndim
    branches = [{**shapes[d], "minItems": min_items} for d in dims]
    return branches[0] if len(branches) == 1 else {"anyOf": branches}


def ArrayField(
    ndim: int | tuple[int, ...] | None, description: str, example: Any, *, min_items: int = 1, **kwargs: Any
) -> Any:
    """A ``Field`` for a numeric array converted by ``arrays.to_array``, not by pydantic.

    Use as ``x: Annotated[Any, ArrayField(...)]``; pydantic passes the value through untouched
    (cheap for big arrays) while the docs show the precise array schema. ``min_items`` is documented
    only (pydantic's ``min_length`` would write ``minLength``, a string keyword): the service checks it.
    """
    schema = array_schema(ndim, min_items)
    return Field(description=description, examples=[example], json_schema_extra=schema, **kwargs)


class ErrorItem(BaseModel):
    """One field-level failure of a request."""

    loc: list[str | int] = Field(
        description="Where the failure is: 'body', 'query', 'path' or 'header', then keys and indices.",
        examples=[["body", "X", 1]],
    )
    msg: str = Field(description="What is wrong there.", examples=["has 1 entries but X[0] has 2"])


class ProblemLimit(BaseModel):
    """Which limit a request's estimated cost is over, and by how much (admission by cost)."""

    setting: str = Field(
        description="The environment variable that sets the limit.", examples=["DESCENT_MAX_JOB_MEMORY_MB"]
    )
    limit_bytes: int = Field(description="The limit, in bytes.", examples=[4294967296])
    estimate_bytes: int = Field(description="The request's estimate, in bytes.", examples=[7516192768])
    estimate: dict[str, int] = Field(
        description="The estimate's terms in bytes, and their total.",
        examples=[{"input_bytes": 3200, "parameter_bytes": 16000008, "activation_bytes": 6416000000}],
    )


class ProblemResource(BaseModel):
    """Which stored resource is damaged (``storage-corrupted``)."""

    kind: str = Field(
        description="dataset, model, 'checkpoint of job', 'snapshot of job' or database.", examples=["model"]
    )
    id: str = Field(description="Its id.", examples=["mdl_0661c69d23693fe5b5de1f37"])


class Problem(BaseModel):
    """An RFC 9457 problem document: the body of every error response (``application/problem+json``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "urn:descent:problem:invalid-input",
                    "title": "Invalid Input",
                    "status": 422,
                    "detail": "model.weights has 3 entries but X has 2 columns",
                    "instance": "/v1/gradients",
                    "request_id": "3f1c9b2e-8d7a-4c55-9e0f-2a6b1d4c8e71",
                    "errors": [
                        {"loc": ["body", "model", "weights"], "msg": "has 3 entries but X has 2 columns"}
                    ],
                }
            ]
        }
    )

    type: str = Field(
        description="URI identifying the kind of problem; 'about:blank' for plain HTTP errors.",
        examples=["urn:descent:problem:invalid-input"],
    )
    title: str = Field(description="Short summary of the kind of problem.", examples=["Invalid Input"])
    status: int = Field(description="The HTTP status code.", examples=[422])
    detail: str = Field(
        description="What went wrong in this request, naming the offending value.",
        examples=["X must have 2 dimension(s), got 1 (shape [3])"],
    )
    instance: str = Field(
        description="The request path (empty for a request the server could not parse).",
        examples=["/v1/forward"],
    )
    request_id: str | None = Field(
        None,
        description="The request's X-Request-ID; quote it when reporting a problem.",
        examples=["3f1c9b2e-8d7a-4c55-9e0f-2a6b1d4c8e71"],
    )
    errors: list[ErrorItem] | None = Field(
        None,
        description="Field-level failures, for validation errors.",
        examples=[[{"loc": ["query", "num"], "msg": "Input should be less than or equal to 10000"}]],
    )
    resource: ProblemResource | None = Field(
        None,
        description="For `storage-corrupted` (500): the kind and id of the resource whose stored bytes are"
        " damaged.",
        examples=[{"kind": "model", "id": "mdl_0661c69d23693fe5b5de1f37"}],
    )
    limit: ProblemLimit | None = Field(
        None,
        description="For `over-limit` (413): the setting, its limit and the request's estimate.",
        examples=[
            {
                "setting": "DESCENT_MAX_COMPUTE_MEMORY_MB",
                "limit_bytes": 1073741824,
                "estimate_bytes": 6432003208,
                "estimate": {
                    "input_bytes": 3200,
                    "parameter_bytes": 16000008,
                    "activation_bytes": 6416000000,
                    "total_bytes": 6432003208,
                },
            }
        ],
    )


_PROBLEM_DESCRIPTIONS = {
    400: "Bad request.",
    401: "No API key, or a malformed, unknown or revoked one (`WWW-Authenticate: Bearer`, and the RateLimit "
    "headers of the client address's bucket of failed authentications).",
    403: "The key may not do this: another owner's resources are for admin keys only, or one of the "
    "owner's quotas is reached (`quota-exceeded`; `quota` names it, with the usage and the limit).",
    404: "No such resource.",
    409: "The resource's state does not allow this.",
    413: "The request body, or its estimated memory or response size, is over a configured limit "
    "(the detail names it; `limit` carries the setting and the estimate).",
    406: "The answer holds several arrays, more than one application/x-npy array can: accept"
    " application/x-npz or JSON.",
    415: "The request body is not of an accepted media type (JSON; .npy or .npz where documented).",
    422: "Invalid content: malformed JSON, bad shapes, non-finite numbers, unknown names, overflow.",
    429: "Too many requests: the key's token bucket, or the client address's bucket of failed "
    "authentications, is empty (`rate-limited`, with RateLimit headers), or the job queue is full; retry "
    "after Retry-After seconds.",
    500: "Unexpected error; the detail carries the request id. Type `urn:descent:problem:storage-corrupted`"
    " when stored bytes failed their sha256 check: `resource` names the kind and id; they are never used.",
    503: "A dependency is down; retry after Retry-After seconds.",
    507: "The store's disk is full (`urn:descent:problem:insufficient-storage`); deleting datasets, models"
    " or jobs frees space.",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entries documenting problem+json error answers."""
    return {
        status: {
            "description": _PROBLEM_DESCRIPTIONS[status],
            "content": {"application/problem+json": {"schema": {"$ref": REF_PREFIX + "Problem"}}},
        }
        for status in statuses
    }


def request_body(model: type[BaseModel], examples: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON request body with ``model``'s schema and named examples.

    The schema itself is added to the components by ``service.http.openapi`` (listed in its
    ``DOCUMENTED_MODELS``), as FastAPI never sees the model.
    """
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": REF_PREFIX + model.__name__},
                    "examples": {name: {"summary": name, "value": value} for name, value in examples.items()},
                }
            },
        }
    }


NPY_MEDIA_TYPE = "application/x-npy"
NPZ_MEDIA_TYPE = "application/x-npz"
BINARY_SCHEMA = {"type": "string", "format": "binary"}
_BINARY_BODIES = (
    "JSON; or NumPy arrays: `application/x-npz` (`numpy.savez`) holds the body's arrays as members named"
    " by their JSON path ({members}), the other fields going in query parameters of the same names, each"
    ' value read as JSON when it parses (`derivative=true`, `model={{"type": ...}}`) and as a string'
    " otherwise (`reduction=sum`). Arrays may be float64, float32, int64, int32 or uint8; nothing is"
    " unpickled (object arrays are a 422)."
)


def binary_request(extra: dict[str, Any], *, members: str, npy_field: str | None) -> dict[str, Any]:
    """``extra`` (from ``request_body``) with the ``.npz`` body, and the ``.npy`` body of ``npy_field``."""
    body = extra["requestBody"]
    description = _BINARY_BODIES.format(members=members)
    if npy_field is not None:
        description += f" `application/x-npy` (`numpy.save`) is `{npy_field}` alone."
        body["content"][NPY_MEDIA_TYPE] = {"schema": BINARY_SCHEMA}
    body["content"][NPZ_MEDIA_TYPE] = {"schema": BINARY_SCHEMA}
    body["description"] = description
    return extra


def binary_answers(description: str, *, npy_field: str | None) -> dict[int | str, dict[str, Any]]:
    """The 200 answer's ``.npz`` (every field, by its JSON path) and ``.npy`` (``npy_field``) forms."""
    text = (
        f"{description} With `Accept: application/x-npz`, every field as an array named by its JSON path"
        " (numbers and strings as 0-d arrays)"
    )
    content: dict[str, Any] = {NPZ_MEDIA_TYPE: {"schema": BINARY_SCHEMA}}
    if npy_field is not None:
        text += (
            f"; with `Accept: application/x-npy`, `{npy_field}` alone (406 when the answer holds other"
            " arrays)"
        )
        content[NPY_MEDIA_TYPE] = {"schema": BINARY_SCHEMA}
    return {200: {"description": text + ".", "content": content}}


def name_parameter(description: str, names: tuple[str, ...], example: str) -> dict[str, Any]:
    """OpenAPI for a ``{name}`` path parameter whose values are checked by the handler (see routers)."""
    return {
        "name": "name",
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "enum": list(names), "title": "Name", "description": description},
        "example": example,
    }


def links(parameter: str, pointer: str, operations: dict[str, str]) -> dict[str, Any]:
    """OpenAPI links from a response to the operations on the resource it names.

    ``links("job_id", "/id", {"cancel": "jobs-cancel"})``: the response's ``id`` is the ``job_id`` of
    POST /v1/jobs/{job_id}/cancel. Clients and stateful testers follow them from one call to the next.
    """
    return {
        name: {
            "operationId": operation_id,
            "parameters": {parameter: f"$response.body#{pointer}"},
            "description": f"The `{parameter}` of {operation_id} is this response's `{pointer[1:]}`.",
        }
        for name, operation_id in operations.items()
    }


def id_pattern(prefix: str) -> str:
    """The shape of an id the store gives out: ``ds_`` and 24 hexadecimal digits for a dataset."""
    return f"^{prefix}_[0-9a-f]{{24}}$"


def exactly_one_of(*groups: tuple[str, ...], **only_with: tuple[str, ...]) -> dict[str, Any]:
    """JSON Schema keywords saying that exactly one group of fields is given (an absent field and a null
    one are alike), so that the document states the rule the request model's validator enforces.

    ``exactly_one_of(("X", "y"), ("generator",), task=("X", "y"))``: X and y together, or a generator,
    never both; ``task`` only beside X and y.
    """
    every = [name for group in groups for name in group]
    branches = []
    for group in groups:
        absent = [name for name in every if name not in group]
        absent += [name for name, partners in only_with.items() if not set(partners) & set(group)]
        branches.append(
            {
                "required": list(group),
                "properties": {
                    **{name: {"not": {"type": "null"}} for name in group},
                    **{name: {"type": "null"} for name in absent},
                },
            }
        )
    return {"oneOf": branches}
