"""The Python client sends and receives large arrays as .npy/.npz, against a real ``descent serve``:
the answers equal the JSON answers bit for bit, and small arrays still go as JSON."""

from __future__ import annotations

from typing import Any

import anyio
import numpy as np
import pytest

from descent_client import AsyncClient, Client, _arrays, _calls
from descent_client._compute import activation_call, forward_call, gradients_call
from tests.service.test_jobs_e2e import ServiceProcess

pytestmark = pytest.mark.e2e

LARGE = 20_000  # numbers: 160 KB of float64, over the 64 KiB threshold
MLP = {
    "type": "mlp",
    "layers": [{"units": 4, "activation": "tanh"}, {"units": 3, "activation": "softmax"}],
    "parameters": [
        {"weights": np.linspace(-1, 1, 8).reshape(2, 4), "bias": np.zeros(4)},
        {"weights": np.linspace(1, -1, 12).reshape(4, 3), "bias": np.array([0.1, 0.0, -0.1])},
    ],
}


def test_large_arrays_go_binary_and_small_ones_as_json() -> None:
    x = np.zeros(LARGE)
    assert activation_call("relu", x, False, None).headers["Content-Type"] == "application/x-npy"
    assert activation_call("relu", x[:10], False, None).headers["Content-Type"] == "application/json"
    X = np.zeros((LARGE // 2, 2))
    call = gradients_call(MLP, X, np.zeros(LARGE // 2, dtype=int), None, 0.0, True)
    assert call.headers == {"Content-Type": "application/x-npz", "Accept": "application/x-npz"}
    # The non-array fields ride in the query, JSON-encoded; the arrays are the archive's members.
    assert call.params == {
        "model.type": '"mlp"',
        "model.layers.0.units": "4",
        "model.layers.0.activation": '"tanh"',
        "model.layers.1.units": "3",
        "model.layers.1.activation": '"softmax"',
        "check": "true",
    }
    assert forward_call(MLP, X, False).headers["Content-Type"] == "application/x-npz"  # X and weights


def with_threshold(monkeypatch: pytest.MonkeyPatch, nbytes: float) -> None:
    monkeypatch.setattr(_arrays, "BINARY_THRESHOLD_BYTES", nbytes)


def test_compute_answers_are_the_same_arrays_binary_or_json(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=LARGE)
    X, y = rng.normal(size=(LARGE // 2, 2)), rng.integers(0, 3, size=LARGE // 2)
    binary = {
        "activation": client.compute.activation("elu", x, derivative=True, params={"alpha": 0.5}),
        "loss": client.compute.loss("mean_squared_error", x, np.tanh(x), reduction="none", gradient=True),
        "forward": client.compute.forward(MLP, X, return_intermediates=True),
        "gradients": client.compute.gradients(MLP, X, y),
    }
    with_threshold(monkeypatch, float("inf"))
    as_json = {
        "activation": client.compute.activation("elu", x, derivative=True, params={"alpha": 0.5}),
        "loss": client.compute.loss("mean_squared_error", x, np.tanh(x), reduction="none", gradient=True),
        "forward": client.compute.forward(MLP, X, return_intermediates=True),
        "gradients": client.compute.gradients(MLP, X, y),
    }
    assert_same(binary, as_json)
    # And against NumPy: elu(x) = x for x > 0, alpha (e^x - 1) otherwise.
    expected = np.where(x > 0, x, 0.5 * np.expm1(x))
    np.testing.assert_allclose(binary["activation"]["y"], expected, rtol=1e-15)
    np.testing.assert_allclose(binary["loss"]["loss"], (x - np.tanh(x)) ** 2, rtol=1e-12)
    assert binary["forward"]["outputs"].shape == (LARGE // 2, 3)


def assert_same(a: Any, b: Any) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict)
        for key in a.keys() & b.keys():
            assert_same(a[key], b[key])
        # The JSON answer may also carry empty objects (params {}) the archive has no member for.
        assert a.keys() <= b.keys()
    elif isinstance(a, list):
        assert len(a) == len(b)
        for p, q in zip(a, b, strict=True):
            assert_same(p, q)
    elif isinstance(a, np.ndarray):
        assert np.asarray(b, dtype=a.dtype).tobytes() == a.tobytes()
    else:
        assert a == b


MODEL = {
    "format": "descent.model/v1",
    "architecture": {"type": "logistic_regression", "layers": [{"units": 1, "activation": "sigmoid"}]},
    "n_features": 2,
    "task": "binary",
    "classes": ["cat", "dog"],
    "standardization": None,
    "dtype": "float64",
    "parameters": {"W0": [[1.5], [-0.5]], "b0": [0.25]},
}


def test_predict_on_many_rows_goes_binary_and_answers_like_json(client: Client) -> None:
    model = client.models.import_(MODEL)
    X = np.random.default_rng(2).normal(size=(LARGE // 2, 2))
    assert _calls.predict(model.id, X).headers["Content-Type"] == "application/x-npy"
    large = model.predict(X)
    small = model.predict(X[:50])  # JSON
    assert large.classes == small.classes == ["cat", "dog"]
    assert large.predictions[:50].tolist() == small.predictions.tolist()
    assert large.probabilities is not None and small.probabilities is not None
    assert large.probabilities[:50].tobytes() == small.probabilities.tobytes()
    np.testing.assert_allclose(large.probabilities, 1 / (1 + np.exp(-(X @ [1.5, -0.5] + 0.25))), rtol=1e-14)


def test_the_async_client_goes_binary_too(service: ServiceProcess) -> None:
    x = np.linspace(-5, 5, LARGE)

    async def main() -> tuple[dict[str, Any], Any]:
        async with AsyncClient(service.url) as client:
            result = await client.compute.activation("sigmoid", x)
            dataset = await client.datasets.create(np.c_[x, x], (x > 0).astype(int))
            return result, await client.datasets.data(dataset.id)

    result, (X, y) = anyio.run(main)
    np.testing.assert_allclose(result["y"], 1 / (1 + np.exp(-x)), rtol=1e-15)
    assert X.tobytes() == np.c_[x, x].tobytes() and y.tolist() == (x > 0).astype(int).tolist()
