"""The training loop: gradient descent epochs with validation, early stopping and checkpoints.

``fit`` repeats w ← w − η ∂L/∂w (or a momentum/Adam variant) over full batches or shuffled
mini-batches. It reports every epoch to a callback that can stop it, and can hand out a
checkpoint at any epoch; resuming from one gives bitwise the same final weights as a run that was
never interrupted. It knows nothing of jobs, stores or HTTP.
"""

from __future__ import annotations

import functools
import numbers
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.models import (
    Architecture,
    Parameters,
    init_parameters,
    loss_and_gradient,
    loss_and_output,
    predict,
    targets,
)
from engine.optimizers import OPTIMIZERS, Optimizer, learning_rate_at, make_optimizer

Array = np.ndarray[Any, Any]
STOP_REASONS = ("completed", "early_stopped", "diverged", "cancelled", "deadline_exceeded")
DTYPES = {"float32": np.float32, "float64": np.float64}
# How often, at most, the should_stop hook is polled between mini-batches.
_POLL_INTERVAL_S = 0.05


@dataclass(frozen=True)
class EarlyStopping:
    """Stop when the monitored loss has not improved by min_delta for patience epochs."""

    patience: int = 10
    min_delta: float = 0.0
    restore_best: bool = True


@dataclass(frozen=True)
class FitConfig:
    """How to train: optimizer, schedule, batches, regularisation, validation and budgets.

    ``batch_size=None`` is full-batch gradient descent. The learning-rate schedule is a
    name from ``engine.optimizers.SCHEDULES`` with its options.
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

    def __post_init__(self) -> None:
        if not _is_int(self.epochs) or self.epochs < 1:
            raise ValueError(f"epochs must be an integer of at least 1, got {self.epochs!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; allowed: {', '.join(OPTIMIZERS)}")
        if not (np.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be positive and finite, got {self.learning_rate}")
        if self.batch_size is not None and (not _is_int(self.batch_size) or self.batch_size < 1):
            raise ValueError(
                f"batch_size must be a positive integer or null for full batch, got {self.batch_size!r}"
            )
        if self.optimizer == "gd" and self.batch_size is not None:
            raise ValueError(
                "optimizer 'gd' is full-batch gradient descent; "
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


@dataclass
class EpochState:
    """What the per-epoch callback sees; ``checkpoint()`` copies the run's state when asked."""

    epoch: int
    total_epochs: int
    metrics: dict[str, float]
    best_epoch: int
    best_loss: float
    elapsed_s: float
    checkpoint: Callable[[], Checkpoint]


@dataclass
class Standardization:
    """Per-feature mean and scale fitted on the training part: x' = (x − mean) / scale."""

    mean: Array
    scale: Array

    def apply(self, X: Array) -> Array:
        return (X - self.mean) / self.scale


@dataclass
class FitResult:
    """A trained model and how its training went.

    ``params`` are the final weights (the best ones when early stopping restored them, the
    last finite ones after divergence); ``best_params`` the weights of the best epoch.
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

    def predict(self, X: Array) -> tuple[Array, Array | None]:
        """Predictions (and probabilities) for raw, unstandardised X of shape (n_samples, n_features)."""
        X = np.asarray(X, dtype=self.params.flat.dtype)
        if self.standardization is not None:
            X = self.standardization.apply(X)
        return predict(self.architecture, self.params, X)


def train_validation_split(
    y: Array, fraction: float, rng: np.random.Generator, stratify: bool
) -> tuple[Array, Array]:
    """Shuffle sample indices into a training and a validation part.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
    fraction : float
        The share of samples (of each class, when stratified) held out for validation.
    rng : numpy.random.Generator
    stratify : bool

    Returns
    -------
    train_idx, val_idx : ndarray of int
    """
    n = len(y)
    if fraction == 0:
        return np.arange(n), np.arange(0)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(n)]
    train, val = [], []
    for idx in groups:
        idx = rng.permutation(idx)
        n_val = round(fraction * len(idx))
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    train_idx, val_idx = np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise ValueError(
            f"validation_fraction {fraction} leaves an empty training or validation set for {n} samples"
        )
    return train_idx, val_idx


def _gather(X: Array, idx: Array, dtype: Any) -> Array:
    """X[idx] cast to dtype, a block of rows at a time: no full-size temporary in X's dtype."""
    out = np.empty((len(idx), X.shape[1]), dtype=dtype)
    for lo in range(0, len(idx), 16384):
        out[lo : lo + 16384] = X[idx[lo : lo + 16384]]
    return out


def _metrics(architecture: Architecture, output: Array, labels: Array | None) -> float | None:
    """Accuracy of the outputs against class labels (None for regression)."""
    if labels is None:
        return None
    if architecture.n_outputs == 1:
        # >= as in models.predict, so the reported accuracy is that of the model's predictions;
        # binary labels come as booleans, which compare faster than integers.
        return float(np.count_nonzero((output[:, 0] >= 0.5) == labels)) / len(labels)
    return float(np.count_nonzero(np.argmax(output, axis=1) == labels)) / len(labels)


def evaluate(
    architecture: Architecture, params: Parameters, X: Array, Y: Array, labels: Array | None
) -> dict[str, float]:
    """Loss (with no penalty) and, for classifiers, accuracy on a dataset."""
    loss, output = loss_and_output(architecture, params, X, Y)
    acc = _metrics(architecture, output, labels)
    return {"loss": loss} if acc is None else {"loss": loss, "accuracy": acc}


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
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != architecture.n_features:
        raise ValueError(f"X must have shape (n_samples, {architecture.n_features}), got {X.shape}")
    if len(y) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)} labels")
    dtype = DTYPES[config.dtype]
    split_rng, init_rng, shuffle_rng = rng.spawn(3)
    classifier = architecture.is_classifier
    labels_all = np.asarray(y).astype(np.int64) if classifier and np.ndim(y) == 1 else None
    train_idx, val_idx = train_validation_split(
        np.asarray(y) if np.ndim(y) == 1 else np.zeros(len(y)),
        config.validation_fraction,
        split_rng,
        classifier,
    )
    # The only full copies of X: the training part and the validation part, cast to the run's dtype.
    if len(val_idx) == 0 and not config.standardize and X.dtype == dtype and X.flags.c_contiguous:
        X_train = X  # nothing to split, cast or standardise: train on the caller's array as it is
    else:
        X_train = _gather(X, train_idx, dtype)
    X_val = _gather(X, val_idx, dtype)
    standardization = None
    if config.standardize:
        mean = X_train.mean(axis=0)
        scale = X_train.std(axis=0)
        scale[scale == 0] = 1  # a constant feature stays at zero rather than dividing by zero
        standardization = Standardization(mean, scale)
        X_train -= mean
        X_train /= scale
        X_val -= mean
        X_val /= scale
    Y_all = targets(architecture, y, dtype)
    Y_train, Y_val = Y_all[train_idx], Y_all[val_idx]
    labels = labels_all
    if labels is not None and architecture.n_outputs == 1:
        labels = labels.astype(bool)
    labels_train = labels[train_idx] if labels is not None else None
    labels_val = labels[val_idx] if labels is not None else None
    has_val = len(val_idx) > 0

    params = init_parameters(architecture, init_rng, dtype)
    if initial_params is not None:
        if initial_params.shape != params.flat.shape:
            raise ValueError(
                f"initial parameters have shape {initial_params.shape}, expected {params.flat.shape}"
            )
        params.flat[...] = initial_params
    optimizer: Optimizer = make_optimizer(
        config.optimizer, architecture.n_parameters, dtype, **config.optimizer_params
    )
    # Accuracy needs class indices: one-hot or probability targets give losses only.
    history: dict[str, list[float]] = {"train_loss": []}
    if labels_all is not None:
        history["train_accuracy"] = []
    if has_val:
        history["val_loss"] = []
        if labels_all is not None:
            history["val_accuracy"] = []
    best_params = params.copy(architecture)
    best_epoch, best_loss, bad_epochs, start = 0, float("inf"), 0, 0
    if resume is not None:
        params.flat[...] = resume.params
        optimizer.load_state_dict(resume.optimizer_state)
        shuffle_rng.bit_generator.state = resume.rng_state
        best_params.flat[...] = resume.best_params
        best_epoch, best_loss, bad_epochs, start = (
            resume.best_epoch,
            resume.best_loss,
            resume.bad_epochs,
            resume.epoch,
        )
        history = {k: list(v) for k, v in resume.history.items()}

    def checkpoint(epoch: int) -> Checkpoint:
        return Checkpoint(
            epoch,
            params.flat.copy(),
            optimizer.state_dict(),
            dict(shuffle_rng.bit_generator.state),
            best_params.flat.copy(),
            best_epoch,
            best_loss,
            bad_epochs,
            {k: list(v) for k, v in history.items()},
        )

    n = len(X_train)
    batch = n if config.batch_size is None else min(config.batch_size, n)
    grads = Parameters(architecture, np.zeros_like(params.flat))
    if batch < n:
        X_batch = np.empty((batch, X_train.shape[1]), dtype=X_train.dtype)
        Y_batch = np.empty((batch, Y_train.shape[1]), dtype=Y_train.dtype)
    epoch_start = params.flat.copy()
    stop_reason, detail = "completed", ""
    began = last_poll = time.perf_counter()
    deadline = began + config.max_runtime_s if config.max_runtime_s else None
    epoch = start
    if resume is not None and config.early_stopping is not None:
        # A checkpoint taken in the epoch that triggered early stopping ends the resumed run too.
        if bad_epochs >= config.early_stopping.patience:
            stop_reason = "early_stopped"
    while stop_reason == "completed" and epoch < config.epochs:
        lr = learning_rate_at(
            config.learning_rate, epoch, config.epochs, config.schedule, **config.schedule_params
        )
        np.copyto(epoch_start, params.flat)
        loss_sum, correct, interrupted = 0.0, 0.0, ""
        # Divergence is detected below and reported as a stop reason, so the overflow on the way
        # there is expected rather than a warning for the caller.
        with np.errstate(over="ignore", invalid="ignore"):
            if batch == n:
                loss, _, output = loss_and_gradient(architecture, params, X_train, Y_train, config.l2, grads)
                acc = _metrics(architecture, output, labels_train)
                if np.isfinite(loss):
                    optimizer.step(params.flat, grads.flat, lr)
                loss_sum, correct = loss * n, (acc or 0.0) * n
            else:
                order = shuffle_rng.permutation(n)
                for lo in range(0, n, batch):
                    idx = order[lo : lo + batch]
                    k = len(idx)
                    # Gather the batch into reused buffers: no allocation per step.
                    Xb = np.take(X_train, idx, axis=0, out=X_batch[:k])
                    Yb = np.take(Y_train, idx, axis=0, out=Y_batch[:k])
                    loss, _, output = loss_and_gradient(architecture, params, Xb, Yb, config.l2, grads)
                    if not np.isfinite(loss):
                        loss_sum = loss
                        break
                    optimizer.step(params.flat, grads.flat, lr)
                    loss_sum += loss * k
                    if labels_train is not None:
                        correct += (_metrics(architecture, output, labels_train[idx]) or 0.0) * k
                    now = time.perf_counter()
                    if deadline is not None and now > deadline:
                        interrupted = "deadline_exceeded"
                        break
                    if should_stop is not None and now - last_poll >= _POLL_INTERVAL_S:
                        last_poll = now
                        if should_stop():
                            interrupted = "cancelled"
                            break
        # A finite loss can still take a step to inf weights (huge learning rate), so check both.
        if not np.isfinite(loss_sum) or not np.isfinite(params.flat).all():
            # Every epoch ends with finite weights, so those at the start of this one are finite.
            np.copyto(params.flat, epoch_start)
            what = "training loss" if not np.isfinite(loss_sum) else "weights"
            stop_reason, detail = "diverged", f"the {what} became non-finite in epoch {epoch + 1}"
            break
        if interrupted:
            stop_reason = interrupted
            break
        epoch += 1
        metrics = {"train_loss": loss_sum / n}
        if labels_train is not None:
            metrics["train_accuracy"] = correct / n
        if has_val:
            with np.errstate(over="ignore", invalid="ignore"):
                val = evaluate(architecture, params, X_val, Y_val, labels_val)
            metrics["val_loss"] = val["loss"]
            if "accuracy" in val:
                metrics["val_accuracy"] = val["accuracy"]
        for key, value in metrics.items():
            history[key].append(value)
        monitored = metrics["val_loss"] if has_val else metrics["train_loss"]
        if not np.isfinite(monitored):
            stop_reason, detail = "diverged", f"the validation loss became non-finite in epoch {epoch}"
            break
        if monitored < best_loss - (config.early_stopping.min_delta if config.early_stopping else 0.0):
            best_loss, best_epoch, bad_epochs = monitored, epoch, 0
            np.copyto(best_params.flat, params.flat)
        else:
            bad_epochs += 1
        now = time.perf_counter()
        if on_epoch is not None:
            state = EpochState(
                epoch,
                config.epochs,
                metrics,
                best_epoch,
                best_loss,
                now - began,
                functools.partial(checkpoint, epoch),
            )
            if on_epoch(state) is False:
                stop_reason = "cancelled"
                break
        # A full batch is a whole epoch, so between epochs is between its mini-batches.
        if should_stop is not None and batch == n and now - last_poll >= _POLL_INTERVAL_S:
            last_poll = now
            if should_stop():
                stop_reason = "cancelled"
                break
        if config.early_stopping is not None and bad_epochs >= config.early_stopping.patience:
            stop_reason = "early_stopped"
            break
        if deadline is not None and now > deadline and epoch < config.epochs:
            stop_reason = "deadline_exceeded"
            break
    if stop_reason == "deadline_exceeded":
        detail = f"the run exceeded max_runtime_s={config.max_runtime_s} after {epoch} epochs"
    if config.early_stopping is not None and config.early_stopping.restore_best and best_epoch > 0:
        np.copyto(params.flat, best_params.flat)
    return FitResult(
        architecture,
        params,
        best_params,
        standardization,
        history,
        stop_reason,
        epoch,
        best_epoch,
        best_loss,
        detail,
    )
