"""A running job's snapshot: the parameters of its latest progress write, read as a model.

A run writes a snapshot with each progress write when the model has at most
``SNAPSHOT_MAX_PARAMETERS`` parameters; the last one stays after the job ends (the
job's model then holds its final weights). Predictions use the same code as a stored model's.
"""

from __future__ import annotations

from typing import Any

from service.errors import NoSnapshot, StorageCorrupted
from service.http.body import JSONBody, validate
from service.http.schemas.models import PredictRequest
from service.runners.artifacts import (
    SNAPSHOT_MAX_PARAMETERS,
    architecture_from_json,
    parameters_from_arrays,
    snapshot_from_bytes,
)
from service.services import admission
from service.services.models import LoadedModel, export_document, predict_arrays, predict_inputs
from service.settings import Settings
from service.store import ModelRecord, Snapshot, Store, get_job, load_snapshot


def load(store: Store, owner: str | None, job_id: str) -> tuple[LoadedModel, Snapshot]:
    """The job's latest snapshot as a model; 404 for an unknown job (or not ``owner``'s; None: anyone's),
    409 for a job without a snapshot (the job is there; its state is what stands in the way)."""
    job = get_job(store, job_id, owner=owner)
    snapshot = load_snapshot(store, job.id)
    if snapshot is None:
        raise NoSnapshot(
            f"job {job_id!r} has no snapshot yet: its run writes one with each progress write, for models"
            f" of at most {SNAPSHOT_MAX_PARAMETERS} parameters"
        )
    try:
        meta, arrays, standardization = snapshot_from_bytes(snapshot.data)
    except Exception as exc:  # bytes with no recorded hash (older rows) that do not decode
        raise StorageCorrupted("snapshot of job", job.id, f"it cannot be read: {exc}") from None
    architecture = architecture_from_json(meta["architecture"])
    std = None
    if standardization is not None:
        std = {"mean": standardization.mean.tolist(), "scale": standardization.scale.tolist()}
    record = ModelRecord(
        id=f"{job.id}@{snapshot.epoch}",
        owner=job.owner,
        job_id=job.id,
        created_at=snapshot.taken_at,
        architecture=meta["architecture"],
        n_features=architecture.n_features,
        task=meta["task"],
        classes=meta["classes"],
        metrics={},
        standardization=std,
        blob_id="",
        sha256="",
    )
    model = LoadedModel(record, architecture, parameters_from_arrays(architecture, arrays), arrays)
    return model, snapshot


def document(store: Store, owner: str | None, job_id: str) -> dict[str, Any]:
    """GET /v1/jobs/{id}/snapshot: ``{"job_id", "epoch", "taken_at", "model"}`` (see ``JobSnapshot``)."""
    model, snapshot = load(store, owner, job_id)
    return {
        "job_id": model.record.job_id,
        "epoch": snapshot.epoch,
        "taken_at": snapshot.taken_at,
        "model": export_document(model),
    }


def predict(
    store: Store, settings: Settings, job_id: str, body: JSONBody, *, owner: str | None
) -> dict[str, Any]:
    """POST /v1/jobs/{id}/snapshot/predict: a Prediction with the snapshot's parameters, and its epoch."""
    # The snapshot first: an unknown job, or one without a snapshot, is a 404 whatever the body.
    model, snapshot = load(store, owner, job_id)
    request = validate(PredictRequest, body)
    X = predict_inputs(store, settings, request, body, model.record, owner=owner)
    admission.admit_predict(settings, n_rows=X.shape[0], layer_sizes=model.architecture.layer_sizes)
    return {**predict_arrays(model, X), "epoch": snapshot.epoch}
