"""The schemathesis hooks of ``schemathesis.toml``: the model imports schemathesis generates are models.

Cases for POST /v1/models are drawn as the conformance run draws them (the committed document, the
repository's configuration and so its hooks), sent to the app, and must be stored; a hand-made document
shows what ``repair`` keeps and what it changes.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.transport.serialization import Binary

from tests.service import schemathesis_hooks as hooks
from tests.service.conftest import Client, assert_problem

ROOT = Path(__file__).resolve().parents[2]
CONFIG = schemathesis.Config.from_path(ROOT / "schemathesis.toml")
SCHEMA = schemathesis.openapi.from_path(ROOT / "openapi" / "openapi.json", config=CONFIG)
OPERATION = SCHEMA.find_operation_by_id(hooks.OPERATION_ID)
FLOAT32_MAX = float(np.finfo(np.float32).max)


def draw_cases(n: int) -> list[schemathesis.Case]:
    """``n`` positive cases of POST /v1/models, drawn with the hooks applied (fixed seed)."""
    cases: list[schemathesis.Case] = []

    @given(case=OPERATION.as_strategy())
    @settings(
        max_examples=n,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    def collect(case: schemathesis.Case) -> None:
        cases.append(case)

    collect()
    return cases


def post(client: Client, case: schemathesis.Case) -> Any:
    if isinstance(case.body, Binary):
        return client.post("/v1/models", content=case.body.data, headers={"content-type": case.media_type})
    return client.post("/v1/models", content=json.dumps(case.body), headers={"content-type": case.media_type})


def test_schemathesis_toml_loads_the_hooks() -> None:
    # The configuration names this module, so loading it (the CLI run, test_schemathesis.py) registers its
    # hooks for every schema of the process, for models-import alone.
    assert CONFIG.projects.default.hooks == hooks.__name__ == "tests.service.schemathesis_hooks"
    assert hooks.map_body in schemathesis.hooks.get_all_by_name("map_body")
    assert hooks.flatmap_body in schemathesis.hooks.get_all_by_name("flatmap_body")
    context = schemathesis.HookContext(operation=SCHEMA.find_operation_by_id("datasets-create"))
    assert list(schemathesis.hooks.GLOBAL_HOOK_DISPATCHER.applicable("map_body", context)) == []


@pytest.mark.slow
def test_generated_model_imports_are_stored(client: Client) -> None:
    cases = draw_cases(100)
    statuses: dict[str, list[int]] = {"json": [], "npz": []}
    for case in cases:
        response = post(client, case)
        assert response.status_code in (201, 422), response.text[:500]
        if response.status_code == 422:  # a rule the hooks do not know of: named, as every refusal is
            body = assert_problem(response, 422)
            assert body["errors"] and all(error["loc"] and error["msg"] for error in body["errors"])
        if isinstance(case.body, Binary):
            assert case.body.data.startswith(b"PK")
            statuses["npz"].append(response.status_code)
        else:
            assert hooks._is_valid(OPERATION, case.body), case.body
            statuses["json"].append(response.status_code)
    for kind, codes in statuses.items():
        assert len(codes) >= 20, (kind, len(codes))
        assert codes.count(201) >= 0.9 * len(codes), (kind, codes)


def test_repair_fits_fields_and_shapes_to_the_architecture(client: Client) -> None:
    document = {
        "format": "descent.model/v1",
        "architecture": {
            "type": "mlp",
            "n_features": 2,
            "layers": [
                {"units": 3, "activation": "softmax", "params": {"alpha": 0.5}},
                {"units": 1, "activation": "softmax"},
            ],
        },
        "n_features": 5,
        "task": "regression",
        "classes": ["cat", "dog", "eel"],
        "standardization": {"mean": [1.0], "scale": [2.0, 3.0, 4.0]},
        "dtype": "float32",
        "metrics": {"train_loss": 0.5},
        "parameters": {"W0": [[1, 2], [3, 1e39]], "b0": [5], "W7": [[9]]},
    }
    assert hooks._is_valid(OPERATION, document)
    repaired = hooks.repair(document)
    M = FLOAT32_MAX
    assert repaired == {
        "format": "descent.model/v1",
        "architecture": {
            "type": "mlp",
            "n_features": 2,  # the architecture's, for both
            "layers": [
                # softmax only as output; tanh takes no alpha
                {"units": 3, "activation": "tanh", "params": {}},
                # the loss it pairs with, cross_entropy, needs 2 units or more
                {"units": 2, "activation": "softmax"},
            ],
        },
        "n_features": 2,
        "task": "binary",  # two softmax units serve binary (first) and multiclass
        "classes": ["cat", "dog"],
        "standardization": {"mean": [1.0, 1.0], "scale": [2.0, 3.0]},
        "dtype": "float32",
        "metrics": {"train_loss": 0.5},
        # W0 [2, 3] and b0 [3] from their own numbers (1e39 clamped to float32's range); W1 [3, 2] and b1 [2]
        # from all the generated numbers, W7's among them; W7 itself goes.
        "parameters": {
            "W0": [[1, 2, 3], [M, 1, 2]],
            "b0": [5, 5, 5],
            "W1": [[1, 2], [3, M], [5, 9]],
            "b1": [1, 2],
        },
    }
    assert hooks._is_valid(OPERATION, repaired)
    assert document["n_features"] == 5  # the generated document is not changed
    response = client.post("/v1/models", json=repaired)
    assert response.status_code == 201, response.text
    assert response.json()["task"] == "binary"

    # The same model as the .npz export: the binary media types' bodies.
    response = client.post(
        "/v1/models", content=hooks.to_npz(repaired), headers={"content-type": "application/x-npz"}
    )
    assert response.status_code == 201, response.text
    model_id = response.json()["id"]
    exported = np.load(io.BytesIO(client.get(f"/v1/models/{model_id}/export?format=npz").content))
    np.testing.assert_array_equal(exported["W1"], np.array([[1, 2], [3, M], [5, 9]], dtype=np.float32))


def test_a_big_architecture_is_halved_within_the_budget() -> None:
    document = {
        "format": "descent.model/v1",
        "architecture": {
            "type": "softmax_regression",
            "layers": [{"units": 1_000_000, "activation": "softmax"}],
            "loss": "cross_entropy",
        },
        "n_features": 7,
        "task": "multiclass",
        "dtype": "float64",
        "parameters": {"W0": [[0.5]], "b0": [0.25]},
    }
    repaired = hooks.repair(document)
    # 7 features keep; the units halve until 7 * k + k <= 10,000: 1,000,000 / 2**7 = 7,812 is too many,
    # / 2**8 = 3,906 too, ... / 2**10 = 976 fits (7,808).
    assert repaired["architecture"]["layers"] == [{"units": 976, "activation": "softmax"}]
    assert np.shape(repaired["parameters"]["W0"]) == (7, 976)
    assert repaired["classes"] == list(range(976))


def test_documents_not_valid_by_the_schema_are_left_alone() -> None:
    # A negative case must stay one: repairing it could make it valid, and the service would accept it.
    context = schemathesis.HookContext(operation=OPERATION)
    document = {"format": "descent.model/v1", "n_features": 0, "parameters": {"W0": [[1.0]]}}
    assert hooks.map_body(context, document) is document
    assert hooks.map_body(context, [1, 2]) == [1, 2]
