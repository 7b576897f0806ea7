"""GET /v1/activations, POST /v1/activations/{name}, GET /v1/activations/{name}/curve."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.activations import ACTIVATIONS
from tests.service.conftest import Client, assert_problem


def evaluate(client: Client, name: str, **body: object) -> dict:
    response = client.post(f"/v1/activations/{name}", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def test_list_gives_every_registered_activation_with_its_facts(client: Client) -> None:
    response = client.get("/v1/activations")
    assert response.status_code == 200
    items = {item["name"]: item for item in response.json()["items"]}
    assert list(items) == list(ACTIVATIONS)
    assert items["sigmoid"]["formula"] == "1 / (1 + exp(-z))"
    assert items["sigmoid"]["output_range"] == {"min": 0.0, "max": 1.0}
    assert items["relu"]["output_range"] == {"min": 0.0, "max": None}
    assert items["leaky_relu"]["params"] == {"alpha": 0.01}
    assert items["softmax"]["elementwise"] is False
    assert all(item["derivative_formula"] for item in items.values())


def test_sigmoid_at_zero_is_one_half_with_slope_one_quarter(client: Client) -> None:
    body = evaluate(client, "sigmoid", x=[0.0, math.log(3.0)], derivative=True)
    assert body["activation"] == "sigmoid"
    assert body["shape"] == [2]
    # sigmoid(ln 3) = 1 / (1 + 1/3) = 3/4 and its slope is 3/4 · 1/4.
    assert body["y"] == pytest.approx([0.5, 0.75], abs=1e-15)
    assert body["dy"] == pytest.approx([0.25, 0.1875], abs=1e-15)


def test_relu_derivative_at_minus_one_is_zero(client: Client) -> None:
    body = evaluate(client, "relu", x=[-1.0, 2.0], derivative=True)
    assert body["y"] == [0.0, 2.0]
    assert body["dy"] == [0.0, 1.0]


def test_dy_is_absent_unless_asked_for(client: Client) -> None:
    body = evaluate(client, "tanh", x=[0.0])
    assert body["y"] == [0.0]
    assert "dy" not in body


def test_leaky_relu_takes_alpha_and_reports_the_parameters_used(client: Client) -> None:
    body = evaluate(client, "leaky_relu", x=[-2.0, 3.0], derivative=True, params={"alpha": 0.1})
    assert body["params"] == {"alpha": 0.1}
    assert body["y"] == pytest.approx([-0.2, 3.0])
    assert body["dy"] == pytest.approx([0.1, 1.0])
    assert evaluate(client, "leaky_relu", x=[-2.0])["params"] == {"alpha": 0.01}


def test_elu_at_minus_ln2_with_alpha_two(client: Client) -> None:
    # alpha·(e^z − 1) at z = −ln 2 is 2·(1/2 − 1) = −1; the slope alpha·e^z is 1.
    body = evaluate(client, "elu", x=-math.log(2.0), derivative=True, params={"alpha": 2.0})
    assert body["y"] == pytest.approx(-1.0)
    assert body["dy"] == pytest.approx(1.0)


def test_a_single_number_gives_a_single_number_and_empty_shape(client: Client) -> None:
    body = evaluate(client, "sigmoid", x=0, derivative=True)
    assert body == {"activation": "sigmoid", "params": {}, "shape": [], "y": 0.5, "dy": 0.25}


def test_nested_arrays_keep_their_shape(client: Client) -> None:
    x = np.arange(-6.0, 6.0).reshape(2, 3, 2)
    body = evaluate(client, "relu", x=x.tolist(), derivative=True)
    assert body["shape"] == [2, 3, 2]
    assert np.array_equal(body["y"], np.maximum(x, 0))
    assert np.array_equal(body["dy"], (x > 0).astype(float))


def test_softmax_works_along_the_last_axis(client: Client) -> None:
    # softmax([0, ln 3]) = [1, 3] / 4.
    body = evaluate(client, "softmax", x=[[0.0, math.log(3.0)], [5.0, 5.0]], derivative=True)
    np.testing.assert_allclose(body["y"], [[0.25, 0.75], [0.5, 0.5]], rtol=1e-15)
    np.testing.assert_allclose(body["dy"], [[0.1875, 0.1875], [0.25, 0.25]], rtol=1e-15)


def test_large_inputs_stay_finite(client: Client) -> None:
    body = evaluate(client, "sigmoid", x=[-1000.0, 1000.0], derivative=True)
    assert body["y"] == [0.0, 1.0]
    assert body["dy"] == [0.0, 0.0]


@pytest.mark.parametrize("name", [n for n, a in ACTIVATIONS.items() if a.elementwise])
def test_dy_matches_central_differences_of_y(client: Client, name: str) -> None:
    x = np.array([-1.3, -0.4, 0.7, 2.1])
    h = 1e-6
    up = evaluate(client, name, x=(x + h).tolist())["y"]
    down = evaluate(client, name, x=(x - h).tolist())["y"]
    dy = evaluate(client, name, x=x.tolist(), derivative=True)["dy"]
    numerical = (np.array(up) - np.array(down)) / (2 * h)
    np.testing.assert_allclose(dy, numerical, rtol=1e-6, atol=1e-8)


def test_large_arrays_round_trip(client: Client) -> None:
    # Big enough to run in a worker thread and to take the byte-count path for booleans.
    x = np.linspace(-5, 5, 50_000)
    body = evaluate(client, "tanh", x=x.tolist())
    np.testing.assert_allclose(body["y"], np.tanh(x), rtol=1e-15)


def test_curve_samples_evenly_from_start_to_stop(client: Client) -> None:
    response = client.get("/v1/activations/relu/curve", params={"start": -2, "stop": 2, "num": 5})
    assert response.status_code == 200
    body = response.json()
    assert body["activation"] == "relu"
    assert body["points"] == {
        "x": [-2.0, -1.0, 0.0, 1.0, 2.0],
        "y": [0.0, 0.0, 0.0, 1.0, 2.0],
        "dy": [0.0, 0.0, 0.0, 1.0, 1.0],
    }


def test_curve_defaults_to_200_points_on_minus_five_to_five(client: Client) -> None:
    points = client.get("/v1/activations/tanh/curve").json()["points"]
    assert len(points["x"]) == len(points["y"]) == len(points["dy"]) == 200
    assert points["x"][0] == -5.0 and points["x"][-1] == 5.0


def test_curve_takes_alpha(client: Client) -> None:
    body = client.get(
        "/v1/activations/leaky_relu/curve", params={"start": -1, "stop": 1, "num": 2, "alpha": 0.5}
    )
    assert body.json()["points"] == {"x": [-1.0, 1.0], "y": [-0.5, 1.0], "dy": [0.5, 1.0]}


def test_softmax_curve_is_the_sigmoid(client: Client) -> None:
    softmax = client.get("/v1/activations/softmax/curve", params={"num": 11}).json()["points"]
    sigmoid = client.get("/v1/activations/sigmoid/curve", params={"num": 11}).json()["points"]
    np.testing.assert_allclose(softmax["y"], sigmoid["y"], rtol=1e-12)
    np.testing.assert_allclose(softmax["dy"], sigmoid["dy"], rtol=1e-12)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"num": 1}, "query.num"),
        ({"num": 10_001}, "query.num"),
        ({"start": 3, "stop": 1}, "start must be less than stop"),
        ({"start": 1, "stop": 1}, "start must be less than stop"),
        ({"start": "nan"}, "query.start"),
        ({"stop": "inf"}, "query.stop"),
        ({"start": "abc"}, "query.start"),
    ],
)
def test_curve_rejects_bad_ranges(client: Client, params: dict, fragment: str) -> None:
    assert_problem(client.get("/v1/activations/relu/curve", params=params), 422, fragment)


def test_curve_rejects_alpha_for_an_activation_without_it(client: Client) -> None:
    assert_problem(
        client.get("/v1/activations/relu/curve", params={"alpha": 0.1}), 422, "takes no parameter alpha"
    )


def test_unknown_parameter_is_rejected_naming_the_allowed_ones(client: Client) -> None:
    response = client.post("/v1/activations/leaky_relu", json={"x": [1.0], "params": {"beta": 1.0}})
    assert_problem(response, 422, "beta", "allowed: alpha")


def test_elu_alpha_must_be_positive(client: Client) -> None:
    response = client.post("/v1/activations/elu", json={"x": [1.0], "params": {"alpha": 0.0}})
    assert_problem(response, 422, "alpha must be positive")


def test_softmax_of_a_single_number_is_rejected(client: Client) -> None:
    assert_problem(
        client.post("/v1/activations/softmax", json={"x": 1.0}), 422, "must be an array for softmax"
    )


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_x_alone_means_the_documented_defaults(client: Client, name: str) -> None:
    # A body with x alone skips validation; it must answer exactly as the defaults spelled out do.
    x = [[-1.5, 0.0, 2.0], [0.25, -0.75, 3.0]]
    alone = client.post(f"/v1/activations/{name}", json={"x": x})
    spelled = client.post(f"/v1/activations/{name}", json={"x": x, "derivative": False, "params": None})
    assert alone.status_code == spelled.status_code == 200
    assert alone.json() == spelled.json()
    assert "dy" not in alone.json()


def test_x_missing_or_beside_an_unknown_field_is_still_rejected(client: Client) -> None:
    assert_problem(client.post("/v1/activations/relu", json={"y": [1.0]}), 422, "body.x: Field required")
    assert_problem(client.post("/v1/activations/relu", json={}), 422, "body.x: Field required")


def test_finite_outputs_whose_sum_overflows_are_answered(client: Client) -> None:
    # Finite results are proven by a finite sum; an overflowing sum must fall back to the exact check.
    body = evaluate(client, "identity", x=[1e308, 1e308], derivative=True)
    assert body["y"] == [1e308, 1e308]
    assert body["dy"] == [1.0, 1.0]
    body = evaluate(client, "leaky_relu", x=[-1e10, 1e308], params={"alpha": 1e290})
    assert body["y"] == [-1e300, 1e308]
