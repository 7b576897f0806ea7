"""Seeded synthetic datasets: the data behind "neural networks vs linear models".

``linear`` is a regression problem a linear model fits exactly (up to noise); ``xor``, ``circles``,
``moons`` and ``spiral`` are classification problems no linear decision boundary separates; ``blobs``
are Gaussian clusters, separable or not depending on their spread. Every generator draws all of its
randomness from the ``np.random.Generator`` it is given, so a seed reproduces a dataset exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

MAX_SAMPLES = 1_000_000
MAX_FEATURES = 1000
MAX_CLASSES = 1000
# A zero-spread blob is one point repeated n times, a degenerate dataset; this floor keeps every
# cluster a cloud while staying far below the distance between typical centres.
BLOB_MIN_STD = 0.05
BLOB_CENTER_BOX = 5.0

Dataset = tuple[np.ndarray, np.ndarray]


def _class_sizes(n_samples: int, n_classes: int) -> np.ndarray:
    """Split n_samples as evenly as possible, the remainder going to the first classes."""
    base, extra = divmod(n_samples, n_classes)
    return np.array([base + (k < extra) for k in range(n_classes)], dtype=np.int64)


def _balanced_labels(n_samples: int, n_classes: int) -> np.ndarray:
    """Labels 0..K-1 in class order (shuffled later together with X)."""
    return np.repeat(np.arange(n_classes, dtype=np.int64), _class_sizes(n_samples, n_classes))


def _finish(X: np.ndarray, y: np.ndarray, noise: float, rng: np.random.Generator) -> Dataset:
    """Add Gaussian noise of std ``noise`` to X, then shuffle X and y together."""
    if noise > 0:
        X = X + noise * rng.standard_normal(X.shape)
    order = rng.permutation(len(y))
    return np.ascontiguousarray(X[order], dtype=np.float64), y[order]


def _linear(
    n_samples: int, *, noise: float, n_classes: int, n_features: int, rng: np.random.Generator
) -> Dataset:
    """y = X @ w_true + b_true + noise * N(0, 1), with X, w_true and b_true standard normal."""
    X = rng.standard_normal((n_samples, n_features))
    w_true = rng.standard_normal(n_features)
    b_true = rng.standard_normal()
    y = X @ w_true + b_true
    if noise > 0:
        y = y + noise * rng.standard_normal(n_samples)
    return X, y.astype(np.float64)


def _xor(
    n_samples: int, *, noise: float, n_classes: int, n_features: int, rng: np.random.Generator
) -> Dataset:
    """Uniform on [-1, 1]^2, label 1 in the quadrants where x0 * x1 > 0."""
    y = _balanced_labels(n_samples, 2)
    # Magnitudes in (0, 1], never 0, so that x0 * x1 is never 0 and the label rule is exact.
    magnitude = 1.0 - rng.random((n_samples, 2))
    sign0 = rng.choice([-1.0, 1.0], size=n_samples)
    sign1 = np.where(y == 1, sign0, -sign0)
    return _finish(magnitude * np.column_stack([sign0, sign1]), y, noise, rng)


def _circles(
    n_samples: int, *, noise: float, n_classes: int, n_features: int, rng: np.random.Generator
) -> Dataset:
    """Outer circle of radius 1.0 (label 0) around an inner circle of radius 0.5 (label 1)."""
    y = _balanced_labels(n_samples, 2)
    radius = np.where(y == 1, 0.5, 1.0)
    angle = rng.uniform(0.0, 2.0 * math.pi, n_samples)
    return _finish(np.column_stack([radius * np.cos(angle), radius * np.sin(angle)]), y, noise, rng)


def _moons(
    n_samples: int, *, noise: float, n_classes: int, n_features: int, rng: np.random.Generator
) -> Dataset:
    """scikit-learn's two moons: upper unit half circle (label 0), lower one shifted by (1, 0.5) (label 1)."""
    y = _balanced_labels(n_samples, 2)
    angle = rng.uniform(0.0, math.pi, n_samples)
    outer = np.column_stack([np.cos(angle), np.sin(angle)])
    inner = np.column_stack([1.0 - np.cos(angle), 0.5 - np.sin(angle)])
    return _finish(np.where((y == 1)[:, None], inner, outer), y, noise, rng)


def _spiral(
    n_samples: int, *, noise: float, n_classes: int, n_features: int, rng: np.random.Generator
) -> Dataset:
    """CS231n's K-arm spiral: r from 0 to 1 along each arm, angle 4 r + 2 pi k / K + noise * N(0, 1)."""
    sizes = _class_sizes(n_samples, n_classes)
    y = _balanced_labels(n_samples, n_classes)
    position = np.arange(n_samples) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    radius = position / np.maximum(sizes[y] - 1, 1)
    angle = 4.0 * radius + 2.0 * math.pi * y / n_classes
    if noise > 0:
        # The noise bends the arms (it is on the angle), so it is added here and not to X.
        angle = angle + noise * rng.standard_normal(n_samples)
    return _finish(np.column_stack([radius * np.sin(angle), radius * np.cos(angle)]), y, 0.0, rng)


def _blobs(
    n_samples: int, *, noise: float, n_classes: int, n_features: int, rng: np.random.Generator
) -> Dataset:
    """K isotropic Gaussian clusters, centres uniform in [-5, 5]^D, std max(noise, BLOB_MIN_STD)."""
    centers = rng.uniform(-BLOB_CENTER_BOX, BLOB_CENTER_BOX, (n_classes, n_features))
    y = _balanced_labels(n_samples, n_classes)
    return _finish(centers[y], y, max(noise, BLOB_MIN_STD), rng)


GENERATORS: dict[str, Callable[..., Dataset]] = {
    "linear": _linear,
    "xor": _xor,
    "circles": _circles,
    "moons": _moons,
    "spiral": _spiral,
    "blobs": _blobs,
}
_BINARY_ONLY = frozenset({"xor", "circles", "moons"})
_FREE_FEATURES = frozenset({"linear", "blobs"})


def _check_kind(kind: str) -> None:
    if kind not in GENERATORS:
        raise ValueError(f"kind must be one of {sorted(GENERATORS)}, got {kind!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _resolve_classes(kind: str, n_classes: int | None) -> int:
    """Number of classes for a classification kind (0 for linear), validated."""
    _check_kind(kind)
    if kind == "linear":
        if n_classes is not None:
            raise ValueError(f"n_classes is not used by 'linear' (regression), got {n_classes!r}")
        return 0
    if n_classes is None:
        return 2 if kind in _BINARY_ONLY else 3
    if not _is_int(n_classes) or n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
    if kind in _BINARY_ONLY and n_classes != 2:
        raise ValueError(f"{kind!r} is binary, n_classes must be 2, got {n_classes!r}")
    if n_classes > MAX_CLASSES:
        raise ValueError(f"n_classes must be at most {MAX_CLASSES}, got {n_classes!r}")
    return int(n_classes)


def task_of(kind: str, n_classes: int | None = None) -> str:
    """Return the learning task a generator's data poses.

    Parameters
    ----------
    kind : str
        A key of ``GENERATORS``.
    n_classes : int or None, default=None
        Number of classes, as passed to ``make_dataset`` (None means that kind's default).

    Returns
    -------
    str
        ``"regression"`` for ``linear``, ``"binary"`` for two classes, ``"multiclass"`` otherwise.
    """
    k = _resolve_classes(kind, n_classes)
    return "regression" if k == 0 else "binary" if k == 2 else "multiclass"


def make_dataset(
    kind: str,
    n_samples: int,
    *,
    noise: float = 0.0,
    n_classes: int | None = None,
    n_features: int | None = None,
    rng: np.random.Generator,
) -> Dataset:
    """Generate a synthetic dataset, all randomness drawn from ``rng``.

    Parameters
    ----------
    kind : {"linear", "xor", "circles", "moons", "spiral", "blobs"}
        ``linear``: y = X @ w_true + b_true + noise * N(0, 1), X, w_true and b_true standard normal.
        ``xor``: uniform on [-1, 1]^2, label 1 where x0 * x1 > 0.
        ``circles``: circles of radius 1.0 (label 0) and 0.5 (label 1) around the origin.
        ``moons``: scikit-learn's two interleaving half circles.
        ``spiral``: the CS231n K-arm spiral, arms evenly spaced by 2 pi / K; noise is on the angle.
        ``blobs``: K Gaussian clusters, centres uniform in [-5, 5]^D, std ``max(noise, BLOB_MIN_STD)``.
    n_samples : int
        Number of rows, 2 to ``MAX_SAMPLES``; at least ``n_classes``.
    noise : float, default=0.0
        Standard deviation of the Gaussian noise: on y (linear), on the angle (spiral), on X otherwise.
    n_classes : int or None, default=None
        Classes for ``spiral`` and ``blobs`` (default 3, at most ``MAX_CLASSES``); must be None or 2
        for ``xor``, ``circles``, ``moons`` and None for ``linear``.
    n_features : int or None, default=None
        Columns for ``linear`` and ``blobs`` (default 2, 1 to ``MAX_FEATURES``); None or 2 otherwise.
    rng : np.random.Generator
        Source of every random draw; the same seed gives identical arrays.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64
    y : ndarray of shape (n_samples,)
        float64 targets for ``linear``; int64 labels 0..K-1 otherwise, class sizes differing by at most
        one (the first classes get the remainder), rows in shuffled order.

    Raises
    ------
    ValueError
        If ``kind`` is unknown (the allowed names are listed) or any argument is out of range.
    """
    k = _resolve_classes(kind, n_classes)
    if not _is_int(n_samples) or not 2 <= n_samples <= MAX_SAMPLES:
        raise ValueError(f"n_samples must be an integer in [2, {MAX_SAMPLES}], got {n_samples!r}")
    if k > n_samples:
        raise ValueError(f"n_classes ({k}) must not exceed n_samples ({n_samples}), so no class is empty")
    if isinstance(noise, bool) or not isinstance(noise, int | float | np.floating | np.integer):
        raise ValueError(f"noise must be a real number, got {noise!r}")
    if not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be finite and >= 0, got {noise!r}")
    if n_features is not None and not (_is_int(n_features) and 1 <= n_features <= MAX_FEATURES):
        raise ValueError(f"n_features must be an integer in [1, {MAX_FEATURES}], got {n_features!r}")
    if kind not in _FREE_FEATURES and n_features not in (None, 2):
        raise ValueError(f"{kind!r} is 2-D, n_features must be None or 2, got {n_features!r}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return GENERATORS[kind](
        int(n_samples), noise=float(noise), n_classes=k, n_features=int(n_features or 2), rng=rng
    )
