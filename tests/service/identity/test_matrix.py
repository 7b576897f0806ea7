"""Every /v1 operation of the OpenAPI document × every kind of caller → the status it must get.

Callers: no key, a malformed key, a revoked key, another owner's key (bob), the owner's key (alice)
and an admin's key. The resources named in paths are alice's. Without a valid key every operation is
401; bob gets 404 for alice's resources, word for word what a missing id gets, and his lists and
answers hold nothing of hers; alice and the admin get the operation's success status. The statuses are
printed as a table (``-s``) and summarized in ``docs/identity.md``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from service.app import create_app
from tests.service.conftest import Client, make_settings
from tests.service.identity.conftest import Keys, make_keys
from tests.service.test_models_api import logistic

CALLERS = ("no key", "malformed key", "revoked key", "other owner", "own key", "admin key")
JOB = {
    "dataset": {"generator": {"kind": "xor", "n_samples": 40, "seed": 1}},
    "model": {"type": "logistic_regression"},
    "optimizer": {"name": "sgd", "learning_rate": 0.1},
    "epochs": 2,
}
XOR = {"name": "xor", "generator": {"kind": "xor", "n_samples": 40, "seed": 1}}
# Bodies of the operations whose document examples name resources that do not exist here.
BODIES: dict[str, Any] = {
    "datasets-create": XOR,
    "jobs-create": JOB,
    "models-import": logistic(),
    "models-predict": {"X": [[0.1, 0.2]]},
    "jobs-snapshot-predict": {"X": [[0.1, 0.2]]},
}
# With no worker (DESCENT_WORKERS=0) a job never runs, so it has no snapshot: 409 for its owner and admins.
NO_SNAPSHOT = {"jobs-snapshot", "jobs-snapshot-predict"}
OWNED = {"dataset_id", "job_id", "model_id"}
_RESULTS: dict[tuple[str, str], int] = {}


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    document = create_app().openapi()
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if path.startswith("/v1/")
    ]


OPERATIONS = _operations()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, Keys]]:
    settings = make_settings(
        tmp_path_factory.mktemp("matrix"),
        auth="keys",
        key_cache_s=0,
        rate_limit="",
        auth_failure_rate_limit="",
    )
    client = Client(create_app(settings))
    try:
        yield client, make_keys(client)
    finally:
        client.close()
        _print_table()


def _created(response: httpx.Response) -> str:
    assert response.status_code in (201, 202), response.text
    resource_id: str = response.json()["id"]
    return resource_id


def alice_resources(client: Client, keys: Keys, operation_id: str) -> dict[str, str]:
    """Fresh resources of alice's for one call: a dataset, a model, and a job that is queued for a cancel,
    cancelled (ended) otherwise."""
    alice = Keys.header(keys.alice)
    job_id = _created(client.post("/v1/jobs", json=JOB, headers=alice))
    if operation_id != "jobs-cancel":
        assert client.post(f"/v1/jobs/{job_id}/cancel", headers=alice).status_code == 202
    return {
        "dataset_id": _created(client.post("/v1/datasets", json=XOR, headers=alice)),
        "model_id": _created(client.post("/v1/models", json=logistic(), headers=alice)),
        "job_id": job_id,
    }


def _example_body(operation: dict[str, Any]) -> Any:
    if operation["operationId"] in BODIES:
        return copy.deepcopy(BODIES[operation["operationId"]])
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return None
    examples = content.get("examples") or {}
    return next(iter(examples.values()))["value"] if examples else content.get("example")


def _path_values(operation: dict[str, Any], owned: dict[str, str]) -> dict[str, str]:
    values = dict(owned)
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path" and parameter["name"] not in OWNED:
            schema = parameter.get("schema", {})
            values[parameter["name"]] = parameter.get("example") or schema.get("enum", [None])[0]
    return values


def _headers(caller: str, keys: Keys) -> dict[str, str]:
    return {
        "no key": {},
        "malformed key": {"Authorization": "Bearer dsk_not-a-key"},
        "revoked key": Keys.header(keys.revoked),
        "other owner": Keys.header(keys.bob),
        "own key": Keys.header(keys.alice),
        "admin key": Keys.header(keys.admin),
    }[caller]


def expected(caller: str, operation_id: str, path: str) -> int:
    if caller in ("no key", "malformed key", "revoked key"):
        return 401
    owned = bool(OWNED & set(re.findall(r"\{(\w+)\}", path)))
    if caller == "other owner" and owned:
        return 404
    if operation_id in NO_SNAPSHOT:
        return 409
    return {
        "datasets-create": 201,
        "jobs-create": 202,
        "models-import": 201,
        "jobs-cancel": 202,
        "datasets-delete": 204,
        "jobs-delete": 204,
        "models-delete": 204,
    }.get(operation_id, 200)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(
    ("method", "path", "operation"), OPERATIONS, ids=[op["operationId"] for _, _, op in OPERATIONS]
)
def test_every_operation_answers_every_caller(
    world: tuple[Client, Keys], method: str, path: str, operation: dict[str, Any], caller: str
) -> None:
    client, keys = world
    operation_id = operation["operationId"]
    owned = alice_resources(client, keys, operation_id)
    url = path.format(**_path_values(operation, owned))
    body = _example_body(operation)
    response = client.request(method, url, headers=_headers(caller, keys), json=body)
    _RESULTS[(operation_id, caller)] = response.status_code
    assert response.status_code == expected(caller, operation_id, path), response.text[:500]
    if response.status_code == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    if caller == "other owner":
        _assert_leaks_nothing(client, keys, method, path, operation, owned, response)


def _assert_leaks_nothing(
    client: Client,
    keys: Keys,
    method: str,
    path: str,
    operation: dict[str, Any],
    owned: dict[str, str],
    response: httpx.Response,
) -> None:
    named = set(re.findall(r"\{(\w+)\}", path)) & OWNED
    others = [value for name, value in owned.items() if name not in named]
    text = response.text
    assert "alice" not in text
    assert not any(value in text for value in others), text[:500]
    if response.status_code == 404:
        # Exactly what an id that does not exist gets (with that id in its place).
        missing = {name: value[: value.index("_") + 1] + "0" * 24 for name, value in owned.items()}
        url = path.format(**_path_values(operation, missing))
        answer = client.request(method, url, headers=Keys.header(keys.bob), json=_example_body(operation))
        assert answer.status_code == 404
        detail = answer.json()["detail"]
        for name in named:
            detail = detail.replace(missing[name], owned[name])
        assert response.json()["detail"] == detail


def _print_table() -> None:
    if not _RESULTS:
        return
    width = max(len(op) for op, _ in _RESULTS) + 2
    lines = ["", "operation".ljust(width) + "".join(c.rjust(14) for c in CALLERS)]
    for operation_id in dict.fromkeys(op for op, _ in _RESULTS):
        row = [str(_RESULTS.get((operation_id, c), "")).rjust(14) for c in CALLERS]
        lines.append(operation_id.ljust(width) + "".join(row))
    print("\n".join(lines))
