"""POST /v1/losses/{name}: values and gradients worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.service.conftest import Client, assert_problem

EPS = float(np.finfo(np.float64).eps)


def loss(client: Client, name: str, **body: object) -> dict:
    response = client.post(f"/v1/losses/{name}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_bce_is_zero_when_the_prediction_matches_the_label(client: Client) -> None:
    # The extreme case loss(0, 0) = −log(1) = 0.
    assert loss(client, "binary_cross_entropy", y_true=[0, 1], y_pred=[0.0, 1.0])["loss"] == 0.0


def test_bce_of_a_certain_wrong_prediction_is_large_but_finite(client: Client) -> None:
    # The extreme case loss(1, 0) = −log(0) = ∞; the service clips by eps: −log(eps).
    body = loss(client, "binary_cross_entropy", y_true=[0], y_pred=[1.0])
    assert body["loss"] == pytest.approx(-math.log(EPS))


def test_bce_mean_and_gradient_by_hand(client: Client) -> None:
    body = loss(client, "binary_cross_entropy", y_true=[1, 0, 1], y_pred=[0.9, 0.2, 0.6], gradient=True)
    expected = -(math.log(0.9) + math.log(0.8) + math.log(0.6)) / 3
    assert body["loss"] == pytest.approx(expected, rel=1e-12)
    assert body["reduction"] == "mean"
    # ∂L/∂ŷ = −(y/ŷ − (1 − y)/(1 − ŷ)), divided by n for the mean.
    assert body["gradient"] == pytest.approx([-1 / 0.9 / 3, 1 / 0.8 / 3, -1 / 0.6 / 3], rel=1e-12)
    assert body["gradient_wrt"] == "y_pred"


def test_bce_reductions(client: Client) -> None:
    y_true, y_pred = [1, 0], [0.5, 0.5]
    assert loss(client, "binary_cross_entropy", y_true=y_true, y_pred=y_pred, reduction="sum")["loss"] == (
        pytest.approx(2 * math.log(2))
    )
    body = loss(client, "binary_cross_entropy", y_true=y_true, y_pred=y_pred, reduction="none", gradient=True)
    assert body["loss"] == pytest.approx([math.log(2), math.log(2)])
    assert body["gradient"] == pytest.approx([-2.0, 2.0])


def test_bce_from_logits_has_gradient_sigmoid_minus_label(client: Client) -> None:
    body = loss(client, "binary_cross_entropy", y_true=[1, 0], logits=[0.0, 0.0], gradient=True)
    assert body["loss"] == pytest.approx(math.log(2))
    # (σ(z) − y) / n
    assert body["gradient"] == pytest.approx([-0.25, 0.25])
    assert body["gradient_wrt"] == "logits"


def test_bce_from_huge_logits_stays_finite(client: Client) -> None:
    body = loss(client, "binary_cross_entropy", y_true=[0, 1], logits=[1000.0, 1000.0], reduction="none")
    assert body["loss"] == pytest.approx([1000.0, 0.0])


def test_cross_entropy_from_logits_with_class_indices(client: Client) -> None:
    # softmax([0, ln 3]) = [1/4, 3/4]; the true class 0 costs −log(1/4) = log 4.
    body = loss(client, "cross_entropy", y_true=[0], logits=[[0.0, math.log(3.0)]], gradient=True)
    assert body["loss"] == pytest.approx(math.log(4.0))
    np.testing.assert_allclose(body["gradient"], [[-0.75, 0.75]], rtol=1e-12)


def test_cross_entropy_one_hot_equals_class_indices(client: Client) -> None:
    probabilities = [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]
    indices = loss(client, "cross_entropy", y_true=[0, 2], y_pred=probabilities, gradient=True)
    one_hot = loss(
        client, "cross_entropy", y_true=[[1, 0, 0], [0, 0, 1]], y_pred=probabilities, gradient=True
    )
    assert indices == one_hot
    assert indices["loss"] == pytest.approx(-(math.log(0.7) + math.log(0.8)) / 2)


def test_mean_squared_error_by_hand(client: Client) -> None:
    y_true, y_pred = [1.5, -0.5], [1.0, 0.0]
    assert loss(client, "mean_squared_error", y_true=y_true, y_pred=y_pred, reduction="sum")["loss"] == 0.5
    body = loss(client, "mean_squared_error", y_true=y_true, y_pred=y_pred, gradient=True)
    assert body["loss"] == 0.25
    # 2(ŷ − y)/n
    assert body["gradient"] == pytest.approx([-0.5, 0.5])


def test_gradient_matches_central_differences(client: Client) -> None:
    y_true, y_pred, h = [1, 0, 1], np.array([0.3, 0.6, 0.8]), 1e-6
    grad = loss(client, "binary_cross_entropy", y_true=y_true, y_pred=y_pred.tolist(), gradient=True)[
        "gradient"
    ]
    for i in range(3):
        step = np.zeros(3)
        step[i] = h
        up = loss(client, "binary_cross_entropy", y_true=y_true, y_pred=(y_pred + step).tolist())["loss"]
        down = loss(client, "binary_cross_entropy", y_true=y_true, y_pred=(y_pred - step).tolist())["loss"]
        assert grad[i] == pytest.approx((up - down) / (2 * h), rel=1e-6)


def test_labels_outside_zero_one_are_rejected_for_bce(client: Client) -> None:
    response = client.post("/v1/losses/binary_cross_entropy", json={"y_true": [1, 2], "y_pred": [0.5, 0.5]})
    assert_problem(response, 422, "labels 0 or 1", "[2.0]")


def test_probabilities_outside_zero_one_are_rejected(client: Client) -> None:
    response = client.post("/v1/losses/binary_cross_entropy", json={"y_true": [1, 0], "y_pred": [1.5, 0.5]})
    assert_problem(response, 422, "probabilities in [0, 1]")


def test_exactly_one_of_y_pred_and_logits(client: Client) -> None:
    both = client.post(
        "/v1/losses/binary_cross_entropy", json={"y_true": [1], "y_pred": [0.5], "logits": [0.0]}
    )
    assert_problem(both, 422, "exactly one of y_pred and logits")
    neither = client.post("/v1/losses/binary_cross_entropy", json={"y_true": [1]})
    assert_problem(neither, 422, "exactly one of y_pred and logits")


def test_mean_squared_error_takes_no_logits(client: Client) -> None:
    response = client.post("/v1/losses/mean_squared_error", json={"y_true": [1.0], "logits": [0.0]})
    assert_problem(response, 422, "takes y_pred, not logits")


def test_shapes_must_match(client: Client) -> None:
    response = client.post("/v1/losses/mean_squared_error", json={"y_true": [1.0, 2.0], "y_pred": [1.0]})
    assert_problem(response, 422, "shape (2,)", "shape (1,)")


def test_unknown_reduction_lists_the_allowed_ones(client: Client) -> None:
    response = client.post(
        "/v1/losses/mean_squared_error", json={"y_true": [1.0], "y_pred": [1.0], "reduction": "max"}
    )
    assert_problem(response, 422, "body.reduction", "'mean'", "'sum'", "'none'")
