"""Before the first epoch: the validation split, standardisation, the run's dtype, and the batches.

``prepare_data`` turns the caller's X and y into the arrays the epochs read; ``Batches`` hands
them out an epoch at a time, the whole training part or shuffled mini-batches gathered into
reused buffers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.architecture import Architecture
from engine.models import targets

Array = np.ndarray[Any, Any]
DTYPES = {"float32": np.float32, "float64": np.float64}
# Rows gathered per block when casting: no full-size temporary in X's dtype.
_GATHER_BLOCK = 16384


@dataclass
class Standardization:
    """Per-feature mean and scale fitted on the training part: x' = (x − mean) / scale."""

    mean: Array
    scale: Array

    def apply(self, X: Array) -> Array:
        """(X − mean) / scale, without overflow in x − mean where the result itself is finite."""
        with np.errstate(over="ignore", invalid="ignore"):
            out = (X - self.mean) / self.scale
            lost = ~np.isfinite(out) & np.isfinite(X)
            if lost.any():
                # x and mean near ±max float with opposite signs: x − mean overflows, x/scale − mean/scale
                # does not (|mean| <= max |x| of the training part, scale >= its spread).
                rows, cols = np.nonzero(lost)
                out[rows, cols] = X[rows, cols] / self.scale[cols] - self.mean[cols] / self.scale[cols]
        return out


def fit_standardization(X: Array, idx: Array) -> Standardization:
    """Per-feature mean and standard deviation of ``X[idx]``, computed without overflow.

    Each column is divided by its largest magnitude first, so that neither the sum nor the squared
    deviations overflow: a column like [1e308, -1e308] has a finite scale (1e308), not infinity.
    A constant column gets scale 1, so that it is standardised to zero rather than divided by zero.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Finite values.
    idx : ndarray of int of shape (n_rows,)
        The rows to fit on (the training part), at least one.

    Returns
    -------
    Standardization
        ``mean`` and ``scale`` of shape (n_features,), float64 and finite.
    """
    n_features = X.shape[1]
    peak = np.zeros(n_features)
    for block in _blocks(X, idx):
        np.maximum(peak, np.abs(block).max(axis=0), out=peak)
    unit = np.where(peak > 0, peak, 1.0)
    total = np.zeros(n_features)
    for block in _blocks(X, idx):
        total += (block / unit).sum(axis=0)
    unit_mean = total / len(idx)
    squares = np.zeros(n_features)
    for block in _blocks(X, idx):
        squares += ((block / unit - unit_mean) ** 2).sum(axis=0)
    mean = unit_mean * unit
    scale = np.sqrt(squares / len(idx)) * unit
    scale[scale == 0] = 1  # a constant feature stays at zero rather than dividing by zero
    return Standardization(mean, scale)


def _blocks(X: Array, idx: Array) -> Iterator[Array]:
    """The rows ``X[idx]`` as float64, a block at a time."""
    for lo in range(0, len(idx), _GATHER_BLOCK):
        yield np.asarray(X[idx[lo : lo + _GATHER_BLOCK]], dtype=np.float64)


@dataclass
class TrainingData:
    """The run's data as the epochs read it: split, cast to the run's dtype and standardised.

    Attributes
    ----------
    X_train, X_val : ndarray of shape (n_train, n_features), (n_val, n_features)
    Y_train, Y_val : ndarray of shape (n_train, n_outputs), (n_val, n_outputs)
        Targets shaped as the network's outputs (``engine.models.targets``).
    labels_train, labels_val : ndarray of shape (n_train,), (n_val,), or None
        Class labels for accuracy (booleans for one sigmoid output); None without class labels.
    standardization : Standardization or None
    """

    X_train: Array
    Y_train: Array
    labels_train: Array | None
    X_val: Array
    Y_val: Array
    labels_val: Array | None
    standardization: Standardization | None

    @property
    def has_validation(self) -> bool:
        return len(self.X_val) > 0

    @property
    def has_accuracy(self) -> bool:
        return self.labels_train is not None


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


def prepare_data(
    architecture: Architecture,
    X: Array,
    y: Array,
    rng: np.random.Generator,
    *,
    validation_fraction: float,
    standardize: bool,
    dtype: str,
) -> TrainingData:
    """Split, cast and standardise X and y for training.

    Parameters
    ----------
    architecture : Architecture
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
    rng : numpy.random.Generator
        Draws the validation split (stratified for classifiers with class labels).
    validation_fraction : float
    standardize : bool
        Standardise with the training part's mean and scale.
    dtype : {"float32", "float64"}

    Returns
    -------
    TrainingData
    """
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != architecture.n_features:
        raise ValueError(f"X must have shape (n_samples, {architecture.n_features}), got {X.shape}")
    if len(y) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)} labels")
    run_dtype = DTYPES[dtype]
    classifier = architecture.is_classifier
    # Accuracy needs class indices: one-hot or probability targets give losses only.
    labels = np.asarray(y).astype(np.int64) if classifier and np.ndim(y) == 1 else None
    train_idx, val_idx = train_validation_split(
        np.asarray(y) if np.ndim(y) == 1 else np.zeros(len(y)), validation_fraction, rng, classifier
    )
    # Fitted in float64 on the caller's values, then kept in the run's dtype (as predictions apply it).
    standardization = None
    if standardize:
        standardization = _in_dtype(fit_standardization(X, train_idx), dtype)
    # The only full copies of X: the training part and the validation part, cast to the run's dtype.
    if len(val_idx) == 0 and not standardize and X.dtype == run_dtype and X.flags.c_contiguous:
        X_train = X  # nothing to split, cast or standardise: train on the caller's array as it is
    else:
        X_train = _gather(X, train_idx, run_dtype, standardization)
    X_val = _gather(X, val_idx, run_dtype, standardization)
    for part, rows in (("training", X_train), ("validation", X_val)):
        _check_finite(rows, part, dtype, standardization)
    Y = targets(architecture, y, run_dtype)
    if labels is not None and architecture.n_outputs == 1:
        labels = labels.astype(bool)  # booleans compare faster than integers
    return TrainingData(
        X_train,
        Y[train_idx],
        labels[train_idx] if labels is not None else None,
        X_val,
        Y[val_idx],
        labels[val_idx] if labels is not None else None,
        standardization,
    )


def _gather(X: Array, idx: Array, dtype: Any, standardization: Standardization | None) -> Array:
    """X[idx] (standardised, in float64) cast to dtype, a block of rows at a time."""
    out = np.empty((len(idx), X.shape[1]), dtype=dtype)
    with np.errstate(over="ignore"):  # values beyond dtype's range become inf: _check_finite names them
        for lo in range(0, len(idx), _GATHER_BLOCK):
            rows = X[idx[lo : lo + _GATHER_BLOCK]]
            out[lo : lo + _GATHER_BLOCK] = rows if standardization is None else standardization.apply(rows)
    return out


def _in_dtype(standardization: Standardization, dtype: str) -> Standardization:
    """The standardisation cast to the run's dtype; ``ValueError`` naming a column it cannot hold."""
    with np.errstate(over="ignore"):
        mean, scale = (standardization.mean.astype(dtype), standardization.scale.astype(dtype))
    fits = np.isfinite(mean) & np.isfinite(scale)
    if not fits.all():
        column = int(np.flatnonzero(~fits)[0])
        raise ValueError(
            f"feature column {column} holds values beyond the range of {dtype} ({np.finfo(dtype).max:.4g});"
            " train in float64"
        )
    scale[scale == 0] = 1  # a spread below the dtype's smallest number: as a constant feature
    return Standardization(mean, scale)


def _check_finite(X: Array, part: str, dtype: str, standardization: Standardization | None) -> None:
    """``ValueError`` naming the first feature column of X that holds a non-finite value."""
    finite = np.isfinite(X).all(axis=0)
    if finite.all():
        return
    column = int(np.flatnonzero(~finite)[0])
    if standardization is None:
        raise ValueError(
            f"feature column {column} holds values beyond the range of {dtype} ({np.finfo(dtype).max:.4g});"
            " train in float64, or with standardize"
        )
    mean, scale = standardization.mean[column], standardization.scale[column]
    raise ValueError(
        f"feature column {column} of the {part} part leaves the range of {dtype} once standardised with the"
        f" training part's mean {mean:.6g} and scale {scale:.6g}"
    )


class Batches:
    """The training part an epoch at a time: whole, or in shuffled mini-batches.

    Iterating gives one epoch's ``(X, Y, labels)`` batches. Mini-batches are gathered into
    buffers reused from batch to batch, so a step allocates no copy of its rows; the shuffle
    draws from ``rng`` once per epoch (a full batch draws nothing).
    """

    def __init__(self, data: TrainingData, batch_size: int | None, rng: np.random.Generator) -> None:
        self.X, self.Y, self.labels, self.rng = data.X_train, data.Y_train, data.labels_train, rng
        self.n = len(self.X)
        self.size = self.n if batch_size is None else min(batch_size, self.n)
        self.full = self.size == self.n
        if not self.full:
            self._X_buffer = np.empty((self.size, self.X.shape[1]), dtype=self.X.dtype)
            self._Y_buffer = np.empty((self.size, self.Y.shape[1]), dtype=self.Y.dtype)
            if self.labels is not None:
                self._labels_buffer = np.empty(self.size, dtype=self.labels.dtype)

    def __iter__(self) -> Iterator[tuple[Array, Array, Array | None]]:
        if self.full:
            yield self.X, self.Y, self.labels
            return
        order = self.rng.permutation(self.n)
        # mode="clip": the indices are a permutation, so always in range; "raise" would gather
        # into a temporary and copy it into the buffer.
        for lo in range(0, self.n, self.size):
            idx = order[lo : lo + self.size]
            k = len(idx)
            yield (
                np.take(self.X, idx, axis=0, out=self._X_buffer[:k], mode="clip"),
                np.take(self.Y, idx, axis=0, out=self._Y_buffer[:k], mode="clip"),
                None
                if self.labels is None
                else np.take(self.labels, idx, out=self._labels_buffer[:k], mode="clip"),
            )
