"""A model's weights and biases in one flat buffer, and how they start.

All parameters of a model live in one flat buffer (``Parameters.flat``) with each layer's W and b
as views into it, so an optimizer updates every parameter in a few in-place NumPy calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from engine.activations import ACTIVATIONS, Init
from engine.architecture import Architecture

Array = np.ndarray[Any, Any]


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


def weights_mask(architecture: Architecture) -> Array:
    """1 over every weight and 0 over every bias, in the flat layout: where weight decay applies."""
    mask = zeros(architecture)
    for w in mask.weights:
        w[...] = 1.0
    return mask.flat


def he_normal(rng: np.random.Generator, fan_in: int, fan_out: int) -> Array:
    """Weights of shape (fan_in, fan_out) drawn from N(0, 2 / fan_in): for the rectifier family."""
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_in, fan_out))


def glorot_uniform(rng: np.random.Generator, fan_in: int, fan_out: int) -> Array:
    """Weights of shape (fan_in, fan_out) drawn from U(±sqrt(6 / (fan_in + fan_out))): for the others."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out))


# Each activation's registry entry names its rule.
INITIALIZERS: dict[Init, Callable[[np.random.Generator, int, int], Array]] = {
    "he": he_normal,
    "glorot": glorot_uniform,
}


def init_parameters(
    architecture: Architecture, rng: np.random.Generator, dtype: Any = np.float64
) -> Parameters:
    """Initialise weights for training; biases start at zero.

    Single-layer models (the convex ones) start at zero, as in the seed's derivation. Each MLP
    layer draws its weights by the rule its activation's registry entry names (``init``):
    He-normal before rectifiers, Glorot-uniform before saturating or linear activations.

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
        w[...] = INITIALIZERS[ACTIVATIONS[act].init](rng, fan_in, fan_out)
    return params
