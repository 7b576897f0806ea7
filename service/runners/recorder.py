"""What a run writes while it trains: metrics, progress and checkpoints, at a bounded rate."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.models import Architecture
from engine.training import Checkpoint, EpochState
from service.errors import STORE_OUTAGES
from service.runners.artifacts import SNAPSHOT_MAX_PARAMETERS, checkpoint_to_bytes, snapshot_to_bytes
from service.runners.liveness import Heartbeat
from service.store import ProgressWrite, Store, record_progress, save_checkpoint

if TYPE_CHECKING:
    from service.settings import Settings

log = logging.getLogger("descent.jobs")


@dataclass(frozen=True)
class RunSettings:
    """How often a run writes to the store, and the memory a worker allows a job."""

    progress_interval_s: float = 0.5
    checkpoint_interval_s: float = 5.0
    heartbeat_interval_s: float = 1.0
    worker_memory_mb: int = 0
    # Models up to this size also write their parameters with each progress write, so that a client
    # can follow the model as it trains (GET /v1/jobs/{id}/snapshot).
    snapshot_max_parameters: int = SNAPSHOT_MAX_PARAMETERS

    @classmethod
    def from_settings(cls, settings: Settings) -> RunSettings:
        return cls(
            settings.progress_interval_s,
            settings.checkpoint_interval_s,
            settings.heartbeat_interval_s,
            settings.worker_memory_mb,
        )


class Recorder:
    """Buffers per-epoch metrics and writes them, with progress and checkpoints, at a bounded rate.

    ``on_epoch`` and ``should_stop`` are the callbacks of ``engine.training.fit``: both tell the loop to
    stop when a cancel was requested or when the run's heartbeat found its attempt stale.
    """

    def __init__(
        self,
        store: Store,
        job_id: str,
        attempt: int,
        settings: RunSettings,
        shutdown: threading.Event | Any,
        liveness: Heartbeat,
        snapshot: tuple[Architecture, dict[str, Any]] | None = None,
    ) -> None:
        self.store, self.job_id, self.attempt, self.settings = store, job_id, attempt, settings
        self.shutdown, self.liveness = shutdown, liveness
        # (architecture, meta) of the snapshots this run writes; None for a model too large for them.
        small = snapshot is not None and snapshot[0].n_parameters <= settings.snapshot_max_parameters
        self.snapshot = snapshot if small else None
        self.rows: list[dict[str, Any]] = []
        self.began = time.monotonic()
        self.last_write = self.last_checkpoint = self.began
        self.first_epoch: int | None = None
        self.cancel_requested = False
        self.stopped_for_shutdown = False
        self.latest: EpochState | None = None
        self.store_down = False

    @property
    def cancelled(self) -> bool:
        """Whether a write or a heartbeat of this run saw the job's cancel flag."""
        return self.cancel_requested or self.liveness.cancel_requested

    def on_epoch(self, state: EpochState) -> bool:
        if self.liveness.lost.is_set():
            return False  # another run owns the job: write nothing more
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
        return not self.cancelled

    def should_stop(self) -> bool:
        """Polled between mini-batches: stop for a cancel, or when the attempt is stale."""
        return self.cancelled or self.liveness.lost.is_set()

    def _tolerate_outage(self, write: Callable[..., None], *args: Any) -> bool:
        """Make a periodic write; while the store is unreachable, skip it and keep training.

        The metrics stay buffered and go out with the next write that succeeds. Should the outage
        outlast the heartbeat timeout, the reaper may give the job to another run, and this run's
        next write then fails with StaleAttempt.
        """
        try:
            write(*args)
        except STORE_OUTAGES as exc:
            if not self.store_down:
                log.warning("job %s attempt %d: %s; training goes on", self.job_id, self.attempt, exc)
            self.store_down = True
            # Try again at the progress rate, not at every epoch.
            self.last_write = time.monotonic()
            return False
        if self.store_down:
            log.info("job %s attempt %d: the store answers again", self.job_id, self.attempt)
            self.store_down = False
        return True

    def flush(self, state: EpochState | None = None) -> None:
        state = state or self.latest
        if state is None:
            return
        write = self._progress(state)
        cancel = record_progress(
            self.store,
            self.job_id,
            self.attempt,
            rows=write.rows,
            progress=write.progress,
            metrics=write.metrics,
            best=write.best,
            snapshot=write.snapshot,
        )
        self.cancel_requested = self.cancel_requested or cancel
        self.rows = []
        self.last_write = time.monotonic()

    def final_write(self) -> ProgressWrite | None:
        """The progress write of the epochs not yet recorded, for the run's last transaction; None when
        every epoch is recorded already."""
        if self.latest is None or not self.rows:
            return None
        return self._progress(self.latest)

    def _progress(self, state: EpochState) -> ProgressWrite:
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
        return ProgressWrite(list(self.rows), progress, state.metrics, best, snapshot)

    def save(self, checkpoint: Checkpoint) -> None:
        save_checkpoint(
            self.store, self.job_id, self.attempt, checkpoint.epoch, checkpoint_to_bytes(checkpoint)
        )
        self.last_checkpoint = time.monotonic()
