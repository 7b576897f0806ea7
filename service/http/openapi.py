"""The OpenAPI document, assembled explicitly: FastAPI's paths plus the models it cannot see.

Request bodies are parsed by orjson and validated by hand (see ``service.http.body``), so FastAPI
never sees their models; the routes refer to them by name (``schemas.common.request_body``), and
:data:`DOCUMENTED_MODELS` lists every one of them, with the models that no route declares (the
dry-run answer, the payload of a server-sent event). A reference to a schema that is not there
fails the build, naming it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.models import Schema
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from service.http.schemas.common import EXTRA_SCHEMAS, REF_PREFIX, Problem, problem_responses
from service.http.schemas.compute import ActivationRequest, ForwardRequest, GradientsRequest, LossRequest
from service.http.schemas.datasets import DatasetCreate
from service.http.schemas.jobs import DryRun, Event, ProgressEventData, StatusEventData
from service.http.schemas.models import ModelDocument, PredictRequest
from service.http.schemas.training import TrainingConfig

TITLE = "Descent"
DESCRIPTION = """\
Gradient descent as a service, over a pure-NumPy engine.

* **Compute** (stateless): evaluate activations and losses with their derivatives, run a model
  forward, and get its loss and gradients, optionally checked against finite differences.
* **Datasets, training jobs and models**: upload or generate data, train logistic, linear and
  softmax regressions and MLPs in background jobs, follow their progress, and predict.

Arrays are nested JSON lists of finite numbers. Every error is an RFC 9457
`application/problem+json` document whose `detail` names what is wrong.
"""
TAGS = [
    {"name": "activations", "description": "Activation functions φ and their derivatives."},
    {"name": "losses", "description": "Loss functions and their gradients."},
    {"name": "compute", "description": "Forward passes and gradients of models with given parameters."},
    {"name": "datasets", "description": "Stored datasets: uploaded (JSON, CSV, .npz) or generated."},
    {"name": "jobs", "description": "Training jobs: create, follow (progress, metrics, events), cancel."},
    {"name": "models", "description": "Trained or imported models: inspect, predict, export, import."},
    {"name": "usage", "description": "An owner's usage against its quotas."},
    {"name": "operations", "description": "Liveness, readiness and Prometheus metrics."},
]

# Models in the components that FastAPI does not collect from the routes: the problem document, every
# JSON request body, and what no route declares as its response.
DOCUMENTED_MODELS: tuple[type[BaseModel], ...] = (
    Problem,
    ActivationRequest,
    ForwardRequest,
    GradientsRequest,
    DatasetCreate,
    DryRun,
    Event,
    StatusEventData,
    ProgressEventData,
    TrainingConfig,
    LossRequest,
    ModelDocument,
    PredictRequest,
)


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document of ``app`` plus :data:`DOCUMENTED_MODELS` and ``EXTRA_SCHEMAS``.

    Raises
    ------
    RuntimeError
        When two different schemas share a name, or the document refers to a schema it lacks.
    """
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
        separate_input_output_schemas=False,
    )
    components: dict[str, Any] = schema.setdefault("components", {}).setdefault("schemas", {})
    _document_validation_errors_as_problems(schema)
    _document_security(schema)
    _, defs = models_json_schema(
        [(model, "validation") for model in DOCUMENTED_MODELS], ref_template=REF_PREFIX + "{model}"
    )
    for name, model_schema in {**defs.get("$defs", {}), **EXTRA_SCHEMAS}.items():
        # Normalized as get_openapi normalizes its own (nulls dropped, numbers typed), so that a model
        # FastAPI documents too (e.g. as a response) compares equal.
        normalized = jsonable_encoder(Schema(**model_schema), by_alias=True, exclude_none=True)
        if components.setdefault(name, normalized) != normalized:
            raise RuntimeError(f"two different schemas are named {name!r} in the OpenAPI document")
    schema["components"]["schemas"] = dict(sorted(components.items()))
    missing = sorted({ref for ref in _refs(schema) if ref.removeprefix(REF_PREFIX) not in components})
    if missing:
        raise RuntimeError(
            f"the OpenAPI document refers to undocumented schemas {missing}: add them to"
            " service.http.openapi.DOCUMENTED_MODELS"
        )
    return schema


SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key (`dsk_...`, from `descent keys create`), needed by every /v1 operation when "
    "the service runs with DESCENT_AUTH=keys.",
}
_STATE_CHANGING = {"post", "put", "patch", "delete"}


def _document_security(schema: dict[str, Any]) -> None:
    """The bearer scheme; every /v1 operation needs it and may answer 401, 403 and 429 (and a
    state-changing one 415, for form bodies); the other paths are open (/metrics optionally)."""
    schema["components"]["securitySchemes"] = {"bearer": SECURITY_SCHEME}
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if not path.startswith("/v1/"):
                operation["security"] = [{}, {"bearer": []}] if path == "/metrics" else []
                continue
            operation["security"] = [{"bearer": []}]
            responses = operation.setdefault("responses", {})
            statuses = (401, 403, 415, 429) if method in _STATE_CHANGING else (401, 403, 429)
            for status, response in problem_responses(*statuses).items():
                responses.setdefault(str(status), copy.deepcopy(response))
            operation["responses"] = dict(sorted(responses.items()))


def _refs(value: Any) -> Iterator[str]:
    """Every ``$ref`` to a component schema in ``value``."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str) and item.startswith(REF_PREFIX):
                yield item
            else:
                yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def _document_validation_errors_as_problems(schema: dict[str, Any]) -> None:
    """Replace FastAPI's default 422 (HTTPValidationError) by the problem+json the service really sends."""
    default_ref = REF_PREFIX + "HTTPValidationError"
    problem = problem_responses(422)[422]
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            response = operation.get("responses", {}).get("422", {})
            if (
                response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
                == default_ref
            ):
                operation["responses"]["422"] = copy.deepcopy(problem)
    components = schema.get("components", {}).get("schemas", {})
    if default_ref not in json.dumps(schema.get("paths", {})):
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
