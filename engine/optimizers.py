"""Optimizers that update a flat parameter buffer in place, and learning-rate schedules.

The training loop keeps every parameter of a model in one contiguous 1-D array and computes the
gradient into another array of the same shape and dtype. Each optimizer owns preallocated state
and work buffers of that size and dtype and updates the parameters in place through ``out=``
arguments, so a step is a handful of NumPy calls and allocates no array: for a small model,
temporaries and per-call overhead would otherwise cost more than the arithmetic.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.floating[Any]]
StateValue = FloatArray | int | float

OPTIMIZERS: tuple[str, ...] = ("gd", "sgd", "momentum", "nesterov", "adam")
SCHEDULES: tuple[str, ...] = ("constant", "step", "exponential", "cosine")

DEFAULT_HYPERPARAMETERS: dict[str, dict[str, float]] = {
    "gd": {},
    "sgd": {},
    "momentum": {"momentum": 0.9},
    "nesterov": {"momentum": 0.9},
    "adam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
}
SCHEDULE_OPTIONS: dict[str, dict[str, float]] = {
    "constant": {},
    "step": {"step_size": 10, "gamma": 0.5},
    "exponential": {"gamma": 0.95},
    "cosine": {"min_lr": 0.0},
}
_DTYPES: tuple[np.dtype[np.floating[Any]], ...] = (np.dtype(np.float32), np.dtype(np.float64))


def _real(what: str, value: object) -> float:
    """Return ``value`` as a finite float, or raise ValueError naming it."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()  # scalars come back from .npz checkpoints as 0-d arrays
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _integer(what: str, value: object, minimum: int) -> int:
    """Return ``value`` as an int of at least ``minimum``, or raise ValueError naming it."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _options(
    kind: str, owner: str, given: Mapping[str, object], defaults: Mapping[str, float]
) -> dict[str, float]:
    """Fill ``defaults`` from ``given``, rejecting names that are not in ``defaults``."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        allowed = ", ".join(defaults) or "none"
        raise ValueError(f"unknown {kind} {unknown[0]!r} for {owner!r}; allowed: {allowed}")
    return {key: _real(key, given.get(key, default)) for key, default in defaults.items()}


def _hyperparameters(name: str, given: Mapping[str, object]) -> dict[str, float]:
    """Validate the hyperparameters of optimizer ``name`` and fill in the defaults."""
    values = _options("hyperparameter", name, given, DEFAULT_HYPERPARAMETERS[name])
    for key, value in values.items():
        if key == "eps":
            if value <= 0.0:
                raise ValueError(f"eps must be positive, got {value!r}")
        elif not 0.0 <= value < 1.0:
            raise ValueError(f"{key} must be in [0, 1), got {value!r}")
    return values


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
        The optimizer's hyperparameters (see ``DEFAULT_HYPERPARAMETERS``).

    Attributes
    ----------
    name : str
        The name of the optimizer in the API.
    t : int
        Number of steps taken so far.
    """

    name: str = ""
    _buffer_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, n_params: int, dtype: np.dtype[Any] | type, **hyperparameters: float) -> None:
        self.n_params = _integer("n_params", n_params, 1)
        self.dtype = _float_dtype(dtype)
        self._hyper = _hyperparameters(self.name, hyperparameters)
        self.t = 0
        self._shape = (self.n_params,)
        self._work: FloatArray = np.zeros(self._shape, self.dtype)
        self._buffers: dict[str, FloatArray] = {
            key: np.zeros(self._shape, self.dtype) for key in self._buffer_names
        }

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
        expected = {"t", *self._buffer_names, *DEFAULT_HYPERPARAMETERS[self.name]}
        missing, unknown = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unknown:
            raise ValueError(
                f"{self.name} state must have keys {sorted(expected)}, missing {missing}, unknown {unknown}"
            )
        t = _integer("t", state["t"], 0)
        hyperparameters = _hyperparameters(self.name, {key: state[key] for key in self._hyper})
        buffers = {}
        for key in self._buffer_names:
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
    """Plain gradient descent, ``w <- w - lr * g``: the seed's update rule.

    ``"gd"`` and ``"sgd"`` share this rule; they differ only in the batches the training loop
    feeds it (the full data set, or mini-batches).
    """

    def __init__(
        self, n_params: int, dtype: np.dtype[Any] | type, *, name: str = "gd", **hyperparameters: float
    ) -> None:
        if name not in ("gd", "sgd"):
            raise ValueError(f"name must be 'gd' or 'sgd', got {name!r}")
        self.name = name
        super().__init__(n_params, dtype, **hyperparameters)

    def _update(self, params: FloatArray, grads: FloatArray, lr: float) -> None:
        work = self._work
        np.multiply(grads, lr, out=work)
        params -= work


class Momentum(Optimizer):
    """Classical momentum in the form of Sutskever et al. (2013): ``v <- mu*v - lr*g; w <- w + v``.

    The learning rate sits inside the velocity, so a schedule changes only the new gradient's
    share; PyTorch's form (``v <- mu*v + g; w <- w - lr*v``) matches it only for a constant rate.
    """

    name = "momentum"
    _buffer_names = ("velocity",)

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
    _buffer_names = ("velocity",)

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
    _buffer_names = ("m", "v")

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


_CLASSES: dict[str, type[Optimizer]] = {"momentum": Momentum, "nesterov": Nesterov, "adam": Adam}


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
        Overrides of ``DEFAULT_HYPERPARAMETERS[name]``: ``momentum``, ``beta1`` and ``beta2`` in
        [0, 1), ``eps`` > 0.

    Returns
    -------
    optimizer : Optimizer
        A fresh optimizer with zeroed state and ``t == 0``.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")
    if name in ("gd", "sgd"):
        return GradientDescent(n_params, dtype, name=name, **hyperparameters)
    return _CLASSES[name](n_params, dtype, **hyperparameters)


def learning_rate_at(
    base_lr: float, epoch: int, total_epochs: int, schedule: str = "constant", **options: float
) -> float:
    """Return the learning rate of 0-based ``epoch`` under ``schedule``.

    Parameters
    ----------
    base_lr : float
        Learning rate at epoch 0, finite and > 0.
    epoch : int
        0-based epoch, in [0, total_epochs] (``total_epochs`` gives the end point of the curve).
    total_epochs : int
        Number of epochs of the run, >= 1.
    schedule : str
        One of ``SCHEDULES``: ``constant`` gives ``base_lr``; ``step`` gives
        ``base_lr * gamma ** (epoch // step_size)``; ``exponential`` gives ``base_lr * gamma ** epoch``;
        ``cosine`` gives ``min_lr + (base_lr - min_lr) * (1 + cos(pi * epoch / total_epochs)) / 2``.
    **options : float
        Overrides of ``SCHEDULE_OPTIONS[schedule]``: ``step_size`` an integer >= 1, ``gamma`` in
        (0, 1], ``min_lr`` in [0, base_lr].

    Returns
    -------
    learning_rate : float
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; allowed: {', '.join(SCHEDULES)}")
    base_lr = _real("base_lr", base_lr)
    if base_lr <= 0.0:
        raise ValueError(f"base_lr must be positive, got {base_lr!r}")
    total_epochs = _integer("total_epochs", total_epochs, 1)
    epoch = _integer("epoch", epoch, 0)
    if epoch > total_epochs:
        raise ValueError(f"epoch must be in [0, total_epochs={total_epochs}], got {epoch}")
    values = _options("option", schedule, options, SCHEDULE_OPTIONS[schedule])
    gamma = values.get("gamma", 1.0)
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
    if schedule == "step":
        step_size = values["step_size"]
        if step_size < 1.0 or step_size != int(step_size):
            raise ValueError(f"step_size must be an integer >= 1, got {step_size!r}")
        return base_lr * gamma ** (epoch // int(step_size))
    if schedule == "exponential":
        return base_lr * gamma**epoch
    if schedule == "cosine":
        min_lr = values["min_lr"]
        if not 0.0 <= min_lr <= base_lr:
            raise ValueError(f"min_lr must be in [0, base_lr={base_lr!r}], got {min_lr!r}")
        return min_lr + (base_lr - min_lr) * (1.0 + math.cos(math.pi * epoch / total_epochs)) / 2.0
    return base_lr
