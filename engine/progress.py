"""The run's record: history, the best epoch and its weights, early stopping, checkpoints, the clock.

``Progress`` is what the training loop writes after every epoch and what a checkpoint saves: a
run resumed from a ``Checkpoint`` continues with the same record, so it ends bitwise where the
uninterrupted run would have.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.architecture import Architecture
from engine.optimizers import Optimizer
from engine.parameters import Parameters

Array = np.ndarray[Any, Any]
# How often, at most, the should_stop hook is polled between mini-batches.
POLL_INTERVAL_S = 0.05


@dataclass(frozen=True)
class EarlyStopping:
    """Stop when the monitored loss has not improved by min_delta for patience epochs.

    ``min_delta`` decides patience only: an epoch that beats the best by less than min_delta
    does not reset the count, but its weights still become the best ones. ``restore_best``
    ends the run with the weights of the lowest monitored value.
    """

    patience: int = 10
    min_delta: float = 0.0
    restore_best: bool = True


@dataclass
class Checkpoint:
    """Everything needed to resume a run bitwise: taken after ``epoch`` completed epochs."""

    epoch: int
    params: Array
    optimizer_state: dict[str, Any]
    rng_state: dict[str, Any]
    best_params: Array
    best_epoch: int
    best_loss: float
    bad_epochs: int
    history: dict[str, list[float]]


class Progress:
    """History, best epoch and weights, and patience of one run.

    The monitored value is the validation loss, or the training loss without a validation set.

    Attributes
    ----------
    epoch : int
        Epochs completed.
    history : dict of str to list of float
        One value per completed epoch for each metric.
    best_params : Parameters
        The weights after the best epoch (the starting weights until one improves).
    best_epoch : int
        0 until an epoch improves.
    best_loss : float
        The monitored value of the best epoch (inf before).
    bad_epochs : int
        Epochs since the last improvement.
    """

    def __init__(
        self,
        architecture: Architecture,
        params: Parameters,
        metrics: list[str],
        early_stopping: EarlyStopping | None,
    ) -> None:
        self.params, self.early_stopping = params, early_stopping
        self.epoch = 0
        self.history: dict[str, list[float]] = {key: [] for key in metrics}
        self.best_params = params.copy(architecture)
        self.best_epoch, self.best_loss, self.bad_epochs = 0, float("inf"), 0

    @property
    def monitor(self) -> str:
        """The metric early stopping and the best epoch are judged by."""
        return "val_loss" if "val_loss" in self.history else "train_loss"

    def record(self, metrics: dict[str, float]) -> None:
        """Count an epoch, append its metrics and update the best epoch and the patience.

        The best epoch is the one with the lowest monitored value (a non-finite value never is);
        patience counts the epochs since one beat the best before it by more than min_delta.
        """
        self.epoch += 1
        for key, value in metrics.items():
            self.history[key].append(value)
        monitored = metrics[self.monitor]
        min_delta = self.early_stopping.min_delta if self.early_stopping else 0.0
        self.bad_epochs = 0 if monitored < self.best_loss - min_delta else self.bad_epochs + 1
        if monitored < self.best_loss:
            self.best_loss, self.best_epoch = monitored, self.epoch
            np.copyto(self.best_params.flat, self.params.flat)

    @property
    def patience_exhausted(self) -> bool:
        return self.early_stopping is not None and self.bad_epochs >= self.early_stopping.patience

    def checkpoint(self, optimizer: Optimizer, rng: np.random.Generator) -> Checkpoint:
        """A copy of the run's state, the optimizer's and the shuffling RNG's."""
        return Checkpoint(
            self.epoch,
            self.params.flat.copy(),
            optimizer.state_dict(),
            dict(rng.bit_generator.state),
            self.best_params.flat.copy(),
            self.best_epoch,
            self.best_loss,
            self.bad_epochs,
            {k: list(v) for k, v in self.history.items()},
        )

    def resume(self, checkpoint: Checkpoint, optimizer: Optimizer, rng: np.random.Generator) -> None:
        """Put the run, the optimizer and the shuffling RNG back in the checkpoint's state."""
        self.params.flat[...] = checkpoint.params
        optimizer.load_state_dict(checkpoint.optimizer_state)
        rng.bit_generator.state = checkpoint.rng_state
        self.best_params.flat[...] = checkpoint.best_params
        self.epoch = checkpoint.epoch
        self.best_epoch, self.best_loss = checkpoint.best_epoch, checkpoint.best_loss
        self.bad_epochs = checkpoint.bad_epochs
        self.history = {k: list(v) for k, v in checkpoint.history.items()}


class Clock:
    """The run's wall time: its deadline, and should_stop polled at most every POLL_INTERVAL_S."""

    def __init__(self, max_runtime_s: float | None, should_stop: Callable[[], bool] | None) -> None:
        self.began = self.last_poll = time.perf_counter()
        self.deadline = self.began + max_runtime_s if max_runtime_s else None
        self.should_stop = should_stop

    def cancelled(self, now: float) -> bool:
        if self.should_stop is None or now - self.last_poll < POLL_INTERVAL_S:
            return False
        self.last_poll = now
        return self.should_stop()

    def past_deadline(self, now: float) -> bool:
        return self.deadline is not None and now > self.deadline

    def interruption(self) -> str:
        """Between mini-batches: the stop reason if the run must stop now, else ""."""
        now = time.perf_counter()
        if self.past_deadline(now):
            return "deadline_exceeded"
        return "cancelled" if self.cancelled(now) else ""
