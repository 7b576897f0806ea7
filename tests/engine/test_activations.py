import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from engine.activations import ACTIVATIONS, activate, backward, derivative, get_activation, resolve_params

NAMES = sorted(ACTIVATIONS)
ELEMENTWISE = [name for name in NAMES if ACTIVATIONS[name].elementwise]
# The names the HTTP contract offers (openapi/openapi.json, e.g. ActivationInfo.name): the engine must keep
# at least these.
API_NAMES = (
    "identity",
    "relu",
    "leaky_relu",
    "elu",
    "gelu",
    "sigmoid",
    "tanh",
    "softplus",
    "silu",
    "softmax",
)
# Every activation with its defaults, plus non-default parameters where it takes any.
CASES = [(name, None) for name in NAMES] + [
    ("leaky_relu", {"alpha": 0.2}),
    ("elu", {"alpha": 0.5}),
    ("elu", {"alpha": 2.0}),
]
CASE_IDS = [name if params is None else f"{name}-{params['alpha']}" for name, params in CASES]
DTYPES = (np.float32, np.float64)
SQRT_2_OVER_PI = math.sqrt(2 / math.pi)

finite64 = st.floats(allow_nan=False, allow_infinity=False)
finite32 = st.floats(allow_nan=False, allow_infinity=False, width=32)


def away_from_kinks(rng, shape):
    """Points with |z| in [0.1, 4], so that no step of h crosses relu's kink at 0."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.1, 4.0, size=shape)


def diagonal_difference(name, z, params, h=1e-6):
    """Central differences (φ(z + h e_i)_i − φ(z − h e_i)_i) / 2h, one element at a time."""
    out = np.empty_like(z)
    for idx in np.ndindex(z.shape):
        up, down = z.copy(), z.copy()
        up[idx] += h
        down[idx] -= h
        out[idx] = (activate(name, up, params)[idx] - activate(name, down, params)[idx]) / (2 * h)
    return out


def gradient_difference(terms, z, h=1e-6):
    """Central-difference gradient of sum(terms(z)) at z.

    The terms are differenced before they are summed, so the rounding of the unperturbed terms
    does not swamp the slope.
    """
    out = np.empty_like(z)
    for idx in np.ndindex(z.shape):
        up, down = z.copy(), z.copy()
        up[idx] += h
        down[idx] -= h
        out[idx] = np.sum(terms(up) - terms(down)) / (2 * h)
    return out


def assert_relative_error_below(analytic, numerical, tolerance):
    # Both exactly 0 (relu's flat side) counts as agreement, not 0/0.
    scale = np.maximum(np.abs(analytic), np.abs(numerical))
    rel = np.abs(analytic - numerical) / np.where(scale > 0, scale, 1.0)
    assert rel.max() < tolerance, (analytic, numerical)


# --- derivatives against central differences --------------------------------------------------


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_derivative_matches_central_differences(name, params):
    z = away_from_kinks(np.random.default_rng(0), (4, 5))
    assert_relative_error_below(derivative(name, z, params), diagonal_difference(name, z, params), 1e-6)


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_backward_matches_finite_differences_of_weighted_sum(name, params):
    rng = np.random.default_rng(1)
    z = away_from_kinks(rng, (3, 4))
    g = rng.normal(size=(3, 4))
    y = activate(name, z, params)
    grad = backward(name, z, y, g, params)
    numerical = gradient_difference(lambda v: g * activate(name, v, params), z)
    assert grad.shape == z.shape
    assert_relative_error_below(grad, numerical, 1e-6)


def test_softmax_backward_is_the_full_jacobian_product_not_the_diagonal():
    z = np.array([[0.5, -1.0, 2.0]])
    g = np.array([[1.0, 0.0, 0.0]])
    y = activate("softmax", z)
    # ∂y_0/∂z_j = y_0 (δ_0j − y_j): the off-diagonal terms are −y_0 y_j.
    expected = y[0, 0] * (np.eye(3)[0] - y[0])
    np.testing.assert_allclose(backward("softmax", z, y, g)[0], expected, rtol=1e-12)
    assert not np.allclose(backward("softmax", z, y, g), g * derivative("softmax", z))


# --- small examples worked by hand -------------------------------------------------------------


def sig(x):
    return 1 / (1 + math.exp(-x))


HAND_VALUES = [
    ("identity", None, -2.5, -2.5),
    ("relu", None, -1.0, 0.0),
    ("relu", None, 2.0, 2.0),
    ("leaky_relu", {"alpha": 0.2}, -2.0, -0.4),
    ("leaky_relu", {"alpha": 0.2}, 3.0, 3.0),
    ("leaky_relu", None, -1.0, -0.01),
    ("elu", None, -1.0, math.exp(-1) - 1),
    ("elu", {"alpha": 0.5}, -1.0, 0.5 * (math.exp(-1) - 1)),
    ("elu", {"alpha": 0.5}, 2.0, 2.0),
    ("sigmoid", None, 0.0, 0.5),
    ("sigmoid", None, math.log(3), 0.75),
    ("tanh", None, 0.0, 0.0),
    ("tanh", None, 1.0, (math.e - 1 / math.e) / (math.e + 1 / math.e)),
    ("softplus", None, 0.0, math.log(2)),
    ("softplus", None, math.log(3), math.log(4)),
    ("gelu", None, 0.0, 0.0),
    ("gelu", None, 1.0, 0.5 * (1 + math.tanh(SQRT_2_OVER_PI * (1 + 0.044715)))),
    ("silu", None, 1.0, sig(1.0)),
    ("silu", None, -2.0, -2.0 * sig(-2.0)),
]

HAND_DERIVATIVES = [
    ("identity", None, 7.0, 1.0),
    ("relu", None, -1.0, 0.0),
    ("relu", None, 0.5, 1.0),
    ("leaky_relu", {"alpha": 0.2}, -2.0, 0.2),
    ("leaky_relu", {"alpha": 0.2}, 2.0, 1.0),
    ("elu", {"alpha": 0.5}, -1.0, 0.5 * math.exp(-1)),
    ("sigmoid", None, 0.0, 0.25),
    ("tanh", None, 0.0, 1.0),
    ("softplus", None, 0.0, 0.5),
    ("gelu", None, 0.0, 0.5),
    ("silu", None, 0.0, 0.5),
    ("silu", None, 1.0, sig(1.0) * (1 + 1.0 * (1 - sig(1.0)))),
]


@pytest.mark.parametrize(("name", "params", "z", "expected"), HAND_VALUES)
def test_value_worked_by_hand(name, params, z, expected):
    assert activate(name, np.array([z]), params)[0] == pytest.approx(expected, rel=1e-14, abs=1e-15)


@pytest.mark.parametrize(("name", "params", "z", "expected"), HAND_DERIVATIVES)
def test_derivative_worked_by_hand(name, params, z, expected):
    assert derivative(name, np.array([z]), params)[0] == pytest.approx(expected, rel=1e-14, abs=1e-15)


def test_softmax_of_one_two_three_by_hand():
    e = [math.exp(1), math.exp(2), math.exp(3)]
    expected = [v / sum(e) for v in e]
    np.testing.assert_allclose(activate("softmax", np.array([1.0, 2.0, 3.0])), expected, rtol=1e-14)
    np.testing.assert_allclose(
        derivative("softmax", np.array([1.0, 2.0, 3.0])), [p * (1 - p) for p in expected], rtol=1e-14
    )


# --- extreme inputs: finite, exact limits, no warnings (warnings are errors) --------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_saturating_limits_are_exact(dtype):
    def f(name, values):
        return activate(name, np.array(values, dtype=dtype))

    np.testing.assert_array_equal(f("sigmoid", [-1000, 1000]), [0, 1])
    np.testing.assert_array_equal(f("softplus", [1000, -1000]), [1000, 0])
    np.testing.assert_array_equal(f("softmax", [1000, 0]), [1, 0])
    np.testing.assert_array_equal(f("softmax", [[0, 1000], [-1000, -1000]]), [[0, 1], [0.5, 0.5]])
    np.testing.assert_array_equal(f("elu", [-1000, 1000]), [-1, 1000])
    np.testing.assert_array_equal(f("silu", [-1000, 1000]), [0, 1000])
    np.testing.assert_array_equal(f("gelu", [-1000, 1000]), [0, 1000])
    np.testing.assert_array_equal(f("tanh", [-1000, 1000]), [-1, 1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_output_and_derivative_finite_at_extremes(name, params, dtype):
    big = np.finfo(dtype).max
    z = np.array([[-big, -1e30, -1000, -1, 0, 1, 1000, 1e30, big]], dtype=dtype)
    y, dy = activate(name, z, params), derivative(name, z, params)
    g = np.ones_like(z)
    grad = backward(name, z, y, g, params)
    for out in (y, dy, grad):
        assert out.dtype == dtype
        assert np.all(np.isfinite(out))


@settings(max_examples=60, deadline=None)
@given(z=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=6), elements=finite64))
@pytest.mark.parametrize("name", NAMES)
def test_every_finite_float64_gives_finite_output(name, z):
    assert np.all(np.isfinite(activate(name, z)))
    assert np.all(np.isfinite(derivative(name, z)))


@settings(max_examples=60, deadline=None)
@given(z=hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=2, max_side=6), elements=finite32))
@pytest.mark.parametrize("name", NAMES)
def test_every_finite_float32_gives_finite_float32_output(name, z):
    y, dy = activate(name, z), derivative(name, z)
    assert y.dtype == dy.dtype == np.float32
    assert np.all(np.isfinite(y))
    assert np.all(np.isfinite(dy))


def test_bounded_are_the_activations_with_a_finite_range_and_no_parameters():
    assert sorted(name for name in NAMES if ACTIVATIONS[name].bounded) == ["sigmoid", "softmax", "tanh"]


@settings(max_examples=60, deadline=None)
@given(z=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=6), elements=finite64))
@pytest.mark.parametrize("name", [name for name in NAMES if ACTIVATIONS[name].bounded])
def test_bounded_activations_raise_no_floating_point_error(name, z):
    # Callers skip both the error silencing and the finiteness check for these (service.services.compute).
    act = ACTIVATIONS[name]
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        y = act.function(z)
        dy = act.derivative(z, y)
    low, high = act.output_range
    assert np.all((low <= y) & (y <= high))
    assert np.all(np.isfinite(dy))


# --- shapes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(), (5,), (2, 3, 4)])
@pytest.mark.parametrize("name", NAMES)
def test_shape_is_preserved(name, shape):
    z = np.random.default_rng(2).normal(size=shape)
    assert activate(name, z).shape == shape
    assert derivative(name, z).shape == shape


@pytest.mark.parametrize("name", NAMES)
def test_python_scalar_and_integer_inputs_compute_as_float(name):
    assert activate(name, 0.5).shape == ()
    np.testing.assert_array_equal(activate(name, [-2, 0, 3]), activate(name, [-2.0, 0.0, 3.0]))
    np.testing.assert_array_equal(derivative(name, [-2, 1, 3]), derivative(name, [-2.0, 1.0, 3.0]))


def test_integer_input_keeps_leaky_relu_alpha():
    np.testing.assert_array_equal(derivative("leaky_relu", np.array([-1, 2]), {"alpha": 0.2}), [0.2, 1.0])


def test_softmax_works_along_the_last_axis():
    z = np.random.default_rng(3).normal(size=(2, 3, 4))
    y = activate("softmax", z)
    np.testing.assert_allclose(y.sum(axis=-1), np.ones((2, 3)), rtol=1e-14)
    for i, j in np.ndindex(2, 3):
        row = np.exp(z[i, j]) / np.exp(z[i, j]).sum()
        np.testing.assert_allclose(y[i, j], row, rtol=1e-13)


# --- laws (hypothesis) -------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(z=hnp.arrays(np.float64, st.integers(1, 20), elements=finite64))
def test_sigmoid_is_symmetric(z):
    np.testing.assert_allclose(activate("sigmoid", -z), 1 - activate("sigmoid", z), rtol=0, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(z=hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=6), elements=finite64))
def test_softmax_rows_sum_to_one(z):
    y = activate("softmax", z)
    assert np.all((y >= 0) & (y <= 1))
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=0, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(
    z=hnp.arrays(np.float64, (3, 4), elements=st.floats(-100, 100)),
    c=hnp.arrays(np.float64, (3, 1), elements=st.floats(-100, 100)),
)
def test_softmax_is_invariant_to_a_constant_per_row(z, c):
    np.testing.assert_allclose(activate("softmax", z + c), activate("softmax", z), rtol=0, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(z=hnp.arrays(np.float64, st.integers(1, 20), elements=st.floats(-1e6, 1e6)))
def test_tanh_is_a_rescaled_sigmoid(z):
    np.testing.assert_allclose(activate("tanh", z), 2 * activate("sigmoid", 2 * z) - 1, rtol=0, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(z=hnp.arrays(np.float64, st.integers(1, 20), elements=finite64))
def test_relu_difference_recovers_the_input(z):
    np.testing.assert_array_equal(activate("relu", z) - activate("relu", -z), z)


# --- parameters ----------------------------------------------------------------------------------


def test_defaults_are_filled_and_given_params_override():
    assert resolve_params("elu") == {"alpha": 1.0}
    assert resolve_params("leaky_relu", {"alpha": 0.2}) == {"alpha": 0.2}
    assert resolve_params("relu") == {}


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("relu", {"alpha": 0.1}, r"takes no parameter alpha; allowed: none"),
        ("leaky_relu", {"beta": 1.0}, r"takes no parameter beta; allowed: alpha"),
        ("elu", {"alpha": 1.0, "gamma": 2.0}, r"takes no parameter gamma; allowed: alpha"),
        ("elu", {"alpha": 0.0}, r"alpha must be positive for elu, got 0.0"),
        ("elu", {"alpha": -1.0}, r"alpha must be positive for elu, got -1.0"),
        ("leaky_relu", {"alpha": float("nan")}, r"alpha must be finite, got nan"),
        ("elu", {"alpha": float("inf")}, r"alpha must be finite, got inf"),
    ],
)
def test_invalid_params_raise_value_error(name, params, message):
    with pytest.raises(ValueError, match=message):
        resolve_params(name, params)
    with pytest.raises(ValueError, match=message):
        activate(name, np.zeros(2), params)
    with pytest.raises(ValueError, match=message):
        derivative(name, np.zeros(2), params)


def test_unknown_name_lists_every_allowed_name():
    for call in (
        lambda: get_activation("swish"),
        lambda: activate("swish", np.zeros(2)),
        lambda: derivative("swish", np.zeros(2)),
    ):
        with pytest.raises(ValueError, match="unknown activation 'swish'") as info:
            call()
        for name in NAMES:
            assert name in str(info.value)


# --- the registry --------------------------------------------------------------------------------


def test_registry_holds_the_api_names():
    assert set(API_NAMES) <= set(ACTIVATIONS)


@pytest.mark.parametrize("name", NAMES)
def test_registry_entry_documents_formula_derivative_and_range(name):
    act = ACTIVATIONS[name]
    assert act.name == name
    assert act.formula.strip() and act.derivative_formula.strip()
    lo, hi = act.output_range
    assert lo is None or hi is None or lo < hi
    assert act.elementwise == (name != "softmax")


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_outputs_lie_within_the_declared_range(name, params):
    # A fine grid around 0 catches the minima of gelu and silu; the ends reach the saturation.
    z = np.concatenate([np.linspace(-20, 20, 40_000), [-1000.0, 1000.0]])
    if name == "softmax":
        z = z.reshape(-1, 6)
    y = activate(name, z, params)
    lo, hi = ACTIVATIONS[name].output_range
    if lo is not None:
        assert y.min() >= lo
    if hi is not None:
        assert y.max() <= hi
