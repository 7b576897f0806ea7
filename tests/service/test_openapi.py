"""The OpenAPI document: committed copy up to date, documented fields, stable ids, registry names."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from engine.activations import ACTIVATIONS
from engine.losses import LOSSES, REDUCTIONS
from engine.models import MODEL_TYPES
from engine.optimizers import OPTIMIZERS
from engine.schedules import SCHEDULES
from service.app import create_app
from service.http.openapi import DOCUMENTED_MODELS, build_openapi
from service.http.schemas.common import request_body
from service.http.schemas.compute import MODEL_CLASSES
from service.http.schemas.training import OPTIMIZER_OPTIONS, SCHEDULE_OPTIONS

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "openapi" / "openapi.json"
DESCENT = Path(sys.executable).with_name("descent")

OPERATIONS = {
    ("get", "/v1/activations"): "activations-list",
    ("post", "/v1/activations/{name}"): "activations-evaluate",
    ("get", "/v1/activations/{name}/curve"): "activations-curve",
    ("post", "/v1/losses/{name}"): "losses-evaluate",
    ("post", "/v1/forward"): "forward",
    ("post", "/v1/gradients"): "gradients",
    ("get", "/healthz"): "healthz",
    ("get", "/readyz"): "readyz",
    ("get", "/metrics"): "metrics",
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app().openapi()


def test_committed_document_is_what_descent_openapi_prints() -> None:
    printed = subprocess.run([str(DESCENT), "openapi"], capture_output=True, check=True, cwd=ROOT).stdout
    assert printed.endswith(b"}\n")
    assert json.loads(printed) == json.loads(COMMITTED.read_bytes()), (
        "run `make openapi` and commit the result"
    )
    assert printed == COMMITTED.read_bytes()


def test_title_version_and_description(document: dict[str, Any]) -> None:
    info = document["info"]
    assert info["title"] == "Descent"
    assert info["version"] == version("descent")
    assert "problem+json" in info["description"]


def test_operation_ids_are_stable(document: dict[str, Any]) -> None:
    found = {
        (method, path): op["operationId"]
        for path, item in document["paths"].items()
        for method, op in item.items()
    }
    for key, operation_id in OPERATIONS.items():
        assert found.get(key) == operation_id, key
    ids = list(found.values())
    assert len(ids) == len(set(ids)), "operation ids must be unique"


def _properties(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (name, prop_name, prop)
        for name, schema in document["components"]["schemas"].items()
        for prop_name, prop in schema.get("properties", {}).items()
    ]


def _has_example(schema: dict[str, Any], components: dict[str, Any]) -> bool:
    """An example on the schema itself, or on the component every branch of it refers to."""
    if "examples" in schema or "example" in schema:
        return True
    if "$ref" in schema:
        return _has_example(components[schema["$ref"].rsplit("/", 1)[1]], components)
    branches = [b for b in schema.get("anyOf", schema.get("oneOf", [])) if b.get("type") != "null"]
    return bool(branches) and all(_has_example(b, components) for b in branches)


def test_every_schema_property_has_a_description_and_an_example(document: dict[str, Any]) -> None:
    components = document["components"]["schemas"]
    missing = [
        f"{schema}.{prop}"
        for schema, prop, body in _properties(document)
        if not body.get("description") or not _has_example(body, components)
    ]
    assert missing == [], "undocumented: " + ", ".join(missing)


def test_every_parameter_has_a_description_and_an_example(document: dict[str, Any]) -> None:
    missing, keys = [], []
    for path, item in document["paths"].items():
        for method, op in item.items():
            for param in op.get("parameters", []):
                schema = param.get("schema", {})
                has_example = "example" in param or "examples" in param or "examples" in schema
                if param["name"].lower() == "idempotency-key":
                    # A key is new for each resource: an example value would be copied, by readers and
                    # by generated tests alike, and every request after the first would be a 409.
                    keys.append(f"{method.upper()} {path}")
                    assert not has_example and "new key" in param["description"], path
                    assert param["schema"]["type"] == "string" and param["schema"]["minLength"] == 1, path
                elif not param.get("description") or not has_example:
                    missing.append(f"{method.upper()} {path} {param['name']}")
    assert missing == [], "undocumented: " + ", ".join(missing)
    assert keys == ["POST /v1/datasets", "POST /v1/jobs", "POST /v1/models"]


def test_request_bodies_are_documented_with_examples(document: dict[str, Any]) -> None:
    for method, path in [
        ("post", "/v1/activations/{name}"),
        ("post", "/v1/losses/{name}"),
        ("post", "/v1/forward"),
    ]:
        content = document["paths"][path][method]["requestBody"]["content"]["application/json"]
        ref = content["schema"]["$ref"].rsplit("/", 1)[1]
        assert ref in document["components"]["schemas"]
        assert content["examples"]


def test_errors_are_documented_as_problem_json(document: dict[str, Any]) -> None:
    responses = document["paths"]["/v1/gradients"]["post"]["responses"]
    for status in ("413", "415", "422"):
        schema = responses[status]["content"]["application/problem+json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Problem"}
    assert {"type", "title", "status", "detail", "instance"} <= set(
        document["components"]["schemas"]["Problem"]["required"]
    )


def _name_enum(document: dict[str, Any], method: str, path: str) -> list[str]:
    [param] = [p for p in document["paths"][path][method]["parameters"] if p["name"] == "name"]
    assert param["in"] == "path" and param["required"] is True
    enum: list[str] = param["schema"]["enum"]
    return enum


def test_activation_names_come_from_the_registry(document: dict[str, Any]) -> None:
    names = list(ACTIVATIONS)
    assert _name_enum(document, "post", "/v1/activations/{name}") == names
    assert _name_enum(document, "get", "/v1/activations/{name}/curve") == names
    schemas = document["components"]["schemas"]
    assert schemas["MLPLayer"]["properties"]["activation"]["enum"] == names
    assert schemas["ActivationResult"]["properties"]["activation"]["enum"] == names


def test_loss_names_and_reductions_come_from_the_engine(document: dict[str, Any]) -> None:
    assert _name_enum(document, "post", "/v1/losses/{name}") == list(LOSSES)
    schemas = document["components"]["schemas"]
    assert schemas["LossRequest"]["properties"]["reduction"]["enum"] == list(REDUCTIONS)
    [loss_enum] = [s for s in schemas["GradientsRequest"]["properties"]["loss"]["anyOf"] if "enum" in s]
    assert loss_enum["enum"] == list(LOSSES)


def test_model_types_come_from_the_engine(document: dict[str, Any]) -> None:
    assert set(MODEL_CLASSES) == set(MODEL_TYPES)
    mapping = document["components"]["schemas"]["GradientsRequest"]["properties"]["model"]["discriminator"][
        "mapping"
    ]
    assert set(mapping) == set(MODEL_TYPES)
    for model_type, cls in MODEL_CLASSES.items():
        assert cls.model_fields["type"].annotation.__args__ == (model_type,)


def test_a_request_body_model_left_out_of_the_document_fails_the_build() -> None:
    class Unlisted(BaseModel):
        x: int

    app = FastAPI()

    @app.post("/unlisted", openapi_extra=request_body(Unlisted, {"one": {"x": 1}}))
    async def unlisted() -> None:
        return None

    with pytest.raises(RuntimeError, match=r"undocumented schemas \['#/components/schemas/Unlisted'\]"):
        build_openapi(app)


def test_every_request_body_model_is_documented(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert {model.__name__ for model in DOCUMENTED_MODELS} <= set(schemas)
    for item in document["paths"].values():
        for operation in item.values():
            content = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if content:
                assert content["schema"]["$ref"].rsplit("/", 1)[1] in schemas


REGISTRIES = {
    "activations": list(ACTIVATIONS),
    "losses": list(LOSSES),
    "model types": list(MODEL_TYPES),
    "optimizers": list(OPTIMIZERS),
    "schedules": list(SCHEDULES),
}


def _enums(node: Any, path: str = "") -> list[tuple[str, list[Any]]]:
    """Every enum in the document, with where it is."""
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("enum"), list):
            found.append((path, node["enum"]))
        for key, value in node.items():
            found += _enums(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _enums(value, f"{path}[{i}]")
    return found


def test_every_list_of_registry_names_in_the_schema_is_the_whole_registry(document: dict[str, Any]) -> None:
    # An enum of several names from a registry must be all of it, in the registry's order: a list
    # written by hand would miss the next activation, loss, model type, optimizer or schedule.
    checked = set()
    for path, enum in _enums(document):
        for registry, names in REGISTRIES.items():
            if len(enum) > 1 and set(enum) & set(names):
                assert enum == names, f"{path} lists {enum}, but the {registry} are {names}"
                checked.add(registry)
    assert checked == set(REGISTRIES)


@pytest.mark.parametrize(
    ("schema", "owners"),
    [("OptimizerConfig", OPTIMIZER_OPTIONS), ("ScheduleConfig", SCHEDULE_OPTIONS)],
)
def test_option_fields_state_the_registry_bounds_and_defaults(
    document: dict[str, Any], schema: str, owners: dict[str, Any]
) -> None:
    properties = document["components"]["schemas"][schema]["properties"]
    options = {key: spec for taken in owners.values() for key, spec in taken.items()}
    assert set(properties) - {"name", "learning_rate", "max_grad_norm"} == set(options)
    for key, spec in options.items():
        [number] = [s for s in properties[key]["anyOf"] if s["type"] != "null"]
        low = "exclusiveMinimum" if spec.low_open else "minimum"
        assert number[low] == spec.low, key
        if spec.high != float("inf"):
            assert number["exclusiveMaximum" if spec.high_open else "maximum"] == spec.high, key
        assert f"{spec.default:g}" in properties[key]["description"], key


def test_links_lead_from_jobs_and_models_to_every_operation_on_them(document: dict[str, Any]) -> None:
    operations = {
        op["operationId"]: op
        for item in document["paths"].values()
        for op in item.values()
        if "operationId" in op
    }
    found: dict[str, set[str]] = {}
    for path, item in document["paths"].items():
        for op in item.values():
            for response in op.get("responses", {}).values():
                for link in response.get("links", {}).values():
                    target = operations[link["operationId"]]
                    names = {p["name"] for p in target.get("parameters", []) if p["in"] == "path"}
                    assert set(link["parameters"]) <= names, (path, link)
                    found.setdefault(op["operationId"], set()).add(link["operationId"])
    on_a_job = {"jobs-cancel", "jobs-events", "jobs-metrics", "jobs-snapshot", "jobs-snapshot-predict"}
    assert on_a_job | {"jobs-get", "jobs-delete"} <= found["jobs-create"]
    # Every operation that takes an id is reached by a link from the operation that makes the id.
    with_ids = {
        op_id
        for op_id, op in operations.items()
        if any(p["in"] == "path" and p["name"].endswith("_id") for p in op.get("parameters", []))
    }
    assert with_ids <= set().union(*found.values())
    assert {"models-predict", "models-export"} <= found["jobs-get"]
    assert {"models-get", "models-predict", "models-export", "models-delete"} <= found["models-import"]
    assert {"datasets-get", "datasets-data", "datasets-delete"} <= found["datasets-create"]
