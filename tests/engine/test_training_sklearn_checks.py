"""The checks of scikit-learn's MLP test suite that apply to Descent, written for its engine.

scikit-learn's ``neural_network/tests/test_mlp.py`` checks that a larger L2 penalty gives smaller
weights (test_alpha), one SGD step against a hand-worked example (test_fit), warm starts
(test_warm_start*), that early stopping keeps the best validation score (test_early_stopping) and
that a diverging run with early stopping ends cleanly (test_mlp_diverging_loss). Here, each on
Descent's ``fit``, with the arithmetic of the hand-worked example written out in full precision.
"""

import math

import numpy as np
import pytest

from engine.datasets import make_dataset
from engine.models import build_architecture, loss_and_gradient, targets
from engine.training import EarlyStopping, FitConfig, fit


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_a_larger_l2_gives_smaller_weights():
    X, y = make_dataset("blobs", 120, n_classes=2, n_features=6, noise=2.0, rng=np.random.default_rng(0))
    arch = build_architecture("mlp", 6, 1, hidden_layers=[10], activation="tanh", output_activation="sigmoid")
    sizes = []
    for l2 in (0.0, 0.1, 1.0):
        config = FitConfig(epochs=200, optimizer="adam", learning_rate=0.01, l2=l2)
        result = fit(arch, X, y, config, np.random.default_rng(1))
        sizes.append([np.abs(w).sum() for w in result.params.weights])
    for smaller, larger in zip(sizes[1:], sizes[:-1], strict=True):
        assert all(s < b for s, b in zip(smaller, larger, strict=True))


def test_one_gradient_descent_step_matches_the_hand_worked_example():
    # scikit-learn's test_fit: one sample x = [0.6, 0.8, 0.7] labelled 0, a 3 → 2 (sigmoid) → 1
    # (sigmoid) network, learning rate 0.1, L2 0.1 (scikit-learn's alpha / n_samples, n = 1).
    x = [0.6, 0.8, 0.7]
    W0, b0 = [[0.1, 0.2], [0.3, 0.1], [0.5, 0.0]], [0.1, 0.1]
    W1, b1 = [[0.1], [0.2]], [1.0]
    arch = build_architecture(
        "mlp", 3, 1, hidden_layers=[2], activation="sigmoid", output_activation="sigmoid"
    )
    initial = np.concatenate([np.ravel(W0), b0, np.ravel(W1), b1])
    config = FitConfig(epochs=1, optimizer="gd", learning_rate=0.1, l2=0.1)
    result = fit(arch, np.array([x]), np.array([0]), config, np.random.default_rng(0), initial_params=initial)

    h = [sigmoid(sum(x[i] * W0[i][j] for i in range(3)) + b0[j]) for j in range(2)]  # 0.679…, 0.574…
    o = sigmoid(h[0] * W1[0][0] + h[1] * W1[1][0] + b1[0])  # 0.765…
    d_out = o - 0  # ∂L/∂z at the output: ŷ − y
    d_hidden = [h[j] * (1 - h[j]) * d_out * W1[j][0] for j in range(2)]  # 0.01667…, 0.0374…
    new_W0 = [[W0[i][j] - 0.1 * (x[i] * d_hidden[j] + 0.1 * W0[i][j]) for j in range(2)] for i in range(3)]
    new_b0 = [b0[j] - 0.1 * d_hidden[j] for j in range(2)]
    new_W1 = [[W1[j][0] - 0.1 * (h[j] * d_out + 0.1 * W1[j][0])] for j in range(2)]
    new_b1 = [b1[0] - 0.1 * d_out]
    np.testing.assert_allclose(result.params.weights[0], new_W0, rtol=1e-14)
    np.testing.assert_allclose(result.params.biases[0], new_b0, rtol=1e-14)
    np.testing.assert_allclose(result.params.weights[1], new_W1, rtol=1e-14)
    np.testing.assert_allclose(result.params.biases[1], new_b1, rtol=1e-14)
    # scikit-learn's rounded figures, to its three decimals.
    np.testing.assert_allclose(
        result.params.weights[0],
        [[0.098, 0.195756], [0.2956664, 0.096008], [0.4939998, -0.002244]],
        atol=1e-3,
    )
    np.testing.assert_allclose(result.params.biases[1], [0.9235], atol=1e-3)
    assert result.predict(np.array([x]))[1][0] == pytest.approx(0.739, abs=1e-3)
    # The history holds the loss before the step, penalty included: −log(1 − ŷ) + (0.1 / 2)·Σ‖W‖².
    penalty = 0.05 * (sum(w * w for row in W0 for w in row) + 0.1**2 + 0.2**2)
    assert result.history["train_loss"] == [pytest.approx(-math.log(1 - o) + penalty, rel=1e-14)]


def test_warm_start_continues_where_the_last_run_ended():
    # Full-batch gradient descent keeps no state between epochs, so 40 epochs and a warm start of
    # 60 more are the 100 epochs of one run, to the bit.
    X, y = make_dataset("moons", 80, noise=0.2, rng=np.random.default_rng(0))
    arch = build_architecture("mlp", 2, 1, hidden_layers=[6], activation="tanh", output_activation="sigmoid")
    straight = fit(arch, X, y, FitConfig(epochs=100, learning_rate=0.5), np.random.default_rng(3))
    first = fit(arch, X, y, FitConfig(epochs=40, learning_rate=0.5), np.random.default_rng(3))
    second = fit(
        arch,
        X,
        y,
        FitConfig(epochs=60, learning_rate=0.5),
        np.random.default_rng(9),
        initial_params=first.params.flat,
    )
    np.testing.assert_array_equal(second.params.flat, straight.params.flat)
    assert first.history["train_loss"] + second.history["train_loss"] == straight.history["train_loss"]


@pytest.mark.parametrize("min_delta", [0.0, 0.01])
def test_early_stopping_keeps_the_best_validation_loss(min_delta):
    X, y = make_dataset("moons", 80, noise=0.35, rng=np.random.default_rng(1))
    arch = build_architecture("mlp", 2, 1, hidden_layers=[64], activation="relu", output_activation="sigmoid")
    config = FitConfig(
        epochs=400,
        optimizer="adam",
        learning_rate=0.05,
        validation_fraction=0.3,
        early_stopping=EarlyStopping(patience=10, min_delta=min_delta),
    )
    snapshots = {}

    def keep(state):
        snapshots[state.epoch] = state.checkpoint().params
        return True

    result = fit(arch, X, y, config, np.random.default_rng(0), on_epoch=keep)
    val_loss = result.history["val_loss"]
    assert result.stop_reason == "early_stopped"
    assert result.monitor == "val_loss"
    assert result.best_loss == min(val_loss)
    assert result.best_epoch == result.weights_epoch == int(np.argmin(val_loss)) + 1
    np.testing.assert_array_equal(result.params.flat, snapshots[result.best_epoch])


def test_a_diverging_run_with_early_stopping_ends_cleanly_with_its_best_weights():
    # scikit-learn's test_mlp_diverging_loss: an identity MLP at learning rate 1 on unscaled data.
    X, y = make_dataset("linear", 150, n_features=4, noise=0.5, rng=np.random.default_rng(0))
    arch = build_architecture("mlp", 4, 1, hidden_layers=[100], activation="identity")
    config = FitConfig(
        epochs=20,
        optimizer="sgd",
        learning_rate=1.0,
        batch_size=32,
        validation_fraction=0.1,
        early_stopping=EarlyStopping(patience=10),
    )
    result = fit(arch, X * 10, y * 10, config, np.random.default_rng(0))
    assert result.stop_reason == "diverged"
    assert np.isfinite(result.params.flat).all()
    assert result.weights_epoch == result.best_epoch
    assert f"the weights kept are those of epoch {result.best_epoch}" in result.detail


def test_gradient_clipping_bounds_the_step():
    X, y = make_dataset("linear", 50, n_features=3, noise=0.1, rng=np.random.default_rng(0))
    arch = build_architecture("linear_regression", 3)
    config = FitConfig(epochs=1, optimizer="gd", learning_rate=0.5, max_grad_norm=0.1)
    result = fit(arch, X * 100, y * 100, config, np.random.default_rng(0))
    zeros = result.params.copy(arch)
    zeros.flat[...] = 0
    _, grads, _ = loss_and_gradient(arch, zeros, X * 100, targets(arch, y * 100))
    norm = np.linalg.norm(grads.flat)
    assert norm > 0.1
    np.testing.assert_allclose(result.params.flat, -0.5 * grads.flat * 0.1 / (norm + 1e-6), rtol=1e-12)


def test_adamw_in_fit_decays_the_weights_and_not_the_biases():
    X, y = make_dataset("moons", 60, noise=0.2, rng=np.random.default_rng(0))
    arch = build_architecture("mlp", 2, 1, hidden_layers=[5], activation="tanh", output_activation="sigmoid")
    initial = np.random.default_rng(4).normal(size=arch.n_parameters)
    runs = {}
    for name, hyper in (("adam", {}), ("adamw", {"weight_decay": 0.5})):
        config = FitConfig(epochs=1, optimizer=name, learning_rate=0.1, optimizer_params=hyper)
        runs[name] = fit(arch, X, y, config, np.random.default_rng(0), initial_params=initial).params
    # One step from the same gradient: AdamW moves each weight by a further η·λ·w, each bias by nothing.
    decayed = runs["adam"].copy(arch)
    decayed.flat[...] = runs["adam"].flat - runs["adamw"].flat
    start = runs["adam"].copy(arch)
    start.flat[...] = initial
    for dw, w in zip(decayed.weights, start.weights, strict=True):
        np.testing.assert_allclose(dw, 0.05 * w, rtol=1e-9, atol=1e-15)
    for db in decayed.biases:
        np.testing.assert_allclose(db, 0, atol=1e-15)
