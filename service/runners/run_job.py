"""``run_job``: one run of a training job, the same code in every runner.

It claims the job (which fences every later write on the new attempt), loads the configuration
and dataset from the store, resumes from the latest checkpoint if there is one, calls
``engine.training.fit`` and records progress at a bounded rate, checkpoints every few seconds,
and ends the job with its model. The store is the only state: a run can die at any point and
another run picks the job up from its checkpoint. A store outage is not the job's fault: the run
keeps training, skips the periodic writes it cannot make, and waits for the store to record its end.

While it runs, a thread of its own writes the run's heartbeat (``liveness.Heartbeat``), so that a
long epoch is not taken for a dead worker; when a heartbeat is refused, the run's attempt is stale
and the training loop stops at its next mini-batch without writing anything more. A job that runs
out of memory ends ``failed`` with ``resource_exhausted``, and the worker is replaced.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import numpy as np

from engine.models import Architecture
from engine.training import Checkpoint, FitConfig, FitResult, fit
from service.errors import STORE_OUTAGES, NotFound, StaleAttempt, StorageCorrupted
from service.runners.artifacts import (
    architecture_from_json,
    architecture_json,
    checkpoint_from_bytes,
    model_payload,
    parameters_from_arrays,
)
from service.runners.cache import dataset_arrays
from service.runners.liveness import Heartbeat
from service.runners.memory import WorkerOutOfMemory, out_of_memory_detail
from service.runners.recorder import Recorder, RunSettings
from service.runners.spec import architecture_for, fit_config
from service.store import (
    Claimed,
    DatasetRecord,
    Ending,
    Store,
    claim,
    finish_job,
    finish_run,
    get_model,
    load_model_parameters,
    read_claimed,
    requeue_job,
    truncate_metrics_after,
)

__all__ = ["Run", "RunSettings", "run_claimed", "run_job", "run_next"]

log = logging.getLogger("descent.jobs")
T = TypeVar("T")
# Backoff of the final writes of a run while the store is unreachable.
_RETRY_FIRST_S, _RETRY_MAX_S = 0.1, 2.0


class Run(NamedTuple):
    """A run a worker took: the job, its attempt, and the job's status when the run let go of it
    (None when another run took the job over meanwhile)."""

    job_id: str
    attempt: int
    status: str | None


def run_job(
    store: Store,
    job_id: str,
    *,
    settings: RunSettings | None = None,
    shutdown: threading.Event | Any = None,
) -> str | None:
    """Run one attempt of a job to its end, or until shutdown asks it to give the job back.

    Parameters
    ----------
    store : Store
    job_id : str
    settings : RunSettings, optional
    shutdown : event, optional
        When set, the run checkpoints at the next epoch and returns the job to the queue.

    Returns
    -------
    status : str or None
        The job's status when this run let go of it, or None when it could not claim the job (or
        another run took it over).

    Raises
    ------
    WorkerOutOfMemory
        The job ran out of memory (and was recorded ``failed``, ``resource_exhausted``): the worker
        process must be replaced.
    """
    settings = settings or RunSettings()
    claimed = claim(store, job_id)
    if claimed is None:
        return None
    return run_claimed(store, job_id, claimed.attempt, settings=settings, shutdown=shutdown, claimed=claimed)


def run_next(
    store: Store,
    *,
    settings: RunSettings | None = None,
    shutdown: threading.Event | Any = None,
    on_claim: Callable[[str, int], None] | None = None,
) -> Run | None:
    """Claim the first queued job in claim order (interrupted jobs first, then the oldest) and run it.

    ``on_claim(job_id, attempt)`` is called once the job is claimed, before it runs. Returns the run,
    or None when no job could be claimed. Raises like :func:`run_job`.
    """
    settings = settings or RunSettings()
    shutdown = shutdown if shutdown is not None else threading.Event()
    if shutdown.is_set():
        return None
    # One transaction claims the first queued job and reads what its run needs.
    claimed = claim(store)
    if claimed is None:
        return None
    if on_claim is not None:
        on_claim(claimed.job_id, claimed.attempt)
    status = run_claimed(
        store, claimed.job_id, claimed.attempt, settings=settings, shutdown=shutdown, claimed=claimed
    )
    return Run(claimed.job_id, claimed.attempt, status)


def run_claimed(
    store: Store,
    job_id: str,
    attempt: int,
    *,
    settings: RunSettings | None = None,
    shutdown: threading.Event | Any = None,
    claimed: Claimed | None = None,
) -> str | None:
    """Run attempt ``attempt`` of a job this worker has just claimed; see :func:`run_job`.

    ``claimed`` is what the claim read (see ``service.store.claim``); without it, the run reads it.
    """
    settings = settings or RunSettings()
    shutdown = shutdown if shutdown is not None else threading.Event()
    liveness = Heartbeat(store, job_id, attempt, settings.heartbeat_interval_s).start()
    out_of_memory = ""
    try:
        return _run_claimed(store, job_id, attempt, settings, shutdown, liveness, claimed)
    except StaleAttempt:
        # Another run owns the job now (this one was presumed dead): it must not write anything more.
        log.warning("job %s attempt %d lost its claim", job_id, attempt)
        return None
    except STORE_OUTAGES:
        # Not the job's fault, so it is not failed: it stays with this attempt until the reaper, once
        # the store answers, finds its heartbeat stale and queues it again.
        log.warning("job %s attempt %d stopped: the store is unreachable or full", job_id, attempt)
        raise
    except MemoryError as exc:
        # Handled below, once this block has let go of the traceback and the arrays its frames hold.
        out_of_memory = str(exc)
    except Exception:
        log.exception("job %s attempt %d failed", job_id, attempt)
        detail = "an unexpected error stopped the run; the worker's log holds its traceback"
        finish_job(store, job_id, attempt, status="failed", error_type="internal", error_detail=detail)
        return "failed"
    finally:
        liveness.stop()
    _fail_out_of_memory(store, job_id, attempt, settings, out_of_memory)
    raise WorkerOutOfMemory(job_id, attempt)


def _fail_out_of_memory(store: Store, job_id: str, attempt: int, settings: RunSettings, reason: str) -> None:
    """Record that the job needed more memory than the worker allows (retrying would not help)."""
    gc.collect()
    detail = out_of_memory_detail(settings.worker_memory_mb, reason)
    log.error("job %s attempt %d: %s", job_id, attempt, detail)
    with contextlib.suppress(StaleAttempt):
        finish_job(
            store, job_id, attempt, status="failed", error_type="resource_exhausted", error_detail=detail
        )


class _Loaded(NamedTuple):
    """What a run reads from the store before training."""

    config: dict[str, Any]
    dataset: DatasetRecord
    X: np.ndarray[Any, Any]
    y: np.ndarray[Any, Any]
    architecture: Architecture
    fit_cfg: FitConfig
    initial: np.ndarray[Any, Any] | None
    resume: Checkpoint | None


class _Refused(NamedTuple):
    """Why a job cannot be trained: its error type and detail."""

    error_type: str
    detail: str


class _NotTrainable(Exception):
    """The job's data does not fit its configuration."""


def _load(store: Store, job_id: str, attempt: int, claimed: Claimed | None) -> _Loaded | _Refused:
    """Read the job's configuration, data and checkpoint, or say why the job cannot be trained.

    Data that does not fit the configuration is ``invalid_data``; a dataset, warm-start model or
    checkpoint whose stored bytes fail their check is ``storage_corrupted`` (training again would not help).
    """
    if claimed is None or claimed.attempt != attempt:
        claimed = read_claimed(store, job_id, attempt)
    try:
        return _read_inputs(store, job_id, attempt, claimed)
    except _NotTrainable as exc:
        return _Refused("invalid_data", str(exc))
    except StorageCorrupted as exc:
        return _Refused("storage_corrupted", exc.detail)


def _read_inputs(store: Store, job_id: str, attempt: int, claimed: Claimed) -> _Loaded:
    config = claimed.config
    try:
        dataset = claimed.dataset
        if dataset is None:
            raise NotFound.resource("dataset", str(config.get("dataset_id")))
        X, y = dataset_arrays(store, dataset)
        n_classes = len(dataset.classes) if dataset.classes else None
        architecture = architecture_for(
            config, dataset.task, dataset.n_features, n_classes, dataset.n_outputs
        )
        fit_cfg = fit_config(config)
        initial = None
        if config.get("warm_start_model_id"):
            initial = _warm_start(store, config["warm_start_model_id"], architecture)
    except (ValueError, NotFound) as exc:
        raise _NotTrainable(str(exc)) from None
    stored = claimed.checkpoint()
    resume = None
    if stored is not None:
        try:
            resume = checkpoint_from_bytes(stored.data)
        except Exception as exc:  # bytes with no recorded hash (older rows) that do not decode
            raise StorageCorrupted("checkpoint of job", job_id, f"it cannot be read: {exc}") from None
    # The history after the checkpoint is rewritten by this run, epoch by epoch. A first attempt
    # has no history yet, which spares short jobs a write.
    if attempt > 1 or resume is not None:
        truncate_metrics_after(store, job_id, attempt, resume.epoch if resume else 0)
    return _Loaded(config, dataset, X, y, architecture, fit_cfg, initial, resume)


def _run_claimed(
    store: Store,
    job_id: str,
    attempt: int,
    settings: RunSettings,
    shutdown: Any,
    liveness: Heartbeat,
    claimed: Claimed | None,
) -> str | None:
    run = f"job {job_id} attempt {attempt}"
    # The job is claimed: a store outage from here on is waited out, not charged to the job.
    loaded = _persist(lambda: _load(store, job_id, attempt, claimed), shutdown, run)
    if isinstance(loaded, _Refused):
        refused = loaded
        _persist(
            lambda: finish_job(
                store,
                job_id,
                attempt,
                status="failed",
                error_type=refused.error_type,
                error_detail=refused.detail,
            ),
            shutdown,
            run,
        )
        return "failed"
    config, dataset, X, y, architecture, fit_cfg, initial, resume = loaded
    meta = {"architecture": architecture_json(architecture), "task": dataset.task, "classes": dataset.classes}
    recorder = Recorder(store, job_id, attempt, settings, shutdown, liveness, (architecture, meta))
    try:
        result = fit(
            architecture,
            X,
            y,
            fit_cfg,
            np.random.default_rng(config["seed"]),
            on_epoch=recorder.on_epoch,
            should_stop=recorder.should_stop,
            resume=resume,
            initial_params=initial,
        )
    except ValueError as exc:  # data the configuration cannot train on, e.g. too few samples to split
        detail = str(exc)
        _persist(
            lambda: finish_job(
                store, job_id, attempt, status="failed", error_type="invalid_data", error_detail=detail
            ),
            shutdown,
            run,
        )
        return "failed"
    if liveness.lost.is_set():
        log.warning("%s stopped: another run owns the job", run)
        return None
    liveness.ending()
    if recorder.stopped_for_shutdown:
        return requeue_job(store, job_id, attempt)
    # The result exists only in this process: wait out a store outage rather than lose it. The epochs not
    # yet recorded and the end go in one transaction, whose fence also reads the cancel flag: a cancel
    # that arrives as the last epoch ends still ends the job cancelled, as promised.
    progress = recorder.final_write()
    task, classes = dataset.task, dataset.classes

    def end(cancel_requested: bool) -> Ending:
        return _ending(result, task, classes, cancelled=recorder.cancelled or cancel_requested)

    return _persist(lambda: finish_run(store, job_id, attempt, progress=progress, end=end), shutdown, run)


def _persist(write: Callable[[], T], shutdown: Any, run: str) -> T:
    """``write()``, tried again with backoff while the store is unreachable or its disk full, until shutdown
    is asked for."""
    delay = _RETRY_FIRST_S
    while True:
        try:
            return write()
        except STORE_OUTAGES as exc:
            if shutdown.is_set():
                raise
            log.warning("%s: %s; trying again in %.1f s", run, exc, delay)
        time.sleep(delay)
        delay = min(2 * delay, _RETRY_MAX_S)


def _warm_start(store: Store, model_id: str, architecture: Any) -> np.ndarray:
    record = get_model(store, model_id)
    stored = architecture_from_json(record.architecture)
    if stored.layer_sizes != architecture.layer_sizes or stored.activations != architecture.activations:
        raise ValueError(
            f"warm_start_model_id {model_id} has layers {list(stored.layer_sizes)} {list(stored.activations)}"
            f" but this job trains {list(architecture.layer_sizes)} {list(architecture.activations)}"
        )
    return parameters_from_arrays(stored, load_model_parameters(store, model_id)).flat


def _ending(result: FitResult, task: str, classes: list[Any] | None, *, cancelled: bool) -> Ending:
    """How a run that trained ends its job; ``cancelled``: whether a cancel was asked for."""
    reason = result.stop_reason
    if cancelled and reason in ("completed", "early_stopped"):
        reason = "cancelled"
    params, weights_epoch = result.params, result.weights_epoch
    if reason == "cancelled" and result.best_epoch > 0:
        # A cancelled job keeps the best weights it reached (the current ones if no epoch ended).
        params, weights_epoch = result.best_params, result.best_epoch
    status = {"completed": "succeeded", "early_stopped": "succeeded", "cancelled": "cancelled"}.get(
        reason, "failed"
    )
    metrics: dict[str, Any] = {key: values[-1] for key, values in result.history.items() if values}
    metrics.update(
        epochs_run=result.epochs_run,
        best_epoch=result.best_epoch,
        stop_reason=reason,
        # Which epoch the model's weights are from, and how the job that made them ended.
        weights_epoch=weights_epoch,
        job_status=status,
    )
    standardization = result.standardization
    finite = np.isfinite(params.flat).all() and (
        standardization is None
        or (np.isfinite(standardization.mean).all() and np.isfinite(standardization.scale).all())
    )
    if not finite:
        # The engine keeps finite weights whatever happens; should a non-finite value get here, the job
        # ends without a model rather than store one no prediction can use.
        detail = f"the model after epoch {weights_epoch} holds non-finite values; no model was stored"
        return Ending("failed", "diverged", detail)
    model = model_payload(result, params, task, classes, metrics)
    if status != "failed":
        return Ending(status, model=model)
    return Ending("failed", reason, result.detail, model)
