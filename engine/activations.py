"""Activation functions φ and their derivatives, registered by the name the API exposes.

A composition of linear functions stays linear; φ(wx + b) is what lets a network bend. Each
activation sits next to its derivative, and its registry entry says how the weights feeding it
are initialised. Every function gives finite output for every finite input without
floating-point warnings.

Every function takes the activation's parameters (such as ``alpha``) by keyword, after
``resolve_params`` has checked and filled them; ``**_`` lets the parameterless ones share one type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

Array = np.ndarray[Any, Any]
# He-normal weights suit the rectifier family, Glorot-uniform the saturating and linear ones.
Init = Literal["he", "glorot"]


class Function(Protocol):
    """φ itself: takes the pre-activation ``z`` (any shape) and returns φ(z), shaped like z."""

    def __call__(self, z: Array, /, **params: float) -> Array: ...


class Derivative(Protocol):
    """dφ/dz, elementwise: takes what the forward pass already holds and returns dφ/dz, shaped like z.

    ``z`` is the pre-activation and ``y`` the activation φ(z) the forward pass computed from it (the
    same shape). Each derivative reads whichever is cheaper: the rectifiers read z, sigmoid and tanh
    read y (σ' = y(1 − y), tanh' = 1 − y²). For softmax it is the Jacobian's diagonal.
    """

    def __call__(self, z: Array, y: Array, /, **params: float) -> Array: ...


_SQRT_2_OVER_PI = float(np.sqrt(2.0 / np.pi))
_GELU_C = 0.044715
_GELU_CLIP = 10.0


def _float_dtype(z: Array) -> Any:
    """z's dtype if it is floating, else float64."""
    dtype = np.asarray(z).dtype
    return dtype if dtype.kind == "f" else np.dtype(np.float64)


def identity(z: Array, /, **_: float) -> Array:
    return z.copy()


def identity_derivative(z: Array, y: Array, /, **_: float) -> Array:
    return np.ones_like(z)


def relu(z: Array, /, **_: float) -> Array:
    return np.maximum(z, 0)


def relu_derivative(z: Array, y: Array, /, **_: float) -> Array:
    # The subgradient at 0 is taken as 0, as scikit-learn and PyTorch do.
    return (z > 0).astype(z.dtype)


def leaky_relu(z: Array, /, alpha: float = 0.01, **_: float) -> Array:
    return np.where(z > 0, z, z * alpha)


def leaky_relu_derivative(z: Array, y: Array, /, alpha: float = 0.01, **_: float) -> Array:
    return np.where(z > 0, 1, alpha).astype(z.dtype)


def elu(z: Array, /, alpha: float = 1.0, **_: float) -> Array:
    # expm1 of the clipped value: exp of a large positive z would overflow in the unused branch.
    return np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0)))


def elu_derivative(z: Array, y: Array, /, alpha: float = 1.0, **_: float) -> Array:
    return np.where(z > 0, 1, alpha * np.exp(np.minimum(z, 0))).astype(z.dtype)


def sigmoid(z: Array, /, **_: float) -> Array:
    # 1 / (1 + e^-z) is exact in both tails; e^-z only overflows to inf for very negative z,
    # where 1 / inf = 0 is the right answer, so the overflow warning is silenced, not the result.
    if type(z) is np.ndarray and z.ndim and z.dtype.kind == "f":
        out = np.negative(z)  # the common case; the general one below costs a small call a tenth more
    else:
        # An explicit float buffer: a ufunc returns a scalar for 0-d input, and out= cannot hold an int.
        out = np.negative(z, out=np.empty(np.shape(z), dtype=_float_dtype(z)))
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    out += 1
    return np.reciprocal(out, out=out)


def sigmoid_derivative(z: Array, y: Array, /, **_: float) -> Array:
    return y * (1 - y)


def tanh(z: Array, /, **_: float) -> Array:
    return np.tanh(z)


def tanh_derivative(z: Array, y: Array, /, **_: float) -> Array:
    return 1 - y * y


def softplus(z: Array, /, **_: float) -> Array:
    # log(1 + e^z) = max(z, 0) + log1p(e^-|z|): no overflow for large z, no precision loss for small.
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


def softplus_derivative(z: Array, y: Array, /, **_: float) -> Array:
    return sigmoid(z)


def silu(z: Array, /, **_: float) -> Array:
    return z * sigmoid(z)


def silu_derivative(z: Array, y: Array, /, **_: float) -> Array:
    s = sigmoid(z)
    return s * (1 + z * (1 - s))


def _gelu_tanh(z: Array) -> tuple[Array, Array]:
    """The clipped input and the tanh term of the tanh-form GELU."""
    # tanh is exactly ±1 in float32 and float64 well before |z| = 10, so clipping changes no value
    # and keeps z**3 (and z**2 in the derivative) from overflowing for huge z.
    zc = np.clip(z, -_GELU_CLIP, _GELU_CLIP)
    return zc, np.tanh(_SQRT_2_OVER_PI * (zc + _GELU_C * zc**3))


def gelu(z: Array, /, **_: float) -> Array:
    # The tanh form (Hendrycks & Gimpel), as GPT-2 and PyTorch's approximate="tanh" use.
    return 0.5 * z * (1 + _gelu_tanh(z)[1])


def gelu_derivative(z: Array, y: Array, /, **_: float) -> Array:
    zc, t = _gelu_tanh(z)
    return 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * _GELU_C * zc * zc)


def softmax(z: Array, /, **_: float) -> Array:
    # Shifting by the row maximum keeps exp from overflowing; the result is unchanged.
    # For rows spanning more than the float range the shift overflows to -inf, and exp(-inf) = 0
    # is the right answer, so that overflow warning is silenced, not the result.
    with np.errstate(over="ignore"):
        e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    e /= np.sum(e, axis=-1, keepdims=True)
    return e


def softmax_derivative(z: Array, y: Array, /, **_: float) -> Array:
    # The diagonal of the Jacobian, ∂y_i/∂z_i; backpropagation uses the full vector-Jacobian product.
    return y * (1 - y)


def _softmax_vjp(z: Array, y: Array, grad_y: Array) -> Array:
    return y * (grad_y - np.sum(grad_y * y, axis=-1, keepdims=True))


@dataclass(frozen=True)
class Activation:
    """An activation function with its derivative, its weight initialisation and the facts the API documents.

    Attributes
    ----------
    name : str
        The name in the API.
    function : Function
    derivative : Derivative
    formula, derivative_formula : str
    output_range : (low, high)
        None for an unbounded side.
    init : {"he", "glorot"}
        How the weights of a layer with this activation start (see ``engine.parameters``).
    params : mapping of str to float
        The parameters it takes, with their defaults.
    elementwise : bool
        False for softmax, which mixes the entries along the last axis.
    bounded : bool
        Both sides of ``output_range`` are finite, and the derivative is computed from φ alone
        (sigmoid, tanh, softmax): φ and dφ/dz of a finite input are then finite, and computing them
        raises no floating-point error, so callers need neither check the results nor silence errors.
    """

    name: str
    function: Function
    derivative: Derivative
    formula: str
    derivative_formula: str
    output_range: tuple[float | None, float | None]
    init: Init
    params: Mapping[str, float] = field(default_factory=dict)
    elementwise: bool = True

    @property
    def bounded(self) -> bool:
        low, high = self.output_range
        return low is not None and high is not None and not self.params


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in [
        Activation("identity", identity, identity_derivative, "z", "1", (None, None), init="glorot"),
        Activation("relu", relu, relu_derivative, "max(0, z)", "1 if z > 0 else 0", (0.0, None), init="he"),
        Activation(
            "leaky_relu",
            leaky_relu,
            leaky_relu_derivative,
            "z if z > 0 else alpha * z",
            "1 if z > 0 else alpha",
            (None, None),
            init="he",
            params={"alpha": 0.01},
        ),
        Activation(
            "elu",
            elu,
            elu_derivative,
            "z if z > 0 else alpha * (exp(z) - 1)",
            "1 if z > 0 else alpha * exp(z)",
            (None, None),
            init="he",
            params={"alpha": 1.0},
        ),
        Activation(
            "gelu",
            gelu,
            gelu_derivative,
            "0.5 * z * (1 + tanh(sqrt(2/pi) * (z + 0.044715 * z^3)))  (tanh form)",
            "0.5 * (1 + t) + 0.5 * z * (1 - t^2) * sqrt(2/pi) * (1 + 3 * 0.044715 * z^2),"
            " t = tanh(sqrt(2/pi) * (z + 0.044715 * z^3))",
            (-0.1701, None),
            init="he",
        ),
        Activation(
            "sigmoid",
            sigmoid,
            sigmoid_derivative,
            "1 / (1 + exp(-z))",
            "sigmoid(z) * (1 - sigmoid(z))",
            (0.0, 1.0),
            init="glorot",
        ),
        Activation(
            "tanh",
            tanh,
            tanh_derivative,
            "(e^z - e^-z) / (e^z + e^-z)",
            "1 - tanh(z)^2",
            (-1.0, 1.0),
            init="glorot",
        ),
        Activation(
            "softplus", softplus, softplus_derivative, "log(1 + exp(z))", "sigmoid(z)", (0.0, None), init="he"
        ),
        Activation(
            "silu",
            silu,
            silu_derivative,
            "z * sigmoid(z)",
            "sigmoid(z) * (1 + z * (1 - sigmoid(z)))",
            (-0.28, None),
            init="he",
        ),
        Activation(
            "softmax",
            softmax,
            softmax_derivative,
            "exp(z_i) / sum_j exp(z_j)  (along the last axis)",
            "diagonal of the Jacobian: softmax(z)_i * (1 - softmax(z)_i)",
            (0.0, 1.0),
            init="glorot",
            elementwise=False,
        ),
    ]
}


def get_activation(name: str) -> Activation:
    """Look up an activation by its API name; ValueError lists the allowed names."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; allowed: {', '.join(sorted(ACTIVATIONS))}") from None


def resolve_params(name: str, params: Mapping[str, float] | None = None) -> dict[str, float]:
    """Return the activation's parameters with defaults filled, rejecting unknown or invalid ones."""
    act = get_activation(name)
    given = dict(params or {})
    unknown = sorted(set(given) - set(act.params))
    if unknown:
        allowed = ", ".join(sorted(act.params)) or "none"
        raise ValueError(f"activation {name!r} takes no parameter {', '.join(unknown)}; allowed: {allowed}")
    resolved = {**act.params, **given}
    for key, value in resolved.items():
        if not np.isfinite(value):
            raise ValueError(f"{key} must be finite, got {value}")
    if name == "elu" and resolved["alpha"] <= 0:
        raise ValueError(f"alpha must be positive for elu, got {resolved['alpha']}")
    return resolved


def activate(name: str, z: Array, params: Mapping[str, float] | None = None) -> Array:
    """Apply the activation ``name`` to ``z``.

    Parameters
    ----------
    name : str
        A key of ``ACTIVATIONS``.
    z : ndarray of any shape
        Pre-activations (softmax works along the last axis).
    params : mapping, optional
        Parameters such as ``alpha`` for leaky_relu and elu.

    Returns
    -------
    y : ndarray of the same shape as z
    """
    act = get_activation(name)
    # Integer input computes in float64: an int dtype would truncate alpha and exp's results.
    z = np.asarray(z)
    return act.function(z.astype(_float_dtype(z), copy=False), **resolve_params(name, params))


def derivative(name: str, z: Array, params: Mapping[str, float] | None = None) -> Array:
    """Elementwise derivative dy/dz of the activation at ``z`` (softmax: the Jacobian's diagonal).

    Parameters
    ----------
    name : str
    z : ndarray of any shape
    params : mapping, optional

    Returns
    -------
    dy : ndarray of the same shape as z
    """
    act = get_activation(name)
    resolved = resolve_params(name, params)
    z = np.asarray(z)
    z = z.astype(_float_dtype(z), copy=False)
    return act.derivative(z, act.function(z, **resolved), **resolved)


def backward(
    name: str, z: Array, y: Array, grad_y: Array, params: Mapping[str, float] | None = None
) -> Array:
    """Backpropagate ``grad_y`` = ∂L/∂y through the activation to ∂L/∂z.

    Parameters
    ----------
    name : str
    z : ndarray of shape (n_samples, n_units)
        The pre-activations of the forward pass.
    y : ndarray of shape (n_samples, n_units)
        The activations the forward pass returned for ``z``.
    grad_y : ndarray of shape (n_samples, n_units)

    Returns
    -------
    grad_z : ndarray of shape (n_samples, n_units)
    """
    act = get_activation(name)
    if not act.elementwise:
        return _softmax_vjp(z, y, grad_y)
    return grad_y * act.derivative(z, y, **resolve_params(name, params))
