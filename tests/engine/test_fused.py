import numpy as np
import pytest

from engine.fused import LogisticEpochs, sum_log, true_label_nll
from engine.models import Parameters, accuracy, build_architecture, loss_and_gradient, targets

LOGISTIC = build_architecture("logistic_regression", 3)


def _data(n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(dtype)
    y = rng.random(n) < 0.4
    return X, y, targets(LOGISTIC, y.astype(np.int64), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [7, 5000])  # below and above the size where the log sum pairs terms
@pytest.mark.parametrize("scale", [0.0, 0.5, 40.0])  # a tie at ½; ordinary; confident mistakes
@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_fused_epoch_gives_the_model_path_loss_gradient_and_accuracy(dtype, n, scale, l2):
    X, y, Y = _data(n, dtype)
    flat = (np.random.default_rng(1).normal(size=LOGISTIC.n_parameters) * scale).astype(dtype)
    params = Parameters(LOGISTIC, flat)
    loss, grads, output = loss_and_gradient(LOGISTIC, params, X, Y, l2)
    fused_grads = Parameters(LOGISTIC, np.zeros_like(flat))
    fused_loss, correct = LogisticEpochs(X, Y, y).loss_and_gradient(params, fused_grads, l2)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert fused_loss == pytest.approx(loss, rel=rtol)
    np.testing.assert_allclose(fused_grads.flat, grads.flat, rtol=rtol, atol=rtol * 1e-3)
    assert correct == round(accuracy(LOGISTIC, output, y) * n)
    assert fused_grads.flat.dtype == dtype
    if scale == 0.0:  # every probability is exactly ½, which predicts class 1
        assert correct == np.count_nonzero(y)


def test_confident_mistakes_cost_their_logit_not_a_clipped_log():
    X = np.array([[40.0, 0, 0], [0, 0, 0]])
    Y = np.array([[0.0], [1.0]])
    params = Parameters(LOGISTIC, np.array([1.0, 0, 0, 0]))
    grads = Parameters(LOGISTIC, np.zeros(4))
    loss, correct = LogisticEpochs(X, Y, Y[:, 0] == 1).loss_and_gradient(params, grads)
    # softplus(40) = 40 + log1p(e^-40) and −log σ(0) = log 2, averaged over the two samples.
    assert loss == pytest.approx((40 + np.log1p(np.exp(-40)) + np.log(2)) / 2, rel=1e-15)
    assert correct == 1


def test_without_labels_the_count_is_zero():
    X, _, Y = _data(20, np.float64)
    params = Parameters(LOGISTIC, np.ones(4))
    grads = Parameters(LOGISTIC, np.zeros(4))
    assert LogisticEpochs(X, Y, None).loss_and_gradient(params, grads)[1] == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 1023, 1025, 4097])
def test_sum_log_is_the_sum_of_the_logs(dtype, n):
    q = np.random.default_rng(n).uniform(2.0**-8, 1, n).astype(dtype)
    expected = float(np.sum(np.log(q.astype(np.float64))))
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert sum_log(q.copy()) == pytest.approx(expected, rel=rtol)


def test_true_label_nll_takes_small_probabilities_from_the_logits():
    z = np.array([-50.0, 3.0, 0.0])
    y = np.array([1.0, 1.0, 0.0])
    q = 1 / (1 + np.exp(-z * (2 * y - 1)))
    calls = []

    def logits_at(idx):
        calls.append(idx.tolist())
        return z[idx]

    expected = 50 + np.log1p(np.exp(-50)) + np.log1p(np.exp(-3)) + np.log(2)
    assert true_label_nll(q, logits_at, y) == pytest.approx(expected, rel=1e-15)
    assert calls == [[0]]
