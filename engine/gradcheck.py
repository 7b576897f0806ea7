"""Gradient checking: compare analytic gradients with central finite differences."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.models import Architecture, Parameters, loss_and_gradient

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class GradientCheck:
    """The outcome of a gradient check.

    Attributes
    ----------
    max_abs_error : float
        max |analytic − numerical| over every parameter.
    max_rel_error : float
        max |analytic − numerical| / max(|analytic| + |numerical|, floor), where
        floor = 100·eps·max(|L|, 1) / (h·tolerance): errors within 100 times the rounding noise of
        the finite differences stay below the tolerance.
    passed : bool
        max_rel_error below the tolerance.
    numerical : ndarray of shape (n_parameters,)
        The finite-difference gradient, in the flat parameter layout.
    """

    max_abs_error: float
    max_rel_error: float
    passed: bool
    numerical: Array


def numerical_gradient(
    architecture: Architecture, params: Parameters, X: Array, Y: Array, l2: float = 0.0, h: float = 1e-6
) -> Array:
    """Central differences (L(θ + h) − L(θ − h)) / 2h for every parameter, in float64.

    Parameters
    ----------
    architecture : Architecture
    params : Parameters
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_outputs)
    l2 : float
    h : float
        The step; 1e-6 balances truncation error (O(h²)) against rounding error (O(eps / h)).

    Returns
    -------
    ndarray of shape (n_parameters,)
    """
    theta = Parameters(architecture, params.flat.astype(np.float64))
    X64, Y64 = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    numerical = np.empty_like(theta.flat)
    for i in range(theta.flat.size):
        original = theta.flat[i]
        theta.flat[i] = original + h
        up = loss_and_gradient(architecture, theta, X64, Y64, l2)[0]
        theta.flat[i] = original - h
        down = loss_and_gradient(architecture, theta, X64, Y64, l2)[0]
        theta.flat[i] = original
        numerical[i] = (up - down) / (2 * h)
    return numerical


def check_gradients(
    architecture: Architecture,
    params: Parameters,
    X: Array,
    Y: Array,
    l2: float = 0.0,
    *,
    h: float = 1e-6,
    tolerance: float = 1e-6,
) -> GradientCheck:
    """Check the analytic gradient of ``loss_and_gradient`` against central finite differences.

    Parameters
    ----------
    architecture : Architecture
    params : Parameters
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_outputs)
    l2 : float
    h : float
    tolerance : float
        The largest relative error that passes.

    Returns
    -------
    GradientCheck
    """
    if not h > 0 or not tolerance > 0:
        raise ValueError(f"h and tolerance must be positive, got h={h}, tolerance={tolerance}")
    theta = Parameters(architecture, params.flat.astype(np.float64))
    X64, Y64 = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    loss, grads, _ = loss_and_gradient(architecture, theta, X64, Y64, l2)
    analytic = grads.flat
    numerical = numerical_gradient(architecture, theta, X64, Y64, l2, h)
    abs_err = np.abs(analytic - numerical)
    # Rounding in L(θ ± h) leaves about eps·|L| / h of noise in each numerical slope (2e-10 at
    # h = 1e-6), enough to fail a correct component of 1e-4 at a relative 1e-6; the floor lets
    # errors within 100 times that noise pass, while any larger error is still measured.
    noise = 100 * np.finfo(np.float64).eps * max(abs(loss), 1.0) / h
    rel_err = abs_err / np.maximum(np.abs(analytic) + np.abs(numerical), max(noise / tolerance, 1e-8))
    max_rel = float(rel_err.max(initial=0.0))
    return GradientCheck(float(abs_err.max(initial=0.0)), max_rel, max_rel < tolerance, numerical)
