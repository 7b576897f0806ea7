"""Binary arrays over HTTP: ``.npy`` and ``.npz`` bodies and answers give what JSON gives, bit for bit,
under the same limits, and are never unpickled."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest

from service.app import create_app
from tests.service.conftest import Client, assert_problem, make_settings

NPY = "application/x-npy"
NPZ = "application/x-npz"
NPY_BOTH = {"content-type": NPY, "accept": NPY}
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    running = Client(create_app(make_settings(tmp_path_factory.mktemp("binary"))))
    yield running
    running.close()


def npy(array: Any, *, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def npz(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def read_npy(response: Any) -> np.ndarray:
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"] == NPY
    return np.load(io.BytesIO(response.content), allow_pickle=False)


def read_npz(response: Any) -> dict[str, np.ndarray]:
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"] == NPZ
    with np.load(io.BytesIO(response.content), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def as_json(client: Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    content = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    response = client.post(path, content=content, headers=JSON)
    assert response.status_code == 200, response.text[:500]
    result: dict[str, Any] = response.json()
    return result


# ---- activations: .npy in, .npy out --------------------------------------------------------------


@pytest.mark.parametrize(
    "x",
    [
        np.linspace(-40.0, 40.0, 9),
        np.arange(12.0).reshape(3, 4) - 6,
        np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        np.arange(-3, 4, dtype=np.int32),
        np.linspace(-1, 1, 5, dtype=np.float32),
        np.arange(5, dtype=">f8"),
        np.array(0.5),
    ],
    ids=["vector", "matrix", "fortran", "int32", "float32", "big-endian", "scalar"],
)
def test_sigmoid_of_an_npy_body_answers_the_json_values_bit_for_bit(client: Client, x: np.ndarray) -> None:
    y = read_npy(client.post("/v1/activations/sigmoid", content=npy(x), headers=NPY_BOTH))
    expected = as_json(client, "/v1/activations/sigmoid", {"x": x.tolist()})["y"]
    assert y.dtype == np.float64 and y.shape == x.shape
    assert y.tobytes() == np.asarray(expected, dtype=np.float64).tobytes()
    # And against NumPy directly, at a point worked by hand: sigmoid(0) = 1/2.
    if x.ndim == 0:
        assert float(y) == pytest.approx(1 / (1 + np.exp(-0.5)), rel=1e-15)


def test_query_fields_and_an_npz_answer_carry_every_field_of_the_json_answer(client: Client) -> None:
    x = np.array([-2.0, -0.5, 0.0, 3.0])
    path = "/v1/activations/leaky_relu?derivative=true&params.alpha=0.2"
    got = read_npz(client.post(path, content=npy(x), headers={"content-type": NPY, "accept": NPZ}))
    assert sorted(got) == ["activation", "dy", "params.alpha", "shape", "y"]
    np.testing.assert_array_equal(got["y"], [-0.4, -0.1, 0.0, 3.0])
    np.testing.assert_array_equal(got["dy"], [0.2, 0.2, 0.2, 1.0])
    assert str(got["activation"]) == "leaky_relu" and float(got["params.alpha"]) == 0.2
    np.testing.assert_array_equal(got["shape"], [4])


def test_a_json_body_may_ask_for_binary_and_a_binary_body_for_json(client: Client) -> None:
    x = [1.0, -1.0]
    headers = {"content-type": "application/json", "accept": NPY}
    y = read_npy(client.post("/v1/activations/tanh", content=orjson.dumps({"x": x}), headers=headers))
    np.testing.assert_array_equal(y, np.tanh(x))
    response = client.post("/v1/activations/tanh", content=npy(np.array(x)), headers={"content-type": NPY})
    assert response.headers["content-type"] == "application/json"
    assert response.json()["y"] == np.tanh(x).tolist()


def test_an_npy_answer_with_other_arrays_beside_it_is_406_naming_them(client: Client) -> None:
    response = client.post(
        "/v1/activations/sigmoid?derivative=true", content=npy(np.zeros(3)), headers=NPY_BOTH
    )
    assert_problem(response, 406, "several arrays (y, dy)", "accept application/x-npz")
    response = client.post(
        "/v1/activations/sigmoid",
        content=orjson.dumps({"x": [0.0]}),
        headers={**JSON, "accept": f"{NPY}, */*;q=0.1"},
    )
    np.testing.assert_array_equal(read_npy(response), [0.5])


# ---- losses, forward, gradients: .npz bodies -----------------------------------------------------


def test_a_loss_from_npz_members_and_query_fields_equals_the_json_loss(client: Client) -> None:
    y_true = np.array([0, 2, 1])
    logits = np.array([[2.0, 1.0, 0.1], [0.5, 0.5, 3.0], [0.0, 1.0, -1.0]])
    path = "/v1/losses/cross_entropy?reduction=none&gradient=true"
    got = read_npz(
        client.post(
            path, content=npz(y_true=y_true, logits=logits), headers={"content-type": NPZ, "accept": NPZ}
        )
    )
    expected = as_json(
        client,
        "/v1/losses/cross_entropy",
        {"y_true": y_true, "logits": logits, "reduction": "none", "gradient": True},
    )
    np.testing.assert_array_equal(got["loss"], expected["loss"])
    np.testing.assert_array_equal(got["gradient"], expected["gradient"])
    # By hand: the loss of a row is logsumexp(z) - z[label].
    z = logits[0]
    assert got["loss"][0] == pytest.approx(np.log(np.exp(z).sum()) - z[0], rel=1e-12)
    # A .npy body cannot hold both arrays: 415 saying to send .npz.
    response = client.post("/v1/losses/cross_entropy", content=npy(logits), headers=NPY_BOTH)
    assert_problem(response, 415, "several arrays", "application/x-npz")


MLP_LAYERS = [{"units": 3, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]


def mlp_members(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "model.parameters.0.weights": rng.normal(size=(2, 3)),
        "model.parameters.0.bias": rng.normal(size=3),
        "model.parameters.1.weights": rng.normal(size=(3, 1)),
        "model.parameters.1.bias": rng.normal(size=1),
    }


def mlp_json(members: dict[str, np.ndarray]) -> dict[str, Any]:
    return {
        "type": "mlp",
        "layers": MLP_LAYERS,
        "parameters": [
            {
                "weights": members[f"model.parameters.{i}.weights"],
                "bias": members[f"model.parameters.{i}.bias"],
            }
            for i in range(2)
        ],
    }


def test_forward_of_an_mlp_from_dotted_members_equals_the_json_forward(client: Client) -> None:
    rng = np.random.default_rng(3)
    members, X = mlp_members(rng), rng.normal(size=(5, 2))
    layers = orjson.dumps({"type": "mlp", "layers": MLP_LAYERS}).decode()
    response = client.post(
        "/v1/forward",
        params={"model": layers, "return_intermediates": "true"},
        content=npz(X=X, **members),
        headers={"content-type": NPZ, "accept": NPZ},
    )
    got = read_npz(response)
    expected = as_json(
        client, "/v1/forward", {"model": mlp_json(members), "X": X, "return_intermediates": True}
    )
    np.testing.assert_array_equal(got["outputs"], expected["outputs"])
    for i in range(2):
        np.testing.assert_array_equal(got[f"layers.{i}.a"], expected["layers"][i]["a"])
    # By hand for the first row: sigmoid(tanh(x W0 + b0) W1 + b1).
    h = np.tanh(X[0] @ members["model.parameters.0.weights"] + members["model.parameters.0.bias"])
    out = 1 / (1 + np.exp(-(h @ members["model.parameters.1.weights"] + members["model.parameters.1.bias"])))
    np.testing.assert_allclose(got["outputs"][0], out, rtol=1e-12)


def test_forward_of_an_npy_x_with_the_model_in_the_query_answers_npy(client: Client) -> None:
    X = np.array([[1.0, 2.0], [0.0, -1.0]])
    query = {"model.type": "logistic_regression", "model.weights": "[0.5, -0.25]", "model.bias": "0.1"}
    y = read_npy(client.post("/v1/forward", params=query, content=npy(X), headers=NPY_BOTH))
    np.testing.assert_allclose(y, 1 / (1 + np.exp(-(X @ [0.5, -0.25] + 0.1))), rtol=1e-15)


def test_gradients_from_npz_equal_the_json_gradients_and_pass_their_check(client: Client) -> None:
    rng = np.random.default_rng(4)
    members, X, y = mlp_members(rng), rng.normal(size=(6, 2)), rng.integers(0, 2, size=6)
    layers = orjson.dumps(MLP_LAYERS).decode()
    got = read_npz(
        client.post(
            f"/v1/gradients?model.type=mlp&model.layers={layers}&check=true",
            content=npz(X=X, y=y, **members),
            headers={"content-type": NPZ, "accept": NPZ},
        )
    )
    expected = as_json(client, "/v1/gradients", {"model": mlp_json(members), "X": X, "y": y, "check": True})
    assert float(got["loss"]) == expected["loss"]
    for i in range(2):
        for part in ("weights", "bias"):
            np.testing.assert_array_equal(
                got[f"gradients.parameters.{i}.{part}"], expected["gradients"]["parameters"][i][part]
            )
    assert bool(got["check.passed"]) and float(got["check.max_rel_error"]) < 1e-6
    response = client.post("/v1/gradients", content=orjson.dumps({}), headers={**JSON, "accept": NPY})
    assert response.status_code == 422  # the body is checked before the answer's format matters


# ---- refusals: never unpickled, the same limits, problem+json ------------------------------------


def test_object_arrays_are_refused_without_unpickling(client: Client) -> None:
    hostile = np.array([{"a": 1}], dtype=object)
    response = client.post("/v1/activations/relu", content=npy(hostile, allow_pickle=True), headers=NPY_BOTH)
    body = assert_problem(response, 422, "x (the application/x-npy body)", "never unpickled")
    assert body["errors"][0]["loc"] == ["body", "x"]
    buffer = io.BytesIO()
    np.savez(buffer, y_true=np.zeros(2), y_pred=hostile)
    response = client.post(
        "/v1/losses/mean_squared_error", content=buffer.getvalue(), headers={"content-type": NPZ}
    )
    assert_problem(response, 422, "y_pred (member y_pred.npy) holds Python objects", "never unpickled")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not an array", "does not start with the magic string"),
        (npy(np.zeros(4))[:-8], "is truncated: shape [4] of float64 needs 32 bytes of data, got 24"),
        (npy(np.zeros(4)) + b"\0", "has trailing bytes"),
        (npy(np.array(["a", "b"])), "has dtype '<U1'"),
        (npy(np.array([True, False])), "x must hold numbers, got an array of dtype bool"),
        (npy(np.array([1.0, np.nan])), "x must hold finite numbers only"),
        (npy(np.array([1.0, np.inf], dtype=np.float32)), "x must hold finite numbers only"),
        (npy(np.zeros(0)), "x must not be empty"),
    ],
    ids=["garbage", "truncated", "trailing", "strings", "booleans", "nan", "inf32", "empty"],
)
def test_bad_npy_bodies_are_422_naming_what_is_wrong(client: Client, body: bytes, fragment: str) -> None:
    assert_problem(client.post("/v1/activations/relu", content=body, headers=NPY_BOTH), 422, fragment)


@pytest.mark.parametrize(
    ("query", "members", "fragment"),
    [
        ("", {"x": np.zeros(2), "x.y": np.zeros(2)}, "x is given twice"),
        ("x=[1]", {"x": np.zeros(2)}, "x is given twice: as an array of the body and as a query parameter"),
        ("", {"x": np.zeros(2), "bogus": np.zeros(1)}, "bogus"),
        ("derivative=maybe", {"x": np.zeros(2)}, "derivative"),
        ("a-b=1", {"x": np.zeros(2)}, "query parameter a-b is not a field path"),
        ("", {"p.1": np.zeros(1), "x": np.zeros(2)}, "p has entries [1]"),
    ],
)
def test_bad_npz_fields_are_422_naming_them(
    client: Client, query: str, members: dict[str, Any], fragment: str
) -> None:
    response = client.post(
        f"/v1/activations/relu?{query}", content=npz(**members), headers={"content-type": NPZ}
    )
    assert_problem(response, 422, fragment)


def test_archives_that_are_not_npz_are_422(client: Client) -> None:
    headers = {"content-type": NPZ}
    assert_problem(
        client.post("/v1/activations/relu", content=b"PK\x03\x04junk", headers=headers), 422, "readable .npz"
    )
    assert_problem(
        client.post("/v1/activations/relu", content=b"{}", headers=headers), 422, "not an .npz archive"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.txt", b"1,2,3")
    assert_problem(
        client.post("/v1/activations/relu", content=buffer.getvalue(), headers=headers), 422, "'x.txt'"
    )


def test_other_media_types_are_415_naming_the_three_accepted(client: Client) -> None:
    response = client.post("/v1/forward", content=b"x", headers={"content-type": "application/octet-stream"})
    assert_problem(response, 415, "application/json, application/x-npy or application/x-npz")


def test_the_limits_of_json_bodies_apply_word_for_word(make_client: Any) -> None:
    small = make_client(max_array_elements=5, max_body_bytes=4096)
    for body, headers in (
        (orjson.dumps({"x": [1.0] * 6}), JSON),
        (npy(np.ones(6)), {"content-type": NPY}),
        (npz(x=np.ones((2, 3))), {"content-type": NPZ}),
    ):
        body_json = assert_problem(small.post("/v1/activations/relu", content=body, headers=headers), 422)
        assert body_json["detail"] == "x holds 6 numbers; the limit is 5"
    # The header is read before the data: a claim of 10^12 elements is refused before any allocation.
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    response = small.post("/v1/activations/relu", content=header.getvalue(), headers={"content-type": NPY})
    assert_problem(response, 422, "x holds 1000000000000 numbers; the limit is 5")
    assert_problem(
        small.post("/v1/activations/relu", content=npy(np.ones(600)), headers={"content-type": NPY}), 413
    )
    # Admission by cost: the same refusal for the same forward request in JSON and in .npz.
    wide = {"type": "logistic_regression", "weights": [0.5], "bias": 0.0}
    X = np.ones((5, 1))
    big = make_client(max_compute_memory_mb=1e-5)
    refusals = [
        big.post("/v1/forward", content=orjson.dumps({"model": wide, "X": X.tolist()}), headers=JSON),
        big.post(
            "/v1/forward",
            params={"model": orjson.dumps(wide).decode()},
            content=npy(X),
            headers={"content-type": NPY},
        ),
    ]
    first, second = (assert_problem(r, 413) for r in refusals)
    assert first["detail"] == second["detail"] and "DESCENT_MAX_COMPUTE_MEMORY_MB" in first["detail"]


def test_a_compressed_archive_is_held_to_the_body_limit_once_decompressed(make_client: Any) -> None:
    client = make_client(max_body_bytes=100_000)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=np.zeros(50_000))  # 400 KB of zeros in about 1 KB
    assert len(buffer.getvalue()) < 100_000
    response = client.post("/v1/activations/relu", content=buffer.getvalue(), headers={"content-type": NPZ})
    assert_problem(response, 413, "more than 100000 bytes once decompressed", "DESCENT_MAX_BODY_BYTES")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=np.zeros(10_000))  # 80 KB decompressed: within the limit
    response = client.post("/v1/activations/relu", content=buffer.getvalue(), headers={"content-type": NPZ})
    assert response.status_code == 200 and response.json()["shape"] == [10_000]


def test_large_npy_bodies_run_in_the_heavy_lane_of_worker_processes(make_client: Any) -> None:
    client = make_client(heavy_lane_mode="processes")
    x = np.random.default_rng(0).normal(size=100_000)  # 800 KB: above the offload threshold
    y = read_npy(client.post("/v1/activations/sigmoid", content=npy(x), headers=NPY_BOTH))
    np.testing.assert_allclose(y, 1 / (1 + np.exp(-x)), rtol=1e-14)
    hostile = npy(np.array([{"a": 1}] * 40_000, dtype=object), allow_pickle=True)
    assert_problem(
        client.post("/v1/activations/sigmoid", content=hostile, headers=NPY_BOTH), 422, "never unpickled"
    )


# ---- predict and dataset download ----------------------------------------------------------------


def import_model(client: Client, kind: str) -> str:
    if kind == "regression":
        doc = {
            "format": "descent.model/v1",
            "architecture": {"type": "linear_regression", "layers": [{"units": 1, "activation": "identity"}]},
            "n_features": 2,
            "task": "regression",
            "classes": None,
            "standardization": None,
            "dtype": "float64",
            "parameters": {"W0": [[2.0], [-1.0]], "b0": [0.5]},
        }
    else:
        doc = {
            "format": "descent.model/v1",
            "architecture": {
                "type": "logistic_regression",
                "layers": [{"units": 1, "activation": "sigmoid"}],
            },
            "n_features": 2,
            "task": "binary",
            "classes": ["cat", "dog"],
            "standardization": None,
            "dtype": "float64",
            "parameters": {"W0": [[1.5], [-0.5]], "b0": [0.25]},
        }
    response = client.post("/v1/models", json=doc)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_predict_takes_npy_rows_and_answers_npy_or_npz(client: Client) -> None:
    X = np.array([[1.0, 2.0], [3.0, -1.0], [0.0, 0.0]])
    regression = import_model(client, "regression")
    y = read_npy(client.post(f"/v1/models/{regression}/predict", content=npy(X), headers=NPY_BOTH))
    np.testing.assert_allclose(y, X @ [2.0, -1.0] + 0.5, rtol=1e-15)
    classifier = import_model(client, "classifier")
    path = f"/v1/models/{classifier}/predict"
    got = read_npz(client.post(path, content=npy(X), headers={"content-type": NPY, "accept": NPZ}))
    p = 1 / (1 + np.exp(-(X @ [1.5, -0.5] + 0.25)))
    np.testing.assert_allclose(got["probabilities"], p, rtol=1e-14)
    assert got["predictions"].tolist() == ["dog" if q >= 0.5 else "cat" for q in p]
    assert got["classes"].tolist() == ["cat", "dog"]
    assert_problem(client.post(path, content=npy(X), headers=NPY_BOTH), 406, "predictions, probabilities")
    assert_problem(client.post(path, content=npy(X[:, :1]), headers=NPY_BOTH), 422, "X has 1 features")


def test_dataset_data_as_npz_uploads_again_to_the_same_dataset(client: Client) -> None:
    X, y = np.array([[0.0, 1.5], [1.0, 0.0], [2.0, 2.0]]), np.array(["b", "a", "b"])
    created = client.post("/v1/datasets?name=pets", content=npz(X=X, y=y), headers={"content-type": NPZ})
    assert created.status_code == 201, created.text
    dataset = created.json()
    got = read_npz(client.get(f"/v1/datasets/{dataset['id']}/data", headers={"accept": NPZ}))
    assert got["X"].tobytes() == X.tobytes() and got["y"].tolist() == y.tolist()
    again = client.post(
        "/v1/datasets?name=pets",
        content=npz(**got),
        headers={"content-type": NPZ},
    )
    assert again.json()["sha256"] == dataset["sha256"]
