"""The /v1/jobs resource: create training jobs, follow them (state, metrics, events) and cancel them."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Path, Query, Request
from starlette.responses import Response, StreamingResponse

from service.http.body import parse_json, read_json_bytes
from service.http.deps import OwnerFilterDep, RunnerDep, ScopeDep, SettingsDep, StoreDep
from service.http.responses import JSONResponse
from service.http.routers.params import CursorQuery, IdempotencyKeyHeader, LimitQuery
from service.http.schemas.common import REF_PREFIX, links, problem_responses, request_body
from service.http.schemas.jobs import EVENT_STREAM_ITEM_SCHEMA, Job, JobMetrics, JobPage
from service.http.schemas.training import MAX_EPOCHS, TrainingConfig
from service.services import jobs as api
from service.services.pagination import DEFAULT_LIMIT
from service.vocabulary import JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

JobId = Annotated[str, Path(description="The job's id.", examples=["job_0194b2c3d4e5f6a7b8c9d0e1"])]

_EXAMPLES: dict[str, Any] = {
    # A few seconds of training on one core: long enough to watch its events, or to cancel it.
    "MLP on a three-class spiral, a longer run": {
        "dataset": {
            "generator": {"kind": "spiral", "n_samples": 1500, "n_classes": 3, "noise": 0.2, "seed": 3}
        },
        "model": {"type": "mlp", "hidden_layers": [64, 64], "activation": "relu"},
        "optimizer": {"name": "adam", "learning_rate": 0.005},
        "epochs": 1000,
        "batch_size": 32,
        "validation_fraction": 0.2,
        "seed": 7,
    },
    "MLP on an inline XOR generator": {
        "dataset": {"generator": {"kind": "xor", "n_samples": 400, "noise": 0.1, "seed": 1}},
        "model": {"type": "mlp", "hidden_layers": [16], "activation": "tanh"},
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "epochs": 200,
        "batch_size": 32,
        "validation_fraction": 0.2,
        "seed": 42,
    },
    "logistic regression on a stored dataset, full-batch gd": {
        "dataset_id": "ds_0194b2c3d4e5f6a7b8c9d0e1",
        "model": {"type": "logistic_regression"},
        "optimizer": {"name": "gd", "learning_rate": 0.5},
        "epochs": 100,
    },
    "inline arrays, early stopping": {
        "dataset": {"name": "tiny", "X": [[0, 0], [0, 1], [1, 0], [1, 1]], "y": [0, 1, 1, 1]},
        "model": {"type": "logistic_regression"},
        "optimizer": {"name": "sgd", "learning_rate": 0.1},
        "batch_size": 2,
        "epochs": 500,
        "early_stopping": {"patience": 20, "min_delta": 0.0001, "restore_best": True},
    },
}


# What a job's id (and, once it has one, its model's id) lead to.
_JOB_LINKS = links(
    "job_id",
    "/id",
    {
        "get": "jobs-get",
        "cancel": "jobs-cancel",
        "events": "jobs-events",
        "metrics": "jobs-metrics",
        "snapshot": "jobs-snapshot",
        "snapshot_predict": "jobs-snapshot-predict",
        "delete": "jobs-delete",
    },
)
_MODEL_LINKS = links(
    "model_id", "/model_id", {"model": "models-get", "predict": "models-predict", "export": "models-export"}
)


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": REF_PREFIX + name}


@router.post(
    "",
    operation_id="jobs-create",
    status_code=202,
    response_model=Job,
    summary="Create a training job",
    responses={
        202: {
            "description": "The job is queued; `Location` is its URL.",
            "links": _JOB_LINKS,
            "headers": {"Location": {"description": "/v1/jobs/{id}", "schema": {"type": "string"}}},
        },
        200: {
            "description": "A replay of an Idempotency-Key with the same body: the job it first created, in "
            "its current state. With `dry_run=true`: the resolved configuration (a DryRun), nothing stored.",
            "content": {"application/json": {"schema": {"anyOf": [_ref("Job"), _ref("DryRun")]}}},
        },
        **problem_responses(404, 409, 413, 415, 422, 429, 503, 507),
    },
    openapi_extra=request_body(TrainingConfig, _EXAMPLES),
)
async def create_job(
    request: Request,
    store: StoreDep,
    runner: RunnerDep,
    settings: SettingsDep,
    dry_run: Annotated[
        bool,
        Query(
            description="Validate and resolve the configuration (defaults, seed) without queueing.",
            # false, as the examples of the body are jobs to run.
            examples=[False],
        ),
    ] = False,
    idempotency_key: Annotated[
        IdempotencyKeyHeader,
        Header(
            alias="Idempotency-Key",
            description="Makes retries safe: the same key with the same body returns the original job (200); "
            "with a different body, 409. Ignored by dry runs. Use a new key (a UUID, say) for each job; "
            "the document gives no example value to copy.",
        ),
    ] = None,
) -> Response:
    """Queue a training job (202, `Location: /v1/jobs/{id}`).

    Train on a stored dataset (`dataset_id`) or on inline data (`dataset`: X and y, or a generator),
    which is stored as a dataset first. The model type must suit the dataset's task (422 names both),
    a warm start model must exist (404) with the architecture being trained (422), and the queue must
    have room (429 with Retry-After otherwise). `dry_run=true` answers 200 with the resolved
    configuration and stores nothing.
    """
    raw = await read_json_bytes(request)

    def work() -> api.Created:
        body = parse_json(raw)
        return api.create(store, runner, settings, body, idempotency_key=idempotency_key, dry_run=dry_run)

    created = await anyio.to_thread.run_sync(work)
    headers = {"Location": api.location(created.job_id)} if created.job_id else None
    return JSONResponse(created.body, status_code=created.status_code, headers=headers)


@router.get(
    "",
    operation_id="jobs-list",
    response_model=JobPage,
    summary="List jobs",
    responses=problem_responses(403, 422, 503),
)
async def list_jobs(
    store: StoreDep,
    owner: OwnerFilterDep,
    status: Annotated[
        list[JobStatus],
        Query(
            description="Only jobs in this state; repeat it for several states: "
            "`?status=queued&status=running`.",
            examples=[["running"]],
        ),
    ] = [],  # noqa: B006 (FastAPI gives each request a copy)
    limit: Annotated[int, LimitQuery("Jobs per page.")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, CursorQuery("`next_cursor` of the previous page.", "job_0194b2c3d4e5f6a7b8c9d0e1")
    ] = None,
) -> Response:
    """Jobs newest first, one page at a time."""
    page = await anyio.to_thread.run_sync(
        lambda: api.list_page(store, owner, status=status, limit=limit, cursor=cursor)
    )
    return JSONResponse(page)


@router.get(
    "/{job_id}",
    operation_id="jobs-get",
    response_model=Job,
    summary="Get a job",
    responses={
        200: {"description": "The job.", "links": {**_JOB_LINKS, **_MODEL_LINKS}},
        **problem_responses(404, 503),
    },
)
async def get_job(job_id: JobId, store: StoreDep, owner: ScopeDep) -> Response:
    """The job's state, resolved configuration, progress, latest metrics, best epoch, error and model."""
    return JSONResponse(await anyio.to_thread.run_sync(api.read, store, owner, job_id))


@router.get(
    "/{job_id}/metrics",
    operation_id="jobs-metrics",
    response_model=JobMetrics,
    summary="A job's metric history",
    responses=problem_responses(404, 422, 503),
)
async def job_metrics(
    job_id: JobId,
    store: StoreDep,
    owner: ScopeDep,
    since_epoch: Annotated[
        int | None,
        Query(ge=0, le=MAX_EPOCHS, description="Only epochs after this one.", examples=[100]),
    ] = None,
    max_points: Annotated[
        int | None,
        Query(
            ge=2,
            le=100_000,
            description="Downsample evenly to this many epochs (the last one is always "
            "kept); default: every epoch.",
            examples=[200],
        ),
    ] = None,
) -> Response:
    """Per-epoch losses (and accuracies for classifiers) as parallel arrays, for plotting learning curves."""
    history = await anyio.to_thread.run_sync(
        lambda: api.metrics(store, owner, job_id, since_epoch=since_epoch, max_points=max_points)
    )
    return JSONResponse(history)


@router.get(
    "/{job_id}/events",
    operation_id="jobs-events",
    summary="Follow a job (server-sent events)",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "`text/event-stream`: `status`, `progress` and `end` events, each with `id:`, "
            "`event:` and one line of JSON `data:` (StatusEventData, ProgressEventData); `: keep-alive` "
            "comments while idle; the stream closes after `end`.",
            "content": {
                "text/event-stream": {
                    "itemSchema": EVENT_STREAM_ITEM_SCHEMA,
                    "example": (
                        'id: 41\nevent: status\ndata: {"status":"running","attempt":1}\n\n'
                        'id: 42\nevent: progress\ndata: {"epoch":3,"progress":{"epoch":3}}\n\n'
                    ),
                }
            },
        },
        **problem_responses(404, 422, 503),
    },
)
async def job_events(
    request: Request,
    job_id: JobId,
    store: StoreDep,
    owner: ScopeDep,
    last_event_id: Annotated[
        str,
        Header(
            pattern=rf"^\s*[0-9]{{0,{api.EVENT_ID_DIGITS}}}\s*$",
            description="Resume after this event id (sent by EventSource when it reconnects); at most"
            f" {api.EVENT_ID_DIGITS} digits.",
            examples=["42"],
        ),
    ] = "",
    last_event_id_query: Annotated[
        int | None,
        Query(
            alias="last_event_id",
            ge=0,
            le=api.MAX_EVENT_ID,
            description="Resume after this event id (when the header cannot be set); the header wins.",
            examples=[42],
        ),
    ] = None,
) -> Response:
    """Replay the job's events after Last-Event-ID, then stream new ones until the job ends.

    Event ids increase across all jobs, so resuming from the last id seen gives every later event once.
    For a job that has already ended the stream replays its events and closes.
    """
    after = api.parse_last_event_id(last_event_id, last_event_id_query)
    # Checked before streaming, so that an unknown id answers 404 rather than an empty stream.
    hub = getattr(request.app.state, "event_hub", None)
    if hub is not None:
        status = await hub.read(api.status, store, owner, job_id)
        stream = hub.follow(job_id, after, status)
    else:
        await anyio.to_thread.run_sync(api.status, store, owner, job_id)
        stream = api.event_stream(store, job_id, after, stopping=request.app.state.stopping)
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post(
    "/{job_id}/cancel",
    operation_id="jobs-cancel",
    status_code=202,
    response_model=Job,
    summary="Cancel a job",
    responses=problem_responses(404, 409, 503),
)
async def cancel_job(job_id: JobId, store: StoreDep, owner: ScopeDep) -> Response:
    """Stop a job: a queued one is cancelled at once; a running one becomes `cancelling` and its run ends it
    `cancelled`, keeping a model with the best weights so far. 409 when the job has already ended."""
    return JSONResponse(await anyio.to_thread.run_sync(api.cancel, store, owner, job_id), status_code=202)


@router.delete(
    "/{job_id}",
    operation_id="jobs-delete",
    status_code=204,
    response_class=Response,
    summary="Delete a job",
    responses={204: {"description": "Deleted."}, **problem_responses(404, 409, 503)},
)
async def delete_job(job_id: JobId, store: StoreDep, owner: ScopeDep) -> Response:
    """Delete a job that has ended (succeeded, failed or cancelled): its events and metric history go.

    Its model stays (the model's `job_id` becomes null), and so does its dataset. 409 while the job is
    queued, running or cancelling: cancel it first.
    """
    await anyio.to_thread.run_sync(api.delete, store, owner, job_id)
    return Response(status_code=204)
