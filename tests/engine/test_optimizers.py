import io
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.optimizers import (
    OPTIMIZERS,
    Adam,
    AdamW,
    GradientDescent,
    Momentum,
    Nesterov,
    StochasticGradientDescent,
    clip_grad_norm,
    default_hyperparameters,
    make_optimizer,
)
from engine.schedules import learning_rate_at

DTYPES = (np.float32, np.float64)


# Plain, allocating reference implementations, written straight from the formulas.
def reference_gd(w, g, lr, state, hyper):
    return w - lr * g


def reference_momentum(w, g, lr, state, hyper):
    state["v"] = hyper["momentum"] * state.get("v", np.zeros_like(w)) - lr * g
    return w + state["v"]


def reference_nesterov(w, g, lr, state, hyper):
    mu = hyper["momentum"]
    state["v"] = mu * state.get("v", np.zeros_like(w)) - lr * g
    return w + (mu * state["v"] - lr * g)


def reference_adam(w, g, lr, state, hyper):
    b1, b2, eps = hyper["beta1"], hyper["beta2"], hyper["eps"]
    state["t"] = state.get("t", 0) + 1
    state["m"] = b1 * state.get("m", np.zeros_like(w)) + (1 - b1) * g
    state["v"] = b2 * state.get("v", np.zeros_like(w)) + (1 - b2) * g * g
    m_hat = state["m"] / (1 - b1 ** state["t"])
    v_hat = state["v"] / (1 - b2 ** state["t"])
    return w - lr * m_hat / (np.sqrt(v_hat) + eps)


def reference_adamw(w, g, lr, state, hyper):
    # Loshchilov and Hutter's decoupled decay, in PyTorch's order: decay first, then Adam's step.
    return reference_adam(w * (1 - lr * hyper["weight_decay"]), g, lr, state, hyper)


REFERENCES = {
    "gd": reference_gd,
    "sgd": reference_gd,
    "momentum": reference_momentum,
    "nesterov": reference_nesterov,
    "adam": reference_adam,
    "adamw": reference_adamw,
}
NON_DEFAULT = {
    "gd": {},
    "sgd": {},
    "momentum": {"momentum": 0.5},
    "nesterov": {"momentum": 0.75},
    "adam": {"beta1": 0.8, "beta2": 0.99, "eps": 1e-3},
    "adamw": {"beta1": 0.8, "beta2": 0.99, "eps": 1e-3, "weight_decay": 0.1},
}


def run_steps(optimizer, params, grads_list, learning_rates):
    for grads, lr in zip(grads_list, learning_rates, strict=True):
        optimizer.step(params, grads, lr)


def test_registry_keys_each_optimizer_by_its_name_and_states_its_rule():
    assert all(cls.name == name and cls.rule for name, cls in OPTIMIZERS.items())
    assert set(REFERENCES) == set(OPTIMIZERS)


def test_defaults_come_from_the_registry_entries():
    assert default_hyperparameters("gd") == default_hyperparameters("sgd") == {}
    assert default_hyperparameters("momentum") == default_hyperparameters("nesterov") == {"momentum": 0.9}
    assert default_hyperparameters("adam") == {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("gd", GradientDescent),
        ("sgd", StochasticGradientDescent),
        ("momentum", Momentum),
        ("nesterov", Nesterov),
        ("adam", Adam),
        ("adamw", AdamW),
    ],
)
def test_make_optimizer_builds_named_class_with_defaults(name, cls):
    optimizer = make_optimizer(name, 3, np.float64)
    assert type(optimizer) is cls
    assert optimizer.name == name
    assert optimizer.hyperparameters == default_hyperparameters(name)
    assert optimizer.t == 0


# One or two steps of each rule, worked by hand: w = [1, -2], g = [0.5, -1], lr = 0.1, mu = 0.9.
@pytest.mark.parametrize("name", ["gd", "sgd"])
def test_gradient_descent_step_by_hand(name):
    w = np.array([1.0, -2.0])
    make_optimizer(name, 2, np.float64).step(w, np.array([0.5, -1.0]), 0.1)
    np.testing.assert_allclose(w, [0.95, -1.9], rtol=1e-14)


def test_momentum_two_steps_by_hand():
    optimizer, w, g = make_optimizer("momentum", 2, np.float64), np.array([1.0, -2.0]), np.array([0.5, -1.0])
    optimizer.step(w, g, 0.1)  # v = -0.1 g = [-0.05, 0.1]
    np.testing.assert_allclose(w, [0.95, -1.9], rtol=1e-14)
    optimizer.step(w, g, 0.1)  # v = 0.9 [-0.05, 0.1] - [0.05, -0.1] = [-0.095, 0.19]
    np.testing.assert_allclose(w, [0.855, -1.71], rtol=1e-14)
    np.testing.assert_allclose(optimizer.state_dict()["velocity"], [-0.095, 0.19], rtol=1e-14)


def test_nesterov_two_steps_by_hand():
    optimizer, w, g = make_optimizer("nesterov", 2, np.float64), np.array([1.0, -2.0]), np.array([0.5, -1.0])
    optimizer.step(w, g, 0.1)  # v = [-0.05, 0.1]; w += 0.9 v - 0.1 g = [-0.095, 0.19]
    np.testing.assert_allclose(w, [0.905, -1.81], rtol=1e-14)
    optimizer.step(w, g, 0.1)  # v = [-0.095, 0.19]; w += [-0.0855 - 0.05, 0.171 + 0.1]
    np.testing.assert_allclose(w, [0.7695, -1.539], rtol=1e-14)


def test_adam_first_step_moves_each_coordinate_by_lr():
    # t = 1: m_hat = g and v_hat = g*g, so the step is lr * g / (|g| + eps).
    w = np.array([1.0, -2.0])
    make_optimizer("adam", 2, np.float64).step(w, np.array([0.5, -1.0]), 0.1)
    np.testing.assert_allclose(w, [1.0 - 0.1 / (1.0 + 2e-8), -2.0 + 0.1 / (1.0 + 1e-8)], rtol=1e-14)


def test_adam_two_steps_by_hand():
    optimizer = make_optimizer("adam", 2, np.float64, beta1=0.5, beta2=0.5, eps=1.0)
    w = np.zeros(2)
    # m = [1, -2], v = [2, 8]; m_hat = [2, -4], v_hat = [4, 16]; step = [2/3, -4/5].
    optimizer.step(w, np.array([2.0, -4.0]), 1.0)
    np.testing.assert_allclose(w, [-2 / 3, 4 / 5], rtol=1e-14)
    # m = [2.5, 1], v = [9, 12]; m_hat = [10/3, 4/3], v_hat = [12, 16]; step = [(10/3)/(2 sqrt 3 + 1), 4/15].
    optimizer.step(w, np.array([4.0, 4.0]), 1.0)
    np.testing.assert_allclose(w, [-2 / 3 - (10 / 3) / (2 * math.sqrt(3) + 1), 4 / 5 - 4 / 15], rtol=1e-14)
    state = optimizer.state_dict()
    assert state["t"] == 2
    np.testing.assert_allclose(state["m"], [2.5, 1.0], rtol=1e-14)
    np.testing.assert_allclose(state["v"], [9.0, 12.0], rtol=1e-14)


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("defaults", [True, False], ids=["default", "non_default"])
def test_matches_reference_over_random_steps(name, defaults):
    rng = np.random.default_rng(7)
    hyper = {} if defaults else NON_DEFAULT[name]
    optimizer = make_optimizer(name, 20, np.float64, **hyper)
    resolved = optimizer.hyperparameters
    w = rng.normal(size=20)
    expected, state = w.copy(), {}
    for _ in range(50):
        grads = rng.normal(size=20) * rng.uniform(0.1, 10.0)
        lr = rng.uniform(1e-3, 0.1)  # a varying rate, as under a schedule
        optimizer.step(w, grads, lr)
        expected = REFERENCES[name](expected, grads, lr, state, resolved)
    np.testing.assert_allclose(w, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", ["momentum", "nesterov"])
def test_zero_momentum_is_gradient_descent(name):
    rng = np.random.default_rng(11)
    w_gd, grads_list = rng.normal(size=16), [rng.normal(size=16) for _ in range(20)]
    w_momentum, rates = w_gd.copy(), rng.uniform(0.01, 0.5, size=20)
    run_steps(make_optimizer("gd", 16, np.float64), w_gd, grads_list, rates)
    run_steps(make_optimizer(name, 16, np.float64, momentum=0.0), w_momentum, grads_list, rates)
    assert np.array_equal(w_momentum, w_gd)


@given(scale=st.floats(1e-3, 1e3), seed=st.integers(0, 2**32 - 1))
def test_adam_is_invariant_to_gradient_scale(scale, seed):
    # Kingma and Ba: the step is invariant to rescaling the gradient, once eps is negligible.
    rng = np.random.default_rng(seed)
    grads_list = [rng.normal(size=6) for _ in range(5)]
    w, w_scaled = np.zeros(6), np.zeros(6)
    adam, adam_scaled = (make_optimizer("adam", 6, np.float64, eps=1e-300) for _ in range(2))
    for grads in grads_list:
        adam.step(w, grads, 0.1)
        adam_scaled.step(w_scaled, grads * scale, 0.1)
    np.testing.assert_allclose(w_scaled, w, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_minimises_convex_quadratic(name, dtype):
    rng = np.random.default_rng(0)
    A, b = rng.normal(size=(12, 5)), rng.normal(size=12)
    w_star = np.linalg.lstsq(A, b, rcond=None)[0]
    L = np.linalg.eigvalsh(A.T @ A).max()  # gradient Lipschitz constant of f(w) = 0.5 ||A w - b||^2
    lr, steps, schedule = {
        "gd": (1.0 / L, 400, "constant"),
        "sgd": (1.0 / L, 400, "constant"),
        "momentum": (0.5 / L, 400, "constant"),
        "nesterov": (0.5 / L, 400, "constant"),
        "adam": (0.1, 1000, "cosine"),
        "adamw": (0.1, 1000, "cosine"),
    }[name]
    A32, b32 = A.astype(dtype), b.astype(dtype)
    w, grads = np.zeros(5, dtype), np.empty(5, dtype)
    # Without decay, adamw is adam; with it, the minimum moves towards zero.
    optimizer = make_optimizer(name, 5, dtype, **({"weight_decay": 0.0} if name == "adamw" else {}))
    for epoch in range(steps):
        np.matmul(A32.T, A32 @ w - b32, out=grads)
        optimizer.step(w, grads, learning_rate_at(lr, epoch, steps, schedule))
    assert w.dtype == dtype
    tolerance = 1e-8 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(w, w_star, rtol=0, atol=tolerance)


def logistic_loss_and_gradient(params, x, y):
    """The README's logistic regression: y_hat = sigmoid(w x + b), mean binary cross-entropy."""
    w, b = params
    y_hat = 1.0 / (1.0 + np.exp(-(w * x + b)))
    loss = -np.mean(y * np.log(y_hat) + (1 - y) * np.log(1 - y_hat))
    return loss, np.array([np.mean((y_hat - y) * x), np.mean(y_hat - y)])


def test_gd_fits_seed_logistic_regression():
    # Overlapping classes (x = 0 is labelled 1, x = 1 is labelled 0), so a finite minimum exists.
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0, 0.5])
    y = np.array([0.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    params = np.zeros(2)
    optimizer = make_optimizer("gd", 2, np.float64)
    # At w = b = 0 every y_hat is 1/2: dL/dw = mean((1/2 - y) x) = -2.25 / 6, dL/db = mean(1/2 - y) = 0.
    _, grads = logistic_loss_and_gradient(params, x, y)
    optimizer.step(params, grads, 1.0)
    np.testing.assert_allclose(params, [0.375, 0.0], rtol=1e-14, atol=1e-17)
    losses = []
    for _ in range(500):
        loss, grads = logistic_loss_and_gradient(params, x, y)
        losses.append(loss)
        optimizer.step(params, grads, 1.0)
    # With lr below 1/L gradient descent never increases a convex loss (up to rounding at the minimum).
    assert np.all(np.diff(losses) <= 1e-15)
    assert losses[-1] < math.log(2) - 0.05  # better than the constant 1/2 prediction
    assert np.abs(logistic_loss_and_gradient(params, x, y)[1]).max() < 1e-8  # a stationary point


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_state_round_trip_resumes_bitwise(name, dtype):
    rng = np.random.default_rng(3)
    start = rng.normal(size=30).astype(dtype)
    grads_list = [rng.normal(size=30).astype(dtype) for _ in range(10)]
    rates = [learning_rate_at(0.05, epoch, 10, "cosine") for epoch in range(10)]
    hyper = NON_DEFAULT[name]

    straight, w_straight = make_optimizer(name, 30, dtype, **hyper), start.copy()
    run_steps(straight, w_straight, grads_list, rates)

    first, w_resumed = make_optimizer(name, 30, dtype, **hyper), start.copy()
    run_steps(first, w_resumed, grads_list[:5], rates[:5])
    buffer = io.BytesIO()  # checkpoints travel as .npz, which turns scalars into 0-d arrays
    np.savez(buffer, **first.state_dict())
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as saved:
        state = dict(saved)
    second = make_optimizer(name, 30, dtype)  # default hyperparameters, restored from the state
    second.load_state_dict(state)
    run_steps(second, w_resumed, grads_list[5:], rates[5:])

    assert np.array_equal(w_resumed, w_straight)
    assert second.t == straight.t == 10
    assert second.hyperparameters == straight.hyperparameters
    for key, value in straight.state_dict().items():
        assert np.array_equal(second.state_dict()[key], value), key


@pytest.mark.parametrize("name", ["momentum", "nesterov", "adam", "adamw"])
def test_state_dict_and_load_copy_buffers(name):
    optimizer = make_optimizer(name, 4, np.float64)
    optimizer.step(np.zeros(4), np.ones(4), 0.1)
    before = optimizer.state_dict()
    state = optimizer.state_dict()
    for value in state.values():
        if isinstance(value, np.ndarray):
            value[:] = 99.0
    assert all(np.array_equal(optimizer.state_dict()[key], value) for key, value in before.items())
    other = make_optimizer(name, 4, np.float64)
    other.load_state_dict(before)
    for value in before.values():
        if isinstance(value, np.ndarray):
            value[:] = -7.0
    assert all(np.array_equal(other.state_dict()[key], optimizer.state_dict()[key]) for key in before)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_steps_in_place_and_preserve_dtype(name, dtype):
    rng = np.random.default_rng(1)
    params = rng.normal(size=8).astype(dtype)
    original, view = params.copy(), params[:]
    optimizer = make_optimizer(name, 8, dtype)
    for _ in range(3):
        optimizer.step(params, rng.normal(size=8).astype(dtype), np.float64(0.01))
    assert params.dtype == dtype
    assert not np.array_equal(view, original)  # the caller's buffer itself was updated
    for key, value in optimizer.state_dict().items():
        if isinstance(value, np.ndarray):
            assert value.dtype == dtype, key


@pytest.mark.parametrize("lr_type", [float, np.float64])
@pytest.mark.parametrize("name", ["gd", "sgd", "momentum"])
def test_float32_updates_round_like_float32_arithmetic(name, lr_type):
    # The references do the same float32 operations in the same order, so the results agree
    # bitwise; an upcast to float64 anywhere (buffers or a NumPy learning rate) rounds differently.
    rng = np.random.default_rng(5)
    w = rng.normal(size=1000).astype(np.float32)
    expected, state = w.copy(), {}
    optimizer = make_optimizer(name, 1000, np.float32)
    for _ in range(5):
        grads, lr = rng.normal(size=1000).astype(np.float32), rng.uniform(0.01, 0.1)
        optimizer.step(w, grads, lr_type(lr))
        expected = REFERENCES[name](expected, grads, lr, state, optimizer.hyperparameters)
    assert expected.dtype == np.float32
    assert np.array_equal(w, expected)


@pytest.mark.parametrize(
    ("args", "hyper", "message"),
    [
        (("rmsprop", 3, np.float64), {}, r"'rmsprop'.*gd, sgd, momentum, nesterov, adam"),
        (("adam", 3, np.float64), {"beta3": 0.5}, r"'beta3'.*beta1, beta2, eps"),
        (("gd", 3, np.float64), {"momentum": 0.9}, r"'momentum'.*allowed: none"),
        (("momentum", 3, np.float64), {"momentum": 1.0}, r"momentum must be in \[0, 1\), got 1\.0"),
        (("nesterov", 3, np.float64), {"momentum": -0.1}, r"momentum must be in \[0, 1\), got -0\.1"),
        (("momentum", 3, np.float64), {"momentum": math.nan}, r"momentum must be a finite number, got nan"),
        (("adam", 3, np.float64), {"beta1": 1.0}, r"beta1 must be in \[0, 1\), got 1\.0"),
        (("adam", 3, np.float64), {"beta2": -0.5}, r"beta2 must be in \[0, 1\), got -0\.5"),
        (("adam", 3, np.float64), {"eps": 0.0}, r"eps must be in \(0, 1\], got 0\.0"),
        (("adam", 3, np.float64), {"eps": math.inf}, r"eps must be a finite number, got inf"),
        (("adam", 3, np.float64), {"beta1": True}, r"beta1 must be a finite number, got True"),
        (("adam", 3, np.float64), {"eps": "1e-8"}, r"eps must be a finite number, got '1e-8'"),
        (("adamw", 3, np.float64), {"weight_decay": -0.1}, r"weight_decay must be non-negative, got -0\.1"),
        (("adam", 3, np.float64), {"weight_decay": 0.1}, r"'weight_decay'.*allowed: beta1, beta2, eps$"),
        (("gd", 0, np.float64), {}, r"n_params must be an integer >= 1, got 0"),
        (("gd", 2.5, np.float64), {}, r"n_params must be an integer >= 1, got 2\.5"),
        (("gd", 3, np.int32), {}, r"dtype must be float32 or float64, got <class 'numpy\.int32'>"),
        (("gd", 3, "float16"), {}, r"dtype must be float32 or float64, got 'float16'"),
        (("gd", 3, None), {}, r"dtype must be float32 or float64, got None"),
    ],
)
def test_make_optimizer_rejects_bad_input(args, hyper, message):
    with pytest.raises(ValueError, match=message):
        make_optimizer(*args, **hyper)


@pytest.mark.parametrize(
    ("params", "grads", "lr", "message"),
    [
        (np.zeros(3), np.zeros(4), 0.1, r"shape \(3,\).*grads \(4,\) float64"),
        (np.zeros(3), np.zeros(1), 0.1, r"grads \(1,\) float64"),
        (np.zeros((3, 1)), np.zeros(3), 0.1, r"params \(3, 1\)"),
        (np.zeros(3, np.float32), np.zeros(3), 0.1, r"params \(3,\) float32"),
        (np.zeros(3), np.zeros(3), -0.1, r"learning_rate must be finite and >= 0, got -0\.1"),
        (np.zeros(3), np.zeros(3), math.nan, r"learning_rate must be finite and >= 0, got nan"),
        (np.zeros(3), np.zeros(3), math.inf, r"learning_rate must be finite and >= 0, got inf"),
    ],
)
def test_step_rejects_bad_input(params, grads, lr, message):
    optimizer = make_optimizer("adam", 3, np.float64)
    with pytest.raises(ValueError, match=message):
        optimizer.step(params, grads, lr)
    assert optimizer.t == 0


def valid_adam_state():
    optimizer = make_optimizer("adam", 3, np.float64)
    optimizer.step(np.zeros(3), np.ones(3), 0.1)
    return optimizer.state_dict()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"m": None}, r"missing \['m'\]"),
        ({"velocity": np.zeros(3)}, r"unknown \['velocity'\]"),
        ({"v": np.zeros(4)}, r"'v' must be an array of shape \(3,\) float64, got \(4,\) float64"),
        ({"m": np.zeros(3, np.float32)}, r"'m' must be .* got \(3,\) float32"),
        ({"m": [0.0, 0.0, 0.0]}, r"'m' must be an array .* got \[0\.0, 0\.0, 0\.0\]"),
        ({"t": -1}, r"t must be an integer >= 0, got -1"),
        ({"t": 1.5}, r"t must be an integer >= 0, got 1\.5"),
        ({"beta2": 1.5}, r"beta2 must be in \[0, 1\), got 1\.5"),
    ],
)
def test_load_state_dict_rejects_bad_state_and_changes_nothing(change, message):
    state = valid_adam_state()
    for key, value in change.items():
        if value is None:
            del state[key]
        else:
            state[key] = value
    optimizer = make_optimizer("adam", 3, np.float64)
    with pytest.raises(ValueError, match=message):
        optimizer.load_state_dict(state)
    assert optimizer.t == 0
    assert not optimizer.state_dict()["m"].any()


# --- against PyTorch -----------------------------------------------------------------------------
# Three steps at learning rate 0.1 on f(w) = ½ Σ c·w² with c = [1, 3, 0.5] for the weights
# w = [1, -2, 0.5] and c = 2 for a bias b = 0.3, computed once with PyTorch 2.13.0 (CPU, float64):
# torch.optim.SGD(lr=0.1, momentum=0.9[, nesterov=True]), torch.optim.Adam(lr=0.1), and
# torch.optim.AdamW(lr=0.1, weight_decay=0.5) with the bias in a parameter group of weight_decay 0.
# Sutskever's momentum and PyTorch's take the same steps while the learning rate is constant.
TORCH_STEPS = {
    "momentum": ({}, [0.486, 0.5560000000000003, 0.36568749999999994, 0.01859999999999998]),
    "nesterov": ({}, [0.32732100000000003, 0.6963460000000001, 0.3157313125, -0.03250560000000002]),
    "adam": ({}, [0.701586274504415, -1.7006233917912488, 0.2048712620977537, 0.01328897133472444]),
    "adamw": (
        {"weight_decay": 0.5},
        [0.574973932253246, -1.4310252434179958, 0.15050264327454915, 0.01328897133472444],
    ),
}


@pytest.mark.parametrize("name", sorted(TORCH_STEPS))
def test_three_steps_match_pytorch(name):
    hyper, expected = TORCH_STEPS[name]
    w, c = np.array([1.0, -2.0, 0.5, 0.3]), np.array([1.0, 3.0, 0.5, 2.0])
    optimizer = make_optimizer(name, 4, np.float64, **hyper)
    optimizer.decay_only(np.array([1.0, 1.0, 1.0, 0.0]))  # the last entry is the bias
    for _ in range(3):
        optimizer.step(w, c * w, 0.1)
    np.testing.assert_allclose(w, expected, rtol=1e-14)


def test_adamw_without_a_mask_decays_every_parameter():
    w = np.array([2.0])
    make_optimizer("adamw", 1, np.float64, weight_decay=0.5).step(w, np.array([0.0]), 0.1)
    # A zero gradient leaves Adam's step at zero: only the decay w·(1 − 0.1·0.5) remains.
    assert w[0] == 2.0 * (1 - 0.05)


def test_clip_grad_norm_matches_pytorch():
    # torch.nn.utils.clip_grad_norm_ on a gradient [3, 4] with max_norm 1 returns 5 and leaves
    # [0.599999880000024, 0.799999840000032]: the factor is 1 / (5 + 1e-6).
    g = np.array([3.0, 4.0])
    assert clip_grad_norm(g, 1.0) == 5.0
    np.testing.assert_allclose(g, [0.599999880000024, 0.799999840000032], rtol=1e-15)
    small = np.array([0.3, 0.4])
    clip_grad_norm(small, 1.0)
    np.testing.assert_array_equal(small, [0.3, 0.4])


def test_clip_grad_norm_of_a_gradient_whose_squares_overflow():
    g = np.array([3e200, 4e200])
    assert clip_grad_norm(g, 1.0) == pytest.approx(5e200, rel=1e-15)
    np.testing.assert_allclose(g, [0.6, 0.8], rtol=1e-12)
