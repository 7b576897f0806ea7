"""The Job document: a job as the API shows it (see ``service.http.schemas.jobs.Job``)."""

from __future__ import annotations

from typing import Any

from service.store import JobRecord, Store, queue_position

PREFIX = "/v1/jobs"


def location(job_id: str) -> str:
    """The URL path of a job."""
    return f"{PREFIX}/{job_id}"


def job_document(job: JobRecord, position: int | None) -> dict[str, Any]:
    """The Job as the API shows it (see ``service.http.schemas.jobs.Job``)."""
    config = job.config
    progress = job.progress or {
        "epoch": 0,
        "total_epochs": config.get("epochs"),
        "fraction": 0.0,
        "elapsed_s": None,
        "eta_s": None,
    }
    latest = job.metrics or {}
    metrics: dict[str, Any] = {"train_loss": latest.get("train_loss"), "val_loss": latest.get("val_loss")}
    for key in ("train_accuracy", "val_accuracy"):
        if key in latest:
            metrics[key] = latest[key]
    best = job.best or {}
    document: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "config": config,
        "config_hash": job.config_hash,
        "dataset_id": job.dataset_id,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "attempt": job.attempt,
        "queue_position": position,
        "progress": progress,
        "metrics": metrics,
        # The run reports epoch 0 until an epoch has finished; the API says null.
        "best": {
            "epoch": best.get("epoch") or None,
            "metric": best.get("metric"),
            "value": best.get("value", best.get("val_loss")),
            "val_loss": best.get("val_loss"),
        },
    }
    if job.error is not None:
        document["error"] = job.error
    if job.model_id is not None:
        document["model_id"] = job.model_id
    return document


def document(store: Store, job: JobRecord) -> dict[str, Any]:
    """The Job with its queue position, looked up when it is queued."""
    return job_document(job, queue_position(store, job) if job.status == "queued" else None)
