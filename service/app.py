"""The application factory: ``uvicorn service.app:create_app --factory`` or ``descent serve``."""

from __future__ import annotations

import copy
import gc
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.models import Schema
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic.json_schema import models_json_schema

from service.errors import install_error_handlers
from service.http.jsonio import JSONResponse
from service.http.middleware import RequestContextMiddleware
from service.http.routers import register_routes
from service.http.schemas.common import DOCUMENTED_MODELS, EXTRA_SCHEMAS, REF_PREFIX, problem_responses
from service.logs import configure_logging, flush_access_log
from service.metrics import Metrics
from service.settings import Settings
from service.state import close_state, open_state

logger = logging.getLogger("descent.app")

try:
    __version__ = version("descent")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

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
    {"name": "operations", "description": "Liveness, readiness and Prometheus metrics."},
]


def _operation_id(route: APIRoute) -> str:
    """Fallback operation id for routes without an explicit one: ``<tag>-<function name>``."""
    name = route.name.replace("_", "-")
    return f"{route.tags[0]}-{name}" if route.tags else name


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Create the long-lived objects that need a running event loop, and log start and stop."""
    settings: Settings = app.state.settings
    # Bounds how many large compute requests run in threads at once (each holds its arrays in memory).
    app.state.compute_limiter = anyio.CapacityLimiter(settings.compute_threads)
    await open_state(app)
    # Everything alive now (modules, the app, the store) lives as long as the process. Frozen, it is
    # skipped by full garbage collections, which large JSON bodies (one list per row) trigger often:
    # about 15% of the time of a 10,000 × 20 gradients request. (Freezing is O(1); a collection
    # first would cost more than the little startup garbage it would free.)
    gc.freeze()
    logger.info("service started", extra={"version": __version__, "runner": settings.runner})
    try:
        yield
    finally:
        flush_access_log()  # the last requests' lines come before the stopping line
        logger.info("service stopping")
        gc.unfreeze()
        await close_state(app)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application.

    Parameters
    ----------
    settings : Settings, optional
        Defaults to ``Settings()``, read from ``DESCENT_*`` environment variables.

    Returns
    -------
    FastAPI
        With ``state.settings``, ``state.metrics`` and ``state.readiness_checks`` (a list other
        components append their async dependency checks to).
    """
    settings = settings or Settings()
    configure_logging(settings.log_level)
    app = FastAPI(
        title=TITLE,
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        default_response_class=JSONResponse,
        generate_unique_id_function=_operation_id,
        separate_input_output_schemas=False,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.readiness_checks = []
    install_error_handlers(app)
    app.add_middleware(
        RequestContextMiddleware, metrics=app.state.metrics, max_body_bytes=settings.max_body_bytes
    )
    register_routes(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the request-body models it cannot see (bodies are parsed by orjson)."""
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
    _, defs = models_json_schema(
        [(model, "validation") for model in DOCUMENTED_MODELS.values()], ref_template=REF_PREFIX + "{model}"
    )
    for name, model_schema in {**defs.get("$defs", {}), **EXTRA_SCHEMAS}.items():
        # Normalized as get_openapi normalizes its own (nulls dropped, numbers typed), so that a model
        # FastAPI documents too (e.g. as a response) compares equal.
        normalized = jsonable_encoder(Schema(**model_schema), by_alias=True, exclude_none=True)
        if components.setdefault(name, normalized) != normalized:
            raise RuntimeError(f"two different schemas are named {name!r} in the OpenAPI document")
    schema["components"]["schemas"] = dict(sorted(components.items()))
    return schema


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
