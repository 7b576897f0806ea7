"""Every kind of bad input answers an RFC 9457 problem naming what is wrong, and the service keeps going."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import numpy as np
import orjson
import pytest

from engine.activations import ACTIVATIONS
from engine.losses import LOSSES
from service.errors import (
    Conflict,
    DomainError,
    NotFound,
    QueueFull,
    ServiceUnavailable,
    StaleAttempt,
    StoreUnavailable,
    TooManyRequests,
    field_error,
    field_loc,
    validation_error,
)
from service.services import compute
from tests.service.conftest import Client, assert_problem

JSON = {"content-type": "application/json"}
LOGISTIC = {"type": "logistic_regression", "weights": [0.5, -0.25], "bias": 0.1}


def assert_still_answers(client: Client) -> None:
    response = client.post("/v1/activations/sigmoid", json={"x": [0.0]})
    assert response.status_code == 200
    assert response.json()["y"] == [0.5]


def post_raw(client: Client, path: str, content: bytes, headers: dict[str, str] | None = JSON) -> object:
    return client.post(path, content=content, headers=headers or {})


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (b'{"x": [1.0, NaN]}', ["malformed JSON", "line 1, column 13"]),
        (b'{"x": [Infinity]}', ["malformed JSON", "column 8"]),
        (b'{"x": [-Infinity]}', ["malformed JSON"]),
        (b'{"x": [1e999]}', ["malformed JSON", "infinity"]),
        (b'{"x": [-1e999]}', ["malformed JSON", "infinity"]),
        (b'{"x": [1, 2}', ["malformed JSON", "line 1, column 12"]),
        (b'{"x": [1, 2]}\n{"x": 1}', ["malformed JSON", "line 2"]),
        (b"", ["malformed JSON"]),
        (b"\xff\xfe", ["malformed JSON"]),
    ],
    ids=["nan", "infinity", "-infinity", "1e999", "-1e999", "unclosed", "trailing", "empty", "not-utf8"],
)
def test_malformed_json_and_non_finite_tokens(client: Client, content: bytes, fragments: list[str]) -> None:
    body = assert_problem(post_raw(client, "/v1/activations/relu", content), 422, *fragments)
    assert body["type"] == "urn:descent:problem:invalid-input"
    assert body["errors"][0]["loc"] == ["body"]
    assert_still_answers(client)


@pytest.mark.parametrize(
    ("x", "fragment", "loc"),
    [
        ([[1, 2], [3]], "x is a ragged nested array: x[1] has 1 entries but x[0] has 2", ["body", "x"]),
        ([[1, 2], 3], "x is a ragged nested array: x[1] does not match x[0]", ["body", "x"]),
        ([[[1], [2]], [[3], [4, 5]]], "x[1][1] has 2 entries but x[0][0] has 1", ["body", "x"]),
        ([1, True], "x[1] must be a number, got a boolean", ["body", "x", 1]),
        ([False], "x[0] must be a number, got a boolean", ["body", "x", 0]),
        (True, "x must be a number, got a boolean", ["body", "x"]),
        ([1, "2"], "x[1] must be a number, got a string", ["body", "x", 1]),
        ([[1.0, None]], "x[0][1] must be a number, got null", ["body", "x", 0, 1]),
        ([{"a": 1}], "x[0] must be a number, got an object", ["body", "x", 0]),
        ("1.0", "x must be a number or a nested array of numbers, got a string", ["body", "x"]),
        ([], "x must not be empty", ["body", "x"]),
        ([[], []], "x must not be empty, got shape [2, 0]", ["body", "x"]),
    ],
)
def test_bad_arrays_name_the_field_and_the_element(
    client: Client, x: object, fragment: str, loc: list
) -> None:
    body = assert_problem(client.post("/v1/activations/relu", json={"x": x}), 422, fragment)
    assert body["errors"][0]["loc"] == loc
    assert_still_answers(client)


@pytest.mark.parametrize(
    ("value", "kind"),
    [(True, "a boolean"), (False, "a boolean"), (None, "null"), ("1", "a string"), ({}, "an object")],
)
def test_a_non_number_hidden_in_a_large_array_is_found(client: Client, value: object, kind: str) -> None:
    # Large bodies skip the per-element checks when their bytes prove the arrays hold numbers only.
    values = np.linspace(-1, 1, 20_000).tolist()
    for position in (0, 12_345, 19_999):
        x = values.copy()
        x[position] = value
        response = post_raw(client, "/v1/activations/relu", orjson.dumps({"x": x, "derivative": False}))
        assert_problem(response, 422, f"x[{position}] must be a number, got {kind}")
    assert_still_answers(client)


def test_an_escape_cannot_hide_a_boolean_in_a_large_array(client: Client) -> None:
    values = np.linspace(-1, 1, 20_000).tolist()
    # "\u0074" is a "t" the byte count would not see, making up for the one in "true".
    escaped = b'{"x": ' + orjson.dumps([*values[:-1], True]) + b', "deriva\\u0074ive": false}'
    assert_problem(
        post_raw(client, "/v1/activations/relu", escaped), 422, "x[19999] must be a number, got a boolean"
    )


def test_a_large_ragged_array_is_found(client: Client) -> None:
    rows = np.zeros((5_000, 4)).tolist()
    rows[4321] = [0.0, 0.0, 0.0]
    response = post_raw(client, "/v1/activations/relu", orjson.dumps({"x": rows}))
    assert_problem(response, 422, "x[4321] has 3 entries but x[0] has 4")


def test_a_body_that_is_not_an_object(client: Client) -> None:
    response = client.post("/v1/activations/relu", json=[1, 2])
    assert_problem(response, 422, "the request body must be a JSON object, got an array")


def test_unknown_and_mistyped_fields(client: Client) -> None:
    typo = client.post("/v1/activations/relu", json={"x": [1.0], "derivatve": True})
    assert_problem(typo, 422, "body.derivatve: Extra inputs are not permitted")
    mistyped = client.post("/v1/activations/relu", json={"x": [1.0], "derivative": 1})
    assert_problem(mistyped, 422, "body.derivative: Input should be a valid boolean")
    missing = client.post("/v1/activations/relu", json={"derivative": True})
    body = assert_problem(missing, 422, "body.x: Field required")
    assert body["errors"] == [{"loc": ["body", "x"], "msg": "Field required"}]
    assert_still_answers(client)


def test_unknown_activation_lists_the_allowed_names(client: Client) -> None:
    body = assert_problem(
        client.post("/v1/activations/swish", json={"x": [1.0]}), 422, "unknown activation 'swish'"
    )
    assert all(name in body["detail"] for name in ACTIVATIONS)
    assert body["errors"][0]["loc"] == ["path", "name"]
    assert_problem(client.get("/v1/activations/swish/curve"), 422, "unknown activation 'swish'")
    assert_still_answers(client)


def test_unknown_loss_lists_the_allowed_names(client: Client) -> None:
    body = assert_problem(
        client.post("/v1/losses/hinge", json={"y_true": [1], "y_pred": [1]}), 422, "'hinge'"
    )
    assert all(name in body["detail"] for name in LOSSES)
    assert_still_answers(client)


def test_labels_outside_zero_one_for_binary_cross_entropy(client: Client) -> None:
    response = client.post(
        "/v1/losses/binary_cross_entropy", json={"y_true": [0, 1, 2], "y_pred": [0.1, 0.2, 0.3]}
    )
    assert_problem(response, 422, "y_true must hold labels 0 or 1")
    assert_still_answers(client)


def test_probabilities_outside_zero_one(client: Client) -> None:
    response = client.post("/v1/losses/binary_cross_entropy", json={"y_true": [0, 1], "y_pred": [-0.1, 0.5]})
    assert_problem(response, 422, "y_pred must hold probabilities in [0, 1]")
    response = client.post("/v1/losses/cross_entropy", json={"y_true": [0], "y_pred": [[1.2, -0.2]]})
    assert_problem(response, 422, "probabilities in [0, 1]")
    assert_still_answers(client)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"model": LOGISTIC, "X": [1.0, 2.0]}, "X must have 2 dimension(s), got 1 (shape [2])"),
        ({"model": LOGISTIC, "X": [[[1.0, 2.0]]]}, "X must have 2 dimension(s), got 3"),
        ({"model": LOGISTIC, "X": [[1.0, 2.0, 3.0]]}, "model.weights has 2 entries but X has 3 columns"),
        (
            {"model": {**LOGISTIC, "weights": [[0.5, -0.25]]}, "X": [[1.0, 2.0]]},
            "model.weights must have 1 dimension",
        ),
        ({"model": LOGISTIC, "X": [[1.0, 2.0]], "y": [0, 1]}, "y has 2 rows but X has 1"),
        ({"model": LOGISTIC, "X": [[1.0, 2.0]], "y": [[[0]]]}, "y must have 1 or 2 dimension(s), got 3"),
        ({"model": LOGISTIC, "X": [[1.0, 2.0]], "y": [0.5]}, "0 or 1"),
        ({"model": LOGISTIC, "X": [], "y": []}, "X must have 2 dimension(s), got 1"),
        ({"model": LOGISTIC, "X": [[]], "y": [0]}, "X must not be empty"),
        ({"model": LOGISTIC, "X": [[1.0, 2.0]], "y": [0], "l2": -1}, "body.l2"),
    ],
)
def test_wrong_dimensions(client: Client, body: dict, fragment: str) -> None:
    path = "/v1/gradients" if "y" in body else "/v1/forward"
    assert_problem(client.post(path, json=body), 422, fragment)
    assert_still_answers(client)


def test_body_over_the_limit_with_content_length(make_client) -> None:
    client = make_client(max_body_bytes=100)
    response = client.post("/v1/activations/relu", json={"x": [0.125] * 100})
    assert int(response.request.headers["content-length"]) > 100
    body = assert_problem(response, 413, "exceeds the limit of 100 bytes")
    assert body["type"] == "urn:descent:problem:payload-too-large"
    assert_still_answers(client)


def test_chunked_body_over_the_limit(make_client) -> None:
    client = make_client(max_body_bytes=100)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"x": ['
        for _ in range(40):
            yield b"0.125, "
        yield b"0]}"

    response = client.run(client.httpx.post("/v1/activations/relu", content=chunks(), headers=JSON))
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "exceeds the limit of 100 bytes")
    assert_still_answers(client)


def test_chunked_body_under_the_limit_is_fine(make_client) -> None:
    client = make_client(max_body_bytes=100)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"x": [0.0, '
        yield b"0.0]}"

    response = client.run(client.httpx.post("/v1/activations/sigmoid", content=chunks(), headers=JSON))
    assert response.status_code == 200
    assert response.json()["y"] == [0.5, 0.5]


def test_too_many_elements(make_client) -> None:
    client = make_client(max_array_elements=5)
    response = client.post("/v1/activations/relu", json={"x": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]})
    assert_problem(response, 422, "x holds 6 numbers; the limit is 5")
    assert client.post("/v1/activations/relu", json={"x": [1.0] * 5}).status_code == 200


@pytest.mark.parametrize(
    "headers", [{"content-type": "text/plain"}, {"content-type": "application/x-www-form-urlencoded"}, None]
)
def test_wrong_or_missing_content_type(client: Client, headers: dict[str, str] | None) -> None:
    response = client.post("/v1/activations/relu", content=b'{"x": [1.0]}', headers=headers)
    # Form and plain-text bodies are refused before the route (cross-site safety), a missing type by it;
    # both name JSON.
    body = assert_problem(response, 415, "must be", "application/json")
    if headers is None:
        assert "must be application/json, application/x-npy or application/x-npz" in body["detail"]
    assert body["type"] == "urn:descent:problem:unsupported-media-type"
    assert_still_answers(client)


def test_json_content_type_with_charset_is_accepted(client: Client) -> None:
    headers = {"content-type": "application/json; charset=utf-8"}
    assert client.post("/v1/activations/relu", content=b'{"x": [1.0]}', headers=headers).status_code == 200


def test_unknown_path(client: Client) -> None:
    body = assert_problem(client.get("/v1/nothing-here"), 404, "no resource at /v1/nothing-here")
    assert body["type"] == "urn:descent:problem:not-found"
    assert body["title"] == "Not Found"
    assert_still_answers(client)


def test_an_unknown_path_and_an_unknown_id_are_the_same_problem(client: Client) -> None:
    path = assert_problem(client.get("/v1/nothing-here"), 404)
    job = assert_problem(client.get("/v1/jobs/job_0194b2c3d4e5f6a7b8c9d0e1f2"), 404, "job", "not found")
    model = assert_problem(client.get("/v1/models/mdl_06231f0e9d8c7b6a5f4e3d2c"), 404)
    assert {(b["type"], b["title"]) for b in (path, job, model)} == {
        ("urn:descent:problem:not-found", "Not Found")
    }


def test_wrong_method(client: Client) -> None:
    response = client.request("DELETE", "/v1/activations")
    body = assert_problem(response, 405, "method DELETE is not allowed", "allowed: GET")
    assert body["title"] == "Method Not Allowed"
    assert body["type"] == "urn:descent:problem:method-not-allowed"
    assert response.headers["allow"] == "GET"
    assert_still_answers(client)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/v1/jobs", "GET, POST"),
        ("PUT", "/v1/models", "GET, POST"),
        ("PUT", "/v1/jobs/job_0194b2c3d4e5f6a7b8c9d0e1f2", "DELETE, GET"),
        ("PUT", "/v1/models/mdl_06231f0e9d8c7b6a5f4e3d2c", "DELETE, GET"),
        ("OPTIONS", "/v1/datasets/ds_06231f0e9d8c7b6a5f4e3d2c", "DELETE, GET"),
        ("GET", "/v1/forward", "POST"),
    ],
)
def test_a_wrong_method_names_every_method_of_the_path(
    client: Client, method: str, path: str, allowed: str
) -> None:
    response = client.request(method, path)
    assert_problem(response, 405, f"method {method} is not allowed on {path}; allowed: {allowed}")
    assert response.headers["allow"] == allowed


def test_a_trailing_slash_is_a_problem_naming_the_path_without_it(client: Client) -> None:
    for method in ("GET", "POST"):
        response = client.request(method, "/v1/jobs/")
        assert_problem(response, 404, "no resource at /v1/jobs/; did you mean /v1/jobs?")
        assert "location" not in response.headers
    assert_problem(client.get("/v1/nothing/"), 404, "no resource at /v1/nothing/")
    assert "did you mean" not in client.get("/v1/nothing/").json()["detail"]


@pytest.mark.parametrize(
    ("content", "key"),
    [
        (b'{"x": [1.0], "x": [2.0]}', "x"),
        (b'{"x": [1.0], "derivative": true, "derivative": false}', "derivative"),
        (b'{"x": [1.0], "params": {"alpha": 0.1, "alpha": 0.2}}', "alpha"),
        (b'{"x": [1.0], "x": [2.0], "note": "a \\"quoted\\" word"}', "x"),
    ],
)
def test_repeated_keys_are_refused(client: Client, content: bytes, key: str) -> None:
    body = assert_problem(
        post_raw(client, "/v1/activations/leaky_relu", content), 422, f"repeats the key {key!r}"
    )
    assert body["errors"][0]["loc"] == ["body"]


def test_strings_and_escapes_without_repeated_keys_are_accepted(client: Client) -> None:
    response = post_raw(
        client, "/v1/losses/binary_cross_entropy", b'{"y_true": [1], "y_pred": [0.5], "reduction": "sum"}'
    )
    assert response.status_code == 200
    escaped = b'{"x": [1.0], "deriva\\u0074ive": true}'
    assert post_raw(client, "/v1/activations/relu", escaped).json()["dy"] == [1.0]


def test_non_finite_result_is_a_problem_not_null(client: Client) -> None:
    response = client.post("/v1/activations/leaky_relu", json={"x": [-1e10, 1.0], "params": {"alpha": 1e300}})
    body = assert_problem(response, 422, "result is not finite: y overflowed float64")
    assert body["errors"] == [{"loc": ["response", "y"], "msg": "is not finite (NaN or infinity)"}]
    response = client.post("/v1/losses/mean_squared_error", json={"y_true": [0.0], "y_pred": [1e200]})
    assert_problem(response, 422, "result is not finite: loss")
    assert_still_answers(client)


@pytest.fixture
def error_records() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("descent.errors")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def test_unexpected_error_is_a_generic_500_logged_with_the_request_id(
    client: Client, monkeypatch: pytest.MonkeyPatch, error_records: list[logging.LogRecord]
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internal state")

    monkeypatch.setattr(compute, "evaluate_activation", broken)
    response = client.post("/v1/activations/relu", json={"x": [1.0]}, headers={"x-request-id": "req-42"})
    body = assert_problem(response, 500, "unexpected error", "req-42")
    assert "secret" not in response.text
    assert response.headers["x-request-id"] == "req-42"
    assert body["request_id"] == "req-42"
    [record] = error_records
    assert record.request_id == "req-42"  # type: ignore[attr-defined]
    assert record.exc_info is not None and "secret internal state" in str(record.exc_info[1])
    monkeypatch.undo()
    assert_still_answers(client)


def test_the_error_hierarchy_is_a_leaf_every_layer_may_import() -> None:
    code = (
        "import sys, service.errors; print(' '.join(sorted(m for m in sys.modules if m.startswith(THIRD))))"
    )
    third = "('service', 'engine', 'fastapi', 'starlette', 'pydantic', 'numpy', 'sqlalchemy')"
    out = subprocess.run(
        [sys.executable, "-c", code.replace("THIRD", third)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["service", "service.errors"]


@pytest.mark.parametrize(
    ("error", "status", "title", "slug"),
    [
        (NotFound.resource("job", "job_1"), 404, "Not Found", "not-found"),
        (Conflict("busy"), 409, "Conflict", "conflict"),
        (StaleAttempt("job_1", 2), 409, "Stale Attempt", "stale-attempt"),
        (QueueFull(3), 429, "Queue Full", "queue-full"),
        (StoreUnavailable("down"), 503, "Store Unavailable", "store-unavailable"),
        (field_error("x", "must not be empty"), 422, "Invalid Input", "invalid-input"),
    ],
)
def test_domain_errors_carry_status_title_and_type(
    error: DomainError, status: int, title: str, slug: str
) -> None:
    assert (error.status, error.title, error.type) == (status, title, f"urn:descent:problem:{slug}")


def test_the_store_and_the_http_layer_raise_the_same_classes() -> None:
    assert issubclass(StaleAttempt, Conflict) and issubclass(QueueFull, TooManyRequests)
    assert issubclass(StoreUnavailable, ServiceUnavailable)
    assert NotFound.resource("dataset", "ds_1").detail == "dataset 'ds_1' not found"
    assert QueueFull(3).headers == {"Retry-After": "5"}
    assert ServiceUnavailable("down", retry_after=7).headers == {"Retry-After": "7"}


@pytest.mark.parametrize(
    ("args", "kwargs", "detail", "loc"),
    [
        (("X[3][1]", "must be a number, got null"), {}, "X[3][1] must be a number, got null",
         ["body", "X", 3, 1]),
        (("", "must be a JSON object"), {}, "the request body must be a JSON object", ["body"]),
        (("cursor", "must be a job id"), {"source": "query"}, "query parameter cursor must be a job id",
         ["query", "cursor"]),
        (("Idempotency-Key", "must not be empty"), {"source": "header"},
         "header Idempotency-Key must not be empty", ["header", "idempotency-key"]),
        (("model", "hidden_layers must be positive"), {"detail": "hidden_layers must be positive"},
         "hidden_layers must be positive", ["body", "model"]),
    ],
)  # fmt: skip
def test_field_errors_are_built_one_way(args: tuple[str, str], kwargs: dict, detail: str, loc: list) -> None:
    error = field_error(*args, **kwargs)
    assert (error.status, error.detail) == (422, detail)
    assert error.errors == [{"loc": loc, "msg": args[1]}]


def test_field_loc_splits_keys_and_indices() -> None:
    assert field_loc("model.parameters[10].weights") == ["body", "model", "parameters", 10, "weights"]
    assert field_loc("") == ["body"]


def test_pydantic_errors_lose_the_value_error_prefix() -> None:
    raw = [
        {
            "type": "value_error",
            "loc": ("model",),
            "msg": "Value error, give exactly one of X and dataset_id",
        },
        {"type": "missing", "loc": ("x",), "msg": "Field required"},
    ]
    error = validation_error(raw, prefix=("body",))
    assert error.detail == (
        "2 invalid fields: body.model: give exactly one of X and dataset_id; body.x: Field required"
    )
    assert error.errors == [
        {"loc": ["body", "model"], "msg": "give exactly one of X and dataset_id"},
        {"loc": ["body", "x"], "msg": "Field required"},
    ]
