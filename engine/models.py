"""Models as stacks of layers a = φ(a_prev @ W + b): forward pass, loss and gradients.

Logistic regression is one layer with a sigmoid, linear regression one with the identity,
softmax regression one with a softmax; an MLP nests several. All parameters of a model live in
one flat buffer (``Parameters.flat``) with each layer's W and b as views into it, so an optimizer
updates every parameter in a few in-place NumPy calls.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.activations import ACTIVATIONS, backward, get_activation
from engine.losses import LOSSES, compute_loss

Array = np.ndarray[Any, Any]

MODEL_TYPES = ("logistic_regression", "linear_regression", "softmax_regression", "mlp")
# He initialisation suits the rectifier family; Glorot the saturating and linear ones.
_HE_INIT = frozenset({"relu", "leaky_relu", "elu", "gelu", "silu", "softplus"})
_DEFAULT_LOSS = {"sigmoid": "binary_cross_entropy", "softmax": "cross_entropy"}


@dataclass(frozen=True)
class Architecture:
    """The shape of a model: layer sizes, one activation per layer, and its loss.

    Attributes
    ----------
    kind : str
        One of ``MODEL_TYPES``.
    layer_sizes : tuple of int
        ``(n_features, hidden_1, ..., n_outputs)``.
    activations : tuple of str
        One activation name per layer, ``len(layer_sizes) - 1`` of them.
    loss : str
        A key of ``engine.losses.LOSSES``.
    """

    kind: str
    layer_sizes: tuple[int, ...]
    activations: tuple[str, ...]
    loss: str

    def __post_init__(self) -> None:
        if self.kind not in MODEL_TYPES:
            raise ValueError(f"unknown model type {self.kind!r}; allowed: {', '.join(MODEL_TYPES)}")
        if len(self.layer_sizes) < 2 or any(int(s) < 1 for s in self.layer_sizes):
            raise ValueError(f"layer sizes must be positive, got {list(self.layer_sizes)}")
        if len(self.activations) != len(self.layer_sizes) - 1:
            raise ValueError(
                f"{len(self.layer_sizes) - 1} layers need as many activations, got {len(self.activations)}"
            )
        for name in self.activations:
            get_activation(name)
        if "softmax" in self.activations[:-1]:
            raise ValueError("softmax is only allowed as the last layer's activation")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; allowed: {', '.join(sorted(LOSSES))}")

    @property
    def n_features(self) -> int:
        return self.layer_sizes[0]

    @property
    def n_outputs(self) -> int:
        return self.layer_sizes[-1]

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """The (fan_in, fan_out) shape of each layer's weight matrix."""
        return list(zip(self.layer_sizes[:-1], self.layer_sizes[1:], strict=True))

    @property
    def n_parameters(self) -> int:
        return sum(i * o + o for i, o in self.shapes)

    @property
    def is_classifier(self) -> bool:
        return self.loss in ("binary_cross_entropy", "cross_entropy")


def build_architecture(
    kind: str,
    n_features: int,
    n_outputs: int = 1,
    *,
    hidden_layers: Sequence[int] = (),
    activation: str | Sequence[str] = "relu",
    output_activation: str | None = None,
    loss: str | None = None,
) -> Architecture:
    """Build the architecture of a model type.

    Parameters
    ----------
    kind : {"logistic_regression", "linear_regression", "softmax_regression", "mlp"}
    n_features : int
    n_outputs : int
        Classes for softmax output, otherwise output units (1 for logistic regression).
    hidden_layers : sequence of int
        Units of each hidden layer (MLP only).
    activation : str or sequence of str
        Hidden-layer activation, or one per hidden layer (MLP only).
    output_activation : str, optional
        Defaults to sigmoid for one class output, softmax for several, identity for regression (MLP only).
    loss : str, optional
        Defaults to the loss the output activation pairs with.

    Returns
    -------
    Architecture
    """
    hidden = [int(h) for h in hidden_layers]
    if kind != "mlp" and hidden:
        raise ValueError(f"hidden_layers are for mlp models, got {hidden} for {kind}")
    if any(h < 1 for h in hidden):
        raise ValueError(f"hidden_layers must be positive, got {hidden}")
    if kind == "logistic_regression":
        out_act, n_outputs = "sigmoid", 1
    elif kind == "linear_regression":
        out_act = "identity"
    elif kind == "softmax_regression":
        if n_outputs < 2:
            raise ValueError(f"softmax_regression needs at least 2 classes, got {n_outputs}")
        out_act = "softmax"
    elif kind == "mlp":
        out_act = output_activation or "identity"
    else:
        raise ValueError(f"unknown model type {kind!r}; allowed: {', '.join(MODEL_TYPES)}")
    hidden_acts = [activation] * len(hidden) if isinstance(activation, str) else list(activation)
    if len(hidden_acts) != len(hidden):
        raise ValueError(f"{len(hidden)} hidden layers need as many activations, got {len(hidden_acts)}")
    activations = (*hidden_acts, out_act)
    return Architecture(
        kind,
        (int(n_features), *hidden, int(n_outputs)),
        activations,
        loss or _DEFAULT_LOSS.get(out_act, "mean_squared_error"),
    )


class Parameters:
    """All weights and biases of a model in one flat buffer, with per-layer views.

    Attributes
    ----------
    flat : ndarray of shape (n_parameters,)
    weights : list of ndarray of shape (fan_in, fan_out), views into flat
    biases : list of ndarray of shape (fan_out,), views into flat
    """

    def __init__(self, architecture: Architecture, flat: Array) -> None:
        if flat.shape != (architecture.n_parameters,):
            raise ValueError(f"expected {architecture.n_parameters} parameters, got shape {flat.shape}")
        self.flat = flat
        self.weights: list[Array] = []
        self.biases: list[Array] = []
        offset = 0
        for fan_in, fan_out in architecture.shapes:
            self.weights.append(flat[offset : offset + fan_in * fan_out].reshape(fan_in, fan_out))
            offset += fan_in * fan_out
            self.biases.append(flat[offset : offset + fan_out])
            offset += fan_out

    def copy(self, architecture: Architecture) -> Parameters:
        return Parameters(architecture, self.flat.copy())


def zeros(architecture: Architecture, dtype: Any = np.float64) -> Parameters:
    """Parameters of the architecture, all zero."""
    return Parameters(architecture, np.zeros(architecture.n_parameters, dtype=dtype))


def from_arrays(
    architecture: Architecture, weights: Sequence[Array], biases: Sequence[Array], dtype: Any = np.float64
) -> Parameters:
    """Pack per-layer weights of shape (fan_in, fan_out) and biases of shape (fan_out,) into Parameters."""
    if len(weights) != len(architecture.shapes) or len(biases) != len(architecture.shapes):
        raise ValueError(
            f"the model has {len(architecture.shapes)} layers, got {len(weights)} weight matrices"
            f" and {len(biases)} bias vectors"
        )
    params = zeros(architecture, dtype)
    for i, (w, b, shape) in enumerate(zip(weights, biases, architecture.shapes, strict=True)):
        w, b = np.asarray(w), np.asarray(b)
        if w.shape != shape:
            raise ValueError(f"layer {i} weights must have shape {list(shape)}, got {list(w.shape)}")
        if b.shape != (shape[1],):
            raise ValueError(f"layer {i} bias must have shape [{shape[1]}], got {list(b.shape)}")
        params.weights[i][...] = w
        params.biases[i][...] = b
    return params


def init_parameters(
    architecture: Architecture, rng: np.random.Generator, dtype: Any = np.float64
) -> Parameters:
    """Initialise weights for training; biases start at zero.

    Single-layer models (the convex ones) start at zero, as in the seed's derivation. MLP
    layers draw He-normal weights (std sqrt(2 / fan_in)) before rectifiers and Glorot-uniform
    weights (limit sqrt(6 / (fan_in + fan_out))) before saturating or linear activations.

    Parameters
    ----------
    architecture : Architecture
    rng : numpy.random.Generator
    dtype : float32 or float64

    Returns
    -------
    Parameters
    """
    params = zeros(architecture, dtype)
    if len(architecture.shapes) == 1:
        return params
    for w, act, (fan_in, fan_out) in zip(
        params.weights, architecture.activations, architecture.shapes, strict=True
    ):
        if act in _HE_INIT:
            w[...] = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=w.shape)
        else:
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            w[...] = rng.uniform(-limit, limit, size=w.shape)
    return params


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
    for w, b, act in zip(params.weights, params.biases, architecture.activations, strict=True):
        z = a @ w
        z += b
        if act == "identity":
            a = z
        elif act == "relu" and not keep_z:
            a = np.maximum(z, 0, out=z)
        else:
            a = ACTIVATIONS[act].function(z)
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
    # Backpropagate the unscaled output error and scale the (small) gradient once at the end:
    # every step of backpropagation is linear in it, and this saves a pass over the batch.
    loss, delta, scale = _output_error(architecture, z_out, output, Y)
    if grads is None:
        grads = zeros(architecture, params.flat.dtype)
    ones = _ones(len(X), params.flat.dtype)
    for i in range(len(layers) - 1, -1, -1):
        a_prev = X if i == 0 else layers[i - 1][1]
        np.matmul(a_prev.T, delta, out=grads.weights[i])
        np.matmul(ones, delta, out=grads.biases[i])  # column sums through BLAS: faster than np.sum
        if i > 0:
            z, a = layers[i - 1]
            delta = _backward_hidden(architecture.activations[i - 1], z, a, delta @ params.weights[i].T)
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


def _sum_log(q: Array) -> float:
    """Σ log q for q in [0, 1], as the logs of products of 4 (float32) or 16 (float64) terms.

    The log is the costly part of the loss. Each q here is 0 or at least the dtype's spacing
    below 1 (2⁻²⁴ or 2⁻⁵³), so those products cannot underflow; a 0 gives −inf.
    """
    total = 0.0
    # Below ~1,000 terms the extra calls cost more than the logs they save.
    levels = 0 if len(q) < 1024 else 2 if q.dtype == np.float32 else 4
    for _ in range(levels):
        half = len(q) // 2
        if len(q) % 2:
            total += float(np.log(q[-1]))
        q = q[:half] * q[half : 2 * half]
    return total + float(np.sum(np.log(q)))


def _output_error(architecture: Architecture, z: Array, a: Array, Y: Array) -> tuple[float, Array, float]:
    """The mean loss, ∂loss/∂z at the output before scaling, and the scale that makes it exact."""
    n, k = Y.shape
    act, loss_name = architecture.activations[-1], architecture.loss
    if (act, loss_name) in (("sigmoid", "binary_cross_entropy"), ("softmax", "cross_entropy")):
        delta = a - Y  # ∂L/∂z = ŷ − y: the sigmoid (softmax) derivative cancels the loss's.
        eps = np.finfo(a.dtype).eps
        if act == "sigmoid":
            # For 0/1 labels, 1 − |ŷ − y| is the probability given to the true label.
            q = np.abs(delta).ravel()
            np.subtract(1, q, out=q)
            with np.errstate(divide="ignore"):
                total = _sum_log(q)
            if not np.isfinite(total):
                # A confident mistake (q = 0) costs −log(eps): large and finite.
                total = float(np.sum(np.log(np.maximum(q, eps))))
            loss = -total / n
        else:
            loss = -float(np.vdot(Y, np.log(np.maximum(a, eps)))) / n
        return loss, delta, 1.0 / n
    if (act, loss_name) == ("identity", "mean_squared_error"):
        delta = a - Y
        loss = float(np.vdot(delta, delta)) / (n * k)
        return loss, delta, 2.0 / (n * k)
    value, grad_a = compute_loss(loss_name, Y, a)
    return float(value), backward(act, z, a, grad_a), 1.0


def _backward_hidden(act: str, z: Array, a: Array, grad_a: Array) -> Array:
    if act == "relu":
        grad_a *= a > 0
        return grad_a
    if act == "identity":
        return grad_a
    return backward(act, z, a, grad_a)


def predict(architecture: Architecture, params: Parameters, X: Array) -> tuple[Array, Array | None]:
    """Predictions and, for classifiers, class probabilities.

    Parameters
    ----------
    architecture : Architecture
    params : Parameters
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    predictions : ndarray of shape (n_samples,) (or (n_samples, n_outputs) for multi-output regression)
        Class indices for classifiers, values for regression.
    probabilities : ndarray of shape (n_samples,) for binary, (n_samples, n_classes) for multiclass, or None
    """
    output = _forward(architecture, params, X)[-1][1]
    if architecture.loss == "binary_cross_entropy" and architecture.n_outputs == 1:
        p = output[:, 0]
        return (p >= 0.5).astype(np.int64), p
    if architecture.loss == "cross_entropy":
        return np.argmax(output, axis=1), output
    return (output[:, 0] if architecture.n_outputs == 1 else output), None


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
