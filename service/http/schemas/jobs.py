"""Response models of the /v1/jobs resource (the request body is ``TrainingConfig``).

Handlers build plain dicts (see ``service.services.jobs``) and answer them with the orjson response;
these models are the OpenAPI document's description of those dicts, and the tests check the two agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.vocabulary import ErrorType, EventKind, JobStatus, Task

_RESOLVED_EXAMPLE: dict[str, Any] = {
    "dataset_id": "ds_0194b2c3d4e5f6a7b8c9d0e1",
    "model": {"type": "mlp", "hidden_layers": [16], "activation": "tanh"},
    "optimizer": {"name": "adam", "learning_rate": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
    "lr_schedule": {"name": "constant"},
    "epochs": 200,
    "batch_size": 32,
    "l2": 0.0,
    "validation_fraction": 0.2,
    "early_stopping": None,
    "seed": 42,
    "dtype": "float64",
    "standardize": False,
    "max_runtime_s": None,
    "max_retries": 2,
    "warm_start_model_id": None,
}


_PROGRESS_EXAMPLE: dict[str, Any] = {
    "epoch": 120,
    "total_epochs": 200,
    "fraction": 0.6,
    "elapsed_s": 3.2,
    "eta_s": 2.1,
}
_METRICS_EXAMPLE: dict[str, Any] = {
    "train_loss": 0.31,
    "val_loss": 0.35,
    "train_accuracy": 0.9,
    "val_accuracy": 0.88,
}
_BEST_EXAMPLE: dict[str, Any] = {"epoch": 97, "metric": "val_loss", "value": 0.29, "val_loss": 0.29}
_ERROR_EXAMPLE: dict[str, Any] = {
    "type": "diverged",
    "detail": "the training loss became non-finite in epoch 3",
}
_TIME_EXAMPLE = "2025-01-31T12:00:00.123456+00:00"


class Progress(BaseModel):
    """How far the run is."""

    model_config = ConfigDict(json_schema_extra={"examples": [_PROGRESS_EXAMPLE]})

    epoch: int = Field(description="Epochs completed.", examples=[120])
    total_epochs: int = Field(description="Epochs the job is configured for.", examples=[200])
    fraction: float = Field(description="epoch / total_epochs, in [0, 1].", examples=[0.6])
    elapsed_s: float | None = Field(
        description="Seconds of training in the current attempt (null before it starts).", examples=[3.2]
    )
    eta_s: float | None = Field(
        description="Estimated seconds left at the current pace (null when unknown).", examples=[2.1]
    )


class LatestMetrics(BaseModel):
    """The metrics of the last recorded epoch; accuracies for classifiers, val_* with validation."""

    model_config = ConfigDict(json_schema_extra={"examples": [_METRICS_EXAMPLE]})

    train_loss: float | None = Field(None, description="Mean training loss of the epoch.", examples=[0.31])
    val_loss: float | None = Field(None, description="Loss on the validation part.", examples=[0.35])
    train_accuracy: float | None = Field(None, description="Accuracy on the training part.", examples=[0.9])
    val_accuracy: float | None = Field(None, description="Accuracy on the validation part.", examples=[0.88])


class Best(BaseModel):
    """The best epoch so far, by validation loss (by training loss without validation)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_BEST_EXAMPLE]})

    epoch: int | None = Field(description="The best epoch (null before the first).", examples=[97])
    metric: Literal["val_loss", "train_loss"] | None = Field(
        None,
        description="What the best epoch is judged by (and early stopping watches): val_loss with a"
        " validation set, train_loss without one; null before the first epoch.",
        examples=["val_loss"],
    )
    value: float | None = Field(
        None, description="The best epoch's value of that metric (its lowest).", examples=[0.29]
    )
    val_loss: float | None = Field(
        description="The best epoch's validation loss; null without a validation set.", examples=[0.29]
    )


class JobError(BaseModel):
    """Why a job failed."""

    model_config = ConfigDict(json_schema_extra={"examples": [_ERROR_EXAMPLE]})

    type: ErrorType = Field(
        description="diverged (non-finite loss or weights; the model keeps the best finite epoch's weights,"
        " which detail names), deadline_exceeded (max_runtime_s passed), invalid_data (the data does not fit"
        " the configuration), worker_lost (its worker died and the retries are used), resource_exhausted (the"
        " job needed more memory than a worker allows, DESCENT_WORKER_MEMORY_MB), storage_corrupted (its"
        " dataset, warm-start model or checkpoint failed its sha256 check in the store), internal.",
        examples=["diverged"],
    )
    detail: str | None = Field(
        description="What happened, e.g. the epoch that diverged.",
        examples=["the training loss became non-finite in epoch 3"],
    )


class Job(BaseModel):
    """A training job."""

    id: str = Field(description="The job's id.", examples=["job_0194b2c3d4e5f6a7b8c9d0e1"])
    status: JobStatus = Field(
        description="queued → running → succeeded | failed | cancelled (via cancelling); terminal states "
        "never change.",
        examples=["running"],
    )
    config: dict[str, Any] = Field(
        description="The resolved training configuration: defaults filled, the dataset by id, the seed used.",
        examples=[_RESOLVED_EXAMPLE],
    )
    config_hash: str = Field(
        description="SHA-256 of the resolved configuration (sorted keys): equal hashes train the same model.",
        examples=["3c5e0f9a" + "0" * 56],
    )
    dataset_id: str | None = Field(
        description="The dataset trained on (null once it is deleted).",
        examples=["ds_0194b2c3d4e5f6a7b8c9d0e1"],
    )
    created_at: datetime = Field(
        description="When the job was created (RFC 3339, UTC).", examples=[_TIME_EXAMPLE]
    )
    started_at: datetime | None = Field(
        description="When its first run started (null while queued).", examples=[_TIME_EXAMPLE]
    )
    finished_at: datetime | None = Field(
        description="When it reached a terminal state (null before).", examples=[None]
    )
    attempt: int = Field(
        description="Runs started so far; more than 1 after a lost worker or a restart.", examples=[1]
    )
    queue_position: int | None = Field(
        description="Queued jobs ahead of this one (0 = next); null unless queued.", examples=[None]
    )
    progress: Progress = Field(
        description="Epochs done, the total, elapsed time and ETA.", examples=[_PROGRESS_EXAMPLE]
    )
    metrics: LatestMetrics = Field(
        description="The last recorded epoch's metrics (null losses before the first).",
        examples=[_METRICS_EXAMPLE],
    )
    best: Best = Field(description="The best epoch so far.", examples=[_BEST_EXAMPLE])
    error: JobError | None = Field(
        None, description="Present when the job failed.", examples=[_ERROR_EXAMPLE]
    )
    model_id: str | None = Field(
        None,
        description="The trained model, present when the job ended with one: succeeded, cancelled (the best "
        "weights so far) or failed diverged (the best finite epoch's weights) or deadline_exceeded.",
        examples=["mdl_0194b2c3d4e5f6a7b8c9d0e1"],
    )


_JOB_EXAMPLE: dict[str, Any] = {
    "id": "job_0194b2c3d4e5f6a7b8c9d0e1",
    "status": "running",
    "config": _RESOLVED_EXAMPLE,
    "config_hash": "3c5e0f9a" + "0" * 56,
    "dataset_id": "ds_0194b2c3d4e5f6a7b8c9d0e1",
    "created_at": _TIME_EXAMPLE,
    "started_at": _TIME_EXAMPLE,
    "finished_at": None,
    "attempt": 1,
    "queue_position": None,
    "progress": _PROGRESS_EXAMPLE,
    "metrics": _METRICS_EXAMPLE,
    "best": _BEST_EXAMPLE,
}


class JobPage(BaseModel):
    """One page of jobs, newest first."""

    items: list[Job] = Field(description="At most `limit` jobs.", examples=[[_JOB_EXAMPLE]])
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page.",
        examples=["job_0194b2c3d4e5f6a7b8c9d0e1"],
    )


class DryRun(BaseModel):
    """What POST /v1/jobs?dry_run=true answers: the job that would be created, without creating it."""

    config: dict[str, Any] = Field(
        description="The resolved configuration (defaults filled, seed chosen). `dataset_id` is null for "
        "inline data, which a real request stores as a dataset first.",
        examples=[_RESOLVED_EXAMPLE],
    )
    config_hash: str = Field(
        description="SHA-256 of the resolved configuration.", examples=["3c5e0f9a" + "0" * 56]
    )
    task: Task | None = Field(
        description="The dataset's task, as the model will be trained on it.", examples=["binary"]
    )
    estimate: dict[str, int] | None = Field(
        None,
        description="The job's estimated peak memory in bytes: its terms (data, parameters with gradient "
        "and optimizer state, one batch's activations, validation), `total_bytes`, and `limit_bytes` "
        "(DESCENT_MAX_JOB_MEMORY_MB), which a job over it is refused with (413).",
        examples=[
            {
                "data_bytes": 19200,
                "parameter_bytes": 4224,
                "batch_bytes": 51200,
                "validation_bytes": 0,
                "total_bytes": 74624,
                "limit_bytes": 4294967296,
            }
        ],
    )


class JobMetrics(BaseModel):
    """A job's per-epoch history as parallel arrays, evenly downsampled to `max_points` when longer."""

    epochs: list[int] = Field(
        description="The epochs shown, increasing; the last recorded one always.", examples=[[1, 2, 3]]
    )
    train_loss: list[float | None] = Field(
        description="Training loss per epoch.", examples=[[0.69, 0.52, 0.41]]
    )
    val_loss: list[float | None] = Field(
        description="Validation loss per epoch (null without validation).", examples=[[0.7, 0.55, 0.45]]
    )
    train_accuracy: list[float | None] | None = Field(
        None, description="Training accuracy per epoch (classifiers only).", examples=[[0.5, 0.7, 0.8]]
    )
    val_accuracy: list[float | None] | None = Field(
        None,
        description="Validation accuracy per epoch (classifiers with validation).",
        examples=[[0.5, 0.68, 0.8]],
    )
    total_points: int = Field(
        description="Epochs recorded in the requested range before downsampling.", examples=[3]
    )


class Event(BaseModel):
    """One server-sent event of GET /v1/jobs/{id}/events (`id:`, `event:` and `data:` lines).

    `status` data: `{"status", "attempt", "reason"?, "model_id"?, "error"?}`; `progress` data: `{"epoch",
    "progress", "metrics", "best"}` (as in the Job); `end` data: the terminal `{"status", "attempt",
    "model_id", "error"}`, after which the stream closes.
    """

    id: int = Field(
        description="The event id: increasing across all jobs; resume with Last-Event-ID.", examples=[1234]
    )
    event: EventKind = Field(description="The kind of event.", examples=["progress"])
    data: dict[str, Any] = Field(
        description="The event's JSON payload.",
        examples=[
            {"epoch": 12, "progress": {"epoch": 12, "total_epochs": 200}, "metrics": {"train_loss": 0.4}}
        ],
    )


class StatusEventData(BaseModel):
    """The JSON `data:` of a `status` event, and of the `end` event that repeats the terminal one."""

    status: JobStatus = Field(description="The job's new state.", examples=["running"])
    attempt: int = Field(ge=0, description="The run attempt (0 while queued the first time).", examples=[1])
    reason: str | None = Field(
        None,
        description="Why a running job was queued again: shutdown, worker_lost, or what the runner saw.",
        examples=["worker_lost"],
    )
    model_id: str | None = Field(
        None,
        description="Terminal states: the model kept, if any.",
        examples=["mdl_06231f0e9d8c7b6a5f4e3d2c"],
    )
    error: JobError | None = Field(None, description="Terminal states: why the job failed.", examples=[None])


class ProgressEventData(BaseModel):
    """The JSON `data:` of a `progress` event: the job's progress, latest metrics and best epoch."""

    epoch: int | None = Field(description="The last epoch recorded.", examples=[12])
    progress: Progress = Field(description="As the job's `progress`.", examples=[_PROGRESS_EXAMPLE])
    metrics: LatestMetrics = Field(description="As the job's `metrics`.", examples=[_METRICS_EXAMPLE])
    best: Best = Field(description="As the job's `best`.", examples=[_BEST_EXAMPLE])


def _event_item(kind: str, data_model: type[BaseModel], description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "required": ["id", "event", "data"],
        "properties": {
            "id": {
                "type": "string",
                "pattern": "^[0-9]+$",
                "description": "The event id: increasing across all jobs; resume with Last-Event-ID.",
            },
            "event": {"const": kind, "description": "The kind of event."},
            "data": {
                "type": "string",
                "description": "One line of JSON.",
                "contentMediaType": "application/json",
                "contentSchema": {"$ref": "#/components/schemas/" + data_model.__name__},
            },
        },
    }


# Each event of the stream, as OpenAPI 3.2's itemSchema describes it (and as schemathesis reads it):
# the SSE fields, with the JSON of `data` described by contentSchema.
EVENT_STREAM_ITEM_SCHEMA: dict[str, Any] = {
    "oneOf": [
        _event_item("status", StatusEventData, "The job changed state."),
        _event_item("progress", ProgressEventData, "Progress and metrics, at most a few times a second."),
        _event_item("end", StatusEventData, "The terminal state, last event of the stream."),
    ]
}
