"""The claims of the "neural networks vs linear models" lesson (README.md), as tests of the engine.

A composite of linear functions stays linear, so a linear model (or an MLP without
non-linear activations) cannot separate XOR, while one non-linear hidden layer can; and
full-batch gradient descent is exactly the lesson's update rule w ← w − η ∂L/∂w with
∂L/∂w = mean((ŷ − y)·x) and ∂L/∂b = mean(ŷ − y).
"""

import numpy as np
import pytest

from engine.datasets import make_dataset
from engine.models import build_architecture, collapse_linear, loss_and_gradient, predict, targets
from engine.training import FitConfig, fit

CHANCE_CEILING = 0.65


def _accuracy(result, X, y):
    return float(np.mean(result.predict(X)[0] == y))


def _xor(seed=0, n=400):
    return make_dataset("xor", n, rng=np.random.default_rng(seed))


def test_logistic_regression_stays_near_chance_on_xor_after_converging():
    X, y = _xor()
    arch = build_architecture("logistic_regression", 2)
    result = fit(arch, X, y, FitConfig(epochs=2000, learning_rate=1.0), np.random.default_rng(0))
    # Converged: the gradient at the final weights vanishes, so more epochs would not help.
    _, grads, _ = loss_and_gradient(arch, result.params, X, targets(arch, y))
    assert np.max(np.abs(grads.flat)) < 1e-8
    assert result.stop_reason == "completed"
    assert _accuracy(result, X, y) <= CHANCE_CEILING
    assert result.history["train_accuracy"][-1] <= CHANCE_CEILING


def test_mlp_with_identity_hidden_layer_stays_near_chance_on_xor():
    X, y = _xor()
    arch = build_architecture(
        "mlp", 2, 1, hidden_layers=[16], activation="identity", output_activation="sigmoid"
    )
    config = FitConfig(epochs=300, optimizer="adam", learning_rate=0.05)
    result = fit(arch, X, y, config, np.random.default_rng(0))
    assert _accuracy(result, X, y) <= CHANCE_CEILING


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", ["xor", "circles"])
def test_mlp_with_one_tanh_hidden_layer_fits_non_linear_data(kind, seed):
    X, y = make_dataset(kind, 400, rng=np.random.default_rng(seed))
    arch = build_architecture("mlp", 2, 1, hidden_layers=[16], activation="tanh", output_activation="sigmoid")
    config = FitConfig(epochs=300, optimizer="adam", learning_rate=0.05)
    result = fit(arch, X, y, config, np.random.default_rng(seed))
    assert _accuracy(result, X, y) >= 0.98
    assert result.history["train_accuracy"][-1] >= 0.97


def test_identity_mlp_regressor_is_its_collapsed_linear_map_after_training():
    X, y = make_dataset("linear", 200, n_features=3, noise=0.1, rng=np.random.default_rng(0))
    arch = build_architecture("mlp", 3, 1, hidden_layers=[8, 5], activation="identity")
    config = FitConfig(epochs=100, optimizer="adam", learning_rate=0.01)
    result = fit(arch, X, y, config, np.random.default_rng(0))
    W, b = collapse_linear(arch, result.params)
    assert W.shape == (3, 1)
    assert b.shape == (1,)
    np.testing.assert_allclose(result.predict(X)[0], (X @ W + b)[:, 0], rtol=1e-10, atol=1e-12)
    # Trained, not just initialised: the linear map fits the linear data.
    assert result.history["train_loss"][-1] < 0.1 * result.history["train_loss"][0]


def test_identity_mlp_classifier_predicts_like_its_collapsed_linear_map_after_training():
    X, y = _xor()
    arch = build_architecture(
        "mlp", 2, 1, hidden_layers=[16, 4], activation="identity", output_activation="sigmoid"
    )
    result = fit(
        arch, X, y, FitConfig(epochs=200, optimizer="adam", learning_rate=0.05), np.random.default_rng(1)
    )
    W, b = collapse_linear(arch, result.params)
    z = X @ W + b
    labels, probabilities = result.predict(X)
    np.testing.assert_allclose(probabilities, 1 / (1 + np.exp(-z[:, 0])), rtol=1e-10)
    np.testing.assert_array_equal(labels, (z[:, 0] >= 0).astype(np.int64))


def _seed_gradient_descent(X, y, w, b, lr, epochs):
    """The lesson's formulas: ŷ = σ(w·x + b), w ← w − η mean((ŷ − y)x), b ← b − η mean(ŷ − y)."""
    for _ in range(epochs):
        y_hat = 1 / (1 + np.exp(-(X @ w + b)))
        dw = np.mean((y_hat - y)[:, None] * X, axis=0)
        db = np.mean(y_hat - y)
        w = w - lr * dw
        b = b - lr * db
    return w, b


@pytest.mark.parametrize("epochs", [1, 3])
@pytest.mark.parametrize("start", ["zero", "warm"])
def test_full_batch_gd_is_exactly_the_seed_update_rule(epochs, start):
    X, y = make_dataset("blobs", 60, n_classes=2, noise=2.0, rng=np.random.default_rng(3))
    arch = build_architecture("logistic_regression", 2)
    w0, b0 = np.zeros(2), 0.0
    initial = None
    if start == "warm":
        w0, b0 = np.array([0.3, -0.7]), 0.2
        initial = np.array([*w0, b0])
    lr = 0.3
    result = fit(
        arch,
        X,
        y,
        FitConfig(epochs=epochs, learning_rate=lr),
        np.random.default_rng(0),
        initial_params=initial,
    )
    w, b = _seed_gradient_descent(X, y.astype(np.float64), w0, b0, lr, epochs)
    assert result.params.flat.dtype == np.float64
    np.testing.assert_allclose(result.params.weights[0][:, 0], w, rtol=1e-12, atol=0)
    np.testing.assert_allclose(result.params.biases[0][0], b, rtol=1e-12, atol=0)
    # A real step was taken: the rule is not checked at a fixed point.
    assert not np.allclose(w, w0)


def test_logistic_regression_separates_linearly_separable_blobs():
    X, y = make_dataset("blobs", 200, n_classes=2, noise=0.5, rng=np.random.default_rng(2))
    arch = build_architecture("logistic_regression", 2)
    result = fit(arch, X, y, FitConfig(epochs=500, learning_rate=0.5), np.random.default_rng(0))
    assert _accuracy(result, X, y) >= 0.99


def test_only_the_non_linear_model_separates_xor_from_the_same_start():
    # The same data, optimizer and budget: the hidden activation alone decides the outcome.
    X, y = _xor(seed=5)
    accuracies = {}
    for activation in ("identity", "tanh"):
        arch = build_architecture(
            "mlp", 2, 1, hidden_layers=[16], activation=activation, output_activation="sigmoid"
        )
        config = FitConfig(epochs=300, optimizer="adam", learning_rate=0.05)
        result = fit(arch, X, y, config, np.random.default_rng(5))
        labels, _ = predict(arch, result.params, X)
        accuracies[activation] = float(np.mean(labels == y))
    assert accuracies["identity"] <= CHANCE_CEILING
    assert accuracies["tanh"] >= 0.98
