"""POST /v1/forward and POST /v1/gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.service.conftest import Client, assert_problem

X = [[1.0, 2.0], [0.0, -1.0]]
LOGISTIC = {"type": "logistic_regression", "weights": [0.5, -0.25], "bias": 0.1}
SOFTMAX = {
    "type": "softmax_regression",
    "weights": [[1.0, -1.0, 0.0], [0.5, 0.0, -0.5]],
    "bias": [0.0, 0.1, 0.0],
}
MLP = {
    "type": "mlp",
    "layers": [{"units": 2, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
    "parameters": [
        {"weights": [[1.0, -1.0], [0.5, 0.5]], "bias": [0.0, 0.1]},
        {"weights": [[1.0], [-2.0]], "bias": [0.3]},
    ],
}


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def post(client: Client, path: str, body: dict) -> dict:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_forward_logistic_regression_by_hand(client: Client) -> None:
    body = post(client, "/v1/forward", {"model": LOGISTIC, "X": X, "return_intermediates": True})
    # z = X·w + b = [0.5 − 0.5 + 0.1, 0 + 0.25 + 0.1]
    np.testing.assert_allclose(body["layers"][0]["z"], [[0.1], [0.35]], rtol=1e-15)
    assert body["outputs"] == pytest.approx([1 / (1 + math.exp(-0.1)), 1 / (1 + math.exp(-0.35))], rel=1e-15)
    assert body["layers"][0]["a"] == [[o] for o in body["outputs"]]


def test_forward_linear_regression_by_hand(client: Client) -> None:
    model = {"type": "linear_regression", "weights": [2.0, -1.0], "bias": 0.5}
    body = post(client, "/v1/forward", {"model": model, "X": X})
    assert body == {"outputs": [0.5, 1.5]}


def test_forward_softmax_regression_rows_sum_to_one(client: Client) -> None:
    body = post(client, "/v1/forward", {"model": SOFTMAX, "X": X, "return_intermediates": True})
    z = np.array(X) @ np.array(SOFTMAX["weights"]) + np.array(SOFTMAX["bias"])
    np.testing.assert_allclose(body["layers"][0]["z"], z, rtol=1e-15)
    outputs = np.array(body["outputs"])
    assert outputs.shape == (2, 3)
    np.testing.assert_allclose(outputs.sum(axis=1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(outputs, np.exp(z) / np.exp(z).sum(axis=1, keepdims=True), rtol=1e-12)


def test_forward_mlp_returns_every_layer(client: Client) -> None:
    body = post(client, "/v1/forward", {"model": MLP, "X": X, "return_intermediates": True})
    W1, b1 = np.array(MLP["parameters"][0]["weights"]), np.array(MLP["parameters"][0]["bias"])
    W2, b2 = np.array(MLP["parameters"][1]["weights"]), np.array(MLP["parameters"][1]["bias"])
    z1 = np.array(X) @ W1 + b1
    a1 = np.tanh(z1)
    z2 = a1 @ W2 + b2
    assert [set(layer) for layer in body["layers"]] == [{"z", "a"}, {"z", "a"}]
    np.testing.assert_allclose(body["layers"][0]["z"], z1, rtol=1e-15)
    np.testing.assert_allclose(body["layers"][0]["a"], a1, rtol=1e-15)
    np.testing.assert_allclose(body["layers"][1]["z"], z2, rtol=1e-15)
    np.testing.assert_allclose(body["outputs"], sigmoid(z2), rtol=1e-15)


def test_gradients_of_logistic_regression_are_the_seeds_formulas(client: Client) -> None:
    body = post(client, "/v1/gradients", {"model": LOGISTIC, "X": X, "y": [1, 0]})
    Xa, y = np.array(X), np.array([1.0, 0.0])
    y_hat = sigmoid(Xa @ np.array(LOGISTIC["weights"]) + LOGISTIC["bias"])
    # ∂L/∂w = mean((ŷ − y)·x), ∂L/∂b = mean(ŷ − y)
    np.testing.assert_allclose(
        body["gradients"]["weights"], ((y_hat - y)[:, None] * Xa).mean(axis=0), rtol=1e-12
    )
    assert body["gradients"]["bias"] == pytest.approx(float(np.mean(y_hat - y)), rel=1e-12)
    expected_loss = -np.mean(y * np.log(y_hat) + (1 - y) * np.log(1 - y_hat))
    assert body["loss"] == pytest.approx(expected_loss, rel=1e-12)
    np.testing.assert_allclose(body["predictions"], y_hat, rtol=1e-15)
    assert "check" not in body


@pytest.mark.parametrize(
    ("model", "y"),
    [(LOGISTIC, [1, 0]), (SOFTMAX, [0, 2]), (MLP, [1, 0])],
    ids=["logistic", "softmax", "mlp"],
)
def test_gradient_check_passes(client: Client, model: dict, y: list) -> None:
    check = post(client, "/v1/gradients", {"model": model, "X": X, "y": y, "check": True})["check"]
    assert check["passed"] is True
    assert check["max_rel_error"] < 1e-6
    assert check["max_abs_error"] < 1e-8


def test_gradients_match_central_differences_of_the_returned_loss(client: Client) -> None:
    """Finite differences taken through the API itself, independent of the engine's gradcheck."""
    model = {"type": "linear_regression", "weights": [0.3, -0.7], "bias": 0.2}
    Xs, y, h = [[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]], [1.0, 0.0, 2.0], 1e-6
    grads = post(client, "/v1/gradients", {"model": model, "X": Xs, "y": y})["gradients"]

    def loss_at(weights: list[float], bias: float) -> float:
        shifted = {**model, "weights": weights, "bias": bias}
        return post(client, "/v1/gradients", {"model": shifted, "X": Xs, "y": y})["loss"]

    for j in range(2):
        up = [w + h * (i == j) for i, w in enumerate(model["weights"])]
        down = [w - h * (i == j) for i, w in enumerate(model["weights"])]
        numerical = (loss_at(up, model["bias"]) - loss_at(down, model["bias"])) / (2 * h)
        assert grads["weights"][j] == pytest.approx(numerical, rel=1e-6)
    numerical_b = (loss_at(model["weights"], 0.2 + h) - loss_at(model["weights"], 0.2 - h)) / (2 * h)
    assert grads["bias"] == pytest.approx(numerical_b, rel=1e-6)


def test_l2_adds_half_l2_squared_norm_and_l2_times_weights(client: Client) -> None:
    plain = post(client, "/v1/gradients", {"model": LOGISTIC, "X": X, "y": [1, 0]})
    l2 = post(client, "/v1/gradients", {"model": LOGISTIC, "X": X, "y": [1, 0], "l2": 0.1})
    w = np.array(LOGISTIC["weights"])
    assert l2["loss"] == pytest.approx(plain["loss"] + 0.05 * float(w @ w), rel=1e-12)
    np.testing.assert_allclose(l2["gradients"]["weights"], np.array(plain["gradients"]["weights"]) + 0.1 * w)
    assert l2["gradients"]["bias"] == pytest.approx(plain["gradients"]["bias"])


def test_softmax_gradients_have_the_parameters_shapes(client: Client) -> None:
    body = post(client, "/v1/gradients", {"model": SOFTMAX, "X": X, "y": [0, 2]})
    assert np.shape(body["gradients"]["weights"]) == (2, 3)
    assert np.shape(body["gradients"]["bias"]) == (3,)
    one_hot = post(client, "/v1/gradients", {"model": SOFTMAX, "X": X, "y": [[1, 0, 0], [0, 0, 1]]})
    assert one_hot == body
    # Softmax + cross-entropy: ∂L/∂b = mean(ŷ − y) over the samples.
    y_hat = np.array(body["predictions"])
    np.testing.assert_allclose(
        body["gradients"]["bias"], (y_hat - np.eye(3)[[0, 2]]).mean(axis=0), atol=1e-15
    )


def test_mlp_gradients_mirror_the_parameters(client: Client) -> None:
    body = post(client, "/v1/gradients", {"model": MLP, "X": X, "y": [1, 0]})
    shapes = [(np.shape(p["weights"]), np.shape(p["bias"])) for p in body["gradients"]["parameters"]]
    assert shapes == [((2, 2), (2,)), ((2, 1), (1,))]
    assert np.shape(body["predictions"]) == (2, 1)


def test_loss_override(client: Client) -> None:
    body = post(
        client, "/v1/gradients", {"model": LOGISTIC, "X": X, "y": [1, 0], "loss": "mean_squared_error"}
    )
    y_hat = np.array(body["predictions"])
    assert body["loss"] == pytest.approx(float(np.mean((y_hat - np.array([1.0, 0.0])) ** 2)), rel=1e-12)


def test_logistic_regression_on_10000_by_20(client: Client) -> None:
    rng = np.random.default_rng(0)
    Xb = rng.normal(size=(10_000, 20))
    w = rng.normal(size=20)
    y = (rng.random(10_000) < sigmoid(Xb @ w)).astype(float)
    model = {"type": "logistic_regression", "weights": w.tolist(), "bias": -0.5}
    body = post(client, "/v1/gradients", {"model": model, "X": Xb.tolist(), "y": y.tolist()})
    y_hat = sigmoid(Xb @ w - 0.5)
    np.testing.assert_allclose(
        body["gradients"]["weights"], ((y_hat - y)[:, None] * Xb).mean(axis=0), rtol=1e-9
    )
    assert len(body["predictions"]) == 10_000


# ---- shape errors name both sides ----------------------------------------------------------------


def test_weights_must_match_the_columns_of_X(client: Client) -> None:
    model = {**LOGISTIC, "weights": [0.5, -0.25, 1.0]}
    body = assert_problem(
        client.post("/v1/forward", json={"model": model, "X": X}),
        422,
        "model.weights has 3 entries but X has 2 columns",
    )
    assert body["errors"] == [
        {"loc": ["body", "model", "weights"], "msg": "has 3 entries but X has 2 columns"}
    ]


def test_X_must_be_two_dimensional(client: Client) -> None:
    response = client.post("/v1/forward", json={"model": LOGISTIC, "X": [1.0, 2.0]})
    assert_problem(response, 422, "X must have 2 dimension(s), got 1")


def test_y_must_have_one_row_per_sample(client: Client) -> None:
    response = client.post("/v1/gradients", json={"model": LOGISTIC, "X": X, "y": [1, 0, 1]})
    assert_problem(response, 422, "y has 3 rows but X has 2")


def test_labels_must_be_binary_for_logistic_regression(client: Client) -> None:
    response = client.post("/v1/gradients", json={"model": LOGISTIC, "X": X, "y": [1, 3]})
    assert_problem(response, 422, "0 or 1")


def test_softmax_bias_must_have_one_entry_per_class(client: Client) -> None:
    model = {**SOFTMAX, "bias": [0.0, 0.0]}
    response = client.post("/v1/forward", json={"model": model, "X": X})
    assert_problem(response, 422, "model.bias has 2 entries but model.weights has 3 columns")


def test_mlp_layer_shapes_are_checked_against_the_previous_layer(client: Client) -> None:
    parameters = [MLP["parameters"][0], {"weights": [[1.0], [2.0], [3.0]], "bias": [0.0]}]
    response = client.post("/v1/forward", json={"model": {**MLP, "parameters": parameters}, "X": X})
    assert_problem(response, 422, "model.parameters[1].weights has shape [3, 1] but must be [2, 1]")


def test_mlp_needs_one_parameter_entry_per_layer(client: Client) -> None:
    response = client.post(
        "/v1/forward", json={"model": {**MLP, "parameters": MLP["parameters"][:1]}, "X": X}
    )
    assert_problem(response, 422, "model.parameters has 1 entries but model.layers has 2")


def test_softmax_only_as_the_last_activation(client: Client) -> None:
    layers = [{"units": 2, "activation": "softmax"}, {"units": 1, "activation": "sigmoid"}]
    response = client.post("/v1/forward", json={"model": {**MLP, "layers": layers}, "X": X})
    assert_problem(response, 422, "softmax is only allowed as the last layer")


def test_unknown_model_type_lists_the_allowed_ones(client: Client) -> None:
    response = client.post(
        "/v1/forward", json={"model": {"type": "svm", "weights": [1.0], "bias": 0}, "X": X}
    )
    assert_problem(response, 422, "body.model", "'logistic_regression'", "'mlp'")


def test_gradient_check_refuses_too_much_work(client: Client) -> None:
    layers = [{"units": 100, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]
    parameters = [
        {"weights": np.zeros((2, 100)).tolist(), "bias": [0.0] * 100},
        {"weights": [[0.0]] * 100, "bias": [0]},
    ]
    model = {"type": "mlp", "layers": layers, "parameters": parameters}
    Xb = np.zeros((2000, 2)).tolist()
    response = client.post("/v1/gradients", json={"model": model, "X": Xb, "y": [0] * 2000, "check": True})
    assert_problem(response, 422, "401 parameters on 2000 samples")


# ---- losses from logits, multi-output reductions, layer parameters ---------------------------------
# PyTorch values computed once with PyTorch 2.13.0 (CPU, float64): binary_cross_entropy_with_logits and
# cross_entropy of the logits, reduction "mean".


@pytest.mark.parametrize(("w", "y", "expected"), [(40.0, 0, 40.0), (30.0, 0, 30.000000000000092)])
def test_gradients_take_the_logistic_loss_from_the_logit(
    client: Client, w: float, y: int, expected: float
) -> None:
    model = {"type": "logistic_regression", "weights": [w], "bias": 0}
    body = post(client, "/v1/gradients", {"model": model, "X": [[1]], "y": [y]})
    assert body["loss"] == pytest.approx(expected, rel=1e-15)
    assert body["gradients"]["weights"] == [pytest.approx(1.0, rel=1e-15)]


def test_gradients_take_the_softmax_loss_from_the_logits(client: Client) -> None:
    model = {"type": "softmax_regression", "weights": [[40.0, 0.0, -40.0]], "bias": [0, 0, 0]}
    body = post(client, "/v1/gradients", {"model": model, "X": [[1]], "y": [2]})
    assert body["loss"] == 80.0


def test_multi_output_binary_cross_entropy_mean_is_over_elements(client: Client) -> None:
    logits = [[1.5, -2.0, 0.3], [0.2, 4.0, -1.0]]
    y_true = [[1, 0, 1], [0, 1, 1]]
    body = post(client, "/v1/losses/binary_cross_entropy", {"y_true": y_true, "logits": logits})
    assert body["loss"] == pytest.approx(0.5020411697186461, rel=1e-14)
    # The same through an MLP whose last layer is three sigmoid units on identity hidden units.
    model = {
        "type": "mlp",
        "layers": [{"units": 3, "activation": "identity"}, {"units": 3, "activation": "sigmoid"}],
        "parameters": [
            {"weights": np.eye(3).tolist(), "bias": [0, 0, 0]},
            {"weights": np.eye(3).tolist(), "bias": [0, 0, 0]},
        ],
    }
    grads = post(client, "/v1/gradients", {"model": model, "X": logits, "y": y_true})
    assert grads["loss"] == pytest.approx(0.5020411697186461, rel=1e-14)


def test_layer_parameters_change_the_activation(client: Client) -> None:
    def layers(params: dict | None) -> list[dict]:
        first = {"units": 2, "activation": "leaky_relu", **({"params": params} if params else {})}
        return [first, {"units": 1, "activation": "identity"}]

    x = [[-1.0, 2.0]]
    parameters = [
        {"weights": [[1.0, 0.0], [0.0, 1.0]], "bias": [0, 0]},
        {"weights": [[1.0], [1.0]], "bias": [0]},
    ]
    default = post(
        client, "/v1/forward", {"model": {**MLP, "layers": layers(None), "parameters": parameters}, "X": x}
    )
    tuned = post(
        client,
        "/v1/forward",
        {"model": {**MLP, "layers": layers({"alpha": 0.5}), "parameters": parameters}, "X": x},
    )
    # leaky_relu(−1) + leaky_relu(2) = −alpha + 2.
    assert default["outputs"] == [[pytest.approx(2 - 0.01, rel=1e-15)]]
    assert tuned["outputs"] == [[pytest.approx(2 - 0.5, rel=1e-15)]]
    check = post(
        client,
        "/v1/gradients",
        {
            "model": {**MLP, "layers": layers({"alpha": 0.5}), "parameters": parameters},
            "X": x,
            "y": [1.0],
            "check": True,
        },
    )
    assert check["check"]["passed"] is True
    # By hand: z = [−1, 2], a = [−0.5, 2], ŷ = 1.5, ∂L/∂ŷ = 2(1.5 − 1) = 1; ∂L/∂z = [0.5·1, 1];
    # ∂L/∂W0 = xᵀ ∂L/∂z = [[−0.5, −1], [1, 2]], ∂L/∂W1 = aᵀ = [[−0.5], [2]].
    assert check["loss"] == pytest.approx(0.25, rel=1e-15)
    assert check["gradients"]["parameters"][0]["weights"] == [[-0.5, -1.0], [1.0, 2.0]]
    assert check["gradients"]["parameters"][1]["weights"] == [[-0.5], [2.0]]


def test_unknown_layer_parameter_is_422_naming_the_layer(client: Client) -> None:
    layers = [
        {"units": 2, "activation": "tanh", "params": {"alpha": 0.1}},
        {"units": 1, "activation": "sigmoid"},
    ]
    response = client.post("/v1/forward", json={"model": {**MLP, "layers": layers}, "X": X})
    body = assert_problem(response, 422, "takes no parameter alpha")
    assert body["errors"][0]["loc"] == ["body", "model", "layers", 0, "params"]
