"""The /v1/models resource over HTTP: import, inspect, predict, export (bit-exact round trips), delete."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from engine.datasets import make_dataset
from engine.models import build_architecture, from_arrays
from engine.models import predict as engine_predict
from engine.training import FitConfig, fit
from service.app import create_app
from service.runners.artifacts import model_payload
from service.store import create_model
from tests.service.conftest import Client, assert_bad_cursor, assert_problem, make_settings

NPZ_TYPE = {"content-type": "application/x-npz"}
FORMAT = "descent.model/v1"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    running = Client(create_app(make_settings(tmp_path_factory.mktemp("models"))))
    yield running
    running.close()


def document(
    layers: list[tuple[int, str]],
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    *,
    kind: str = "mlp",
    task: str,
    classes: list[Any] | None = None,
    standardization: dict[str, list[float]] | None = None,
    dtype: str = "float64",
    **extra: Any,
) -> dict[str, Any]:
    """A descent.model/v1 document; parameter values written exactly (float32 widened to float64)."""
    parameters: dict[str, Any] = {}
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        parameters[f"W{i}"] = np.asarray(w, dtype=np.float64).tolist()
        parameters[f"b{i}"] = np.asarray(b, dtype=np.float64).tolist()
    return {
        "format": FORMAT,
        "architecture": {"type": kind, "layers": [{"units": u, "activation": a} for u, a in layers]},
        "n_features": int(np.shape(weights[0])[0]),
        "task": task,
        "classes": classes,
        "standardization": standardization,
        "dtype": dtype,
        "parameters": parameters,
        **extra,
    }


def logistic(**overrides: Any) -> dict[str, Any]:
    doc = document(
        [(1, "sigmoid")],
        [np.array([[1.5], [-0.5]])],
        [np.array([0.25])],
        kind="logistic_regression",
        task="binary",
        classes=["cat", "dog"],
        standardization={"mean": [0.5, 10.0], "scale": [2.0, 4.0]},
    )
    return {**doc, **overrides}


def imported(client: Client, doc: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/models", json=doc)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/v1/models/{body['id']}"
    return body


def engine_model(doc: dict[str, Any]) -> tuple[Any, Any]:
    """The engine's architecture and parameters for a document, built independently of the service."""
    layers = doc["architecture"]["layers"]
    units = [layer["units"] for layer in layers]
    acts = [layer["activation"] for layer in layers]
    kind = doc["architecture"]["type"]
    if kind == "mlp":
        arch = build_architecture(
            "mlp",
            doc["n_features"],
            units[-1],
            hidden_layers=units[:-1],
            activation=acts[:-1],
            output_activation=acts[-1],
        )
    else:
        arch = build_architecture(kind, doc["n_features"], units[-1])
    dtype = np.dtype(doc["dtype"])
    n = len(layers)
    params = from_arrays(
        arch,
        [np.array(doc["parameters"][f"W{i}"]) for i in range(n)],
        [np.array(doc["parameters"][f"b{i}"]) for i in range(n)],
        dtype,
    )
    return arch, params


# ---- import, get, list, delete --------------------------------------------------------------------


def test_import_stores_the_model_and_describes_it(client: Client) -> None:
    body = imported(client, logistic(metrics={"val_loss": 0.25}))
    assert body["id"].startswith("mdl_") and body["job_id"] is None
    assert body["architecture"] == {
        "type": "logistic_regression",
        "n_features": 2,
        "layers": [{"units": 1, "activation": "sigmoid"}],
        "loss": "binary_cross_entropy",
    }
    assert (body["n_features"], body["n_parameters"], body["task"]) == (2, 3, "binary")
    assert body["classes"] == ["cat", "dog"]
    assert body["standardization"] == {"mean": [0.5, 10.0], "scale": [2.0, 4.0]}
    assert body["metrics"] == {"val_loss": 0.25}
    assert len(body["sha256"]) == 64
    assert "parameters" not in body
    assert client.get(f"/v1/models/{body['id']}").json() == body


def test_include_parameters_adds_dtype_and_arrays(client: Client) -> None:
    W0 = np.array([[0.5, -1.0, 2.0]], dtype=np.float32)
    doc = document(
        [(3, "softmax")],
        [W0],
        [np.array([0.0, 0.1, -0.1])],
        kind="softmax_regression",
        task="multiclass",
        classes=[3, 5, 9],
        dtype="float32",
    )
    body = imported(client, doc)
    full = client.get(f"/v1/models/{body['id']}", params={"include": "parameters"}).json()
    assert full["dtype"] == "float32"
    assert set(full["parameters"]) == {"W0", "b0"}
    np.testing.assert_array_equal(np.array(full["parameters"]["W0"], dtype=np.float32), W0)
    np.testing.assert_array_equal(
        np.array(full["parameters"]["b0"], dtype=np.float32), np.array([0.0, 0.1, -0.1], dtype=np.float32)
    )
    assert_problem(client.get(f"/v1/models/{body['id']}", params={"include": "everything"}), 422, "include")


def test_list_pages_through_models_newest_first(make_client: Callable[..., Client]) -> None:
    fresh = make_client()
    ids = [imported(fresh, logistic())["id"] for _ in range(5)]
    first = fresh.get("/v1/models", params={"limit": 2}).json()
    second = fresh.get("/v1/models", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    third = fresh.get("/v1/models", params={"limit": 2, "cursor": second["next_cursor"]}).json()
    seen = [m["id"] for page in (first, second, third) for m in page["items"]]
    assert seen == ids[::-1] and third["next_cursor"] is None
    assert all("parameters" not in m for m in first["items"])
    cursor = "ds_0000000000000000000000ff"
    assert_bad_cursor(fresh.get("/v1/models", params={"cursor": cursor}), "model", cursor)


def test_delete_removes_the_model(client: Client) -> None:
    body = imported(client, logistic())
    response = client.request("DELETE", f"/v1/models/{body['id']}")
    assert response.status_code == 204 and response.content == b""
    assert_problem(client.get(f"/v1/models/{body['id']}"), 404, body["id"])
    assert_problem(client.request("DELETE", f"/v1/models/{body['id']}"), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", ""), ("DELETE", ""), ("GET", "/export"), ("POST", "/predict")],
)
def test_unknown_model_is_404(client: Client, method: str, path: str) -> None:
    kwargs = {"json": {"X": [[1.0, 2.0]]}} if method == "POST" else {}
    assert_problem(
        client.request(method, f"/v1/models/mdl_0000000000000000000000ff{path}", **kwargs), 404, "mdl_0000"
    )


def test_an_unknown_model_is_404_before_its_predict_body_is_read(client: Client) -> None:
    # A grid whose start, stop and num disagree would be a 422 for a model that exists.
    grid = {"start": [0.0, 0.0], "stop": [1.0, 1.0], "num": [3]}
    response = client.post("/v1/models/mdl_0000000000000000000000ff/predict", json={"grid": grid})
    assert_problem(response, 404, "mdl_0000")


# ---- predict ------------------------------------------------------------------------------------


def test_binary_predictions_are_labels_and_probabilities_of_the_second_class(client: Client) -> None:
    doc = logistic()
    body = imported(client, doc)
    X = np.array([[1.0, 2.0], [3.0, -4.0], [0.5, 10.0], [-7.0, 30.0]])
    response = client.post(f"/v1/models/{body['id']}/predict", json={"X": X.tolist()})
    assert response.status_code == 200, response.text
    result = response.json()
    arch, params = engine_model(doc)
    std = doc["standardization"]
    indices, p = engine_predict(arch, params, (X - np.array(std["mean"])) / np.array(std["scale"]))
    assert result["classes"] == ["cat", "dog"]
    assert result["predictions"] == [["cat", "dog"][i] for i in indices]
    assert p is not None and result["probabilities"] == p.tolist()
    # By hand: row 0 standardized is (0.25, −2), z = 1.5·0.25 + (−0.5)·(−2) + 0.25 = 1.625 > 0 → "dog".
    assert result["predictions"][0] == "dog"
    assert result["probabilities"][0] == pytest.approx(1 / (1 + np.exp(-1.625)))


def test_multiclass_mlp_predictions_map_indices_to_classes(client: Client) -> None:
    rng = np.random.default_rng(7)
    weights = [rng.normal(size=(3, 4)), rng.normal(size=(4, 3))]
    biases = [rng.normal(size=4), rng.normal(size=3)]
    doc = document([(4, "tanh"), (3, "softmax")], weights, biases, task="multiclass", classes=[3, 5, 9])
    body = imported(client, doc)
    X = rng.normal(size=(6, 3))
    result = client.post(f"/v1/models/{body['id']}/predict", json={"X": X.tolist()}).json()
    arch, params = engine_model(doc)
    indices, probabilities = engine_predict(arch, params, X)
    assert result["predictions"] == [[3, 5, 9][i] for i in indices]
    assert probabilities is not None and result["probabilities"] == probabilities.tolist()
    np.testing.assert_allclose(np.sum(result["probabilities"], axis=1), 1.0)


def test_two_class_softmax_binary_model_gives_one_probability_per_row(client: Client) -> None:
    doc = document(
        [(2, "softmax")],
        [np.array([[1.0, -1.0]])],
        [np.array([0.0, 0.5])],
        kind="softmax_regression",
        task="binary",
        classes=[0, 1],
    )
    body = imported(client, doc)
    result = client.post(f"/v1/models/{body['id']}/predict", json={"X": [[0.0], [2.0]]}).json()
    # p(class 1) = softmax([x, -x + 0.5])[1] = sigmoid(0.5 − 2x).
    assert result["probabilities"] == pytest.approx([1 / (1 + np.exp(-0.5)), 1 / (1 + np.exp(3.5))])
    assert result["predictions"] == [1, 0]


def test_regression_predictions_are_values_without_probabilities(client: Client) -> None:
    doc = document(
        [(1, "identity")],
        [np.array([[2.0], [-1.0]])],
        [np.array([0.5])],
        kind="linear_regression",
        task="regression",
    )
    body = imported(client, doc)
    result = client.post(f"/v1/models/{body['id']}/predict", json={"X": [[1.0, 1.0], [3.0, 4.0]]}).json()
    assert result == {"predictions": [1.5, 2.5]}


def test_predict_on_a_stored_dataset(client: Client) -> None:
    doc = logistic(standardization=None)
    model = imported(client, doc)
    X = [[1.0, 2.0], [-3.0, 1.0], [0.0, 0.0]]
    dataset = client.post("/v1/datasets", json={"name": "p", "X": X, "y": [0, 1, 0]}).json()
    by_dataset = client.post(f"/v1/models/{model['id']}/predict", json={"dataset_id": dataset["id"]})
    assert by_dataset.status_code == 200
    assert by_dataset.json() == client.post(f"/v1/models/{model['id']}/predict", json={"X": X}).json()
    wide = client.post("/v1/datasets", json={"name": "w", "X": [[1, 2, 3], [4, 5, 6]], "y": [0, 1]}).json()
    response = client.post(f"/v1/models/{model['id']}/predict", json={"dataset_id": wide["id"]})
    assert_problem(response, 422, "has 3 features", "takes 2")
    response = client.post(
        f"/v1/models/{model['id']}/predict", json={"dataset_id": "ds_0000000000000000000000ff"}
    )
    body = assert_problem(response, 422, "ds_0000000000000000000000ff")
    assert body["errors"][0]["loc"] == ["body", "dataset_id"]


def test_predict_matches_a_model_trained_by_the_engine(client: Client) -> None:
    """A model stored the way training jobs store it (standardized, float32) predicts as fit's own predict."""
    X, y = make_dataset("moons", 60, noise=0.1, rng=np.random.default_rng(1))
    X = X * 10.0 + 3.0
    arch = build_architecture("mlp", 2, 1, hidden_layers=[5], activation="tanh", output_activation="sigmoid")
    result = fit(
        arch,
        X,
        y,
        FitConfig(epochs=30, learning_rate=0.5, standardize=True, dtype="float32"),
        np.random.default_rng(2),
    )
    payload = model_payload(result, result.params, "binary", [0, 1], {"epochs_run": 30})
    record = create_model(client.app.state.store, **payload)
    predictions, probabilities = result.predict(X)
    response = client.post(f"/v1/models/{record.id}/predict", json={"X": X.tolist()})
    assert response.status_code == 200
    assert response.json()["predictions"] == predictions.tolist()
    np.testing.assert_array_equal(np.array(response.json()["probabilities"], dtype=np.float32), probabilities)
    # Its export imports as the same model: same parameter bytes, hence the same sha256.
    again = imported(client, client.get(f"/v1/models/{record.id}/export").json())
    assert (again["sha256"], again["standardization"]) == (record.sha256, record.standardization)


def test_predict_on_a_grid_equals_predict_on_its_points_first_feature_fastest(client: Client) -> None:
    body = imported(client, logistic())
    grid = {"start": [-1.0, 5.0], "stop": [2.0, 15.0], "num": [4, 3]}
    on_grid = client.post(f"/v1/models/{body['id']}/predict", json={"grid": grid})
    assert on_grid.status_code == 200, on_grid.text
    # x₀ takes -1, 0, 1, 2 and x₁ takes 5, 10, 15; x₀ varies fastest.
    points = [[x0, x1] for x1 in (5.0, 10.0, 15.0) for x0 in (-1.0, 0.0, 1.0, 2.0)]
    on_points = client.post(f"/v1/models/{body['id']}/predict", json={"X": points})
    assert on_grid.json() == on_points.json()
    assert len(on_grid.json()["probabilities"]) == 12


def test_a_grid_over_the_array_limit_is_422_naming_the_limit(make_client: Callable[..., Client]) -> None:
    small = make_client(max_array_elements=1000)
    body = imported(small, logistic())
    response = small.post(
        f"/v1/models/{body['id']}/predict", json={"grid": {"start": [0, 0], "stop": [1, 1], "num": [30, 20]}}
    )
    assert_problem(response, 422, "600 points of 2 features", "limit of 1000", "DESCENT_MAX_ARRAY_ELEMENTS")
    response = small.post(
        f"/v1/models/{body['id']}/predict", json={"grid": {"start": [0, 0], "stop": [1, 1], "num": [25, 20]}}
    )
    assert response.status_code == 200


def test_wrong_feature_count_is_422_naming_both_counts(client: Client) -> None:
    body = imported(client, logistic())
    response = client.post(f"/v1/models/{body['id']}/predict", json={"X": [[1.0, 2.0, 3.0]]})
    assert_problem(response, 422, "has 3 features", "takes 2")


@pytest.mark.parametrize(
    ("raw", "fragments"),
    [
        (b'{"X": [[NaN, 1.0]]}', ("malformed JSON",)),
        (b'{"X": [[1e999, 1.0]]}', ("malformed JSON",)),
        (b'{"X": [[1.0, 2.0], [3.0]]}', ("ragged",)),
        (b'{"X": [[1.0, "a"]]}', ("X[0][1]",)),
        (b'{"X": [1.0, 2.0]}', ("2 dimension",)),
        (b"{}", ("exactly one of X, dataset_id and grid, got none",)),
        (
            b'{"X": [[1.0, 2.0]], "dataset_id": "ds_0000000000000000000000ff"}',
            ("exactly one of X, dataset_id and grid, got X, dataset_id",),
        ),
        (b'{"grid": {"start": [0, 0], "stop": [1], "num": [2, 2]}}', ("one entry per feature", "2, 1 and 2")),
        (
            b'{"grid": {"start": [0, 0, 0], "stop": [1, 1, 1], "num": [2, 2, 2]}}',
            ("has 3 features", "takes 2"),
        ),
        (b'{"grid": {"start": [0, 0], "stop": [1, 1], "num": [0, 2]}}', ("grid.num.0",)),
        (b'{"grid": {"start": [0, 0], "stop": [1, 1], "num": [2001, 2]}}', ("grid.num.0",)),
    ],
)
def test_invalid_predict_requests_are_422(client: Client, raw: bytes, fragments: tuple[str, ...]) -> None:
    body = imported(client, logistic())
    response = client.post(
        f"/v1/models/{body['id']}/predict", content=raw, headers={"content-type": "application/json"}
    )
    assert_problem(response, 422, *fragments)


def test_inputs_beyond_float32_are_422_for_a_float32_model(client: Client) -> None:
    body = imported(client, logistic(dtype="float32"))
    response = client.post(f"/v1/models/{body['id']}/predict", json={"X": [[1e300, 0.0]]})
    assert_problem(response, 422, "float32")


# ---- export and import round trips -----------------------------------------------------------------


def test_export_json_carries_the_format_and_everything_to_predict(client: Client) -> None:
    doc = logistic(metrics={"train_loss": 0.5})
    body = imported(client, doc)
    response = client.get(f"/v1/models/{body['id']}/export")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == f'attachment; filename="{body["id"]}.json"'
    exported = response.json()
    assert exported == {**doc, "architecture": body["architecture"]}
    assert_problem(client.get(f"/v1/models/{body['id']}/export", params={"format": "xml"}), 422, "format")


def test_export_npz_is_a_plain_numpy_archive(client: Client) -> None:
    doc = logistic(dtype="float32")
    body = imported(client, doc)
    response = client.get(f"/v1/models/{body['id']}/export", params={"format": "npz"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/x-npz"
    with np.load(io.BytesIO(response.content), allow_pickle=False) as archive:
        assert sorted(archive.files) == ["W0", "b0", "meta"]
        assert archive["W0"].dtype == np.float32
        np.testing.assert_array_equal(archive["W0"], np.array([[1.5], [-0.5]], dtype=np.float32))
        meta = orjson.loads(archive["meta"].tobytes())
    assert meta["format"] == FORMAT and meta["dtype"] == "float32" and meta["classes"] == ["cat", "dog"]


_FLOATS = {
    "float32": st.floats(width=32, allow_nan=False, allow_infinity=False),
    "float64": st.floats(allow_nan=False, allow_infinity=False),
}
_HIDDEN = ["relu", "tanh", "elu", "gelu", "sigmoid", "identity", "leaky_relu", "softplus", "silu"]


@st.composite
def model_documents(draw: st.DrawFn) -> dict[str, Any]:
    """Random valid documents: every model type and task, both dtypes, arbitrary finite parameters."""
    dtype = draw(st.sampled_from(["float32", "float64"]))
    n_features = draw(st.integers(1, 4))
    kind = draw(st.sampled_from(["logistic_regression", "linear_regression", "softmax_regression", "mlp"]))
    hidden: list[tuple[int, str]] = []
    if kind == "mlp":
        hidden = draw(
            st.lists(st.tuples(st.integers(1, 3), st.sampled_from(_HIDDEN)), min_size=1, max_size=2)
        )
    task = {
        "logistic_regression": "binary",
        "linear_regression": "regression",
        "softmax_regression": draw(st.sampled_from(["binary", "multiclass"])),
        "mlp": draw(st.sampled_from(["binary", "multiclass", "regression"])),
    }[kind]
    if task == "binary":
        output = (2, "softmax") if kind == "softmax_regression" else (1, "sigmoid")
    elif task == "multiclass":
        output = (draw(st.integers(2, 4)), "softmax")
    else:
        output = (draw(st.integers(1, 2)) if kind == "linear_regression" else 1, "identity")
    layers = [*hidden, output]
    sizes = [n_features, *(units for units, _ in layers)]
    elements = _FLOATS[dtype]
    weights = [draw(arrays(dtype, (sizes[i], sizes[i + 1]), elements=elements)) for i in range(len(layers))]
    biases = [draw(arrays(dtype, (sizes[i + 1],), elements=elements)) for i in range(len(layers))]
    classes = None
    if task != "regression":
        k = 2 if task == "binary" else output[0]
        labels = st.text(min_size=1, max_size=5) if draw(st.booleans()) else st.integers(-1000, 1000)
        classes = draw(st.lists(labels, min_size=k, max_size=k, unique=True))
    standardization = None
    if draw(st.booleans()):
        # Any float64 within the range of the model's dtype (a float32 model cannot apply a larger one).
        bound = float(np.finfo(dtype).max)
        finite = st.floats(min_value=-bound, max_value=bound)
        standardization = {
            "mean": draw(st.lists(finite, min_size=n_features, max_size=n_features)),
            "scale": draw(
                st.lists(finite.filter(lambda s: s != 0), min_size=n_features, max_size=n_features)
            ),
        }
    doc = document(
        layers,
        weights,
        biases,
        kind=kind,
        task=task,
        classes=classes,
        standardization=standardization,
        dtype=dtype,
    )
    doc["_arrays"] = {
        **{f"W{i}": w for i, w in enumerate(weights)},
        **{f"b{i}": b for i, b in enumerate(biases)},
    }
    return doc


def _assert_bitwise_equal(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(expected)
    for name, array in expected.items():
        assert got[name].dtype == array.dtype, name
        assert got[name].shape == array.shape, name
        assert got[name].tobytes() == array.tobytes(), name


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=model_documents())
def test_export_import_round_trips_bit_for_bit(client: Client, doc: dict[str, Any]) -> None:
    originals = doc.pop("_arrays")
    first = imported(client, doc)

    as_npz = client.get(f"/v1/models/{first['id']}/export", params={"format": "npz"})
    with np.load(io.BytesIO(as_npz.content), allow_pickle=False) as archive:
        stored = {name: archive[name] for name in archive.files if name != "meta"}
    _assert_bitwise_equal(stored, originals)

    as_json = client.get(f"/v1/models/{first['id']}/export").json()
    assert as_json["standardization"] == doc["standardization"]
    assert as_json["classes"] == doc["classes"]
    from_json = {name: np.array(value, dtype=doc["dtype"]) for name, value in as_json["parameters"].items()}
    _assert_bitwise_equal(from_json, originals)

    via_json = imported(client, as_json)
    response = client.post("/v1/models", content=as_npz.content, headers=NPZ_TYPE)
    assert response.status_code == 201, response.text
    via_npz = response.json()
    for again in (via_json, via_npz):
        assert again["sha256"] == first["sha256"]
        assert {k: v for k, v in again.items() if k not in ("id", "created_at")} == {
            k: v for k, v in first.items() if k not in ("id", "created_at")
        }
    again_npz = client.get(f"/v1/models/{via_json['id']}/export", params={"format": "npz"}).content
    assert again_npz == as_npz.content


# ---- invalid imports ----------------------------------------------------------------------------


def _with(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``doc`` with the dotted ``path`` set to ``value``."""
    copy: dict[str, Any] = orjson.loads(orjson.dumps(doc))
    *parents, last = path.split(".")
    target: Any = copy
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return copy


_MLP = document(
    [(2, "relu"), (1, "sigmoid")],
    [np.ones((2, 2)), np.ones((2, 1))],
    [np.zeros(2), np.zeros(1)],
    task="binary",
    classes=[0, 1],
)


@pytest.mark.parametrize(
    ("path", "value", "fragments"),
    [
        ("format", "descent.model/v0", ("format", "descent.model/v1")),
        ("architecture.layers.0.activation", "swish", ("activation", "relu", "tanh")),
        ("architecture.type", "forest", ("architecture.type", "mlp")),
        ("architecture.loss", "hinge", ("architecture.loss",)),
        ("architecture.loss", "mean_squared_error", ("'binary' needs",)),
        ("architecture.layers.1.activation", "identity", ("'binary' needs",)),
        ("architecture.layers.0.activation", "softmax", ("softmax is only allowed as the last layer",)),
        ("architecture.n_features", 3, ("architecture.n_features is 3", "n_features is 2")),
        ("parameters.W0", [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]], ("W0 must have shape [2, 2]",)),
        ("parameters.b1", [0.0, 0.0], ("b1 [1]",)),
        ("parameters.W2", [[1.0]], ("unexpected ['W2']",)),
        ("parameters.W1", [[1.0], ["x"]], ("parameters.W1[1][0]",)),
        ("parameters.W1", [[1.0], [True]], ("parameters.W1[1][0]", "boolean")),
        ("classes", [0, 1, 2], ("2 class labels", "got 3")),
        ("classes", None, ("2 class labels", "null")),
        ("classes", [1, 1], ("distinct",)),
        ("classes", [1, "1"], ("all numbers or all strings",)),
        ("task", "regression", ("'regression' needs",)),
        ("task", "multiclass", ("'multiclass' needs",)),
        (
            "standardization",
            {"mean": [0.0], "scale": [1.0]},
            ("standardization.mean has 1 entries", "2 features"),
        ),
        ("standardization", {"mean": [0.0, 0.0], "scale": [1.0, 0.0]}, ("must not contain 0",)),
        ("classes", ["a", "b" * 257], ("classes[1]", "class name of 257 characters", "256")),
        ("dtype", "float16", ("dtype",)),
        ("n_features", 0, ("n_features",)),
        ("extra", 1, ("extra",)),
    ],
)
def test_invalid_imports_are_422(client: Client, path: str, value: Any, fragments: tuple[str, ...]) -> None:
    doc = _with(_MLP, path, value)
    assert_problem(client.post("/v1/models", json=doc), 422, *fragments)


def test_parameters_beyond_float32_are_422(client: Client) -> None:
    doc = _with(_with(_MLP, "dtype", "float32"), "parameters.W1", [[1.0], [1e300]])
    assert_problem(client.post("/v1/models", json=doc), 422, "parameters.W1", "beyond the range of float32")


def test_a_standardization_beyond_float32_is_422(client: Client) -> None:
    # Stored, it would apply as an infinite scale to every prediction of the float32 model.
    std = {"mean": [0.0, 0.0], "scale": [1.0, 1e300]}
    doc = _with(_with(_MLP, "dtype", "float32"), "standardization", std)
    assert_problem(client.post("/v1/models", json=doc), 422, "standardization.scale[1]", "range of float32")


@pytest.mark.parametrize(
    ("layers", "kind", "fragments"),
    [
        ([(2, "sigmoid")], "logistic_regression", ("one sigmoid layer with 1 unit",)),
        ([(1, "identity")], "logistic_regression", ("one sigmoid layer",)),
        ([(1, "softmax")], "softmax_regression", ("at least 2 unit",)),
    ],
)
def test_single_layer_types_must_have_their_layer(
    client: Client, layers: list[tuple[int, str]], kind: str, fragments: tuple[str, ...]
) -> None:
    units = layers[0][0]
    doc = document(layers, [np.ones((2, units))], [np.zeros(units)], kind=kind, task="binary", classes=[0, 1])
    assert_problem(client.post("/v1/models", json=doc), 422, *fragments)


def _npz(**members: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **members)
    return buffer.getvalue()


def _meta(**overrides: Any) -> np.ndarray:
    meta = {k: v for k, v in logistic().items() if k != "parameters"}
    return np.frombuffer(orjson.dumps({**meta, **overrides}), dtype=np.uint8)


@pytest.mark.parametrize(
    ("raw", "fragments"),
    [
        (_npz(W0=np.ones((2, 1)), b0=np.zeros(1)), ("meta",)),
        (
            _npz(meta=np.frombuffer(b"{not json", dtype=np.uint8), W0=np.ones((2, 1)), b0=np.zeros(1)),
            ("not valid JSON",),
        ),
        (_npz(meta=_meta(format="other"), W0=np.ones((2, 1)), b0=np.zeros(1)), ("format",)),
        (_npz(meta=_meta(), W0=np.ones((2, 1), dtype=np.float32), b0=np.zeros(1)), ("W0 has dtype float32",)),
        (_npz(meta=_meta(), W0=np.ones((3, 1)), b0=np.zeros(1)), ("W0 must have shape [2, 1]",)),
        (_npz(meta=_meta(), W0=np.array([[np.inf], [1.0]]), b0=np.zeros(1)), ("W0", "finite")),
        (_npz(meta=_meta(), W0=np.ones((2, 1))), ("missing ['b0']",)),
        (b"not a zip", ("not an .npz archive",)),
    ],
)
def test_invalid_npz_imports_are_422(client: Client, raw: bytes, fragments: tuple[str, ...]) -> None:
    assert_problem(client.post("/v1/models", content=raw, headers=NPZ_TYPE), 422, *fragments)


def test_npz_import_never_unpickles(client: Client) -> None:
    buffer = io.BytesIO()
    np.savez(
        buffer, meta=_meta(), W0=np.array([[object()], [1]], dtype=object), b0=np.zeros(1), allow_pickle=True
    )
    assert_problem(
        client.post("/v1/models", content=buffer.getvalue(), headers=NPZ_TYPE), 422, "dtype object"
    )


def test_import_of_another_media_type_is_415(client: Client) -> None:
    response = client.post("/v1/models", content=b"W0,b0", headers={"content-type": "text/csv"})
    assert_problem(response, 415, "application/json", "application/x-npz")
