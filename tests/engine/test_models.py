import math
import re

import numpy as np
import pytest

from engine.activations import ACTIVATIONS, activate
from engine.gradcheck import check_gradients
from engine.models import (
    Parameters,
    build_architecture,
    collapse_linear,
    forward,
    from_arrays,
    init_parameters,
    loss_and_gradient,
    loss_and_output,
    predict,
    targets,
    zeros,
)

HIDDEN = sorted(name for name in ACTIVATIONS if name != "softmax")
OUTPUTS = {"sigmoid": 1, "softmax": 3, "identity": 2}
N_SAMPLES, N_FEATURES = 6, 3


def labels_for(architecture, rng, n=N_SAMPLES):
    """Targets of the right kind: 0/1, class indices or real values."""
    if architecture.loss == "binary_cross_entropy":
        return rng.integers(0, 2, size=(n, architecture.n_outputs))
    if architecture.loss == "cross_entropy":
        return rng.integers(0, architecture.n_outputs, size=n)
    return rng.normal(size=(n, architecture.n_outputs))


def random_parameters(architecture, rng, scale=0.5, dtype=np.float64):
    """Non-zero weights and biases, so that no gradient vanishes by symmetry."""
    return Parameters(architecture, rng.normal(scale=scale, size=architecture.n_parameters).astype(dtype))


MODEL_CASES = [
    ("logistic_regression", {}),
    ("linear_regression", {}),
    ("linear_regression", {"n_outputs": 2}),
    ("softmax_regression", {"n_outputs": 3}),
] + [
    ("mlp", {"hidden_layers": [4] * depth, "activation": act, "output_activation": out, "n_outputs": k})
    for depth in (1, 2, 3)
    for act in HIDDEN
    for out, k in OUTPUTS.items()
]
MODEL_IDS = [
    kind if kind != "mlp" else f"mlp-{len(kw['hidden_layers'])}x{kw['activation']}-{kw['output_activation']}"
    for kind, kw in MODEL_CASES
]
MODEL_IDS[2] += "-2out"


# --- gradients -----------------------------------------------------------------------------------


@pytest.mark.parametrize("l2", [0.0, 0.1])
@pytest.mark.parametrize(("kind", "kwargs"), MODEL_CASES, ids=MODEL_IDS)
def test_gradient_passes_the_finite_difference_check(kind, kwargs, l2):
    rng = np.random.default_rng(0)
    arch = build_architecture(kind, N_FEATURES, **kwargs)
    params = random_parameters(arch, rng)
    X = rng.normal(size=(N_SAMPLES, N_FEATURES))
    Y = targets(arch, labels_for(arch, rng))
    check = check_gradients(arch, params, X, Y, l2)
    assert check.max_rel_error < 1e-6
    assert check.passed


def test_mixed_hidden_activations_pass_the_finite_difference_check():
    rng = np.random.default_rng(1)
    arch = build_architecture(
        "mlp",
        N_FEATURES,
        3,
        hidden_layers=[5, 4, 3],
        activation=["gelu", "leaky_relu", "elu"],
        output_activation="softmax",
    )
    params = random_parameters(arch, rng)
    X = rng.normal(size=(N_SAMPLES, N_FEATURES))
    check = check_gradients(arch, params, X, targets(arch, labels_for(arch, rng)), 0.05)
    assert check.max_rel_error < 1e-6


@pytest.mark.parametrize(
    ("output", "loss"), [("tanh", "mean_squared_error"), ("sigmoid", "mean_squared_error")]
)
def test_gradient_of_a_non_canonical_output_and_loss_pair(output, loss):
    rng = np.random.default_rng(2)
    arch = build_architecture(
        "mlp", N_FEATURES, 2, hidden_layers=[4], activation="tanh", output_activation=output, loss=loss
    )
    params = random_parameters(arch, rng)
    X = rng.normal(size=(N_SAMPLES, N_FEATURES))
    Y = rng.uniform(0, 1, size=(N_SAMPLES, 2))
    assert check_gradients(arch, params, X, Y).max_rel_error < 1e-6


def test_logistic_regression_gradient_is_the_seed_formula():
    rng = np.random.default_rng(3)
    arch = build_architecture("logistic_regression", 4)
    w, b = rng.normal(size=4), 0.3
    X = rng.normal(size=(20, 4))
    y = rng.integers(0, 2, size=20)
    params = from_arrays(arch, [w[:, None]], [np.array([b])])
    loss, grads, output = loss_and_gradient(arch, params, X, targets(arch, y))

    # The seed: ŷ = σ(w·x + b), ∂L/∂w = mean((ŷ − y)·x), ∂L/∂b = mean(ŷ − y).
    y_hat = 1 / (1 + np.exp(-(X @ w + b)))
    dw = np.mean((y_hat - y)[:, None] * X, axis=0)
    db = np.mean(y_hat - y)
    expected_loss = -np.mean(y * np.log(y_hat) + (1 - y) * np.log(1 - y_hat))
    np.testing.assert_allclose(output[:, 0], y_hat, rtol=1e-12)
    np.testing.assert_allclose(grads.weights[0][:, 0], dw, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(grads.biases[0], [db], rtol=1e-12, atol=1e-15)
    assert loss == pytest.approx(expected_loss, rel=1e-12)


def test_logistic_regression_worked_by_hand_on_two_samples():
    # w = [1, −1], b = 0; x₁ = [1, 1] gives z = 0, ŷ = 1/2; x₂ = [log 3, 0] gives z = log 3, ŷ = 3/4.
    arch = build_architecture("logistic_regression", 2)
    params = from_arrays(arch, [np.array([[1.0], [-1.0]])], [np.array([0.0])])
    X = np.array([[1.0, 1.0], [math.log(3), 0.0]])
    y = np.array([1, 0])
    loss, grads, output = loss_and_gradient(arch, params, X, targets(arch, y))
    np.testing.assert_allclose(output[:, 0], [0.5, 0.75], rtol=1e-15)
    # −(log ½ + log ¼) / 2 = 3/2 · log 2.
    assert loss == pytest.approx(1.5 * math.log(2), rel=1e-15)
    # ŷ − y = [−½, ¾]: ∂L/∂w = ([−½, −½] + [¾ log 3, 0]) / 2, ∂L/∂b = (−½ + ¾) / 2.
    np.testing.assert_allclose(grads.weights[0][:, 0], [(0.75 * math.log(3) - 0.5) / 2, -0.25], rtol=1e-15)
    assert grads.biases[0][0] == pytest.approx(0.125, rel=1e-15)
    labels, probabilities = predict(arch, params, X)
    np.testing.assert_array_equal(labels, [1, 1])
    np.testing.assert_allclose(probabilities, [0.5, 0.75], rtol=1e-15)


def test_l2_adds_half_l2_norm_to_the_loss_and_l2_w_to_weight_gradients_only():
    rng = np.random.default_rng(4)
    arch = build_architecture("mlp", N_FEATURES, 1, hidden_layers=[4], output_activation="sigmoid")
    params = random_parameters(arch, rng)
    X = rng.normal(size=(N_SAMPLES, N_FEATURES))
    Y = targets(arch, labels_for(arch, rng))
    loss0, g0, _ = loss_and_gradient(arch, params, X, Y)
    loss1, g1, _ = loss_and_gradient(arch, params, X, Y, l2=0.3)
    squares = sum(float(np.sum(w * w)) for w in params.weights)
    assert loss1 == pytest.approx(loss0 + 0.15 * squares, rel=1e-14)
    for w, gw0, gw1 in zip(params.weights, g0.weights, g1.weights, strict=True):
        np.testing.assert_allclose(gw1, gw0 + 0.3 * w, rtol=1e-14)
    for gb0, gb1 in zip(g0.biases, g1.biases, strict=True):
        np.testing.assert_array_equal(gb1, gb0)


def test_gradient_buffer_is_filled_in_place():
    rng = np.random.default_rng(5)
    arch = build_architecture("mlp", N_FEATURES, 3, hidden_layers=[4], output_activation="softmax")
    params = random_parameters(arch, rng)
    X = rng.normal(size=(N_SAMPLES, N_FEATURES))
    Y = targets(arch, labels_for(arch, rng))
    expected = loss_and_gradient(arch, params, X, Y)[1].flat.copy()
    buffer = Parameters(arch, np.full(arch.n_parameters, np.nan))
    _, grads, _ = loss_and_gradient(arch, params, X, Y, grads=buffer)
    assert grads is buffer
    np.testing.assert_array_equal(buffer.flat, expected)


@pytest.mark.parametrize("output", sorted(OUTPUTS))
@pytest.mark.parametrize("activation", HIDDEN)
def test_float32_is_preserved_through_forward_and_gradients(activation, output):
    rng = np.random.default_rng(10)
    arch = build_architecture(
        "mlp",
        N_FEATURES,
        OUTPUTS[output],
        hidden_layers=[4, 4],
        activation=activation,
        output_activation=output,
    )
    params = init_parameters(arch, rng, dtype=np.float32)
    assert params.flat.dtype == np.float32
    X = rng.normal(size=(N_SAMPLES, N_FEATURES)).astype(np.float32)
    Y = targets(arch, labels_for(arch, rng), dtype=np.float32)
    output_values, layers = forward(arch, params, X, return_intermediates=True)
    assert output_values.dtype == np.float32
    for z, a in layers:
        assert z.dtype == a.dtype == np.float32
    loss, grads, out = loss_and_gradient(arch, params, X, Y, l2=0.01)
    assert math.isfinite(loss)
    assert grads.flat.dtype == np.float32
    assert out.dtype == np.float32
    # And the float32 gradient is the float64 one, rounded.
    params64 = Parameters(arch, params.flat.astype(np.float64))
    grads64 = loss_and_gradient(arch, params64, X.astype(np.float64), Y.astype(np.float64), l2=0.01)[1]
    np.testing.assert_allclose(grads.flat, grads64.flat, rtol=1e-3, atol=1e-5)


# --- forward -------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", HIDDEN)
def test_forward_intermediates_are_z_and_phi_of_z_per_layer(activation):
    rng = np.random.default_rng(11)
    arch = build_architecture(
        "mlp", N_FEATURES, 3, hidden_layers=[5, 4], activation=activation, output_activation="softmax"
    )
    params = random_parameters(arch, rng)
    X = rng.normal(size=(N_SAMPLES, N_FEATURES))
    output, layers = forward(arch, params, X, return_intermediates=True)
    assert len(layers) == 3
    a_prev = X
    for (z, a), w, b, act, units in zip(
        layers, params.weights, params.biases, arch.activations, arch.layer_sizes[1:], strict=True
    ):
        assert z.shape == a.shape == (N_SAMPLES, units)
        np.testing.assert_allclose(z, a_prev @ w + b, rtol=1e-14)
        np.testing.assert_allclose(a, activate(act, z), rtol=1e-14)
        a_prev = a
    np.testing.assert_array_equal(output, layers[-1][1])
    np.testing.assert_array_equal(forward(arch, params, X), output)


def test_identity_mlp_collapses_to_one_affine_map():
    # The seed: a composition of linear functions stays linear.
    rng = np.random.default_rng(12)
    arch = build_architecture("mlp", N_FEATURES, 2, hidden_layers=[5, 4], activation="identity")
    params = random_parameters(arch, rng)
    X = rng.normal(size=(20, N_FEATURES))
    W, b = collapse_linear(arch, params)
    assert W.shape == (N_FEATURES, 2) and b.shape == (2,)
    np.testing.assert_allclose(forward(arch, params, X), X @ W + b, rtol=0, atol=1e-12)


def test_identity_mlp_classifier_has_a_hyperplane_decision_boundary():
    rng = np.random.default_rng(13)
    arch = build_architecture(
        "mlp", 2, 1, hidden_layers=[6, 6], activation="identity", output_activation="sigmoid"
    )
    params = random_parameters(arch, rng, scale=1.0)
    X = rng.uniform(-3, 3, size=(200, 2))
    W, b = collapse_linear(arch, params)
    labels, probabilities = predict(arch, params, X)
    np.testing.assert_allclose(probabilities, activate("sigmoid", X @ W[:, 0] + b[0]), rtol=1e-12)
    # The predicted class is the side of the line w·x + b = 0.
    margin = X @ W[:, 0] + b[0]
    clear = np.abs(margin) > 1e-9
    np.testing.assert_array_equal(labels[clear], (margin[clear] > 0).astype(int))


def test_a_nonlinear_hidden_layer_does_not_collapse():
    arch = build_architecture("mlp", 2, 1, hidden_layers=[4], activation="tanh")
    with pytest.raises(ValueError, match=r"only identity hidden layers collapse, got \['tanh'\]"):
        collapse_linear(arch, zeros(arch))


# --- predict -------------------------------------------------------------------------------------


def test_predict_logistic_regression_returns_labels_and_probabilities():
    rng = np.random.default_rng(14)
    arch = build_architecture("logistic_regression", N_FEATURES)
    params = random_parameters(arch, rng, scale=2.0)
    params.biases[0][...] = 0.0  # through the origin, so that both classes occur
    X = rng.normal(size=(30, N_FEATURES))
    labels, p = predict(arch, params, X)
    assert labels.shape == p.shape == (30,)
    np.testing.assert_allclose(p, forward(arch, params, X)[:, 0], rtol=1e-15)
    np.testing.assert_array_equal(labels, (p >= 0.5).astype(int))
    assert set(np.unique(labels)) == {0, 1}


def test_predict_softmax_regression_returns_argmax_and_class_probabilities():
    rng = np.random.default_rng(15)
    arch = build_architecture("softmax_regression", N_FEATURES, 4)
    params = random_parameters(arch, rng, scale=2.0)
    X = rng.normal(size=(30, N_FEATURES))
    labels, p = predict(arch, params, X)
    assert labels.shape == (30,) and p.shape == (30, 4)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-14)
    np.testing.assert_array_equal(labels, np.argmax(X @ params.weights[0] + params.biases[0], axis=1))


@pytest.mark.parametrize(("n_outputs", "shape"), [(1, (30,)), (2, (30, 2))])
def test_predict_linear_regression_returns_values_without_probabilities(n_outputs, shape):
    rng = np.random.default_rng(16)
    arch = build_architecture("linear_regression", N_FEATURES, n_outputs)
    params = random_parameters(arch, rng)
    X = rng.normal(size=(30, N_FEATURES))
    values, p = predict(arch, params, X)
    assert p is None
    assert values.shape == shape
    np.testing.assert_allclose(values, (X @ params.weights[0] + params.biases[0]).reshape(shape), rtol=1e-14)


@pytest.mark.parametrize(("output", "k"), [("sigmoid", 1), ("softmax", 3)])
def test_predict_mlp_classifier_returns_labels(output, k):
    rng = np.random.default_rng(17)
    arch = build_architecture("mlp", N_FEATURES, k, hidden_layers=[5], output_activation=output)
    params = random_parameters(arch, rng, scale=2.0)
    X = rng.normal(size=(30, N_FEATURES))
    labels, _ = predict(arch, params, X)
    out = forward(arch, params, X)
    assert labels.shape == (30,)
    expected = (out[:, 0] >= 0.5).astype(int) if k == 1 else np.argmax(out, axis=1)
    np.testing.assert_array_equal(labels, expected)


# --- targets -------------------------------------------------------------------------------------


def test_targets_shape_labels_like_outputs():
    softmax = build_architecture("softmax_regression", 2, 3)
    np.testing.assert_array_equal(targets(softmax, np.array([2, 0])), [[0, 0, 1], [1, 0, 0]])
    assert targets(softmax, np.array([2, 0]), dtype=np.float32).dtype == np.float32
    logistic = build_architecture("logistic_regression", 2)
    np.testing.assert_array_equal(targets(logistic, np.array([1, 0, 1])), [[1], [0], [1]])
    linear = build_architecture("linear_regression", 2, 2)
    np.testing.assert_array_equal(targets(linear, np.array([[0.5, 1.5]])), [[0.5, 1.5]])


@pytest.mark.parametrize(
    ("kind", "n_outputs", "y", "message"),
    [
        ("softmax_regression", 3, [0, 3], r"class labels must be integers in \[0, 2\]"),
        ("softmax_regression", 3, [0, -1], r"class labels must be integers in \[0, 2\]"),
        ("softmax_regression", 3, [0.5, 1], r"class labels must be integers in \[0, 2\]"),
        ("logistic_regression", 1, [0, 2], r"labels for binary_cross_entropy must be 0 or 1"),
        ("logistic_regression", 1, [[0, 1]], r"y has 2 columns but the model has 1 outputs"),
        ("linear_regression", 2, [1.0, 2.0], r"y has 1 columns but the model has 2 outputs"),
    ],
)
def test_targets_reject_labels_that_do_not_fit(kind, n_outputs, y, message):
    arch = build_architecture(kind, 2, n_outputs)
    with pytest.raises(ValueError, match=message):
        targets(arch, np.array(y))


# --- losses from logits on the model path, against PyTorch ------------------------------------
# Expected values computed once with PyTorch 2.13.0 (CPU, float64): the same network written with
# torch.nn.functional (linear layers, leaky_relu, elu, binary_cross_entropy_with_logits or
# cross_entropy, reduction "mean"), loss.backward() for the gradients.


@pytest.mark.parametrize(
    ("w", "y", "expected"),
    [(40.0, 0.0, 40.0), (30.0, 0.0, 30.000000000000092), (-40.0, 1.0, 40.0), (-800.0, 1.0, 800.0)],
)
def test_logistic_regression_loss_comes_from_the_logit_not_a_clipped_probability(w, y, expected):
    arch = build_architecture("logistic_regression", 1)
    params = from_arrays(arch, [np.array([[w]])], [np.array([0.0])])
    loss, grads, _ = loss_and_gradient(arch, params, np.array([[1.0]]), np.array([[y]]))
    assert loss == pytest.approx(expected, rel=1e-15)
    # ∂L/∂w = (σ(z) − y)·x: ±1 for a confident mistake.
    assert grads.flat[0] == pytest.approx(1.0 if y == 0 else -1.0, rel=1e-15)
    # The loss without gradients (history, validation, early stopping) is the same number.
    assert loss_and_output(arch, params, np.array([[1.0]]), np.array([[y]]))[0] == loss


def test_a_confident_correct_logistic_prediction_costs_almost_nothing():
    # PyTorch gives 9.357622968839737e-14 for z = 30, y = 1; the product-of-probabilities form is
    # exact to 1e-16 per sample in absolute terms, which is what a mean over samples needs.
    arch = build_architecture("logistic_regression", 1)
    params = from_arrays(arch, [np.array([[30.0]])], [np.array([0.0])])
    loss, _, _ = loss_and_gradient(arch, params, np.array([[1.0]]), np.array([[1.0]]))
    assert abs(loss - 9.357622968839737e-14) < 1e-16


@pytest.mark.parametrize(
    ("logits", "label", "expected"),
    [([40.0, 0.0, -40.0], 2, 80.0), ([1e308, -1e308, 0.0], 0, 0.0), ([1e308, -1e308, 0.0], 2, 1e308)],
)
def test_softmax_regression_loss_comes_from_the_logits(logits, label, expected):
    arch = build_architecture("softmax_regression", 1, 3)
    params = from_arrays(arch, [np.array([logits])], [np.zeros(3)])
    Y = targets(arch, np.array([label]))
    loss, _, _ = loss_and_gradient(arch, params, np.array([[1.0]]), Y)
    assert loss == expected
    assert loss_and_output(arch, params, np.array([[1.0]]), Y)[0] == expected


# A 3 → 4 (leaky_relu, alpha 0.2) → 2 (elu, alpha 0.5) → 2 (sigmoid) network on five samples with two
# labels each, drawn with np.random.default_rng(0): X (5 × 3), Y (5 × 2 of 0/1), then W0, b0, W1, b1,
# W2, b2 from rng.normal in that order.
def _torch_mlp_case():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5, 3))
    Y = rng.integers(0, 2, size=(5, 2)).astype(np.float64)
    W0, b0 = rng.normal(size=(3, 4)), rng.normal(size=4)
    W1, b1 = rng.normal(size=(4, 2)), rng.normal(size=2)
    W2, b2 = rng.normal(size=(2, 2)), rng.normal(size=2)
    arch = build_architecture(
        "mlp",
        3,
        2,
        hidden_layers=[4, 2],
        activation=["leaky_relu", "elu"],
        activation_params=[{"alpha": 0.2}, {"alpha": 0.5}],
        output_activation="sigmoid",
    )
    return arch, from_arrays(arch, [W0, W1, W2], [b0, b1, b2]), X, Y


def test_mlp_with_layer_parameters_and_two_labels_matches_pytorch():
    arch, params, X, Y = _torch_mlp_case()
    loss, grads, _ = loss_and_gradient(arch, params, X, Y)
    assert loss == pytest.approx(3.067684970097983, rel=1e-14)
    expected_w0 = [
        [-0.05042832297624519, 0.2623931925167856, -1.4520600096096348, -0.3738474861829373],
        [-0.0789772592881778, 0.04175597433381373, -0.339920995836048, -0.12501753486784298],
        [0.10642015831150525, -0.025687798512014012, -0.5378808944878387, -0.17560585297385223],
    ]
    np.testing.assert_allclose(grads.weights[0], expected_w0, rtol=1e-13)
    np.testing.assert_allclose(
        grads.biases[0],
        [-0.2226667283499128, 1.2731361860833688, 0.8901487753231396, 1.5259257063480538],
        rtol=1e-13,
    )
    np.testing.assert_allclose(
        grads.weights[1],
        [
            [0.07333425501635678, 0.23285297434046193],
            [0.5764247207458276, 0.3973984371940672],
            [0.06522546771651834, 1.3441162943959188],
            [0.22423793476526271, 0.33409106776585173],
        ],
        rtol=1e-13,
    )
    np.testing.assert_allclose(grads.biases[1], [0.5256866030170932, 1.0474914688331074], rtol=1e-13)
    np.testing.assert_allclose(
        grads.weights[2],
        [[0.27258514024031183, 0.08771443367849228], [0.9910427824817605, 0.5664164096345746]],
        rtol=1e-13,
    )
    np.testing.assert_allclose(grads.biases[2], [0.3953369518410167, 0.2549142052813298], rtol=1e-13)


def test_layer_parameters_change_the_network_and_pass_the_gradient_check():
    arch, params, X, Y = _torch_mlp_case()
    default = build_architecture(
        "mlp", 3, 2, hidden_layers=[4, 2], activation=["leaky_relu", "elu"], output_activation="sigmoid"
    )
    assert default.activation_params == ({"alpha": 0.01}, {"alpha": 1.0}, {})
    assert arch.activation_params == ({"alpha": 0.2}, {"alpha": 0.5}, {})
    assert not np.allclose(forward(arch, params, X), forward(default, Parameters(default, params.flat), X))
    assert check_gradients(arch, params, X, Y).passed


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"activation_params": {"beta": 1.0}},
            "activation 'leaky_relu' takes no parameter beta; allowed: alpha",
        ),
        ({"activation_params": [{}, {}]}, "1 hidden layers need as many activation parameter sets, got 2"),
        (
            {"activation": "elu", "activation_params": {"alpha": -1.0}},
            "alpha must be positive for elu, got -1.0",
        ),
        (
            {"activation": "relu", "activation_params": {"alpha": 0.1}},
            "takes no parameter alpha; allowed: none",
        ),
    ],
)
def test_invalid_layer_parameters_are_rejected_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build_architecture("mlp", 3, 1, hidden_layers=[4], **{"activation": "leaky_relu", **kwargs})


def test_multilabel_predict_returns_zero_or_one_per_output_and_the_probabilities():
    arch, params, X, _ = _torch_mlp_case()
    predictions, probabilities = predict(arch, params, X)
    assert predictions.shape == probabilities.shape == (5, 2)
    np.testing.assert_array_equal(predictions, (probabilities >= 0.5).astype(np.int64))
    np.testing.assert_allclose(probabilities, forward(arch, params, X))
