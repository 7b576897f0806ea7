"""The training loop: gradient descent epochs over full batches or shuffled mini-batches.

``fit`` repeats w ← w − η ∂L/∂w (or a momentum/Adam variant). Each epoch is the textbook loop
(forward, loss, backward, update, record); what comes before it (validation split,
standardisation, dtype, batch buffers) is in ``engine.preparation``, and the run's record
(history, best weights, early stopping, checkpoints) in ``engine.progress``. It reports every
epoch to a callback that can stop it, and can hand out a checkpoint at any epoch; resuming from
one gives bitwise the same final weights as a run that was never interrupted. It knows nothing
of jobs, stores or HTTP.
"""

from __future__ import annotations

import functools
import numbers
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.architecture import Architecture
from engine.fused import LogisticEpochs
from engine.models import accuracy, evaluate, loss_and_gradient, predict
from engine.optimizers import Optimizer, clip_grad_norm, get_optimizer, make_optimizer
from engine.parameters import Parameters, init_parameters, weights_mask
from engine.preparation import (
    DTYPES,
    Batches,
    Standardization,
    TrainingData,
    prepare_data,
    train_validation_split,
)
from engine.progress import Checkpoint, Clock, EarlyStopping, Progress
from engine.schedules import learning_rate_at

__all__ = [
    "DTYPES",
    "STOP_REASONS",
    "Checkpoint",
    "EarlyStopping",
    "EpochState",
    "FitConfig",
    "FitResult",
    "Standardization",
    "evaluate",
    "fit",
    "train_validation_split",
]

Array = np.ndarray[Any, Any]
STOP_REASONS = ("completed", "early_stopped", "diverged", "cancelled", "deadline_exceeded")


@dataclass(frozen=True)
class FitConfig:
    """How to train: optimizer, schedule, batches, regularisation, validation and budgets.

    ``batch_size=None`` is full-batch gradient descent. The optimizer is a name from
    ``engine.optimizers.OPTIMIZERS`` and the learning-rate schedule one from
    ``engine.schedules.SCHEDULES``, each with its options. ``l2`` adds (l2 / 2)·Σ‖W‖² to the
    loss (coupled: its gradient l2·W goes through the optimizer; weights only, not biases).
    ``max_grad_norm`` clips the global L2 norm of each step's gradient, the l2 term included.
    """

    epochs: int
    optimizer: str = "gd"
    learning_rate: float = 0.1
    optimizer_params: Mapping[str, float] = field(default_factory=dict)
    schedule: str = "constant"
    schedule_params: Mapping[str, float] = field(default_factory=dict)
    batch_size: int | None = None
    l2: float = 0.0
    validation_fraction: float = 0.0
    early_stopping: EarlyStopping | None = None
    standardize: bool = False
    dtype: str = "float64"
    max_runtime_s: float | None = None
    max_grad_norm: float | None = None

    def __post_init__(self) -> None:
        if not _is_int(self.epochs) or self.epochs < 1:
            raise ValueError(f"epochs must be an integer of at least 1, got {self.epochs!r}")
        optimizer = get_optimizer(self.optimizer)
        if not (np.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be positive and finite, got {self.learning_rate}")
        if self.batch_size is not None and (not _is_int(self.batch_size) or self.batch_size < 1):
            raise ValueError(
                f"batch_size must be a positive integer or null for full batch, got {self.batch_size!r}"
            )
        if optimizer.full_batch_only and self.batch_size is not None:
            raise ValueError(
                f"optimizer {self.optimizer!r} is full-batch gradient descent; "
                f"batch_size must be null, got {self.batch_size}"
            )
        if not (np.isfinite(self.l2) and self.l2 >= 0):
            raise ValueError(f"l2 must be non-negative, got {self.l2}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; allowed: {', '.join(DTYPES)}")
        if self.max_runtime_s is not None and not self.max_runtime_s > 0:
            raise ValueError(f"max_runtime_s must be positive, got {self.max_runtime_s}")
        if self.max_grad_norm is not None and not (
            np.isfinite(self.max_grad_norm) and self.max_grad_norm > 0
        ):
            raise ValueError(f"max_grad_norm must be positive and finite, got {self.max_grad_norm}")
        if self.early_stopping is not None:
            patience, min_delta = self.early_stopping.patience, self.early_stopping.min_delta
            if not _is_int(patience) or patience < 1:
                raise ValueError(
                    f"early_stopping.patience must be an integer of at least 1, got {patience!r}"
                )
            # A negative min_delta would count a worse epoch as an improvement.
            if not (np.isfinite(min_delta) and min_delta >= 0):
                raise ValueError(f"early_stopping.min_delta must be non-negative, got {min_delta!r}")
        # Fail now, not at the first epoch, on bad optimizer or schedule options.
        make_optimizer(self.optimizer, 1, np.float64, **self.optimizer_params)
        learning_rate_at(self.learning_rate, 0, self.epochs, self.schedule, **self.schedule_params)


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass
class EpochState:
    """What the per-epoch callback sees; ``checkpoint()`` copies the run's state when asked.

    ``params`` is the run's own flat parameter buffer after the epoch, not a copy: read it (or copy
    it) inside the callback, since training overwrites it. ``standardization`` is how the run
    transforms its inputs (None without ``standardize``), which a model made from ``params`` needs.
    """

    epoch: int
    total_epochs: int
    metrics: dict[str, float]
    best_epoch: int
    best_loss: float
    elapsed_s: float
    checkpoint: Callable[[], Checkpoint]
    monitor: str = "val_loss"
    params: Array | None = None
    standardization: Standardization | None = None


@dataclass
class FitResult:
    """A trained model and how its training went.

    ``params`` are the final weights: the last epoch's, or the best epoch's when early stopping
    restored them or the run diverged; ``weights_epoch`` says which epoch they are from (0: the
    starting weights). ``best_params`` are the weights of the best epoch, judged by ``monitor``
    (the validation loss, or the training loss without a validation set).
    """

    architecture: Architecture
    params: Parameters
    best_params: Parameters
    standardization: Standardization | None
    history: dict[str, list[float]]
    stop_reason: str
    epochs_run: int
    best_epoch: int
    best_loss: float
    detail: str = ""
    weights_epoch: int = 0
    monitor: str = "val_loss"

    def predict(self, X: Array) -> tuple[Array, Array | None]:
        """Predictions (and probabilities) for raw, unstandardised X of shape (n_samples, n_features)."""
        X = np.asarray(X, dtype=self.params.flat.dtype)
        if self.standardization is not None:
            X = self.standardization.apply(X)
        return predict(self.architecture, self.params, X)


def fit(
    architecture: Architecture,
    X: Array,
    y: Array,
    config: FitConfig,
    rng: np.random.Generator,
    *,
    on_epoch: Callable[[EpochState], bool] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: Checkpoint | None = None,
    initial_params: Array | None = None,
) -> FitResult:
    """Train a model by gradient descent.

    Parameters
    ----------
    architecture : Architecture
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
        Class indices 0..K−1 for classifiers (0/1 for a sigmoid output), targets for regression
        (or shape (n_samples, n_outputs)).
    config : FitConfig
    rng : numpy.random.Generator
        The run's only source of randomness (split, initialisation, shuffling). Pass a generator
        seeded the same way to resume.
    on_epoch : callable, optional
        Called after every epoch with an EpochState; returning False cancels the run.
    should_stop : callable, optional
        Polled between mini-batches (between epochs for full batch), at most every 50 ms;
        returning True cancels the run.
    resume : Checkpoint, optional
        Continue a run from this checkpoint (same data, config and seed).
    initial_params : ndarray of shape (n_parameters,), optional
        Start from these weights (warm start) instead of a fresh initialisation.

    Returns
    -------
    FitResult
    """
    split_rng, init_rng, shuffle_rng = rng.spawn(3)
    data = prepare_data(
        architecture,
        X,
        y,
        split_rng,
        validation_fraction=config.validation_fraction,
        standardize=config.standardize,
        dtype=config.dtype,
    )
    params = _starting_params(architecture, init_rng, DTYPES[config.dtype], initial_params)
    optimizer = make_optimizer(
        config.optimizer, architecture.n_parameters, params.flat.dtype, **config.optimizer_params
    )
    optimizer.decay_only(weights_mask(architecture))
    progress = Progress(architecture, params, _metric_names(data), config.early_stopping)
    if resume is not None:
        progress.resume(resume, optimizer, shuffle_rng)
    batches = Batches(data, config.batch_size, shuffle_rng)
    grads = Parameters(architecture, np.zeros_like(params.flat))
    # Logistic regression on the full batch: fused passes in buffers allocated once for the run.
    fused = (
        LogisticEpochs(data.X_train, data.Y_train, data.labels_train)
        if batches.full and LogisticEpochs.fits(architecture)
        else None
    )
    clock = Clock(config.max_runtime_s, should_stop)
    # A checkpoint taken in the epoch that triggered early stopping ends the resumed run too.
    stop, detail = ("early_stopped" if progress.patience_exhausted else "completed"), ""
    while stop == "completed" and progress.epoch < config.epochs:
        lr = learning_rate_at(
            config.learning_rate, progress.epoch, config.epochs, config.schedule, **config.schedule_params
        )
        loss_sum, correct, interrupted = _train_epoch(
            architecture, params, grads, optimizer, batches, config, lr, clock, fused
        )
        # A finite loss can still take a step to inf weights (huge learning rate), so check both.
        if not np.isfinite(loss_sum) or not np.isfinite(params.flat).all():
            what = "training loss" if not np.isfinite(loss_sum) else "weights"
            stop, detail = "diverged", f"the {what} became non-finite in epoch {progress.epoch + 1}"
            break
        if interrupted:
            stop = interrupted
            break
        metrics = _epoch_metrics(architecture, params, data, loss_sum, correct)
        progress.record(metrics)
        if not np.isfinite(metrics[progress.monitor]):
            stop, detail = "diverged", f"the validation loss became non-finite in epoch {progress.epoch}"
            break
        stop = _between_epochs(
            progress, config, clock, batches.full, on_epoch, optimizer, shuffle_rng, data.standardization
        )
    if stop == "deadline_exceeded":
        detail = f"the run exceeded max_runtime_s={config.max_runtime_s} after {progress.epoch} epochs"
    weights_epoch = progress.epoch
    restore = (
        config.early_stopping is not None and config.early_stopping.restore_best and progress.best_epoch > 0
    )
    if stop == "diverged" or restore:
        # A diverged run keeps its best finite epoch (the starting weights if none ended finite).
        np.copyto(params.flat, progress.best_params.flat)
        weights_epoch = progress.best_epoch
    if stop == "diverged":
        detail += f"; the weights kept are those of epoch {weights_epoch}, the best by {progress.monitor}"
    return FitResult(
        architecture,
        params,
        progress.best_params,
        data.standardization,
        progress.history,
        stop,
        progress.epoch,
        progress.best_epoch,
        progress.best_loss,
        detail,
        weights_epoch,
        progress.monitor,
    )


def _train_epoch(
    architecture: Architecture,
    params: Parameters,
    grads: Parameters,
    optimizer: Optimizer,
    batches: Batches,
    config: FitConfig,
    lr: float,
    clock: Clock,
    fused: LogisticEpochs | None = None,
) -> tuple[float, float, str]:
    """One pass over the training part: the summed loss, the count of correct outputs, and why it
    stopped early ("" when it did not; a non-finite loss is returned as the sum, before any step)."""
    loss_sum, correct = 0.0, 0.0
    # Divergence is detected by the caller and reported as a stop reason, so the overflow on the
    # way there is expected rather than a warning for the caller.
    with np.errstate(over="ignore", invalid="ignore"):
        for X, Y, labels in batches:
            hits: float
            if fused is not None:
                loss, hits = fused.loss_and_gradient(params, grads, config.l2)  # forward, backward
            else:
                loss, _, output = loss_and_gradient(architecture, params, X, Y, config.l2, grads)
                hits = 0 if labels is None else accuracy(architecture, output, labels) * len(X)
            if not np.isfinite(loss):
                return loss, correct, ""
            if config.max_grad_norm is not None:
                clip_grad_norm(grads.flat, config.max_grad_norm)
            optimizer.step(params.flat, grads.flat, lr)
            loss_sum += loss * len(X)
            correct += hits
            if not batches.full and (interrupted := clock.interruption()):
                return loss_sum, correct, interrupted
    return loss_sum, correct, ""


def _epoch_metrics(
    architecture: Architecture, params: Parameters, data: TrainingData, loss_sum: float, correct: float
) -> dict[str, float]:
    """The epoch's history row: training loss (the mean over its batches) and accuracy, validation's."""
    n = len(data.X_train)
    metrics = {"train_loss": loss_sum / n}
    if data.has_accuracy:
        metrics["train_accuracy"] = correct / n
    if data.has_validation:
        with np.errstate(over="ignore", invalid="ignore"):
            val = evaluate(architecture, params, data.X_val, data.Y_val, data.labels_val)
        metrics["val_loss"] = val["loss"]
        if "accuracy" in val:
            metrics["val_accuracy"] = val["accuracy"]
    return metrics


def _between_epochs(
    progress: Progress,
    config: FitConfig,
    clock: Clock,
    full_batch: bool,
    on_epoch: Callable[[EpochState], bool] | None,
    optimizer: Optimizer,
    shuffle_rng: np.random.Generator,
    standardization: Standardization | None,
) -> str:
    """Report the epoch, then decide whether the run goes on ("completed") or why it stops."""
    now = time.perf_counter()
    if on_epoch is not None:
        state = EpochState(
            progress.epoch,
            config.epochs,
            {key: values[-1] for key, values in progress.history.items()},
            progress.best_epoch,
            progress.best_loss,
            now - clock.began,
            functools.partial(progress.checkpoint, optimizer, shuffle_rng),
            progress.monitor,
            progress.params.flat,
            standardization,
        )
        if on_epoch(state) is False:
            return "cancelled"
    # A full batch is a whole epoch, so between epochs is between its mini-batches.
    if full_batch and clock.cancelled(now):
        return "cancelled"
    if progress.patience_exhausted:
        return "early_stopped"
    if clock.past_deadline(now) and progress.epoch < config.epochs:
        return "deadline_exceeded"
    return "completed"


def _metric_names(data: TrainingData) -> list[str]:
    """The history's keys: losses always, accuracies with class labels, validation's with a validation set."""
    names = ["train_loss", "train_accuracy"] if data.has_accuracy else ["train_loss"]
    if data.has_validation:
        names += ["val_loss", "val_accuracy"] if data.has_accuracy else ["val_loss"]
    return names


def _starting_params(
    architecture: Architecture, rng: np.random.Generator, dtype: Any, initial: Array | None
) -> Parameters:
    """Freshly initialised weights, or the warm start's."""
    params = init_parameters(architecture, rng, dtype)
    if initial is not None:
        if initial.shape != params.flat.shape:
            raise ValueError(f"initial parameters have shape {initial.shape}, expected {params.flat.shape}")
        params.flat[...] = initial
    return params
