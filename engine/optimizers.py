"""Optimizers that update a flat parameter buffer in place, registered by the name the API exposes.

The training loop keeps every parameter of a model in one contiguous 1-D array and computes the
gradient into another array of the same shape and dtype. Each optimizer owns preallocated state
and work buffers of that size and dtype and updates the parameters in place through ``out=``
arguments, so a step is a handful of NumPy calls and allocates no array: for a small model,
temporaries and per-call overhead would otherwise cost more than the arithmetic.

``OPTIMIZERS`` is the one registry: each class carries its name, its update rule as the API
documents it, and the hyperparameters it takes with their defaults and allowed intervals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from engine.hyperparameters import Hyperparameter, integer, resolve

FloatArray = npt.NDArray[np.floating[Any]]
StateValue = FloatArray | int | float

_DTYPES: tuple[np.dtype[np.floating[Any]], ...] = (np.dtype(np.float32), np.dtype(np.float64))
_MOMENTUM = Hyperparameter(0.9, 0.0, 1.0, description="Momentum coefficient μ.")


def _float_dtype(dtype: object) -> np.dtype[np.floating[Any]]:
    """Return ``dtype`` as float32 or float64, or raise ValueError naming it."""
    try:
        resolved = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError:
        resolved = None
    for allowed in _DTYPES:
        if dtype is not None and resolved == allowed:  # np.dtype(None) would be float64
            return allowed
    raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")


class Optimizer:
    """Base class: an in-place update rule over a flat parameter vector.

    Parameters
    ----------
    n_params : int
        Length of the flat parameter vector the optimizer updates.
    dtype : numpy dtype or type
        float32 or float64; the state buffers take this dtype, so float32 stays float32.
    **hyperparameters : float
        Values for the hyperparameters the class takes (``HYPERPARAMETERS``); defaults fill the rest.

    Attributes
    ----------
    name : str
        The name of the optimizer in the API.
    rule : str
        The update rule, as the API documents it (g the gradient, η the learning rate).
    HYPERPARAMETERS : mapping of str to Hyperparameter
        What the optimizer takes, with defaults and allowed intervals.
    full_batch_only : bool
        Whether the optimizer is defined on the full batch only (gd).
    state_buffers : tuple of str
        The parameter-sized vectors of state it keeps (saved in checkpoints, counted by admission).
    t : int
        Number of steps taken so far.
    """

    name: ClassVar[str]
    rule: ClassVar[str]
    HYPERPARAMETERS: ClassVar[Mapping[str, Hyperparameter]] = {}
    full_batch_only: ClassVar[bool] = False
    state_buffers: ClassVar[tuple[str, ...]] = ()

    def __init__(self, n_params: int, dtype: np.dtype[Any] | type, **hyperparameters: float) -> None:
        self.n_params = integer("n_params", n_params, 1)
        self.dtype = _float_dtype(dtype)
        self._decay_mask: FloatArray | None = None
        self._hyper = resolve("hyperparameter", self.name, hyperparameters, self.HYPERPARAMETERS)
        self.t = 0
        self._shape = (self.n_params,)
        self._work: FloatArray = np.zeros(self._shape, self.dtype)
        self._buffers: dict[str, FloatArray] = {
            key: np.zeros(self._shape, self.dtype) for key in self.state_buffers
        }

    def decay_only(self, mask: FloatArray) -> None:
        """Apply weight decay (adamw) only where ``mask`` is 1: the weights, not the biases.

        Parameters
        ----------
        mask : ndarray of shape (n_params,)
            1 for the parameters weight decay applies to, 0 for the others. Without a mask every
            parameter decays. Optimizers without weight decay ignore it.
        """
        if mask.shape != self._shape:
            raise ValueError(f"the decay mask must have shape {self._shape}, got {mask.shape}")
        self._decay_mask = mask.astype(self.dtype)

    @property
    def hyperparameters(self) -> dict[str, float]:
        """A copy of the validated hyperparameters, defaults filled in."""
        return dict(self._hyper)

    def step(self, params: FloatArray, grads: FloatArray, learning_rate: float) -> None:
        """Update ``params`` in place by one step along ``grads``.

        Parameters
        ----------
        params : ndarray of shape (n_params,)
            The flat parameter vector, overwritten with the updated values.
        grads : ndarray of shape (n_params,)
            The gradient of the loss at ``params``, same dtype as ``params``.
        learning_rate : float
            Step size for this step, finite and >= 0.
        """
        if not 0.0 <= learning_rate < math.inf:
            raise ValueError(f"learning_rate must be finite and >= 0, got {learning_rate!r}")
        dtype = self.dtype
        if (
            params.shape != self._shape
            or grads.shape != self._shape
            or params.dtype != dtype
            or grads.dtype != dtype
        ):
            raise ValueError(
                f"params and grads must have shape {self._shape} and dtype {dtype}, got params "
                f"{params.shape} {params.dtype} and grads {grads.shape} {grads.dtype}"
            )
        self.t += 1
        # A NumPy scalar learning rate would promote float32 arithmetic; a Python float stays weak.
        self._update(params, grads, float(learning_rate))

    def _update(self, params: FloatArray, grads: FloatArray, lr: float) -> None:
        """Apply the update rule in place; ``self.t`` already counts this step."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, StateValue]:
        """Return copies of everything needed to resume bitwise.

        Returns
        -------
        state : dict
            The step count ``t`` (int), the hyperparameters (float) and the state buffers
            (ndarray of shape (n_params,), the optimizer's dtype).
        """
        state: dict[str, StateValue] = {key: buffer.copy() for key, buffer in self._buffers.items()}
        state["t"] = self.t
        state.update(self._hyper)
        return state

    def load_state_dict(self, state: Mapping[str, StateValue]) -> None:
        """Restore a state returned by ``state_dict`` (arrays are copied in).

        Parameters
        ----------
        state : mapping
            The same keys as ``state_dict`` returns; scalars may be 0-d arrays, as an ``.npz``
            file returns them. Nothing is changed unless the whole state is valid.
        """
        expected = {"t", *self.state_buffers, *self.HYPERPARAMETERS}
        missing, unknown = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unknown:
            raise ValueError(
                f"{self.name} state must have keys {sorted(expected)}, missing {missing}, unknown {unknown}"
            )
        t = integer("t", state["t"], 0)
        hyperparameters = resolve(
            "hyperparameter", self.name, {key: state[key] for key in self._hyper}, self.HYPERPARAMETERS
        )
        buffers = {}
        for key in self.state_buffers:
            value = state[key]
            if not isinstance(value, np.ndarray) or value.shape != self._shape or value.dtype != self.dtype:
                got = f"{value.shape} {value.dtype}" if isinstance(value, np.ndarray) else repr(value)
                raise ValueError(
                    f"state {key!r} must be an array of shape {self._shape} {self.dtype}, got {got}"
                )
            buffers[key] = value
        for key, value in buffers.items():
            np.copyto(self._buffers[key], value)
        self.t = t
        self._hyper = hyperparameters


class GradientDescent(Optimizer):
    """Plain gradient descent on the full batch, ``w <- w - lr * g``: the seed's update rule."""

    name = "gd"
    rule = "w ← w − η·g, on the full batch (the seed's update rule)"
    full_batch_only = True

    def _update(self, params: FloatArray, grads: FloatArray, lr: float) -> None:
        work = self._work
        np.multiply(grads, lr, out=work)
        params -= work


class StochasticGradientDescent(GradientDescent):
    """Gradient descent's rule on shuffled mini-batches: the training loop feeds it the batches."""

    name = "sgd"
    rule = "w ← w − η·g, on each shuffled mini-batch"
    full_batch_only = False


class Momentum(Optimizer):
    """Classical momentum in the form of Sutskever et al. (2013): ``v <- mu*v - lr*g; w <- w + v``.

    The learning rate sits inside the velocity, so a schedule changes only the new gradient's
    share; PyTorch's form (``v <- mu*v + g; w <- w - lr*v``) matches it only for a constant rate.
    """

    name = "momentum"
    rule = (
        "v ← μ·v − η·g; w ← w + v (Sutskever et al., 2013: η inside the velocity; the same steps as"
        " PyTorch's SGD with momentum while η is constant)"
    )
    HYPERPARAMETERS: ClassVar[Mapping[str, Hyperparameter]] = {"momentum": _MOMENTUM}
    state_buffers = ("velocity",)

    def _update(self, params: FloatArray, grads: FloatArray, lr: float) -> None:
        velocity, work = self._buffers["velocity"], self._work
        velocity *= self._hyper["momentum"]
        np.multiply(grads, lr, out=work)
        velocity -= work
        params += velocity


class Nesterov(Optimizer):
    """Nesterov momentum, the look-ahead form of PyTorch and Keras on the current gradient.

    ``v <- mu*v - lr*g; w <- w + mu*v - lr*g``: the parameters move as if the velocity had
    already been applied once more, with no second gradient evaluation.
    """

    name = "nesterov"
    rule = (
        "v ← μ·v − η·g; w ← w + μ·v − η·g (Nesterov momentum in Sutskever's form, on the current"
        " gradient; the same steps as PyTorch's nesterov=True while η is constant)"
    )
    HYPERPARAMETERS: ClassVar[Mapping[str, Hyperparameter]] = {"momentum": _MOMENTUM}
    state_buffers = ("velocity",)

    def _update(self, params: FloatArray, grads: FloatArray, lr: float) -> None:
        velocity, work = self._buffers["velocity"], self._work
        mu = self._hyper["momentum"]
        np.multiply(grads, lr, out=work)
        velocity *= mu
        velocity -= work
        params -= work
        np.multiply(velocity, mu, out=work)
        params += work


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015) with bias-corrected moment estimates.

    ``m <- b1*m + (1-b1)*g; v <- b2*v + (1-b2)*g*g; w <- w - lr * mhat / (sqrt(vhat) + eps)`` with
    ``mhat = m / (1 - b1**t)`` and ``vhat = v / (1 - b2**t)``. The corrections are folded into two
    scalars, which is exact algebra (eps is rescaled too), not the paper's approximate variant.
    """

    name = "adam"
    rule = (
        "m ← β₁·m + (1 − β₁)·g; v ← β₂·v + (1 − β₂)·g²; w ← w − η·m̂ / (√v̂ + ε), with the bias"
        " corrections m̂ = m / (1 − β₁ᵗ) and v̂ = v / (1 − β₂ᵗ) at step t (Kingma and Ba, 2015; as PyTorch)"
    )
    HYPERPARAMETERS: ClassVar[Mapping[str, Hyperparameter]] = {
        "beta1": Hyperparameter(0.9, 0.0, 1.0, description="Adam's β₁, the decay of the gradient's mean."),
        "beta2": Hyperparameter(0.999, 0.0, 1.0, description="Adam's β₂, the decay of its square's mean."),
        "eps": Hyperparameter(1e-8, 0.0, 1.0, low_open=True, high_open=False, description="Adam's ε."),
    }
    state_buffers = ("m", "v")

    def _update(self, params: FloatArray, grads: FloatArray, lr: float) -> None:
        m, v, work = self._buffers["m"], self._buffers["v"], self._work
        hyper = self._hyper
        beta1, beta2 = hyper["beta1"], hyper["beta2"]
        m *= beta1
        np.multiply(grads, 1.0 - beta1, out=work)
        m += work
        v *= beta2
        np.multiply(grads, grads, out=work)
        work *= 1.0 - beta2
        v += work
        # sqrt(vhat) + eps == (sqrt(v) + eps * c2) / c2 with c2 = sqrt(1 - b2**t).
        c2 = math.sqrt(1.0 - beta2**self.t)
        np.sqrt(v, out=work)
        work += hyper["eps"] * c2
        np.divide(m, work, out=work)
        work *= lr * c2 / (1.0 - beta1**self.t)
        params -= work


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019): ``w <- w - lr*wd*w`` before the step.

    Unlike ``l2``, the decay does not pass through the moment estimates, so it shrinks every
    weight by the same factor. It applies where ``decay_mask`` is 1: the training loop decays the
    weights and not the biases, as ``l2`` does.
    """

    name = "adamw"
    rule = (
        "w ← w − η·λ·w (decoupled weight decay λ, on the weights, not the biases), then Adam's step"
        " (Loshchilov and Hutter, 2019; PyTorch's AdamW with biases in a group without decay)"
    )
    HYPERPARAMETERS: ClassVar[Mapping[str, Hyperparameter]] = {
        **Adam.HYPERPARAMETERS,
        "weight_decay": Hyperparameter(0.01, 0.0, description="Decoupled weight decay λ."),
    }

    def _update(self, params: FloatArray, grads: FloatArray, lr: float) -> None:
        work = self._work
        if self._decay_mask is None:
            np.multiply(params, lr * self._hyper["weight_decay"], out=work)
        else:
            np.multiply(params, self._decay_mask, out=work)
            work *= lr * self._hyper["weight_decay"]
        params -= work
        super()._update(params, grads, lr)


OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (GradientDescent, StochasticGradientDescent, Momentum, Nesterov, Adam, AdamW)
}


def get_optimizer(name: str) -> type[Optimizer]:
    """Look up an optimizer by its API name; ValueError lists the allowed names."""
    try:
        return OPTIMIZERS[name]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}") from None


def default_hyperparameters(name: str) -> dict[str, float]:
    """The hyperparameters optimizer ``name`` takes, with their defaults."""
    return {key: spec.default for key, spec in get_optimizer(name).HYPERPARAMETERS.items()}


def make_optimizer(
    name: str, n_params: int, dtype: np.dtype[Any] | type, **hyperparameters: float
) -> Optimizer:
    """Create the optimizer called ``name`` for a flat vector of ``n_params`` parameters.

    Parameters
    ----------
    name : str
        One of ``OPTIMIZERS``.
    n_params : int
        Length of the flat parameter vector, >= 1.
    dtype : numpy dtype or type
        float32 or float64, the dtype of the parameters and of the optimizer's state.
    **hyperparameters : float
        Values for the optimizer's ``HYPERPARAMETERS`` (defaults fill the rest): ``momentum``,
        ``beta1`` and ``beta2`` in [0, 1), ``eps`` in (0, 1], ``weight_decay`` >= 0.

    Returns
    -------
    optimizer : Optimizer
        A fresh optimizer with zeroed state and ``t == 0``.
    """
    return get_optimizer(name)(n_params, dtype, **hyperparameters)


def clip_grad_norm(grads: FloatArray, max_norm: float) -> float:
    """Scale ``grads`` in place so that their global L2 norm is at most ``max_norm``.

    As PyTorch's ``clip_grad_norm_``: the gradient is multiplied by ``max_norm / (norm + 1e-6)``
    when that is below 1, so a clipped gradient's norm ends just under ``max_norm``.

    Parameters
    ----------
    grads : ndarray of shape (n_params,)
        The flat gradient of every parameter.
    max_norm : float
        Positive.

    Returns
    -------
    norm : float
        The norm before clipping.
    """
    norm = math.sqrt(float(np.vdot(grads, grads)))
    if math.isinf(norm):
        # The squares overflowed though the entries are finite: scale by the largest entry first.
        largest = float(np.max(np.abs(grads)))
        norm = largest * math.sqrt(float(np.vdot(grads / largest, grads / largest)))
    coefficient = max_norm / (norm + 1e-6)
    if coefficient < 1.0:
        grads *= coefficient
    return norm
