"""Loss functions and their gradients, registered by the name the API exposes.

Each loss returns ``(loss, grad)`` where ``grad`` is shaped like the predictions (or logits) it
was taken with respect to. Pairing sigmoid with binary cross-entropy and softmax with
cross-entropy makes the gradient with respect to the logits ``y_pred - y`` — the seed's
∂L/∂z = ŷ − y that gives ∂L/∂w = mean((ŷ − y)·x) and ∂L/∂b = mean(ŷ − y).

Reductions: each sample's loss is the mean over its outputs for binary cross-entropy and squared
error (the sum over classes for cross-entropy, which is one distribution); "mean" averages the
samples' losses, so for several outputs it is the mean over all elements, as PyTorch and Keras
report it; "sum" adds them; "none" returns them. No function here warns: a loss too large for
the float range is inf, without a floating-point warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from engine.activations import sigmoid, softmax

Array = np.ndarray[Any, Any]
REDUCTIONS = ("mean", "sum", "none")


def _reduce(per_sample: Array, reduction: str) -> tuple[float | Array, float]:
    """Reduce per-sample losses; also return the factor every per-sample gradient is scaled by."""
    n = per_sample.shape[0]
    with np.errstate(over="ignore"):  # a sum beyond the float range is inf: the answer, not a warning
        if reduction == "mean":
            mean = float(np.mean(per_sample))
            if math.isinf(mean) and np.isfinite(per_sample).all():
                mean = float(np.sum(per_sample / n))  # the sum overflowed, the mean need not
            return mean, 1.0 / n
        if reduction == "sum":
            return float(np.sum(per_sample)), 1.0
    if reduction == "none":
        return per_sample, 1.0
    raise ValueError(f"unknown reduction {reduction!r}; allowed: {', '.join(REDUCTIONS)}")


def _check_binary_labels(y_true: Array) -> None:
    if not np.all((y_true == 0) | (y_true == 1)):
        bad = y_true[(y_true != 0) & (y_true != 1)].ravel()[:5].tolist()
        raise ValueError(f"y_true must hold labels 0 or 1 for binary_cross_entropy, got {bad}")


def _check_same_shape(y_true: Array, other: Array, other_name: str) -> None:
    if y_true.shape != other.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but {other_name} has shape {other.shape}")
    if y_true.ndim == 0 or y_true.shape[0] == 0:
        raise ValueError(f"y_true must hold at least one sample, got shape {y_true.shape}")


def binary_cross_entropy(
    y_true: Array, y_pred: Array, reduction: str = "mean"
) -> tuple[float | Array, Array]:
    """Binary cross-entropy −[y log ŷ + (1 − y) log(1 − ŷ)] from probabilities, averaged over the outputs.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        Labels, each 0 or 1.
    y_pred : ndarray of the same shape
        Predicted probabilities in [0, 1].
    reduction : {"mean", "sum", "none"}

    Returns
    -------
    loss : float, or ndarray of shape (n_samples,) for reduction="none"
    grad : ndarray shaped like y_pred
        ∂loss/∂y_pred.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    _check_same_shape(y_true, y_pred, "y_pred")
    _check_binary_labels(y_true)
    if np.any((y_pred < 0) | (y_pred > 1)):
        raise ValueError("y_pred must hold probabilities in [0, 1]; pass logits to use raw scores")
    # Clip inside the logs only, by the dtype's eps: a confident wrong prediction costs −log(eps),
    # large and finite, while ŷ = y still costs exactly 0 (0·log(eps) = 0 and log(1) = 0).
    eps = np.finfo(y_pred.dtype if y_pred.dtype.kind == "f" else np.float64).eps
    p = y_pred.astype(np.result_type(y_pred.dtype, np.float32), copy=False)
    elementwise = -(y_true * np.log(np.maximum(p, eps)) + (1 - y_true) * np.log1p(-np.minimum(p, 1 - eps)))
    p_safe = np.clip(p, eps, 1 - eps)
    grad_elem = (p_safe - y_true) / (p_safe * (1 - p_safe))
    k = _n_outputs(y_true)
    return _finish(elementwise / k, grad_elem / k, reduction)


def binary_cross_entropy_with_logits(
    y_true: Array, logits: Array, reduction: str = "mean"
) -> tuple[float | Array, Array]:
    """Binary cross-entropy of sigmoid(logits), as softplus(z) − y·z, averaged over the outputs.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        Labels, each 0 or 1.
    logits : ndarray of the same shape
        Raw scores z; the probabilities are sigmoid(z).
    reduction : {"mean", "sum", "none"}

    Returns
    -------
    loss : float, or ndarray of shape (n_samples,) for reduction="none"
    grad : ndarray shaped like logits
        ∂loss/∂z = (sigmoid(z) − y) / n_outputs, scaled by the reduction.
    """
    y_true, z = np.asarray(y_true), np.asarray(logits)
    _check_same_shape(y_true, z, "logits")
    _check_binary_labels(y_true)
    # softplus(z) = max(z, 0) + log1p(exp(−|z|)) never overflows; max(z, 0) − y·z is exact for y in {0, 1}.
    elementwise = np.where(y_true == 1, np.maximum(-z, 0), np.maximum(z, 0)) + np.log1p(np.exp(-np.abs(z)))
    k = _n_outputs(y_true)
    return _finish(elementwise / k, (sigmoid(z) - y_true) / k, reduction)


def _class_targets(y_true: Array, shape: tuple[int, ...]) -> Array:
    """Turn class indices of shape (n,) or one-hot/soft targets of shape (n, k) into (n, k) targets."""
    n, k = shape
    if y_true.ndim == 1:
        if y_true.shape[0] != n:
            raise ValueError(f"y_true has {y_true.shape[0]} labels but the predictions have {n} rows")
        if not np.all((y_true == np.round(y_true)) & (y_true >= 0) & (y_true < k)):
            bad = y_true[(y_true != np.round(y_true)) | (y_true < 0) | (y_true >= k)][:5].tolist()
            raise ValueError(f"class indices in y_true must be integers in [0, {k - 1}], got {bad}")
        target = np.zeros(shape)
        target[np.arange(n), y_true.astype(np.intp)] = 1
        return target
    if y_true.shape != shape:
        raise ValueError(f"y_true has shape {y_true.shape} but the predictions have shape {shape}")
    if np.any((y_true < 0) | (y_true > 1)) or not np.allclose(y_true.sum(axis=1), 1):
        raise ValueError("one-hot y_true rows must hold values in [0, 1] that sum to 1")
    return y_true


def _check_2d(a: Array, name: str) -> None:
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] < 2:
        raise ValueError(f"{name} must have shape (n_samples, n_classes) with n_classes >= 2, got {a.shape}")


def cross_entropy(y_true: Array, y_pred: Array, reduction: str = "mean") -> tuple[float | Array, Array]:
    """Cross-entropy −Σ_k y_k log ŷ_k from class probabilities.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,) of class indices, or (n_samples, n_classes) one-hot
    y_pred : ndarray of shape (n_samples, n_classes)
        Probabilities, each row summing to 1.
    reduction : {"mean", "sum", "none"}

    Returns
    -------
    loss : float, or ndarray of shape (n_samples,) for reduction="none"
    grad : ndarray of shape (n_samples, n_classes)
    """
    y_true, p = np.asarray(y_true), np.asarray(y_pred)
    _check_2d(p, "y_pred")
    if np.any((p < 0) | (p > 1)):
        raise ValueError("y_pred must hold probabilities in [0, 1]; pass logits to use raw scores")
    target = _class_targets(y_true, p.shape)
    eps = np.finfo(p.dtype if p.dtype.kind == "f" else np.float64).eps
    p_safe = np.maximum(p, eps)
    # 0·log(eps) = 0 keeps classes with zero target weight out of the sum exactly.
    per_sample = -np.sum(target * np.log(p_safe), axis=1)
    return _finish(per_sample, -target / p_safe, reduction)


def cross_entropy_with_logits(
    y_true: Array, logits: Array, reduction: str = "mean"
) -> tuple[float | Array, Array]:
    """Cross-entropy of softmax(logits), via logsumexp: no overflow for large logits.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,) of class indices, or (n_samples, n_classes) one-hot
    logits : ndarray of shape (n_samples, n_classes)
    reduction : {"mean", "sum", "none"}

    Returns
    -------
    loss : float, or ndarray of shape (n_samples,) for reduction="none"
    grad : ndarray of shape (n_samples, n_classes)
        softmax(logits) − y, scaled by the reduction.
    """
    y_true, z = np.asarray(y_true), np.asarray(logits)
    _check_2d(z, "logits")
    target = _class_targets(y_true, z.shape)
    # For rows spanning more than the float range the shift overflows to −inf, whose exp is the
    # right 0; classes with zero target weight are left out of the sum rather than giving 0·(−inf).
    with np.errstate(over="ignore", invalid="ignore"):
        shifted = z - np.max(z, axis=1, keepdims=True)
        log_sum = np.log(np.sum(np.exp(shifted), axis=1))
        weighted = np.where(target != 0, target * shifted, 0.0)
    per_sample = log_sum - np.sum(weighted, axis=1)
    return _finish(per_sample, softmax(z) - target, reduction)


def mean_squared_error(y_true: Array, y_pred: Array, reduction: str = "mean") -> tuple[float | Array, Array]:
    """Squared error (ŷ − y)², averaged over the outputs of each sample.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,) or (n_samples, n_outputs)
    y_pred : ndarray of the same shape
    reduction : {"mean", "sum", "none"}

    Returns
    -------
    loss : float, or ndarray of shape (n_samples,) for reduction="none"
    grad : ndarray shaped like y_pred
        2(ŷ − y) / n_outputs, scaled by the reduction.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    _check_same_shape(y_true, y_pred, "y_pred")
    # Values beyond the float range give an inf loss, which is the answer, not a warning.
    with np.errstate(over="ignore", invalid="ignore"):
        diff = y_pred - y_true
        k = _n_outputs(diff)
        return _finish(diff * diff / k, 2 * diff / k, reduction)


def _n_outputs(a: Array) -> int:
    """The number of outputs per sample: 1 for shape (n,), k for shape (n, k)."""
    return 1 if a.ndim == 1 else int(np.prod(a.shape[1:]))


def _finish(elementwise: Array, grad: Array, reduction: str) -> tuple[float | Array, Array]:
    """Sum elementwise losses to per-sample losses, reduce them, and scale the gradient to match."""
    per_sample = (
        elementwise if elementwise.ndim <= 1 else elementwise.reshape(len(elementwise), -1).sum(axis=1)
    )
    loss, scale = _reduce(per_sample, reduction)
    return loss, grad * scale


class LossFunction(Protocol):
    """A loss and its gradient: ``(y_true, y_pred or logits, reduction) -> (loss, grad)``."""

    def __call__(
        self, y_true: Array, y_pred: Array, reduction: str = "mean", /
    ) -> tuple[float | Array, Array]: ...


@dataclass(frozen=True)
class Loss:
    """A loss, its stable form from logits when it has one, and the output activation it pairs with.

    Attributes
    ----------
    name : str
        The name in the API.
    function : LossFunction
        The loss of predictions (probabilities for the cross-entropies).
    output : str or None
        The output activation the loss pairs with: its derivative cancels the loss's, so the error
        at the output is ŷ − y, and ``from_logits`` takes that activation's input. A loss with an
        output activation is a classification loss; None pairs with any output.
    from_logits : LossFunction or None
        The same loss of ``output``(logits), computed from the logits without overflow.
    """

    name: str
    function: LossFunction
    output: str | None = None
    from_logits: LossFunction | None = None

    @property
    def is_classification(self) -> bool:
        return self.output is not None


LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in [
        Loss("binary_cross_entropy", binary_cross_entropy, "sigmoid", binary_cross_entropy_with_logits),
        Loss("cross_entropy", cross_entropy, "softmax", cross_entropy_with_logits),
        Loss("mean_squared_error", mean_squared_error),
    ]
}
# The loss an output activation pairs with, when it pairs with one; the others default to this.
DEFAULT_LOSS = "mean_squared_error"


def loss_for_output(activation: str) -> str:
    """The loss an output layer of ``activation`` trains with by default."""
    return next((loss.name for loss in LOSSES.values() if loss.output == activation), DEFAULT_LOSS)


def get_loss(name: str) -> Loss:
    """Look up a loss by its API name; ValueError lists the allowed names."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; allowed: {', '.join(sorted(LOSSES))}") from None


def compute_loss(
    name: str,
    y_true: Array,
    y_pred: Array | None = None,
    *,
    logits: Array | None = None,
    reduction: str = "mean",
) -> tuple[float | Array, Array]:
    """Evaluate the loss ``name`` from predictions or from logits.

    Parameters
    ----------
    name : str
        A key of ``LOSSES``.
    y_true : ndarray
    y_pred : ndarray, optional
        Predictions (probabilities for the cross-entropies); exactly one of y_pred and logits.
    logits : ndarray, optional
        Raw scores for binary_cross_entropy (sigmoid) or cross_entropy (softmax).
    reduction : {"mean", "sum", "none"}

    Returns
    -------
    loss : float, or ndarray of shape (n_samples,) for reduction="none"
    grad : ndarray
        With respect to y_pred, or to logits when logits were given.
    """
    loss = get_loss(name)
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; allowed: {', '.join(REDUCTIONS)}")
    if (y_pred is None) == (logits is None):
        raise ValueError("give exactly one of y_pred and logits")
    if logits is not None:
        if loss.from_logits is None:
            allowed = ", ".join(sorted(n for n, entry in LOSSES.items() if entry.from_logits))
            raise ValueError(f"loss {name!r} takes y_pred, not logits; logits are for: {allowed}")
        return loss.from_logits(y_true, logits, reduction)
    return loss.function(y_true, np.asarray(y_pred), reduction)
