"""The network: forward pass, loss and gradients (backpropagation), and predictions.

A model is a stack of layers a = φ(a_prev @ W + b) (``engine.architecture``) whose weights and
biases sit in one flat buffer (``engine.parameters``). This module runs it: ``forward`` layer by
layer, ``loss_and_gradient`` back again, ``predict`` for new inputs. The architecture and parameter
names are re-exported here, so ``from engine.models import build_architecture`` keeps working.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from engine.activations import ACTIVATIONS, backward
from engine.architecture import MODEL_TYPES, Architecture, ModelType, build_architecture, get_model_type
from engine.fused import true_label_nll
from engine.losses import LOSSES, compute_loss
from engine.parameters import Parameters, from_arrays, init_parameters, zeros

__all__ = [
    "MODEL_TYPES",
    "Architecture",
    "ModelType",
    "Parameters",
    "accuracy",
    "build_architecture",
    "collapse_linear",
    "evaluate",
    "forward",
    "from_arrays",
    "get_model_type",
    "init_parameters",
    "loss_and_gradient",
    "loss_and_output",
    "predict",
    "targets",
    "zeros",
]

Array = np.ndarray[Any, Any]


def forward(
    architecture: Architecture, params: Parameters, X: Array, return_intermediates: bool = False
) -> Array | tuple[Array, list[tuple[Array, Array]]]:
    """Run the network: z = a_prev @ W + b, a = φ(z), layer by layer.

    Parameters
    ----------
    architecture : Architecture
    params : Parameters
    X : ndarray of shape (n_samples, n_features)
    return_intermediates : bool
        Also return every layer's (z, a).

    Returns
    -------
    output : ndarray of shape (n_samples, n_outputs)
    layers : list of (z, a), each of shape (n_samples, units), when return_intermediates
    """
    layers = _forward(architecture, params, X)
    output = layers[-1][1]
    return (output, layers) if return_intermediates else output


def _forward(
    architecture: Architecture, params: Parameters, X: Array, keep_z: bool = True
) -> list[tuple[Array, Array]]:
    """Every layer's (z, a). Without keep_z, ReLU overwrites z with a: backpropagation needs only a > 0."""
    layers = []
    a = X
    for w, b, act, act_params in zip(
        params.weights, params.biases, architecture.activations, architecture.activation_params, strict=True
    ):
        z = a @ w
        z += b
        if act == "identity":
            a = z
        elif act == "relu" and not keep_z:
            a = np.maximum(z, 0, out=z)
        else:
            a = ACTIVATIONS[act].function(z, **act_params)
        layers.append((z, a))
    return layers


def targets(architecture: Architecture, y: Array, dtype: Any = np.float64) -> Array:
    """Shape labels as the network's outputs.

    Parameters
    ----------
    architecture : Architecture
    y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        Class indices for a softmax output (or one-hot rows), otherwise targets.

    Returns
    -------
    Y : ndarray of shape (n_samples, n_outputs)
    """
    y = np.asarray(y)
    k = architecture.n_outputs
    if architecture.activations[-1] == "softmax" and y.ndim == 1:
        if not np.all((y == np.round(y)) & (y >= 0) & (y < k)):
            raise ValueError(f"class labels must be integers in [0, {k - 1}]")
        Y = np.zeros((len(y), k), dtype=dtype)
        Y[np.arange(len(y)), y.astype(np.intp)] = 1
        return Y
    Y = np.asarray(y, dtype=dtype).reshape(len(y), -1)
    if Y.shape[1] != k:
        raise ValueError(f"y has {Y.shape[1]} columns but the model has {k} outputs")
    if architecture.loss == "binary_cross_entropy" and not np.all((Y == 0) | (Y == 1)):
        raise ValueError("labels for binary_cross_entropy must be 0 or 1")
    return Y


def loss_and_gradient(
    architecture: Architecture,
    params: Parameters,
    X: Array,
    Y: Array,
    l2: float = 0.0,
    grads: Parameters | None = None,
) -> tuple[float, Parameters, Array]:
    """Mean loss over the samples, its gradient for every parameter, and the outputs.

    For sigmoid + binary cross-entropy, softmax + cross-entropy and identity + squared error,
    the error at the output is ŷ − y (times 2 for squared error), so for logistic regression
    the gradients are exactly the seed's ∂L/∂w = mean((ŷ − y)·x) and ∂L/∂b = mean(ŷ − y).
    With ``l2`` the loss gains (l2 / 2)·Σ‖W‖² (weights only, not biases).

    Parameters
    ----------
    architecture : Architecture
    params : Parameters
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_outputs)
        As returned by ``targets``.
    l2 : float
    grads : Parameters, optional
        A buffer to write the gradients into (avoids an allocation per step).

    Returns
    -------
    loss : float
    grads : Parameters
        Shaped like params.
    output : ndarray of shape (n_samples, n_outputs)
    """
    layers = _forward(architecture, params, X, keep_z=False)
    z_out, output = layers[-1]
    # Every step of backpropagation is linear in the output error, so its scale (1/n for a mean)
    # can be applied to it or to the gradient at the end: one pass over the smaller of the two.
    loss, delta, scale = _output_error(architecture, z_out, output, Y)
    if grads is None:
        grads = zeros(architecture, params.flat.dtype)
    # The scale applies to the output error or to the gradient, whichever is smaller.
    if scale != 1.0 and delta.size < grads.flat.size:
        delta *= scale
        scale = 1.0
    ones = _ones(len(X), params.flat.dtype)
    for i in range(len(layers) - 1, -1, -1):
        a_prev = X if i == 0 else layers[i - 1][1]
        np.matmul(a_prev.T, delta, out=grads.weights[i])
        np.matmul(ones, delta, out=grads.biases[i])  # column sums through BLAS: faster than np.sum
        if i > 0:
            z, a = layers[i - 1]
            w = params.weights[i]
            # One output unit: an outer product, which broadcasting does faster than matmul.
            grad_a = delta * w[:, 0] if w.shape[1] == 1 else delta @ w.T
            delta = _backward_hidden(
                architecture.activations[i - 1], architecture.activation_params[i - 1], z, a, grad_a
            )
    if scale != 1.0:
        grads.flat *= scale
    if l2:
        for w, gw in zip(params.weights, grads.weights, strict=True):
            loss += 0.5 * l2 * float(np.vdot(w, w))
            gw += l2 * w
    return loss, grads, output


def loss_and_output(
    architecture: Architecture, params: Parameters, X: Array, Y: Array, chunk: int = 4096
) -> tuple[float, Array]:
    """Mean loss (no penalty) and outputs, without gradients, in chunks of rows to bound memory.

    Parameters
    ----------
    architecture : Architecture
    params : Parameters
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_outputs)
    chunk : int
        Rows per forward pass: the hidden activations held at once are chunk × units.

    Returns
    -------
    loss : float
    output : ndarray of shape (n_samples, n_outputs)
    """
    n = len(X)
    output = np.empty((n, architecture.n_outputs), dtype=params.flat.dtype)
    total = 0.0
    for lo in range(0, n, chunk):
        layers = _forward(architecture, params, X[lo : lo + chunk], keep_z=False)
        z, a = layers[-1]
        part_loss, _, _ = _output_error(architecture, z, a, Y[lo : lo + chunk])
        total += part_loss * len(a)
        output[lo : lo + chunk] = a
    return total / n, output


@functools.lru_cache(maxsize=16)
def _ones(n: int, dtype: np.dtype[Any]) -> Array:
    ones = np.ones(n, dtype=dtype)
    ones.flags.writeable = False
    return ones


def _binary_cross_entropy_sum(z: Array, delta: Array, Y: Array) -> float:
    """Σ of −log(probability of the true label) over all outputs, for a sigmoid output and 0/1 labels.

    Exact from the logits z where it matters: a confident mistake at z = 40 costs 40, not −log(eps).
    """
    # For 0/1 labels, q = 1 − |ŷ − y| is the probability given to the true label.
    q = np.abs(delta).ravel()
    np.subtract(1, q, out=q)
    return true_label_nll(q, lambda idx: z.ravel()[idx], Y.ravel())


def _cross_entropy_sum(z: Array, a: Array, Y: Array) -> float:
    """Σ over samples of −Σ_k y_k log ŷ_k for a softmax output, exact from the logits where ŷ underflows."""
    tiny = np.finfo(a.dtype).tiny
    logs = np.log(np.maximum(a, tiny))
    if a.min() >= tiny:
        return 0.0 - float(np.vdot(Y, logs))  # 0.0 − x: a loss of zero is +0, not −0
    # Some probabilities underflowed: their logs are z_k − logsumexp(z), and logsumexp(z) is
    # max(z) − log(max ŷ), with max ŷ = 1 / Σ exp(z − max z) never below 1 / n_classes.
    # Classes with zero target weight keep their finite clipped log: 0 · log(tiny) = 0. A logit
    # beyond the float range below the others gives an inf loss, which is the answer.
    with np.errstate(over="ignore"):
        lse = np.max(z, axis=1, keepdims=True) - np.log(np.max(a, axis=1, keepdims=True))
        np.copyto(logs, z - lse, where=(a < tiny) & (Y != 0))
    return 0.0 - float(np.vdot(Y, logs))


def _output_error(architecture: Architecture, z: Array, a: Array, Y: Array) -> tuple[float, Array, float]:
    """The mean loss, ∂loss/∂z at the output before scaling, and the scale that makes it exact.

    The mean is over all elements for binary cross-entropy and squared error (each sample's loss
    is the mean over its outputs), over samples for cross-entropy, as ``engine.losses`` reduces.
    """
    n, k = Y.shape
    act, loss_name = architecture.activations[-1], architecture.loss
    if LOSSES[loss_name].output == act:
        delta = a - Y  # ∂L/∂z = ŷ − y: the sigmoid (softmax) derivative cancels the loss's.
        if act == "sigmoid":
            return _binary_cross_entropy_sum(z, delta, Y) / (n * k), delta, 1.0 / (n * k)
        return _cross_entropy_sum(z, a, Y) / n, delta, 1.0 / n
    if (act, loss_name) == ("identity", "mean_squared_error"):
        delta = a - Y
        loss = float(np.vdot(delta, delta)) / (n * k)
        return loss, delta, 2.0 / (n * k)
    value, grad_a = compute_loss(loss_name, Y, a)
    return float(value), backward(act, z, a, grad_a, architecture.activation_params[-1]), 1.0


def _backward_hidden(act: str, act_params: Mapping[str, float], z: Array, a: Array, grad_a: Array) -> Array:
    if act == "relu":
        grad_a *= a > 0
        return grad_a
    if act == "identity":
        return grad_a
    return backward(act, z, a, grad_a, act_params)


def predict(architecture: Architecture, params: Parameters, X: Array) -> tuple[Array, Array | None]:
    """Predictions and, for classifiers, probabilities.

    Parameters
    ----------
    architecture : Architecture
    params : Parameters
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    predictions : ndarray
        Classifiers: the class index of each sample, shape (n_samples,); with several sigmoid
        outputs (multilabel), 0 or 1 per output, shape (n_samples, n_outputs). Regression: the
        values, shape (n_samples,) for one output, (n_samples, n_outputs) for several.
    probabilities : ndarray or None
        Binary: the probability of class 1, shape (n_samples,); multiclass, one row per sample
        and one column per class; multilabel, each output's probability of 1. None for regression.
    """
    output = _forward(architecture, params, X)[-1][1]
    if architecture.loss == "binary_cross_entropy":
        # The same threshold as the reported accuracy: a probability of exactly 0.5 predicts 1.
        labels = (output >= 0.5).astype(np.int64)
        return (labels[:, 0], output[:, 0]) if architecture.n_outputs == 1 else (labels, output)
    if architecture.loss == "cross_entropy":
        return np.argmax(output, axis=1), output
    return (output[:, 0] if architecture.n_outputs == 1 else output), None


def accuracy(architecture: Architecture, output: Array, labels: Array) -> float:
    """The share of outputs of shape (n_samples, n_outputs) whose predicted class is the label."""
    if architecture.n_outputs == 1:
        # >= as in predict, so the reported accuracy is that of the model's predictions;
        # binary labels may come as booleans, which compare faster than integers.
        return float(np.count_nonzero((output[:, 0] >= 0.5) == labels)) / len(labels)
    return float(np.count_nonzero(np.argmax(output, axis=1) == labels)) / len(labels)


def evaluate(
    architecture: Architecture, params: Parameters, X: Array, Y: Array, labels: Array | None
) -> dict[str, float]:
    """Loss (with no penalty) and, for classifiers with class labels, accuracy on a dataset.

    Parameters
    ----------
    architecture : Architecture
    params : Parameters
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_outputs)
        As returned by ``targets``.
    labels : ndarray of shape (n_samples,), or None

    Returns
    -------
    dict
        ``{"loss"}``, plus ``"accuracy"`` when labels are given.
    """
    loss, output = loss_and_output(architecture, params, X, Y)
    return (
        {"loss": loss}
        if labels is None
        else {"loss": loss, "accuracy": accuracy(architecture, output, labels)}
    )


def collapse_linear(architecture: Architecture, params: Parameters) -> tuple[Array, Array]:
    """Fold a stack of identity layers into the single affine map it equals: f₂(f₁(x)) = (W₁W₂)x + ….

    Parameters
    ----------
    architecture : Architecture
        Every hidden activation must be identity.
    params : Parameters

    Returns
    -------
    W : ndarray of shape (n_features, n_outputs)
    b : ndarray of shape (n_outputs,)
    """
    if any(act != "identity" for act in architecture.activations[:-1]):
        raise ValueError(f"only identity hidden layers collapse, got {list(architecture.activations[:-1])}")
    W, b = params.weights[0], params.biases[0]
    for w, c in zip(params.weights[1:], params.biases[1:], strict=True):
        W, b = W @ w, b @ w + c
    return W, b
