import numpy as np
import pytest

import engine.gradcheck
import engine.models
from engine.gradcheck import check_gradients, numerical_gradient
from engine.models import Parameters, build_architecture, loss_and_gradient, targets

N_SAMPLES, N_FEATURES = 8, 3


def problem(kind="mlp", seed=0, **kwargs):
    """An architecture, non-zero parameters, inputs and targets for it."""
    rng = np.random.default_rng(seed)
    arch = build_architecture(kind, N_FEATURES, **kwargs)
    params = Parameters(arch, rng.normal(scale=0.5, size=arch.n_parameters))
    X = rng.normal(size=(N_SAMPLES, N_FEATURES))
    if arch.loss == "binary_cross_entropy":
        y = rng.integers(0, 2, size=N_SAMPLES)
    elif arch.loss == "cross_entropy":
        y = rng.integers(0, arch.n_outputs, size=N_SAMPLES)
    else:
        y = rng.normal(size=(N_SAMPLES, arch.n_outputs))
    return arch, params, X, targets(arch, y)


MLP = {"n_outputs": 3, "hidden_layers": [4, 4], "activation": "tanh", "output_activation": "softmax"}


def test_numerical_gradient_matches_the_linear_regression_formula():
    # L = mean((Xw + b − y)²): ∂L/∂w = 2/n · Xᵀr, ∂L/∂b = 2/n · Σr, with r = Xw + b − y.
    arch, params, X, Y = problem("linear_regression")
    r = X @ params.weights[0][:, 0] + params.biases[0][0] - Y[:, 0]
    expected = np.concatenate([2 / N_SAMPLES * X.T @ r, [2 / N_SAMPLES * r.sum()]])
    np.testing.assert_allclose(numerical_gradient(arch, params, X, Y), expected, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize(
    ("kind", "kwargs"),
    [
        ("logistic_regression", {}),
        ("linear_regression", {"n_outputs": 2}),
        ("softmax_regression", {"n_outputs": 3}),
        ("mlp", MLP),
    ],
)
@pytest.mark.parametrize("l2", [0.0, 0.2])
def test_correct_gradient_passes(kind, kwargs, l2):
    arch, params, X, Y = problem(kind, **kwargs)
    check = check_gradients(arch, params, X, Y, l2)
    assert check.passed
    assert check.max_rel_error < 1e-6
    assert check.max_abs_error < 1e-8
    np.testing.assert_allclose(
        check.numerical, loss_and_gradient(arch, params, X, Y, l2)[1].flat, rtol=1e-6, atol=1e-9
    )


def corrupt_gradient(monkeypatch, corrupt):
    """Make the analytic gradient that check_gradients sees wrong; the loss itself stays right."""
    real = engine.gradcheck.loss_and_gradient

    def wrong(architecture, params, X, Y, l2=0.0, grads=None):
        loss, g, output = real(architecture, params, X, Y, l2, grads)
        corrupt(g)
        return loss, g, output

    monkeypatch.setattr(engine.gradcheck, "loss_and_gradient", wrong)


def scale_one_weight(g):
    g.weights[0][1, 0] *= 1.01


def flip_a_bias(g):
    g.biases[-1][0] = -g.biases[-1][0]


def shift_everything(g):
    g.flat += 1e-4


def drop_a_layer(g):
    g.weights[0][...] = 0.0


@pytest.mark.parametrize("corrupt", [scale_one_weight, flip_a_bias, shift_everything, drop_a_layer])
def test_wrong_gradient_fails(monkeypatch, corrupt):
    arch, params, X, Y = problem(**MLP)
    assert check_gradients(arch, params, X, Y).passed
    corrupt_gradient(monkeypatch, corrupt)
    check = check_gradients(arch, params, X, Y)
    assert not check.passed
    assert check.max_rel_error > 1e-3


def test_forgotten_l2_term_fails(monkeypatch):
    arch, params, X, Y = problem(**MLP)
    real = engine.gradcheck.loss_and_gradient

    def without_l2_gradient(architecture, params, X, Y, l2=0.0, grads=None):
        loss = real(architecture, params, X, Y, l2)[0]
        _, g, output = real(architecture, params, X, Y, 0.0, grads)
        return loss, g, output

    monkeypatch.setattr(engine.gradcheck, "loss_and_gradient", without_l2_gradient)
    assert check_gradients(arch, params, X, Y, 0.0).passed
    assert not check_gradients(arch, params, X, Y, 0.1).passed


def test_wrong_hidden_layer_backpropagation_fails(monkeypatch):
    # Backpropagating through tanh as if it were the identity: the output layer's gradient
    # stays right, every earlier layer's goes wrong.
    arch, params, X, Y = problem(**MLP)
    monkeypatch.setattr(engine.models, "_backward_hidden", lambda act, params, z, a, grad_a: grad_a)
    check = check_gradients(arch, params, X, Y)
    assert not check.passed
    assert check.max_rel_error > 1e-2


def test_check_leaves_parameters_untouched_and_works_for_float32():
    arch, params, X, Y = problem(**MLP)
    before = params.flat.copy()
    check_gradients(arch, params, X, Y)
    np.testing.assert_array_equal(params.flat, before)
    params32 = Parameters(arch, params.flat.astype(np.float32))
    check = check_gradients(arch, params32, X.astype(np.float32), Y.astype(np.float32))
    assert check.passed
    assert check.numerical.dtype == np.float64
    np.testing.assert_array_equal(params32.flat, before.astype(np.float32))


def test_tolerance_decides_passed(monkeypatch):
    # One component 1% too large is a relative error of 0.01 / 2.01 ≈ 5e-3.
    arch, params, X, Y = problem(**MLP)
    corrupt_gradient(monkeypatch, scale_one_weight)
    loose = check_gradients(arch, params, X, Y, tolerance=1e-2)
    strict = check_gradients(arch, params, X, Y, tolerance=1e-3)
    assert loose.passed
    assert not strict.passed
    assert loose.max_rel_error == pytest.approx(0.01 / 2.01, rel=1e-3)
    assert strict.max_rel_error == pytest.approx(0.01 / 2.01, rel=1e-3)


@pytest.mark.parametrize(("h", "tolerance"), [(0.0, 1e-6), (-1e-6, 1e-6), (1e-6, 0.0), (1e-6, -1.0)])
def test_non_positive_step_or_tolerance_raises(h, tolerance):
    arch, params, X, Y = problem("logistic_regression")
    with pytest.raises(ValueError, match="h and tolerance must be positive"):
        check_gradients(arch, params, X, Y, h=h, tolerance=tolerance)
