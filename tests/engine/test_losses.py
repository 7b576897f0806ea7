import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.activations import activate, backward
from engine.losses import LOSSES, REDUCTIONS, compute_loss, loss_for_output

DTYPES = (np.float32, np.float64)
# (loss, input form, shape of the predictions); class indices and one-hot both for cross-entropy.
FORMS = [
    ("binary_cross_entropy", "y_pred", (5,)),
    ("binary_cross_entropy", "y_pred", (4, 3)),
    ("binary_cross_entropy", "logits", (5,)),
    ("binary_cross_entropy", "logits", (4, 3)),
    ("cross_entropy", "y_pred", "indices"),
    ("cross_entropy", "y_pred", "one_hot"),
    ("cross_entropy", "logits", "indices"),
    ("cross_entropy", "logits", "one_hot"),
    ("mean_squared_error", "y_pred", (5,)),
    ("mean_squared_error", "y_pred", (4, 3)),
]
FORM_IDS = [f"{name}-{form}-{shape}" for name, form, shape in FORMS]


def make_case(name, form, shape, rng, n=None):
    """Targets and inputs (probabilities or logits) for one loss, away from the clipping."""
    if name == "cross_entropy":
        n = n or 5
        labels = rng.integers(0, 3, size=n)
        y_true = labels if shape == "indices" else np.eye(3)[labels]
        z = rng.normal(size=(n, 3))
        return y_true, (z if form == "logits" else activate("softmax", z))
    if n is not None:
        shape = (n, *shape[1:])
    if name == "binary_cross_entropy":
        y_true = rng.integers(0, 2, size=shape).astype(np.float64)
        return y_true, (rng.normal(size=shape) if form == "logits" else rng.uniform(0.1, 0.9, size=shape))
    return rng.normal(size=shape), rng.normal(size=shape)


def loss_of(name, form, y_true, x, reduction="mean"):
    return compute_loss(name, y_true, **{form: x}, reduction=reduction)


def central_difference(f, x, h=1e-6):
    """Central-difference gradient of the scalar function f at x."""
    out = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += h
        down[idx] -= h
        out[idx] = (f(up) - f(down)) / (2 * h)
    return out


# --- gradients against central differences -----------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("name", "form", "shape"), FORMS, ids=FORM_IDS)
def test_gradient_matches_central_differences(name, form, shape, reduction):
    y_true, x = make_case(name, form, shape, np.random.default_rng(0))
    _, grad = loss_of(name, form, y_true, x, reduction)
    assert grad.shape == x.shape

    # For reduction="none" the gradient is that of the sum of the per-sample losses.
    def total(v):
        return float(np.sum(loss_of(name, form, y_true, v, reduction)[0]))

    numerical = central_difference(total, x)
    np.testing.assert_allclose(grad, numerical, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(("name", "form", "shape"), FORMS, ids=FORM_IDS)
def test_reductions_agree(name, form, shape):
    y_true, x = make_case(name, form, shape, np.random.default_rng(1))
    per_sample, g_none = loss_of(name, form, y_true, x, "none")
    total, g_sum = loss_of(name, form, y_true, x, "sum")
    mean, g_mean = loss_of(name, form, y_true, x, "mean")
    n = x.shape[0]
    assert per_sample.shape == (n,)
    assert isinstance(total, float) and isinstance(mean, float)
    assert total == pytest.approx(float(np.sum(per_sample)), rel=1e-14)
    assert mean == pytest.approx(total / n, rel=1e-14)
    np.testing.assert_allclose(g_none, g_sum, rtol=1e-15)
    np.testing.assert_allclose(g_mean, g_sum / n, rtol=1e-14)


# --- worked by hand ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_perfect_predictions_cost_exactly_zero(dtype):
    # The first extreme case: loss(ŷ = 0, y = 0) = −log(1) = 0, and likewise ŷ = 1, y = 1.
    for y in ([0.0], [1.0], [0.0, 1.0, 1.0]):
        loss, _ = compute_loss("binary_cross_entropy", np.array(y), np.array(y, dtype=dtype))
        assert loss == 0.0
    loss, _ = compute_loss("cross_entropy", np.array([1]), np.array([[0.0, 1.0]], dtype=dtype))
    assert loss == 0.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("y", "p"), [(0.0, 1.0), (1.0, 0.0)])
def test_confident_wrong_prediction_costs_minus_log_eps(dtype, y, p):
    # The second extreme case, −log(0) = ∞, is clipped to a large finite −log(eps).
    loss, grad = compute_loss("binary_cross_entropy", np.array([y]), np.array([p], dtype=dtype))
    assert math.isfinite(loss)
    assert np.all(np.isfinite(grad))
    assert loss == pytest.approx(-math.log(np.finfo(dtype).eps), rel=1e-6)
    assert loss > 15


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_with_zero_probability_on_the_true_class_is_finite(dtype):
    loss, grad = compute_loss("cross_entropy", np.array([0]), np.array([[0.0, 1.0]], dtype=dtype))
    assert loss == pytest.approx(-math.log(np.finfo(dtype).eps), rel=1e-6)
    assert np.all(np.isfinite(grad))


def test_binary_cross_entropy_by_hand():
    loss, grad = compute_loss("binary_cross_entropy", np.array([1.0]), np.array([0.9]))
    assert loss == pytest.approx(-math.log(0.9), rel=1e-14)
    # ∂/∂ŷ of −log ŷ is −1/ŷ.
    assert grad[0] == pytest.approx(-1 / 0.9, rel=1e-14)

    loss, grad = compute_loss("binary_cross_entropy", np.array([1.0, 0.0]), np.array([0.8, 0.4]))
    assert loss == pytest.approx((-math.log(0.8) - math.log(0.6)) / 2, rel=1e-14)
    # (1 − y)/(1 − ŷ) − y/ŷ, averaged over the two samples.
    np.testing.assert_allclose(grad, [-1 / 0.8 / 2, 1 / 0.6 / 2], rtol=1e-14)


def test_binary_cross_entropy_with_logits_by_hand():
    # At z = 0, ŷ = 1/2: the loss is log 2 whatever the label, the gradient ŷ − y.
    loss, grad = compute_loss(
        "binary_cross_entropy", np.array([0.0, 1.0]), logits=np.zeros(2), reduction="none"
    )
    np.testing.assert_allclose(loss, [math.log(2), math.log(2)], rtol=1e-15)
    np.testing.assert_allclose(grad, [0.5, -0.5], rtol=1e-15)
    # z = log 3 gives ŷ = 3/4.
    loss, grad = compute_loss("binary_cross_entropy", np.array([0.0]), logits=np.array([math.log(3)]))
    assert loss == pytest.approx(-math.log(0.25), rel=1e-14)
    assert grad[0] == pytest.approx(0.75, rel=1e-14)


def test_cross_entropy_by_hand():
    p = np.array([[0.2, 0.7, 0.1], [0.5, 0.25, 0.25]])
    loss, grad = compute_loss("cross_entropy", np.array([1, 0]), p, reduction="sum")
    assert loss == pytest.approx(-math.log(0.7) - math.log(0.5), rel=1e-14)
    np.testing.assert_allclose(grad, [[0, -1 / 0.7, 0], [-2, 0, 0]], rtol=1e-14)

    loss, grad = compute_loss("cross_entropy", np.array([2]), logits=np.array([[0.0, 0.0, math.log(2)]]))
    # softmax([0, 0, log 2]) = [1/4, 1/4, 1/2].
    assert loss == pytest.approx(math.log(2), rel=1e-14)
    np.testing.assert_allclose(grad, [[0.25, 0.25, -0.5]], rtol=1e-14)


@pytest.mark.parametrize("form", ["y_pred", "logits"])
def test_cross_entropy_one_hot_and_class_indices_agree(form):
    rng = np.random.default_rng(2)
    labels = np.array([0, 2, 1, 2])
    z = rng.normal(size=(4, 3))
    x = z if form == "logits" else activate("softmax", z)
    for reduction in REDUCTIONS:
        loss_i, grad_i = compute_loss("cross_entropy", labels, **{form: x}, reduction=reduction)
        loss_h, grad_h = compute_loss("cross_entropy", np.eye(3)[labels], **{form: x}, reduction=reduction)
        np.testing.assert_array_equal(loss_i, loss_h)
        np.testing.assert_array_equal(grad_i, grad_h)


def test_mean_squared_error_by_hand():
    loss, grad = compute_loss("mean_squared_error", np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.0, 2.0]))
    assert loss == pytest.approx((0.25 + 0 + 1) / 3, rel=1e-14)
    np.testing.assert_allclose(grad, [2 * 0.5 / 3, 0, 2 * -1 / 3], rtol=1e-14, atol=0)
    # With several outputs a sample's loss is the mean over its outputs.
    loss, grad = compute_loss(
        "mean_squared_error", np.array([[0.0, 0.0]]), np.array([[1.0, 3.0]]), reduction="none"
    )
    np.testing.assert_allclose(loss, [5.0], rtol=1e-15)
    np.testing.assert_allclose(grad, [[1.0, 3.0]], rtol=1e-15)


# --- logits forms ------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_logits_form_agrees_with_probability_form(reduction):
    rng = np.random.default_rng(3)
    z = rng.normal(scale=3, size=(6, 2))
    y = rng.integers(0, 2, size=(6, 2)).astype(np.float64)
    p = activate("sigmoid", z)
    loss_p, grad_p = compute_loss("binary_cross_entropy", y, p, reduction=reduction)
    loss_z, grad_z = compute_loss("binary_cross_entropy", y, logits=z, reduction=reduction)
    np.testing.assert_allclose(loss_z, loss_p, rtol=1e-10)
    # Chain rule through the sigmoid: ∂L/∂z = ∂L/∂ŷ · ŷ(1 − ŷ).
    np.testing.assert_allclose(grad_z, backward("sigmoid", z, p, grad_p), rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_softmax_logits_form_agrees_with_probability_form(reduction):
    rng = np.random.default_rng(4)
    z = rng.normal(scale=3, size=(6, 4))
    y = rng.integers(0, 4, size=6)
    p = activate("softmax", z)
    loss_p, grad_p = compute_loss("cross_entropy", y, p, reduction=reduction)
    loss_z, grad_z = compute_loss("cross_entropy", y, logits=z, reduction=reduction)
    np.testing.assert_allclose(loss_z, loss_p, rtol=1e-10)
    np.testing.assert_allclose(grad_z, backward("softmax", z, p, grad_p), rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_logits_are_stable_at_plus_minus_1000(dtype):
    y = np.array([1.0, 0.0, 1.0, 0.0])
    z = np.array([1000, -1000, -1000, 1000], dtype=dtype)
    loss, grad = compute_loss("binary_cross_entropy", y, logits=z, reduction="none")
    # Right: 0; wrong: softplus(1000) = 1000, the exact cost, not a clipped one.
    np.testing.assert_array_equal(loss, [0, 0, 1000, 1000])
    np.testing.assert_array_equal(grad, [0, 0, -1, 1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_logits_are_stable_at_plus_minus_1000(dtype):
    z = np.array([[1000, -1000], [1000, -1000], [1000, 1000]], dtype=dtype)
    loss, grad = compute_loss("cross_entropy", np.array([0, 1, 0]), logits=z, reduction="none")
    np.testing.assert_allclose(loss, [0, 2000, math.log(2)], rtol=1e-6)
    np.testing.assert_array_equal(grad, [[0, 0], [1, -1], [-0.5, 0.5]])


# --- batches: gradients of the sum are sums of gradients ---------------------------------------


@settings(max_examples=50, deadline=None)
@given(n1=st.integers(1, 4), n2=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
@pytest.mark.parametrize(("name", "form", "shape"), FORMS, ids=FORM_IDS)
def test_loss_of_a_batch_is_the_sum_over_its_parts(name, form, shape, n1, n2, seed):
    rng = np.random.default_rng(seed)
    y1, x1 = make_case(name, form, shape, rng, n=n1)
    y2, x2 = make_case(name, form, shape, rng, n=n2)
    y, x = np.concatenate([y1, y2]), np.concatenate([x1, x2])
    loss, grad = loss_of(name, form, y, x, "sum")
    loss1, grad1 = loss_of(name, form, y1, x1, "sum")
    loss2, grad2 = loss_of(name, form, y2, x2, "sum")
    assert loss == pytest.approx(loss1 + loss2, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(grad, np.concatenate([grad1, grad2]), rtol=1e-12)
    per_sample, _ = loss_of(name, form, y, x, "none")
    np.testing.assert_allclose(
        per_sample,
        np.concatenate([loss_of(name, form, y1, x1, "none")[0], loss_of(name, form, y2, x2, "none")[0]]),
        rtol=1e-12,
    )


# --- validation ----------------------------------------------------------------------------------


def bce(y, p, **kwargs):
    return compute_loss("binary_cross_entropy", np.array(y), np.array(p), **kwargs)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: bce([0, 2], [0.5, 0.5]), r"labels 0 or 1 .* got \[2"),
        (lambda: bce([0.5], [0.5]), r"labels 0 or 1 .* got \[0.5\]"),
        (
            lambda: compute_loss("binary_cross_entropy", np.array([-1.0]), logits=np.zeros(1)),
            r"labels 0 or 1 .* got \[-1.0\]",
        ),
        (lambda: bce([1], [1.5]), r"probabilities in \[0, 1\]"),
        (lambda: bce([1], [-0.1]), r"probabilities in \[0, 1\]"),
        (lambda: compute_loss("cross_entropy", np.array([0]), np.array([[1.2, -0.2]])), r"probabilities"),
        (lambda: bce([0, 1, 1], [0.5, 0.5]), r"y_true has shape \(3,\) but y_pred has shape \(2,\)"),
        (
            lambda: compute_loss("binary_cross_entropy", np.zeros(3), logits=np.zeros((3, 1))),
            r"but logits has shape \(3, 1\)",
        ),
        (
            lambda: compute_loss("mean_squared_error", np.zeros(3), np.zeros(4)),
            r"y_true has shape \(3,\) but y_pred has shape \(4,\)",
        ),
        (lambda: bce([], []), r"at least one sample"),
        (
            lambda: compute_loss("cross_entropy", np.array([0, 3]), np.full((2, 3), 1 / 3)),
            r"integers in \[0, 2\], got \[3\]",
        ),
        (
            lambda: compute_loss("cross_entropy", np.array([-1, 0]), logits=np.zeros((2, 3))),
            r"integers in \[0, 2\], got \[-1\]",
        ),
        (
            lambda: compute_loss("cross_entropy", np.array([0.5, 0]), logits=np.zeros((2, 3))),
            r"integers in \[0, 2\], got \[0.5\]",
        ),
        (
            lambda: compute_loss("cross_entropy", np.array([0, 1, 2]), logits=np.zeros((2, 3))),
            r"3 labels but the predictions have 2 rows",
        ),
        (
            lambda: compute_loss("cross_entropy", np.eye(2), logits=np.zeros((2, 3))),
            r"y_true has shape \(2, 2\) but the predictions have shape \(2, 3\)",
        ),
        (
            lambda: compute_loss("cross_entropy", np.array([[0.7, 0.7]]), logits=np.zeros((1, 2))),
            r"sum to 1",
        ),
        (lambda: compute_loss("cross_entropy", np.array([0]), logits=np.zeros(3)), r"n_classes >= 2"),
        (lambda: compute_loss("cross_entropy", np.array([0]), logits=np.zeros((1, 1))), r"n_classes >= 2"),
        (
            lambda: compute_loss("hinge", np.zeros(2), np.zeros(2)),
            r"unknown loss 'hinge'; allowed: binary_cross_entropy, cross_entropy, mean_squared_error",
        ),
        (lambda: bce([1], [0.5], reduction="max"), r"unknown reduction 'max'; allowed: mean, sum, none"),
        (
            lambda: compute_loss("binary_cross_entropy", np.ones(1), np.ones(1), logits=np.ones(1)),
            r"exactly one of y_pred and logits",
        ),
        (lambda: compute_loss("binary_cross_entropy", np.ones(1)), r"exactly one of y_pred and logits"),
        (
            lambda: compute_loss("mean_squared_error", np.ones(1), logits=np.ones(1)),
            r"'mean_squared_error' takes y_pred, not logits; "
            r"logits are for: binary_cross_entropy, cross_entropy",
        ),
    ],
)
def test_invalid_input_raises_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_registry_covers_the_api_losses():
    assert set(LOSSES) >= {"binary_cross_entropy", "cross_entropy", "mean_squared_error"}
    assert {name for name, loss in LOSSES.items() if loss.from_logits} == {
        "binary_cross_entropy",
        "cross_entropy",
    }


def test_each_output_activation_pairs_with_its_loss():
    assert loss_for_output("sigmoid") == "binary_cross_entropy"
    assert loss_for_output("softmax") == "cross_entropy"
    assert loss_for_output("identity") == loss_for_output("tanh") == "mean_squared_error"


# --- against PyTorch -----------------------------------------------------------------------------
# Expected values computed once with PyTorch 2.13.0 (CPU, float64):
#   torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor([z]), torch.tensor([y]))
#   torch.nn.functional.cross_entropy(torch.tensor([z]), torch.tensor([t]))
# and, for the gradients, .backward() on the same call with requires_grad=True inputs.


@pytest.mark.parametrize(
    ("z", "y", "expected"),
    [(40.0, 0.0, 40.0), (30.0, 0.0, 30.000000000000092), (-40.0, 1.0, 40.0), (-800.0, 1.0, 800.0)],
)
def test_binary_cross_entropy_from_logits_matches_pytorch_where_probabilities_saturate(z, y, expected):
    loss, _ = compute_loss("binary_cross_entropy", np.array([y]), logits=np.array([z]))
    assert loss == pytest.approx(expected, rel=1e-15)


def test_multi_output_binary_cross_entropy_mean_is_the_mean_over_elements_as_pytorch():
    z = np.array([[1.5, -2.0, 0.3], [0.2, 4.0, -1.0]])
    y = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    loss, grad = compute_loss("binary_cross_entropy", y, logits=z)
    assert loss == pytest.approx(0.5020411697186461, rel=1e-14)
    expected_grad = [
        [-0.030404253967726058, 0.019867153670352924, -0.07092624719805683],
        [0.09163899955207966, -0.0029977016603485915, -0.12184309643833414],
    ]
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-13)
    # The probability form agrees; "none" gives each sample's mean over its outputs.
    assert compute_loss("binary_cross_entropy", y, activate("sigmoid", z))[0] == pytest.approx(
        loss, rel=1e-12
    )
    per_sample, _ = compute_loss("binary_cross_entropy", y, logits=z, reduction="none")
    assert np.mean(per_sample) == pytest.approx(loss, rel=1e-15)


@pytest.mark.parametrize(
    ("z", "t", "expected", "expected_grad"),
    [
        ([40.0, 0.0, -40.0], 2, 80.0, [1.0, 4.248354255291589e-18, -1.0]),
        ([1e308, -1e308, 0.0], 0, 0.0, [0.0, 0.0, 0.0]),
        ([1e308, -1e308, 0.0], 2, 1e308, [1.0, 0.0, -1.0]),
        ([1e308, -1e308, 0.0], 1, math.inf, [1.0, -1.0, 0.0]),
    ],
)
def test_cross_entropy_from_logits_matches_pytorch_without_warnings(z, t, expected, expected_grad):
    # pytest runs with warnings as errors: a row spanning more than the float range must not warn.
    loss, grad = compute_loss("cross_entropy", np.array([t]), logits=np.array([z]))
    assert loss == pytest.approx(expected, rel=1e-15)
    np.testing.assert_allclose(grad, [expected_grad], rtol=1e-15, atol=0)


def test_losses_beyond_the_float_range_come_without_warnings():
    # softplus(1e308) = 1e308 for each sample: their sum overflows, their mean does not.
    y = np.array([0.0, 1.0])
    loss, _ = compute_loss("binary_cross_entropy", y, logits=np.array([1e308, -1e308]))
    assert loss == 1e308
    assert (
        compute_loss("binary_cross_entropy", y, logits=np.array([1e308, -1e308]), reduction="sum")[0]
        == math.inf
    )
    # A squared error beyond the float range is inf.
    assert compute_loss("mean_squared_error", y, np.array([1e308, -1e308]))[0] == math.inf
