"""The binary cross-entropy sum, and full-batch epochs of one-layer sigmoid models in fused passes.

Logistic regression on the full batch is two matrix-vector products (X @ w forward, δ @ X back)
and a few passes over n-vectors: sigmoid, the output error δ = ŷ − y, the loss and the accuracy.
The products read all of X; the passes read n numbers each, so for a model with few features
they are what the epoch costs beyond its two products. ``LogisticEpochs`` does every pass in
place in buffers allocated once per run, takes the loss and the accuracy from the values the
forward pass already computed, and allocates no array of size n per epoch.

``true_label_nll`` is the loss's sum, shared with ``engine.models``: Σ −log q for q the
probability each sample gives its true label, exact from the logits where q is small.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from engine.architecture import Architecture
from engine.parameters import Parameters

Array = np.ndarray[Any, Any]

# Below this probability of the true label, 1 − |ŷ − y| has lost too many digits to 1 − ŷ rounding,
# so those samples' losses are taken from the logits instead (relative error of the rest < 1e-13).
SMALL_Q = 2.0**-8


def sum_log(q: Array) -> float:
    """Σ log q for a 1-D q in [2⁻⁸, 1], as the logs of products of 8 (float32) or 64 (float64) terms.

    The log is the costly part of the loss. Products of 8 such terms stay above 2⁻⁶⁴ and of 64
    above 2⁻⁵¹², far from float32's and float64's subnormals, so they lose no digits. The products
    are formed in place: q is overwritten.
    """
    total = 0.0
    n = len(q)
    # Below ~1,000 terms the extra calls cost more than the logs they save.
    levels = 0 if n < 1024 else 3 if q.dtype == np.float32 else 6
    for _ in range(levels):
        half = n // 2
        if n % 2:
            total += float(np.log(q[n - 1]))
        np.multiply(q[:half], q[half : 2 * half], out=q[:half])
        n = half
    head = q[:n]
    return total + float(np.sum(np.log(head, out=head)))


def true_label_nll(q: Array, logits_at: Callable[[Array], Array], y: Array) -> float:
    """Σ −log q over a 1-D q, the probability of the true 0/1 label y; q is overwritten.

    Exact from the logits where it matters: a confident mistake at z = 40 costs 40, not
    −log(eps). ``logits_at(idx)`` returns the logits of the samples at the indices idx; it is
    called only for the few with q < 2⁻⁸.
    """
    exact = 0.0
    if q.min() < SMALL_Q:
        small = np.flatnonzero(q < SMALL_Q)
        # −log σ(m) = softplus(−m) for the margin m = ±z (+ for label 1), without overflow.
        m = logits_at(small) * (2 * y[small] - 1)
        exact = float(np.sum(np.maximum(-m, 0) + np.log1p(np.exp(-np.abs(m)))))
        q[small] = 1
    return exact - sum_log(q)


class LogisticEpochs:
    """Loss, accuracy and gradients of a one-layer, one-output sigmoid model on the full batch.

    The same values as ``engine.models.loss_and_gradient`` and ``engine.models.accuracy`` give,
    from one forward pass into buffers allocated here once: X @ w, then σ, the accuracy (ŷ ≥ ½
    against the labels, as ``predict`` decides), δ = ŷ − y, δ @ X and Σδ, and the loss from
    q = 1 − |δ|, every pass in place.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, 1)
        0/1 targets in X's dtype.
    labels : ndarray of bool of shape (n_samples,), or None
        The class labels, for the accuracy; None gives a count of 0.
    """

    def __init__(self, X: Array, Y: Array, labels: Array | None) -> None:
        n, dtype = len(X), X.dtype
        self.X, self.labels = X, labels
        self.y = np.ascontiguousarray(Y[:, 0])
        self._a = np.empty(n, dtype)  # −z, e^−z, 1 + e^−z, ŷ and δ in turn
        self._q = np.empty(n, dtype)
        self._ones = np.ones(n, dtype)
        self._hit = None if labels is None else np.empty(n, dtype=bool)

    @staticmethod
    def fits(architecture: Architecture) -> bool:
        """Whether the architecture is one sigmoid layer with one output and binary cross-entropy."""
        return (
            len(architecture.shapes) == 1
            and architecture.n_outputs == 1
            and architecture.activations[0] == "sigmoid"
            and architecture.loss == "binary_cross_entropy"
        )

    def loss_and_gradient(self, params: Parameters, grads: Parameters, l2: float = 0.0) -> tuple[float, int]:
        """The mean loss (with the l2 penalty) and the count of correct predictions at ``params``;
        the gradient is written into ``grads``."""
        X, a, n = self.X, self._a, len(self.X)
        w, b = params.weights[0][:, 0], float(params.biases[0][0])
        np.matmul(X, w, out=a)
        # σ(z) = 1 / (1 + e^−z) for z = Xw + b; e^−z overflows to inf only where σ is 0.
        np.subtract(-b, a, out=a)
        with np.errstate(over="ignore"):
            np.exp(a, out=a)
        a += 1
        np.reciprocal(a, out=a)
        correct = 0
        if self._hit is not None and self.labels is not None:
            hit = np.greater_equal(a, 0.5, out=self._hit)
            correct = int(np.count_nonzero(np.equal(hit, self.labels, out=hit)))
        delta = np.subtract(a, self.y, out=a)
        np.matmul(delta, X, out=grads.weights[0][:, 0])
        grads.biases[0][0] = np.dot(delta, self._ones)  # a sum through BLAS: faster than np.sum
        grads.flat *= 1.0 / n
        # For 0/1 labels, q = 1 − |ŷ − y| is the probability given to the true label.
        q = np.abs(delta, out=self._q)
        np.subtract(1, q, out=q)
        loss = true_label_nll(q, lambda idx: X[idx] @ w + b, self.y) / n
        if l2:
            weights = params.weights[0]
            loss += 0.5 * l2 * float(np.vdot(weights, weights))
            grads.weights[0] += l2 * weights
        return loss, correct
