"""``run_job``: one run of a training job, the same code in every runner.

It claims the job (which fences every later write on the new attempt), loads the configuration
and dataset from the store, resumes from the latest checkpoint if there is one, calls
``engine.training.fit`` and records progress at a bounded rate, checkpoints every few seconds,
and ends the job with its model. The store is the only state: a run can die at any point and
another run picks the job up from its checkpoint. A store outage is not the job's fault: the run
keeps training, skips the periodic writes it cannot make, and waits for the store to record its end.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import numpy as np

from engine.models import Architecture
from engine.training import Checkpoint, EpochState, FitConfig, FitResult, fit
from service.errors import NotFound, StaleAttempt, StoreUnavailable
from service.runners.artifacts import (
    SNAPSHOT_MAX_PARAMETERS,
    architecture_from_json,
    architecture_json,
    checkpoint_from_bytes,
    checkpoint_to_bytes,
    model_payload,
    parameters_from_arrays,
    snapshot_to_bytes,
)
from service.runners.spec import architecture_for, fit_config
from service.store import (
    DatasetRecord,
    Store,
    claim_job,
    finish_job,
    get_dataset,
    get_job,
    get_model,
    heartbeat,
    load_checkpoint,
    load_dataset_arrays,
    load_model_parameters,
    record_progress,
    requeue_job,
    save_checkpoint,
    truncate_metrics_after,
)

log = logging.getLogger("descent.jobs")
T = TypeVar("T")
# Backoff of the final writes of a run while the store is unreachable.
_RETRY_FIRST_S, _RETRY_MAX_S = 0.1, 2.0


@dataclass(frozen=True)
class RunSettings:
    """How often a run writes to the store."""

    progress_interval_s: float = 0.5
    checkpoint_interval_s: float = 5.0
    # Models up to this size also write their parameters with each progress write, so that a client
    # can follow the model as it trains (GET /v1/jobs/{id}/snapshot).
    snapshot_max_parameters: int = SNAPSHOT_MAX_PARAMETERS


class _Recorder:
    """Buffers per-epoch metrics and writes them, with progress and checkpoints, at a bounded rate."""

    def __init__(
        self,
        store: Store,
        job_id: str,
        attempt: int,
        settings: RunSettings,
        shutdown: threading.Event | Any,
        snapshot: tuple[Architecture, dict[str, Any]] | None = None,
    ) -> None:
        self.store, self.job_id, self.attempt, self.settings = store, job_id, attempt, settings
        # (architecture, meta) of the snapshots this run writes; None for a model too large for them.
        small = snapshot is not None and snapshot[0].n_parameters <= settings.snapshot_max_parameters
        self.snapshot = snapshot if small else None
        self.shutdown = shutdown
        self.rows: list[dict[str, Any]] = []
        self.began = time.monotonic()
        # last_write: metrics flushed; last_contact: any write, heartbeats included.
        self.last_write = self.last_checkpoint = self.last_contact = self.began
        self.first_epoch: int | None = None
        self.cancel_requested = False
        self.stopped_for_shutdown = False
        self.latest: EpochState | None = None
        self.store_down = False

    def on_epoch(self, state: EpochState) -> bool:
        self.latest = state
        if self.first_epoch is None:
            self.first_epoch = state.epoch - 1
        self.rows.append({"epoch": state.epoch, **state.metrics})
        now = time.monotonic()
        if self.shutdown.is_set():
            if self._tolerate_outage(self.flush, state):
                self._tolerate_outage(self.save, state.checkpoint())
            self.stopped_for_shutdown = True
            return False
        if now - self.last_write >= self.settings.progress_interval_s:
            flushed = self._tolerate_outage(self.flush, state)
            if flushed and now - self.last_checkpoint >= self.settings.checkpoint_interval_s:
                self._tolerate_outage(self.save, state.checkpoint())
        return not self.cancel_requested

    def should_stop(self) -> bool:
        """Polled between mini-batches: a heartbeat, and the cancel flag, at the progress rate."""
        now = time.monotonic()
        if now - self.last_contact >= self.settings.progress_interval_s:
            self.last_contact = now
            self._tolerate_outage(self._heartbeat)
        return self.cancel_requested

    def _heartbeat(self) -> None:
        self.cancel_requested = heartbeat(self.store, self.job_id, self.attempt) or self.cancel_requested

    def _tolerate_outage(self, write: Callable[..., None], *args: Any) -> bool:
        """Make a periodic write; while the store is unreachable, skip it and keep training.

        The metrics stay buffered and go out with the next write that succeeds. Should the outage
        outlast the heartbeat timeout, the reaper may give the job to another run, and this run's
        next write then fails with StaleAttempt.
        """
        try:
            write(*args)
        except StoreUnavailable as exc:
            if not self.store_down:
                log.warning("job %s attempt %d: %s; training goes on", self.job_id, self.attempt, exc)
            self.store_down = True
            # Try again at the progress rate, not at every epoch.
            self.last_write = self.last_contact = time.monotonic()
            return False
        if self.store_down:
            log.info("job %s attempt %d: the store answers again", self.job_id, self.attempt)
            self.store_down = False
        return True

    def flush(self, state: EpochState | None = None) -> None:
        state = state or self.latest
        if state is None:
            return
        elapsed = time.monotonic() - self.began
        done_here = state.epoch - (self.first_epoch or 0)
        remaining = state.total_epochs - state.epoch
        progress = {
            "epoch": state.epoch,
            "total_epochs": state.total_epochs,
            "fraction": state.epoch / state.total_epochs,
            "elapsed_s": round(state.elapsed_s, 3),
            "eta_s": round(elapsed / done_here * remaining, 3) if done_here > 0 else None,
        }
        # The best epoch by the monitored metric: the validation loss, or the training loss without one.
        value = state.best_loss if state.best_epoch else None
        best = {
            "epoch": state.best_epoch,
            "metric": state.monitor,
            "value": value,
            "val_loss": value if state.monitor == "val_loss" else None,
        }
        snapshot = None
        if self.snapshot is not None and state.params is not None:
            # Written with the progress: a client told of this epoch finds its parameters stored.
            architecture, meta = self.snapshot
            snapshot = snapshot_to_bytes(meta, architecture, state.params, state.standardization)
        cancel = record_progress(
            self.store,
            self.job_id,
            self.attempt,
            rows=self.rows,
            progress=progress,
            metrics=state.metrics,
            best=best,
            snapshot=snapshot,
        )
        self.cancel_requested = self.cancel_requested or cancel
        self.rows = []
        self.last_write = self.last_contact = time.monotonic()

    def save(self, checkpoint: Checkpoint) -> None:
        save_checkpoint(
            self.store, self.job_id, self.attempt, checkpoint.epoch, checkpoint_to_bytes(checkpoint)
        )
        self.last_checkpoint = time.monotonic()


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
        The job's status when this run let go of it, or None when it could not claim the job.
    """
    settings = settings or RunSettings()
    shutdown = shutdown if shutdown is not None else threading.Event()
    attempt = claim_job(store, job_id)
    if attempt is None:
        return None
    try:
        return _run_claimed(store, job_id, attempt, settings, shutdown)
    except StaleAttempt:
        # Another run owns the job now (this one was presumed dead): it must not write anything more.
        log.warning("job %s attempt %d lost its claim", job_id, attempt)
        return None
    except StoreUnavailable:
        # Not the job's fault, so it is not failed: it stays with this attempt until the reaper, once
        # the store answers, finds its heartbeat stale and queues it again.
        log.warning("job %s attempt %d stopped: the store is unreachable", job_id, attempt)
        raise
    except MemoryError:
        raise  # the worker process dies; the runner retries the job from its checkpoint
    except Exception as exc:
        log.exception("job %s attempt %d failed", job_id, attempt)
        finish_job(
            store, job_id, attempt, status="failed", error_type="internal", error_detail=type(exc).__name__
        )
        return "failed"


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


def _load(store: Store, job_id: str, attempt: int) -> _Loaded | str:
    """Read the job's configuration, data and checkpoint; a string says why it cannot be trained."""
    config = get_job(store, job_id).config
    try:
        dataset = get_dataset(store, config["dataset_id"])
        X, y = load_dataset_arrays(store, config["dataset_id"])
        n_classes = len(dataset.classes) if dataset.classes else None
        architecture = architecture_for(config, dataset.task, dataset.n_features, n_classes)
        fit_cfg = fit_config(config)
        initial = None
        if config.get("warm_start_model_id"):
            initial = _warm_start(store, config["warm_start_model_id"], architecture)
    except (ValueError, NotFound) as exc:
        return str(exc)
    stored = load_checkpoint(store, job_id)
    resume = checkpoint_from_bytes(stored.data) if stored is not None else None
    # The history after the checkpoint is rewritten by this run, epoch by epoch. A first attempt
    # has no history yet, which spares short jobs a write.
    if attempt > 1 or resume is not None:
        truncate_metrics_after(store, job_id, attempt, resume.epoch if resume else 0)
    return _Loaded(config, dataset, X, y, architecture, fit_cfg, initial, resume)


def _run_claimed(store: Store, job_id: str, attempt: int, settings: RunSettings, shutdown: Any) -> str:
    run = f"job {job_id} attempt {attempt}"
    # The job is claimed: a store outage from here on is waited out, not charged to the job.
    loaded = _persist(lambda: _load(store, job_id, attempt), shutdown, run)
    if isinstance(loaded, str):
        detail = loaded
        _persist(
            lambda: finish_job(
                store, job_id, attempt, status="failed", error_type="invalid_data", error_detail=detail
            ),
            shutdown,
            run,
        )
        return "failed"
    config, dataset, X, y, architecture, fit_cfg, initial, resume = loaded
    meta = {"architecture": architecture_json(architecture), "task": dataset.task, "classes": dataset.classes}
    recorder = _Recorder(store, job_id, attempt, settings, shutdown, (architecture, meta))
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
    if recorder.stopped_for_shutdown:
        return requeue_job(store, job_id, attempt)
    # The result exists only in this process: wait out a store outage rather than lose it.
    _persist(recorder.flush, shutdown, run)
    # A cancel that arrives as the last epoch ends still ends the job cancelled, as promised.
    # The flush just read the cancel flag; only a run that recorded no epoch must ask for it.
    cancel = recorder.cancel_requested or (
        recorder.latest is None and _persist(lambda: heartbeat(store, job_id, attempt), shutdown, run)
    )
    if cancel and result.stop_reason in ("completed", "early_stopped"):
        result.stop_reason = "cancelled"
    return _persist(
        lambda: _finish(store, job_id, attempt, result, dataset.task, dataset.classes), shutdown, run
    )


def _persist(write: Callable[[], T], shutdown: Any, run: str) -> T:
    """``write()``, tried again with backoff while the store is unreachable, until shutdown is asked for."""
    delay = _RETRY_FIRST_S
    while True:
        try:
            return write()
        except StoreUnavailable as exc:
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


def _finish(
    store: Store, job_id: str, attempt: int, result: FitResult, task: str, classes: list[Any] | None
) -> str:
    reason = result.stop_reason
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
    model = model_payload(result, params, task, classes, metrics)
    if status != "failed":
        return finish_job(store, job_id, attempt, status=status, model=model).status
    return finish_job(
        store, job_id, attempt, status="failed", error_type=reason, error_detail=result.detail, model=model
    ).status
