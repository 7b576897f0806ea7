"""POST /v1/jobs: validate a TrainingConfig, store inline data, queue the job and hand it to the runner."""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from service.errors import InvalidInput, NotFound, StoreUnavailable
from service.http.body import JSONBody, validate
from service.http.schemas.training import TrainingConfig
from service.runners import Runner
from service.runners.spec import architecture_for, config_hash, fit_config, resolve
from service.services import admission
from service.services.admission import MB
from service.services.idempotency import Scope, check_key, create_once
from service.services.identity.quotas import job_quota
from service.services.jobs.document import document, job_document
from service.services.jobs.target import (
    Target,
    check_model_task,
    check_warm_start,
    store_inline,
    target_of,
)
from service.settings import Settings
from service.store import Claim, JobRecord, Store, delete_dataset, get_job, queue_job

IDEMPOTENCY_SCOPE = "POST /v1/jobs"


@dataclass(frozen=True)
class Created:
    """The answer to POST /v1/jobs: status code (202 new, 200 replay or dry run) and body."""

    status_code: int
    body: dict[str, Any]
    job_id: str | None = None


@dataclass(frozen=True)
class _Plan:
    """A validated configuration, what it trains on, and its resolved form (what the job keeps)."""

    config: TrainingConfig
    target: Target
    resolved: dict[str, Any]
    estimate: admission.Estimate


def request_hash(body: JSONBody) -> str:
    """SHA-256 of the body's JSON content (keys sorted), so that the same body always hashes the same."""
    return hashlib.sha256(orjson.dumps(body.data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def create(
    store: Store,
    runner: Runner,
    settings: Settings,
    body: JSONBody,
    *,
    idempotency_key: str | None = None,
    dry_run: bool = False,
) -> Created:
    """Validate a TrainingConfig, store inline data as a dataset, queue the job and hand it to the runner.

    Parameters
    ----------
    store : Store
    runner : Runner
    settings : Settings
    body : JSONBody
        The parsed request body, a TrainingConfig.
    idempotency_key : str, optional
        A replay of a key with the same body answers 200 with the job the key first created (in its
        current state); with a different body, 409. Dry runs neither read nor record keys.
    dry_run : bool
        Validate and resolve only: answer 200 with the resolved configuration, store nothing.

    Returns
    -------
    Created
        202 and the new Job; 200 and the original Job for a replay; 200 and a DryRun for a dry run.

    Raises
    ------
    InvalidInput
        422 for an invalid configuration or Idempotency-Key, a model type that cannot learn the
        dataset's task, or a warm start model of another architecture.
    NotFound
        404 for an unknown dataset or warm start model.
    QueueFull
        429 when ``settings.max_queued_jobs`` jobs are queued.
    QuotaExceeded
        403 when the owner has ``settings.quota_jobs`` active jobs, or its inline data passes a quota.
    Conflict
        409 when the idempotency key was used with a different body.
    """
    key = check_key(idempotency_key)
    if dry_run:
        plan = _plan(store, settings, body)
        resolved = plan.resolved
        return Created(
            200,
            {
                "config": resolved,
                "config_hash": config_hash(resolved),
                "task": plan.target.task,
                "estimate": {**plan.estimate.as_dict(), "limit_bytes": int(settings.max_job_memory_mb * MB)},
            },
        )
    owner = settings.owner
    fingerprint = "" if key is None else request_hash(body)
    positions: dict[str, int] = {}

    def queue(claim: Claim | None) -> JobRecord:
        job, positions[job.id] = _queue(store, settings, body, claim)
        return job

    job, replayed = create_once(
        store,
        owner,
        job_scope(store, owner),
        key,
        fingerprint,
        queue,
        status_code=202,
        wait_s=settings.idempotency_wait_s,
    )
    if replayed:
        return Created(200, document(store, job), job.id)
    runner.submit(job.id)
    # The job as queued, and its place in the queue then (a worker may have taken it since).
    return Created(202, job_document(job, positions[job.id]), job.id)


def job_scope(store: Store, owner: str) -> Scope[JobRecord]:
    """How an Idempotency-Key of POST /v1/jobs replays its job."""
    return Scope(name=IDEMPOTENCY_SCOPE, noun="job", fetch=lambda job_id: get_job(store, job_id, owner=owner))


def _plan(store: Store, settings: Settings, body: JSONBody) -> _Plan:
    """Validate and resolve the configuration; nothing is stored."""
    config = validate(TrainingConfig, body)
    target = target_of(store, settings, config, body)
    check_model_task(config.model.type, target)
    resolved = resolve(config, target.dataset_id or "")
    resolved["dataset_id"] = target.dataset_id
    if config.warm_start_model_id is not None:
        check_warm_start(store, settings.owner, config.warm_start_model_id, resolved, target)
    estimate = estimate_job(resolved, target)
    admission.admit_job(settings, estimate)
    return _Plan(config, target, resolved, estimate)


def estimate_job(resolved: dict[str, Any], target: Target) -> admission.Estimate:
    """The peak memory a resolved configuration will take on its target (``service.services.admission``)."""
    arch = architecture_for(resolved, target.task, target.n_features, target.n_classes)
    try:
        fit = fit_config(resolved)
    except ValueError as exc:
        # The engine's own checks of settings that tie fields together (a schedule's min_lr and the
        # learning rate, say), which the request's schema cannot state.
        raise InvalidInput(f"training settings: {exc}", errors=[{"loc": ["body"], "msg": str(exc)}]) from None
    return admission.training_job(
        n_samples=target.n_samples,
        n_features=target.n_features,
        layer_sizes=arch.layer_sizes,
        optimizer=fit.optimizer,
        batch_size=fit.batch_size,
        validation_fraction=fit.validation_fraction,
        itemsize=np.dtype(fit.dtype).itemsize,
    )


def _queue(store: Store, settings: Settings, body: JSONBody, claim: Claim | None) -> tuple[JobRecord, int]:
    """Store the job's inline data (if any) and queue the job; a refused job leaves no dataset behind.

    The job and the completion of ``claim`` (the request's Idempotency-Key) commit in one transaction.
    Returns the job and its queue position.
    """
    plan = _plan(store, settings, body)
    owner, inline, resolved = settings.owner, plan.config.dataset, plan.resolved
    dataset_id = plan.target.dataset_id
    if inline is not None:
        dataset_id = store_inline(store, settings, inline, plan.target).id
        resolved["dataset_id"] = dataset_id
    try:
        return queue_job(
            store,
            owner=owner,
            config=resolved,
            config_hash=config_hash(resolved),
            dataset_id=dataset_id,
            max_retries=plan.config.max_retries,
            max_queued=settings.max_queued_jobs,
            owner_quota=job_quota(settings),
            claim=claim,
        )
    except BaseException:
        if inline is not None and dataset_id is not None:
            # The inline dataset exists only for this job; a refused job must not leave it behind.
            with contextlib.suppress(NotFound, StoreUnavailable):
                delete_dataset(store, dataset_id, owner=owner)
        raise
