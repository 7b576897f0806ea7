import math

import numpy as np
import pytest

from engine.activations import ACTIVATIONS
from engine.architecture import build_architecture
from engine.parameters import INITIALIZERS, Parameters, from_arrays, init_parameters, zeros

# --- parameter layout ----------------------------------------------------------------------------


def test_weights_and_biases_are_views_of_flat():
    arch = build_architecture("mlp", 3, 2, hidden_layers=[4])
    params = zeros(arch)
    assert arch.n_parameters == 3 * 4 + 4 + 4 * 2 + 2
    assert [w.shape for w in params.weights] == [(3, 4), (4, 2)]
    assert [b.shape for b in params.biases] == [(4,), (2,)]
    # The layout is W₁ (row-major), b₁, W₂, b₂.
    params.weights[0][1, 2] = 1.0
    params.biases[0][3] = 2.0
    params.weights[1][0, 1] = 3.0
    params.biases[1][1] = 4.0
    assert params.flat[1 * 4 + 2] == 1.0
    assert params.flat[12 + 3] == 2.0
    assert params.flat[16 + 1] == 3.0
    assert params.flat[25] == 4.0
    assert np.count_nonzero(params.flat) == 4
    params.flat[:] = np.arange(arch.n_parameters)
    np.testing.assert_array_equal(params.weights[1], np.arange(16, 24).reshape(4, 2))
    np.testing.assert_array_equal(params.biases[1], [24, 25])


def test_copy_is_independent():
    arch = build_architecture("mlp", 3, 2, hidden_layers=[4])
    params = zeros(arch)
    clone = params.copy(arch)
    clone.weights[0][0, 0] = 5.0
    assert params.flat[0] == 0.0
    assert clone.flat[0] == 5.0


def test_parameters_reject_a_flat_buffer_of_the_wrong_size():
    arch = build_architecture("logistic_regression", 3)
    with pytest.raises(ValueError, match=r"expected 4 parameters, got shape \(5,\)"):
        Parameters(arch, np.zeros(5))


def test_from_arrays_round_trips():
    rng = np.random.default_rng(6)
    arch = build_architecture("mlp", 3, 2, hidden_layers=[4])
    weights = [rng.normal(size=(3, 4)), rng.normal(size=(4, 2))]
    biases = [rng.normal(size=4), rng.normal(size=2)]
    params = from_arrays(arch, weights, biases)
    for got, want in zip(params.weights + params.biases, weights + biases, strict=True):
        np.testing.assert_array_equal(got, want)
    assert from_arrays(arch, weights, biases, dtype=np.float32).flat.dtype == np.float32


@pytest.mark.parametrize(
    ("weights", "biases", "message"),
    [
        (
            [np.zeros((3, 4))],
            [np.zeros(4), np.zeros(2)],
            r"the model has 2 layers, got 1 weight matrices and 2 bias",
        ),
        (
            [np.zeros((4, 3)), np.zeros((4, 2))],
            [np.zeros(4), np.zeros(2)],
            r"layer 0 weights must have shape \[3, 4\], got \[4, 3\]",
        ),
        (
            [np.zeros((3, 4)), np.zeros((4, 2))],
            [np.zeros(4), np.zeros(3)],
            r"layer 1 bias must have shape \[2\], got \[3\]",
        ),
        (
            [np.zeros((3, 4)), np.zeros((4, 2))],
            [np.zeros((1, 4)), np.zeros(2)],
            r"layer 0 bias must have shape \[4\], got \[1, 4\]",
        ),
    ],
)
def test_from_arrays_rejects_wrong_shapes(weights, biases, message):
    arch = build_architecture("mlp", 3, 2, hidden_layers=[4])
    with pytest.raises(ValueError, match=message):
        from_arrays(arch, weights, biases)


# --- initialisation ------------------------------------------------------------------------------


def test_init_is_deterministic_for_a_seed_and_differs_across_seeds():
    arch = build_architecture("mlp", 5, 2, hidden_layers=[8, 8])
    a = init_parameters(arch, np.random.default_rng(7))
    b = init_parameters(arch, np.random.default_rng(7))
    c = init_parameters(arch, np.random.default_rng(8))
    np.testing.assert_array_equal(a.flat, b.flat)
    assert not np.array_equal(a.flat, c.flat)
    for bias in a.biases:
        np.testing.assert_array_equal(bias, 0)


@pytest.mark.parametrize("kind", ["logistic_regression", "linear_regression", "softmax_regression"])
def test_single_layer_models_start_at_zero(kind):
    arch = build_architecture(kind, 4, 3)
    np.testing.assert_array_equal(init_parameters(arch, np.random.default_rng(0)).flat, 0)


@pytest.mark.parametrize(
    ("activation", "expected_std"),
    [
        ("relu", math.sqrt(2 / 400)),
        ("gelu", math.sqrt(2 / 400)),
        # Glorot-uniform: limit sqrt(6 / (fan_in + fan_out)), std = limit / sqrt(3).
        ("tanh", math.sqrt(2 / (400 + 300))),
        ("sigmoid", math.sqrt(2 / (400 + 300))),
    ],
)
def test_init_scale_follows_he_or_glorot(activation, expected_std):
    assert ACTIVATIONS[activation].init == ("he" if activation in ("relu", "gelu") else "glorot")
    arch = build_architecture("mlp", 400, 1, hidden_layers=[300], activation=activation)
    w = init_parameters(arch, np.random.default_rng(9)).weights[0]
    assert abs(w.std() - expected_std) < 0.1 * expected_std
    assert abs(w.mean()) < 0.1 * expected_std
    if activation in ("tanh", "sigmoid"):
        assert np.abs(w).max() <= math.sqrt(6 / 700)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_activation_names_an_initialisation_rule(name):
    assert ACTIVATIONS[name].init in INITIALIZERS


def test_each_layer_draws_by_its_own_activations_rule():
    arch = build_architecture("mlp", 300, 1, hidden_layers=[300, 300], activation=["relu", "tanh"])
    first, second, _ = init_parameters(arch, np.random.default_rng(4)).weights
    # He-normal is unbounded; Glorot-uniform stays within sqrt(6 / (fan_in + fan_out)).
    assert np.abs(first).max() > math.sqrt(6 / 600)
    assert np.abs(second).max() <= math.sqrt(6 / 600)
