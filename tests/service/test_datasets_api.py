"""The /v1/datasets resource over HTTP: JSON, CSV, .npz and generator uploads, reads, pages, deletes."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pytest

from engine.datasets import make_dataset
from service.app import create_app
from service.errors import InvalidInput
from service.services.datasets import IDEMPOTENCY_SCOPE, ingest_arrays, request_fingerprint, upload_scope
from service.services.idempotency import create_once
from service.store import Claim, DatasetRecord, create_job, encode_npz, load_dataset_arrays, reserve
from service.vocabulary import MIN_SAMPLES
from tests.service.conftest import (
    BAD_IDEMPOTENCY_KEYS,
    Client,
    assert_bad_cursor,
    assert_bad_idempotency_key,
    assert_problem,
    make_settings,
)
from tests.timing import REQUEST_S

CSV_TYPE = {"content-type": "text/csv"}
NPZ_TYPE = {"content-type": "application/x-npz"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    running = Client(create_app(make_settings(tmp_path_factory.mktemp("datasets"))))
    yield running
    running.close()


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """An app with tiny dataset and body limits."""
    settings = make_settings(
        tmp_path_factory.mktemp("small"),
        max_dataset_rows=10,
        max_dataset_features=3,
        max_dataset_elements=20,
        max_body_bytes=4096,
    )
    running = Client(create_app(settings))
    yield running
    running.close()


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/v1/datasets/{body['id']}"
    return body


def npz_bytes(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def stored(client: Client, dataset_id: str) -> tuple[np.ndarray, np.ndarray]:
    arrays: tuple[np.ndarray, np.ndarray] = load_dataset_arrays(client.app.state.store, dataset_id)
    return arrays


# ---- JSON ---------------------------------------------------------------------------------------


def test_json_dataset_is_created_with_its_description(client: Client) -> None:
    X = [[0, 0], [0, 1], [1, 0], [1, 1]]
    body = created(client.post("/v1/datasets", json={"name": "and", "X": X, "y": [0, 0, 0, 1]}))
    assert body["id"].startswith("ds_")
    assert (body["name"], body["n_samples"], body["n_features"]) == ("and", 4, 2)
    assert (body["task"], body["classes"], body["class_counts"]) == ("binary", [0, 1], [3, 1])
    assert body["source"] == {"kind": "json"}
    created_at = datetime.fromisoformat(body["created_at"])
    assert created_at.utcoffset() is not None and created_at.utcoffset() == UTC.utcoffset(None)
    # The hash is that of the stored arrays: X as float64, y as int64 class indices.
    expected = encode_npz({"X": np.array(X, dtype=np.float64), "y": np.array([0, 0, 0, 1], dtype=np.int64)})
    assert body["sha256"] == hashlib.sha256(expected).hexdigest()
    assert client.get(f"/v1/datasets/{body['id']}").json() == body


@pytest.mark.parametrize(
    ("y", "task", "classes", "counts"),
    [
        ([0, 1, 1, 0], "binary", [0, 1], [2, 2]),
        ([7.0, 2.0, 7.0, 7.0], "binary", [2, 7], [1, 3]),
        ([3, 1, 2, 1], "multiclass", [1, 2, 3], [2, 1, 1]),
        (["dog", "cat", "emu", "cat"], "multiclass", ["cat", "dog", "emu"], [2, 1, 1]),
        (["yes", "no", "no", "yes"], "binary", ["no", "yes"], [2, 2]),
        ([0.5, 1.0, 2.25, -3.0], "regression", None, None),
    ],
)
def test_task_is_inferred_from_labels(
    client: Client, y: list[Any], task: str, classes: list[Any] | None, counts: list[int] | None
) -> None:
    body = created(client.post("/v1/datasets", json={"name": "t", "X": [[1.0], [2.0], [3.0], [4.0]], "y": y}))
    assert (body["task"], body["classes"], body["class_counts"]) == (task, classes, counts)


@pytest.mark.parametrize(("n_distinct", "task"), [(100, "multiclass"), (101, "regression")])
def test_integer_labels_with_many_values_are_regression(client: Client, n_distinct: int, task: str) -> None:
    y = list(range(n_distinct))
    body = created(client.post("/v1/datasets", json={"name": "ints", "X": [[float(v)] for v in y], "y": y}))
    assert body["task"] == task
    assert body["classes"] == (y if task == "multiclass" else None)


def test_stored_arrays_follow_the_training_conventions(client: Client) -> None:
    classified = created(
        client.post("/v1/datasets", json={"name": "c", "X": [[1], [2], [3]], "y": ["b", "a", "b"]})
    )
    X, y = stored(client, classified["id"])
    assert X.dtype == np.float64 and X.shape == (3, 1)
    assert y.dtype == np.int64 and y.tolist() == [1, 0, 1]
    regression = created(client.post("/v1/datasets", json={"name": "r", "X": [[1], [2]], "y": [0.5, 1.5]}))
    X, y = stored(client, regression["id"])
    assert y.dtype == np.float64 and y.tolist() == [0.5, 1.5]


@pytest.mark.parametrize(
    ("y", "task", "dtype"),
    [
        ([[1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 1, 0]], "multilabel", np.int64),
        ([[0.5, 1.0], [2.0, -1.0], [0.0, 3.5], [1.0, 1.0]], "regression", np.float64),
    ],
)
def test_a_row_of_labels_per_sample_is_multilabel_or_multi_output_regression(
    client: Client, y: list[list[Any]], task: str, dtype: Any
) -> None:
    X = [[1.0], [2.0], [3.0], [4.0]]
    body = created(client.post("/v1/datasets", json={"name": "multi", "X": X, "y": y}))
    assert (body["task"], body["n_outputs"], body["classes"], body["class_counts"]) == (
        task,
        len(y[0]),
        None,
        None,
    )
    _, stored_y = stored(client, body["id"])
    assert stored_y.dtype == dtype
    np.testing.assert_array_equal(stored_y, np.asarray(y, dtype=dtype))
    data = client.get(f"/v1/datasets/{body['id']}/data").json()
    assert data["y"] == np.asarray(y, dtype=dtype).tolist()
    text = client.get(f"/v1/datasets/{body['id']}/data", headers={"Accept": "text/csv"}).text
    header, first = text.splitlines()[:2]
    assert header == ",".join(["x0", *(f"y{j}" for j in range(len(y[0])))])
    assert first.split(",")[1:] == [str(v) for v in np.asarray(y[0], dtype=dtype).tolist()]


def test_a_multilabel_npz_upload_keeps_its_columns(client: Client) -> None:
    y = np.array([[True, False], [False, True], [True, True]])
    raw = npz_bytes(X=np.ones((3, 2)), y=y)
    body = created(client.post("/v1/datasets", content=raw, headers={"Content-Type": "application/x-npz"}))
    assert (body["task"], body["n_outputs"]) == ("multilabel", 2)
    np.testing.assert_array_equal(stored(client, body["id"])[1], y)


@pytest.mark.parametrize(
    ("y", "task", "fragments"),
    [
        ([[1, 0], [0, 1]], "binary", ("y must be 1-dimensional", "task 'binary'", "'multilabel'")),
        ([[1, 0], [0, 2]], "multilabel", ("y[1][1] must be 0 or 1 for task 'multilabel', got 2",)),
        ([1, 0], "multilabel", ("one column per label", "task 'multilabel'")),
    ],
)
def test_labels_that_do_not_fit_a_multilabel_task_are_422(
    client: Client, y: list[Any], task: str, fragments: tuple[str, ...]
) -> None:
    response = client.post("/v1/datasets", json={"name": "m", "X": [[1.0], [2.0]], "y": y, "task": task})
    assert_problem(response, 422, *fragments)


def test_task_field_overrides_inference(client: Client) -> None:
    body = created(
        client.post(
            "/v1/datasets", json={"name": "r", "X": [[1], [2], [3]], "y": [1, 2, 1], "task": "regression"}
        )
    )
    assert (body["task"], body["classes"], body["class_counts"]) == ("regression", None, None)
    _, y = stored(client, body["id"])
    assert y.dtype == np.float64 and y.tolist() == [1.0, 2.0, 1.0]


def test_binary_task_with_three_classes_names_them(client: Client) -> None:
    response = client.post(
        "/v1/datasets", json={"name": "b", "X": [[1], [2], [3]], "y": [0, 1, 2], "task": "binary"}
    )
    body = assert_problem(response, 422, "exactly 2 classes", "found 3", "[0, 1, 2]")
    assert body["errors"][0]["loc"] == ["body", "y"]


def test_classification_needs_two_classes(client: Client) -> None:
    assert_problem(
        client.post("/v1/datasets", json={"name": "one", "X": [[1], [2]], "y": [4, 4]}),
        422,
        "single class",
        "4",
    )
    assert_problem(
        client.post("/v1/datasets", json={"name": "one", "X": [[1], [2]], "y": ["a", "a"]}),
        422,
        "single class",
        "'a'",
    )


def test_string_labels_cannot_be_regression_targets(client: Client) -> None:
    response = client.post(
        "/v1/datasets", json={"name": "s", "X": [[1], [2]], "y": ["a", "b"], "task": "regression"}
    )
    assert_problem(response, 422, "must hold numbers for task 'regression'")


@pytest.mark.parametrize(
    ("payload", "fragments"),
    [
        ({"name": "x", "X": [[1, 2], [3]], "y": [0, 1]}, ("ragged", "X[1]")),
        ({"name": "x", "X": [[1, 2], [3, True]], "y": [0, 1]}, ("X[1][1]", "boolean")),
        ({"name": "x", "X": [[1], [2], [3]], "y": [0, 1]}, ("y has 2 entries but X has 3 rows",)),
        ({"name": "x", "X": [[1], [2]], "y": [0, "a"]}, ("y[1]", "must be a number")),
        ({"name": "x", "X": [[1], [2]], "y": ["a", 1]}, ("y[1]", "must be a string")),
        ({"name": "x", "X": [[1]], "y": [0]}, ("at least 2 samples",)),
        ({"name": "x", "X": [1, 2], "y": [0, 1]}, ("X must have 2 dimension(s)",)),
        ({"name": "x", "X": [[1], [2]]}, ("give both X and y",)),
        ({"name": "x"}, ("give either X and y, or a generator",)),
        ({"name": "", "X": [[1], [2]], "y": [0, 1]}, ("name",)),
        ({"name": "x", "X": [[1], [2]], "y": [0, 1], "colour": "red"}, ("colour",)),
        ({"name": "x", "X": [[1], [2]], "y": [0, 1], "task": "ordinal"}, ("task",)),
        ({"name": "x", "X": [[1], [2]], "y": [0, 1], "generator": {"kind": "xor"}}, ("give either",)),
    ],
)
def test_invalid_json_datasets_are_422(
    client: Client, payload: dict[str, Any], fragments: tuple[str]
) -> None:
    assert_problem(client.post("/v1/datasets", json=payload), 422, *fragments)


def test_the_document_states_the_least_number_of_samples_the_api_checks(client: Client) -> None:
    schema = client.app.openapi()["components"]["schemas"]["DatasetCreate"]["properties"]
    assert schema["X"]["minItems"] == MIN_SAMPLES
    assert [branch["minItems"] for branch in schema["y"]["anyOf"]] == [MIN_SAMPLES] * 3
    # One row of X is outside the document (X has fewer than minItems rows), and the API refuses it.
    response = client.post("/v1/datasets", json={"X": [[1.0]], "y": [0, 1]})
    problem = assert_problem(response, 422, f"X must hold at least {MIN_SAMPLES} samples, got 1")
    assert problem["errors"] == [{"loc": ["body", "X"], "msg": "must hold at least 2 samples, got 1"}]


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"1e999"])
def test_non_finite_json_numbers_are_422(client: Client, token: bytes) -> None:
    raw = b'{"name": "nan", "X": [[1.0], [' + token + b']], "y": [0, 1]}'
    assert_problem(
        client.post("/v1/datasets", content=raw, headers={"content-type": "application/json"}), 422
    )


@pytest.mark.parametrize("content_type", ["application/json", "text/csv"])
def test_an_unknown_query_parameter_is_422_naming_it(client: Client, content_type: str) -> None:
    body = b'{"name": "x", "X": [[1], [2]], "y": [0, 1]}' if "json" in content_type else b"a,b\n1,0\n2,1\n"
    response = client.post("/v1/datasets?nmae=x", content=body, headers={"content-type": content_type})
    problem = assert_problem(response, 422, "'nmae'", "allowed: name, label, task")
    assert problem["errors"] == [{"loc": ["query", "nmae"], "msg": "unknown query parameter"}]


def test_label_names_the_label_column_of_a_json_dataset(client: Client) -> None:
    payload = {"name": "pets", "X": [[4.1, 30], [9.5, 60], [3.8, 25]], "y": ["cat", "dog", "cat"]}
    body = created(client.post("/v1/datasets?label=species", json=payload))
    assert body["source"] == {"kind": "json", "columns": ["x0", "x1", "species"], "label": "species"}
    assert client.get(f"/v1/datasets/{body['id']}").json()["source"] == body["source"]
    response = client.get(f"/v1/datasets/{body['id']}/data", headers={"accept": "text/csv"})
    assert response.text == "x0,x1,species\r\n4.1,30.0,cat\r\n9.5,60.0,dog\r\n3.8,25.0,cat\r\n"
    # The CSV form uploads again with its label column named: the same arrays, the same hash.
    again = created(client.post("/v1/datasets?label=species", content=response.content, headers=CSV_TYPE))
    assert (again["sha256"], again["classes"]) == (body["sha256"], body["classes"])
    assert again["source"] == {"kind": "csv", "columns": ["x0", "x1", "species"], "label": "species"}


def test_label_names_each_column_of_several_outputs(client: Client) -> None:
    payload = {"name": "tags", "X": [[1.0], [2.0], [3.0]], "y": [[1, 0], [0, 1], [1, 1]]}
    body = created(client.post("/v1/datasets?label=tag", json=payload))
    assert (body["task"], body["source"]["columns"]) == ("multilabel", ["x0", "tag0", "tag1"])
    text = client.get(f"/v1/datasets/{body['id']}/data", headers={"accept": "text/csv"}).text
    assert text == "x0,tag0,tag1\r\n1.0,1,0\r\n2.0,0,1\r\n3.0,1,1\r\n"


def test_a_label_after_the_feature_columns_is_not_a_clash(client: Client) -> None:
    body = created(client.post("/v1/datasets?label=x2", json={"X": [[1, 2], [3, 4]], "y": [0, 1]}))
    text = client.get(f"/v1/datasets/{body['id']}/data", headers={"accept": "text/csv"}).text
    assert text.splitlines()[0] == "x0,x1,x2"


@pytest.mark.parametrize(
    ("label", "y", "fragments"),
    [
        ("x0", [0, 1], ("label 'x0' clashes with feature column(s) x0", "x0 .. x1")),
        ("x1", [0, 1], ("label 'x1' clashes with feature column(s) x1",)),
        ("x", [[0, 1], [1, 0]], ("label 'x' (columns x0, x1) clashes with feature column(s) x0, x1",)),
    ],
)
def test_a_label_that_clashes_with_a_feature_column_is_422(
    client: Client, label: str, y: list[Any], fragments: tuple[str, ...]
) -> None:
    before = client.get("/v1/datasets", params={"limit": 500}).json()["items"]
    response = client.post("/v1/datasets", params={"label": label}, json={"X": [[1, 2], [3, 4]], "y": y})
    problem = assert_problem(response, 422, *fragments)
    assert problem["errors"][0]["loc"] == ["query", "label"]
    assert client.get("/v1/datasets", params={"limit": 500}).json()["items"] == before


@pytest.mark.parametrize("label", [" y", "y\t"])
def test_a_label_with_whitespace_around_it_is_422(client: Client, label: str) -> None:
    response = client.post("/v1/datasets", params={"label": label}, json={"X": [[1], [2]], "y": [0, 1]})
    msg = f"label {label!r} begins or ends with whitespace, which a CSV header drops"
    problem = assert_problem(response, 422, msg)
    assert problem["errors"] == [{"loc": ["query", "label"], "msg": msg}]


def test_npz_upload_with_a_label_column_name(client: Client) -> None:
    raw = npz_bytes(X=np.array([[1.0], [2.0]]), y=np.array(["a", "b"]))
    body = created(client.post("/v1/datasets?label=kind&name=pair", content=raw, headers=NPZ_TYPE))
    assert (body["name"], body["source"]) == (
        "pair",
        {"kind": "npz", "columns": ["x0", "kind"], "label": "kind"},
    )
    text = client.get(f"/v1/datasets/{body['id']}/data", headers={"accept": "text/csv"}).text
    assert text == "x0,kind\r\n1.0,a\r\n2.0,b\r\n"
    assert_problem(client.post("/v1/datasets?label=x0", content=raw, headers=NPZ_TYPE), 422, "'x0' clashes")


def test_the_query_name_takes_the_place_of_the_body_name(client: Client) -> None:
    arrays = {"name": "body-name", "X": [[1], [2]], "y": [0, 1]}
    assert created(client.post("/v1/datasets?name=query-name", json=arrays))["name"] == "query-name"
    generator = {"name": "body-name", "generator": {"kind": "xor", "n_samples": 10}}
    assert created(client.post("/v1/datasets?name=drawn", json=generator))["name"] == "drawn"


def test_a_json_body_without_a_name_takes_the_query_name_or_upload(client: Client) -> None:
    arrays = {"X": [[1], [2]], "y": [0, 1]}
    assert created(client.post("/v1/datasets?name=from-query", json=arrays))["name"] == "from-query"
    # As a CSV or .npz upload without a name.
    assert created(client.post("/v1/datasets", json=arrays))["name"] == "upload"
    assert created(client.post("/v1/datasets", json={"generator": {"kind": "moons"}}))["name"] == "upload"


def test_the_query_task_takes_the_place_of_the_body_task(client: Client) -> None:
    arrays = {"name": "c", "X": [[1], [2], [3]], "y": [0, 1, 2]}
    body = created(client.post("/v1/datasets?task=regression", json={**arrays, "task": "multiclass"}))
    assert (body["task"], body["classes"]) == ("regression", None)
    assert stored(client, body["id"])[1].tolist() == [0.0, 1.0, 2.0]
    assert created(client.post("/v1/datasets?task=regression", json=arrays))["task"] == "regression"
    assert created(client.post("/v1/datasets?task=multiclass", json=arrays))["task"] == "multiclass"


def test_the_query_task_applies_to_a_generators_labels(client: Client) -> None:
    generator = {"kind": "xor", "n_samples": 20, "seed": 3}
    response = client.post("/v1/datasets?task=regression&label=target", json={"generator": generator})
    body = created(response)
    assert (body["task"], body["classes"], body["class_counts"]) == ("regression", None, None)
    assert body["source"]["generator"]["kind"] == "xor" and body["source"]["label"] == "target"
    expected_X, expected_y = make_dataset("xor", 20, noise=0.1, rng=np.random.default_rng(3))
    X, y = stored(client, body["id"])
    np.testing.assert_array_equal(X, expected_X)
    assert y.dtype == np.float64 and y.tolist() == expected_y.astype(np.float64).tolist()
    assert set(y.tolist()) == {0.0, 1.0}


def test_a_task_that_a_generators_labels_do_not_fit_is_the_422_of_such_labels(client: Client) -> None:
    generator = {"kind": "blobs", "n_samples": 30, "seed": 1}
    response = client.post("/v1/datasets?task=binary", json={"name": "b", "generator": generator})
    msg = "must hold exactly 2 classes for task 'binary', found 3: [0, 1, 2]"
    problem = assert_problem(response, 422, f"generator.y {msg}")
    assert problem["errors"] == [{"loc": ["body", "generator", "y"], "msg": msg}]
    uploaded = client.post("/v1/datasets?task=binary", json={"X": [[1], [2], [3]], "y": [0, 1, 2]})
    assert assert_problem(uploaded, 422)["errors"] == [{"loc": ["body", "y"], "msg": msg}]


def test_unknown_content_type_is_415(client: Client) -> None:
    response = client.post("/v1/datasets", content=b"<xml/>", headers={"content-type": "application/xml"})
    assert_problem(response, 415, "application/json", "text/csv", "application/x-npz")


# ---- generators ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("generator", "task", "classes", "n_features"),
    [
        ({"kind": "xor", "n_samples": 40, "noise": 0.1, "seed": 3}, "binary", [0, 1], 2),
        ({"kind": "spiral", "n_samples": 31, "n_classes": 4, "seed": 5}, "multiclass", [0, 1, 2, 3], 2),
        ({"kind": "blobs", "n_samples": 30, "n_features": 3, "seed": 1}, "multiclass", [0, 1, 2], 3),
        (
            {"kind": "linear", "n_samples": 25, "n_features": 4, "noise": 0.5, "seed": 2},
            "regression",
            None,
            4,
        ),
    ],
)
def test_generator_datasets_have_the_generators_task_and_arrays(
    client: Client, generator: dict[str, Any], task: str, classes: list[int] | None, n_features: int
) -> None:
    body = created(client.post("/v1/datasets", json={"name": generator["kind"], "generator": generator}))
    assert (body["task"], body["classes"], body["n_features"]) == (task, classes, n_features)
    assert body["source"]["kind"] == "generator" and body["source"]["generator"]["seed"] == generator["seed"]
    expected_X, expected_y = make_dataset(
        generator["kind"],
        generator["n_samples"],
        noise=generator.get("noise", 0.1),
        n_classes=generator.get("n_classes"),
        n_features=generator.get("n_features"),
        rng=np.random.default_rng(generator["seed"]),
    )
    X, y = stored(client, body["id"])
    np.testing.assert_array_equal(X, expected_X)
    np.testing.assert_array_equal(y, expected_y)
    if classes is not None:
        assert body["class_counts"] == np.bincount(expected_y).tolist()
        # Balanced classes: sizes differ by at most one and add up to n_samples.
        assert sum(body["class_counts"]) == generator["n_samples"]
        assert max(body["class_counts"]) - min(body["class_counts"]) <= 1


def test_inconsistent_generator_is_422_naming_it(client: Client) -> None:
    response = client.post(
        "/v1/datasets", json={"name": "x", "generator": {"kind": "xor", "n_classes": 3, "seed": 1}}
    )
    body = assert_problem(response, 422, "generator", "binary")
    assert body["errors"][0]["loc"] == ["body", "generator"]
    response = client.post("/v1/datasets", json={"name": "x", "generator": {"kind": "checkers"}})
    assert_problem(response, 422, "generator.kind", "spiral")


# ---- CSV ----------------------------------------------------------------------------------------

IRIS_CSV = (
    "sepal_length,species,sepal_width\n"
    "5.1,setosa,3.5\n"
    "7.0,versicolor,3.2\n"
    "6.3,virginica,3.3\n"
    "4.9,setosa,3.0\n"
    '5.5,"versicolor, large",2.5\n'
)


def test_csv_with_string_labels_round_trips_through_data_as_csv(client: Client) -> None:
    body = created(
        client.post("/v1/datasets?label=species&name=iris", content=IRIS_CSV.encode(), headers=CSV_TYPE)
    )
    assert (body["name"], body["n_samples"], body["n_features"], body["task"]) == ("iris", 5, 2, "multiclass")
    assert body["classes"] == ["setosa", "versicolor", "versicolor, large", "virginica"]
    assert body["class_counts"] == [2, 1, 1, 1]
    assert body["source"] == {
        "kind": "csv",
        "columns": ["sepal_length", "species", "sepal_width"],
        "label": "species",
    }

    response = client.get(f"/v1/datasets/{body['id']}/data", headers={"accept": "text/csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    original = list(csv.reader(io.StringIO(IRIS_CSV)))
    assert rows[0] == original[0]
    for got, sent in zip(rows[1:], original[1:], strict=True):
        assert got[1] == sent[1]
        assert [float(got[0]), float(got[2])] == [float(sent[0]), float(sent[2])]

    again = created(
        client.post("/v1/datasets?label=species&name=iris", content=response.content, headers=CSV_TYPE)
    )
    assert again["id"] != body["id"]
    assert (again["sha256"], again["classes"]) == (body["sha256"], body["classes"])


def test_csv_round_trips_floats_exactly(client: Client) -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(6, 2)) * 10.0 ** rng.integers(-300, 300, size=(6, 2))
    y = rng.normal(size=6)
    body = created(client.post("/v1/datasets", json={"name": "f", "X": X.tolist(), "y": y.tolist()}))
    text = client.get(f"/v1/datasets/{body['id']}/data", headers={"accept": "text/csv"}).text
    assert text.splitlines()[0] == "x0,x1,y"
    again = created(client.post("/v1/datasets", content=text.encode(), headers=CSV_TYPE))
    assert again["sha256"] == body["sha256"]
    X2, y2 = stored(client, again["id"])
    assert X2.tobytes() == X.tobytes() and y2.tobytes() == y.tobytes()


def test_csv_label_defaults_to_the_last_column_and_numbers_stay_numbers(client: Client) -> None:
    text = "a,b,label\n1,2,0\n3,4,1\n5,6,1\n"
    body = created(client.post("/v1/datasets", content=text.encode(), headers=CSV_TYPE))
    assert (body["name"], body["task"], body["classes"], body["class_counts"]) == (
        "upload",
        "binary",
        [0, 1],
        [1, 2],
    )
    X, _ = stored(client, body["id"])
    np.testing.assert_array_equal(X, [[1, 2], [3, 4], [5, 6]])
    data = client.get(f"/v1/datasets/{body['id']}/data").json()
    assert data == {"X": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], "y": [0, 1, 1]}


def test_csv_task_query_overrides_inference(client: Client) -> None:
    text = "a,y\n1,0\n2,1\n3,2\n"
    body = created(client.post("/v1/datasets?task=regression", content=text.encode(), headers=CSV_TYPE))
    assert (body["task"], body["classes"]) == ("regression", None)
    response = client.post("/v1/datasets?task=binary", content=text.encode(), headers=CSV_TYPE)
    assert_problem(response, 422, "exactly 2 classes", "[0, 1, 2]")


def test_csv_byte_order_mark_and_crlf_are_accepted(client: Client) -> None:
    raw = "\ufeffa,b,y\r\n1,2,x\r\n\r\n3,4,z\r\n".encode()
    body = created(
        client.post("/v1/datasets", content=raw, headers={"content-type": "text/csv; charset=utf-8"})
    )
    assert (body["n_samples"], body["classes"], body["source"]["columns"]) == (2, ["x", "z"], ["a", "b", "y"])


@pytest.mark.parametrize(
    ("text", "query", "fragments"),
    [
        ("", "", ("is empty",)),
        ("\n\n", "", ("is empty",)),
        ("a,b,y\n", "", ("no data rows",)),
        ("a,b,y\n1,2,0\n3,oops,1\n", "", ("row 2 (line 3)", "column 'b'", "'oops'")),
        ("a,b,y\n1,2,0\n3,,1\n", "", ("row 2 (line 3)", "column 'b'", "''")),
        ("a,b,y\n1,nan,0\n3,4,1\n", "", ("row 1 (line 2)", "column 'b'", "'nan'")),
        ("a,b,y\n1,2,0\n3,4\n", "", ("row 2 (line 3) has 2 fields but the header has 3",)),
        ("a,b,y\n1,2,0,9\n3,4,1\n", "", ("row 1 (line 2) has 4 fields",)),
        (
            "a,b,y\n1,2,0\n3,4,1\n",
            "?label=target",
            ("label column 'target' is not in the header", "['a', 'b', 'y']"),
        ),
        ("a,b,y\n1,2,0\n3,4, \n", "", ("row 2 (line 3) has an empty label",)),
        ("a,a,y\n1,2,0\n3,4,1\n", "", ("more than once", "['a']")),
        ("y\n0\n1\n", "", ("at least one feature column",)),
        ('a,y\n1,0\n"2,1\n', "", ("malformed",)),
        ("a,y\n1,0\n2,inf\n", "", ("row 2, label column 'y'", "'inf'")),
    ],
)
def test_malformed_csv_is_422_naming_the_place(
    client: Client, text: str, query: str, fragments: tuple[str, ...]
) -> None:
    assert_problem(
        client.post(f"/v1/datasets{query}", content=text.encode(), headers=CSV_TYPE),
        422,
        "CSV body",
        *fragments,
    )


def test_csv_that_is_not_utf8_is_422(client: Client) -> None:
    response = client.post("/v1/datasets", content="a,y\n1,é\n2,b\n".encode("latin-1"), headers=CSV_TYPE)
    assert_problem(response, 422, "UTF-8")
    response = client.post(
        "/v1/datasets", content=b"a,y\n", headers={"content-type": "text/csv; charset=latin-1"}
    )
    assert_problem(response, 415, "UTF-8")


# ---- npz ----------------------------------------------------------------------------------------


def test_npz_upload_with_string_labels(client: Client) -> None:
    X = np.arange(12, dtype=np.int32).reshape(4, 3)
    raw = npz_bytes(X=X, y=np.array(["b", "a", "c", "a"]))
    body = created(client.post("/v1/datasets?name=arrays", content=raw, headers=NPZ_TYPE))
    assert (body["name"], body["n_samples"], body["n_features"]) == ("arrays", 4, 3)
    assert (body["task"], body["classes"], body["class_counts"]) == ("multiclass", ["a", "b", "c"], [2, 1, 1])
    assert body["source"] == {"kind": "npz"}
    stored_X, stored_y = stored(client, body["id"])
    assert stored_X.dtype == np.float64
    np.testing.assert_array_equal(stored_X, X)
    assert stored_y.tolist() == [1, 0, 2, 0]
    assert client.get(f"/v1/datasets/{body['id']}/data").json()["y"] == ["b", "a", "c", "a"]


def test_npz_upload_as_octet_stream_keeps_float_targets_bit_for_bit(client: Client) -> None:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(5, 2)), rng.normal(size=5)
    response = client.post(
        "/v1/datasets", content=npz_bytes(X=X, y=y), headers={"content-type": "application/octet-stream"}
    )
    body = created(response)
    assert body["task"] == "regression"
    stored_X, stored_y = stored(client, body["id"])
    assert stored_X.tobytes() == X.tobytes() and stored_y.tobytes() == y.tobytes()
    data = client.get(f"/v1/datasets/{body['id']}/data").json()
    assert data["X"] == X.tolist() and data["y"] == y.tolist()


@pytest.mark.parametrize(
    ("raw", "fragments"),
    [
        (b"X,y\n1,2\n", ("not an .npz archive",)),
        (b"PK\x03\x04truncated", ("not a readable .npz archive",)),
        (npz_bytes(X=np.ones((2, 2))), ("exactly the arrays 'X' and 'y'", "['X']")),
        (npz_bytes(X=np.ones((2, 2)), y=np.ones(2), w=np.ones(2)), ("exactly the arrays 'X' and 'y'",)),
        (npz_bytes(X=np.array([[1.0], [np.nan]]), y=np.array([0, 1])), ("X[1][0]", "finite")),
        (npz_bytes(X=np.ones(3), y=np.array([0, 1, 1])), ("X must have 2 dimensions",)),
        (npz_bytes(X=np.ones((2, 1), dtype=np.complex128), y=np.array([0, 1])), ("real numbers",)),
        (
            npz_bytes(X=np.ones((2, 1)), y=np.zeros((2, 1, 1))),
            ("y must have shape (n_samples,) or (n_samples, n_outputs)",),
        ),
    ],
)
def test_invalid_npz_is_422(client: Client, raw: bytes, fragments: tuple[str, ...]) -> None:
    assert_problem(client.post("/v1/datasets", content=raw, headers=NPZ_TYPE), 422, *fragments)


def test_npz_with_object_arrays_is_refused_without_unpickling(client: Client) -> None:
    buffer = io.BytesIO()
    labels = np.array([{"a": 1}, {"b": 2}], dtype=object)
    np.savez(buffer, X=np.ones((2, 1)), y=labels, allow_pickle=True)
    response = client.post("/v1/datasets", content=buffer.getvalue(), headers=NPZ_TYPE)
    assert_problem(response, 422, "member 'y'", "dtype object", "never unpickled")


# ---- idempotency --------------------------------------------------------------------------------


def test_same_idempotency_key_and_body_returns_the_original_dataset(client: Client) -> None:
    payload = {"name": "once", "X": [[1], [2]], "y": [0, 1]}
    headers = {"Idempotency-Key": "upload-once-1"}
    first = created(client.post("/v1/datasets", json=payload, headers=headers))
    replay = client.post("/v1/datasets", json=payload, headers=headers)
    assert replay.status_code == 200 and replay.headers["idempotent-replayed"] == "true"
    assert replay.headers["location"] == f"/v1/datasets/{first['id']}"
    assert replay.json() == first
    assert "idempotent-replayed" not in client.post("/v1/datasets", json=payload).headers


def test_same_idempotency_key_with_another_body_is_409(client: Client) -> None:
    headers = {"Idempotency-Key": "upload-twice-1"}
    first = created(
        client.post("/v1/datasets", json={"name": "a", "X": [[1], [2]], "y": [0, 1]}, headers=headers)
    )
    response = client.post("/v1/datasets", json={"name": "b", "X": [[1], [2]], "y": [0, 1]}, headers=headers)
    assert_problem(response, 409, "upload-twice-1", "different request", first["id"])
    # The query decides the dataset too: the same CSV with another label column is another request.
    csv_headers = {**CSV_TYPE, "Idempotency-Key": "csv-1"}
    text = b"a,b\n1,0\n2,1\n"
    created(client.post("/v1/datasets?label=b", content=text, headers=csv_headers))
    assert_problem(
        client.post("/v1/datasets?label=a", content=text, headers=csv_headers), 409, "different request"
    )
    # So it does with a JSON body: another label column name is another request.
    json_headers = {"Idempotency-Key": "json-label-1"}
    payload = {"X": [[1], [2]], "y": [0, 1]}
    created(client.post("/v1/datasets?label=a", json=payload, headers=json_headers))
    assert_problem(
        client.post("/v1/datasets?label=b", json=payload, headers=json_headers), 409, "different request"
    )


def test_idempotency_key_of_a_deleted_dataset_is_409(client: Client) -> None:
    payload = {"name": "gone", "X": [[1], [2]], "y": [0, 1]}
    headers = {"Idempotency-Key": "deleted-1"}
    first = created(client.post("/v1/datasets", json=payload, headers=headers))
    assert client.request("DELETE", f"/v1/datasets/{first['id']}").status_code == 204
    assert_problem(client.post("/v1/datasets", json=payload, headers=headers), 409, "deleted")


def test_failed_request_does_not_use_up_its_idempotency_key(client: Client) -> None:
    headers = {"Idempotency-Key": "retry-after-fix"}
    assert_problem(
        client.post("/v1/datasets", json={"name": "x", "X": [[1]], "y": [0]}, headers=headers), 422
    )
    created(client.post("/v1/datasets", json={"name": "x", "X": [[1], [2]], "y": [0, 1]}, headers=headers))


def test_a_request_whose_key_is_pending_waits_for_that_dataset(client: Client) -> None:
    store, settings = client.app.state.store, client.app.state.settings
    X, y = np.array([[1.0], [2.0]]), np.array([0, 1])
    # A concurrent request with the same key and body reserved it first, and is still storing.
    claim = reserve(store, "default", IDEMPOTENCY_SCOPE, "race-1", "same", 201)
    assert isinstance(claim, Claim)
    stored: list[DatasetRecord] = []

    def finish() -> None:
        time.sleep(0.3)
        stored.append(
            ingest_arrays(
                store, settings, owner="default", name="w", X=X, y=y, task=None, source={}, claim=claim
            )
        )

    winner = threading.Thread(target=finish)
    winner.start()

    def create(_claim: Claim | None) -> DatasetRecord:
        pytest.fail("a second request with the key created a dataset")

    scope = upload_scope(store, "default")
    record, replayed = create_once(
        store, "default", scope, "race-1", "same", create, status_code=201, wait_s=REQUEST_S
    )
    winner.join()
    assert (record.id, replayed) == (stored[0].id, True)


def test_a_key_still_pending_after_the_wait_is_a_409_to_retry(make_client: Any) -> None:
    client = make_client(idempotency_wait_s=0.2)
    body = json.dumps({"name": "x", "X": [[1], [2]], "y": [0, 1]}).encode()
    fingerprint = request_fingerprint("application/json", [], body)
    store = client.app.state.store
    assert isinstance(reserve(store, "default", IDEMPOTENCY_SCOPE, "slow", fingerprint, 201), Claim)
    headers = {"Idempotency-Key": "slow", "content-type": "application/json"}

    response = client.post("/v1/datasets", content=body, headers=headers)

    problem = assert_problem(response, 409, "'slow'", "still creating its dataset", "retry")
    assert problem["errors"] == [{"loc": ["header", "idempotency-key"], "msg": "in progress"}]
    assert response.headers["retry-after"] == "1"
    assert client.get("/v1/datasets").json()["items"] == []


def test_ingest_arrays_names_fields_with_the_given_prefix(client: Client) -> None:
    """Training jobs store their inline data through ingest_arrays; its errors name the job's fields."""
    store, settings = client.app.state.store, client.app.state.settings
    with pytest.raises(InvalidInput) as bad_x:
        ingest_arrays(
            store,
            settings,
            owner="default",
            name="inline",
            X=np.array([[1.0], [np.inf]]),
            y=np.array([0, 1]),
            task=None,
            source={},
            field_prefix="dataset.",
        )
    assert bad_x.value.errors == [
        {"loc": ["body", "dataset", "X", 1, 0], "msg": "must be a finite number, got inf"}
    ]
    with pytest.raises(InvalidInput, match=r"dataset\.y must hold exactly 2 classes"):
        ingest_arrays(
            store,
            settings,
            owner="default",
            name="inline",
            X=np.ones((3, 1)),
            y=["a", "b", "c"],
            task="binary",
            source={},
            field_prefix="dataset.",
        )
    record = ingest_arrays(
        store,
        settings,
        owner="default",
        name="inline",
        X=np.ones((3, 1)),
        y=["b", "a", "b"],
        task=None,
        source={"kind": "json"},
    )
    assert (record.task, record.classes, record.class_counts) == ("binary", ["a", "b"], [1, 2])


# ---- list, get, data, delete ------------------------------------------------------------------------


def test_pagination_yields_every_dataset_exactly_once(make_client: Callable[..., Client]) -> None:
    fresh = make_client()
    ids = [
        created(fresh.post("/v1/datasets", json={"name": f"d{i}", "X": [[i], [i + 1]], "y": [0, 1]}))["id"]
        for i in range(7)
    ]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        response = fresh.get("/v1/datasets", params={"limit": 3, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200
        page = response.json()
        assert len(page["items"]) <= 3
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == ids[::-1]  # newest first, each exactly once
    everything = fresh.get("/v1/datasets").json()
    assert [item["id"] for item in everything["items"]] == ids[::-1] and everything["next_cursor"] is None
    assert everything["items"][0]["name"] == "d6"


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("cursor=bogus", "cursor"),
        ("cursor=mdl_066124c74d730951d85760b6", "query parameter cursor must be a dataset id"),
    ],
)
def test_bad_list_parameters_are_422(client: Client, query: str, fragment: str) -> None:
    assert_problem(client.get(f"/v1/datasets?{query}"), 422, fragment)


def test_a_bad_cursor_is_the_422_every_list_gives(client: Client) -> None:
    assert_bad_cursor(
        client.get("/v1/datasets", params={"cursor": "job_0661234567890abcdef01234"}),
        "dataset",
        "job_0661234567890abcdef01234",
    )


@pytest.mark.parametrize("key", BAD_IDEMPOTENCY_KEYS)
def test_a_bad_idempotency_key_is_the_422_every_create_gives(client: Client, key: str) -> None:
    before = client.get("/v1/datasets", params={"limit": 500}).json()["items"]
    payload = {"name": "keyed", "X": [[1], [2]], "y": [0, 1]}
    response = client.post("/v1/datasets", json=payload, headers={"Idempotency-Key": key})
    assert_bad_idempotency_key(response, key)
    assert client.get("/v1/datasets", params={"limit": 500}).json()["items"] == before  # nothing was stored


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", ""), ("GET", "/data"), ("DELETE", "")],
)
def test_unknown_dataset_is_404(client: Client, method: str, path: str) -> None:
    response = client.request(method, f"/v1/datasets/ds_0000000000000000000000ff{path}")
    assert_problem(response, 404, "ds_0000000000000000000000ff")


def test_data_answers_json_unless_csv_is_preferred(client: Client) -> None:
    body = created(client.post("/v1/datasets", json={"name": "n", "X": [[1.5], [2.5]], "y": [3, 9]}))
    url = f"/v1/datasets/{body['id']}/data"
    assert client.get(url).json() == {"X": [[1.5], [2.5]], "y": [3, 9]}
    for accept in ("application/json", "*/*", "text/csv;q=0.5, application/json", "image/png"):
        response = client.get(url, headers={"accept": accept})
        assert response.headers["content-type"] == "application/json", accept
    for accept in ("text/csv", "text/csv, application/json;q=0.9"):
        response = client.get(url, headers={"accept": accept})
        assert response.text == "x0,y\r\n1.5,3\r\n2.5,9\r\n", accept


def test_delete_removes_the_dataset(client: Client) -> None:
    body = created(client.post("/v1/datasets", json={"name": "bye", "X": [[1], [2]], "y": [0, 1]}))
    response = client.request("DELETE", f"/v1/datasets/{body['id']}")
    assert response.status_code == 204 and response.content == b""
    assert_problem(client.get(f"/v1/datasets/{body['id']}"), 404)
    assert_problem(client.request("DELETE", f"/v1/datasets/{body['id']}"), 404)


def test_delete_while_a_queued_job_uses_it_is_409(client: Client) -> None:
    body = created(client.post("/v1/datasets", json={"name": "busy", "X": [[1], [2]], "y": [0, 1]}))
    create_job(
        client.app.state.store,
        config={"epochs": 1},
        config_hash="0" * 64,
        dataset_id=body["id"],
        max_queued=1000,
    )
    assert_problem(
        client.request("DELETE", f"/v1/datasets/{body['id']}"), 409, body["id"], "queued or running"
    )
    assert client.get(f"/v1/datasets/{body['id']}").status_code == 200


# ---- limits -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("X", "fragments"),
    [
        ([[1.0]] * 11, ("11 rows", "limit is 10", "max_dataset_rows")),
        ([[1.0] * 4] * 2, ("4 features", "limit is 3", "max_dataset_features")),
        ([[1.0] * 3] * 7, ("21 numbers", "limit is 20", "max_dataset_elements")),
    ],
)
def test_json_dataset_over_the_limits_is_413(
    small: Client, X: list[list[float]], fragments: tuple[str]
) -> None:
    response = small.post(
        "/v1/datasets", json={"name": "big", "X": X, "y": [0, 1] * (len(X) // 2) + [0] * (len(X) % 2)}
    )
    assert_problem(response, 413, *fragments)


def test_csv_over_the_row_limit_is_413(small: Client) -> None:
    text = "a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(11))
    assert_problem(
        small.post("/v1/datasets", content=text.encode(), headers=CSV_TYPE),
        413,
        "11 rows",
        "max_dataset_rows",
    )
    text = "a,b,c,d,y\n1,2,3,4,0\n"
    assert_problem(
        small.post("/v1/datasets", content=text.encode(), headers=CSV_TYPE), 413, "4 features", "limit is 3"
    )


def test_npz_over_the_limits_is_413(small: Client) -> None:
    raw = npz_bytes(X=np.ones((11, 1)), y=np.arange(11) % 2)
    assert_problem(
        small.post("/v1/datasets", content=raw, headers=NPZ_TYPE), 413, "11 rows", "max_dataset_rows"
    )
    raw = npz_bytes(X=np.ones((7, 3)), y=np.arange(7) % 2)
    assert_problem(
        small.post("/v1/datasets", content=raw, headers=NPZ_TYPE), 413, "holds 21 elements", "limit is 20"
    )


def test_generator_over_the_limits_is_422_naming_the_limit(small: Client) -> None:
    response = small.post("/v1/datasets", json={"name": "g", "generator": {"kind": "xor", "n_samples": 11}})
    body = assert_problem(response, 422, "11", "limit is 10", "max_dataset_rows")
    assert body["errors"][0]["loc"] == ["body", "generator", "n_samples"]


def test_body_over_the_size_limit_is_413(small: Client) -> None:
    text = "a,y\n" + "1,0\n" * 2000
    assert_problem(small.post("/v1/datasets", content=text.encode(), headers=CSV_TYPE), 413, "4096 bytes")
