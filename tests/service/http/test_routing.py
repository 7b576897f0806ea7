"""service.http.routing: routes registered flat as include_router would; request-only endpoints direct."""

from __future__ import annotations

import inspect
from typing import Annotated, Any

import fastapi
import fastapi.routing
import pytest
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.responses import PlainTextResponse, Response

from service.app import create_app
from service.errors import InvalidInput
from service.http.deps import get_metrics
from service.http.problems import install_error_handlers
from service.http.responses import JSONResponse
from service.http.routers import ROUTERS
from service.http.routing import (
    DEPENDANT_LISTS,
    DEPENDANT_SPECIAL_NAMES,
    ROUTE_OPTIONS,
    RequestRoute,
    _takes_only_the_request,
    operation_id,
    register_routes,
)
from service.metrics import Metrics
from tests.service.conftest import Client, assert_problem

EFFECTIVE_OPTIONS = [
    "path",
    "methods",
    "name",
    "unique_id",
    "operation_id",
    "response_class",
    "tags",
    "summary",
    "description",
    "responses",
    "status_code",
    "include_in_schema",
    "response_model",
    "openapi_extra",
    "dependencies",
]


def _app(**kwargs: Any) -> FastAPI:
    return FastAPI(default_response_class=JSONResponse, generate_unique_id_function=operation_id, **kwargs)


def _api_routes(app: FastAPI) -> list[APIRoute]:
    return [route for route in app.router.routes if isinstance(route, APIRoute)]


def test_every_route_is_registered_once_flat_and_in_router_order() -> None:
    app = create_app()
    registered = [(route.path, route.methods) for route in _api_routes(app)]
    declared = [(route.path, route.methods) for router in ROUTERS for route in router.routes]
    assert registered == declared
    # No router node for a request to walk into (those have no path): every route is matched directly.
    assert all(hasattr(route, "path") for route in app.router.routes)


def test_registered_routes_are_what_include_router_gives() -> None:
    included = _app()
    for router in ROUTERS:
        included.include_router(router)
    flat = _app()
    register_routes(flat, ROUTERS)
    assert flat.openapi() == included.openapi()
    contexts = [c for c in iter_route_contexts(included.routes) if isinstance(c.original_route, APIRoute)]
    routes = _api_routes(flat)
    assert len(contexts) == len(routes) > 0
    for context, route in zip(contexts, routes, strict=True):
        for option in EFFECTIVE_OPTIONS:
            assert getattr(route, option) == getattr(context, option), (route.path, option)
        # The application's defaults and overrides, as for included routes.
        assert (
            context.dependency_overrides_provider is included and route.dependency_overrides_provider is flat
        )


def test_dependency_overrides_reach_registered_routes(client: Client) -> None:
    stub = Metrics()
    stub.started_at = 123.0
    client.app.dependency_overrides[get_metrics] = lambda: stub
    assert "process_start_time_seconds 123.0\n" in client.get("/metrics").text
    client.app.dependency_overrides.clear()
    assert "process_start_time_seconds 123.0\n" not in client.get("/metrics").text


async def _request_only(request: Request) -> Response:
    if request.query_params.get("fail"):
        raise InvalidInput("asked to fail", errors=[{"loc": ["query", "fail"], "msg": "asked to fail"}])
    return PlainTextResponse(f"{request.method} {request.url.path}")


async def _nothing() -> Response:
    return PlainTextResponse("nothing")


async def _with_query(request: Request, n: Annotated[int, Query()]) -> Response:
    return PlainTextResponse(str(n))


def _sync(request: Request) -> Response:
    return PlainTextResponse("sync")


async def _returns_a_dict(request: Request) -> dict[str, int]:
    return {"a": 1}


async def _with_dependency(request: Request, metrics: Annotated[Metrics, Depends(get_metrics)]) -> Response:
    return PlainTextResponse("dep")


@pytest.mark.parametrize(
    ("endpoint", "direct"),
    [
        (_request_only, True),
        (_nothing, True),
        (_with_query, False),
        (_sync, False),
        (_returns_a_dict, False),
        (_with_dependency, False),
    ],
)
def test_only_async_endpoints_of_the_request_alone_returning_a_response_are_called_directly(
    endpoint: Any, direct: bool
) -> None:
    route = RequestRoute("/x", endpoint)
    assert _takes_only_the_request(route) is direct


def test_direct_and_standard_endpoints_answer_and_fail_alike() -> None:
    router = APIRouter(prefix="/t")
    router.add_api_route("/request", _request_only)
    router.add_api_route("/nothing", _nothing)
    router.add_api_route("/query", _with_query)
    router.add_api_route("/dict", _returns_a_dict)
    app = _app()
    install_error_handlers(app)
    register_routes(app, [router])
    assert all(type(route) is RequestRoute for route in _api_routes(app))
    client = Client(app)
    try:
        assert client.get("/t/request").text == "GET /t/request"
        assert client.get("/t/nothing").text == "nothing"
        assert client.get("/t/query", params={"n": 3}).text == "3"
        assert client.get("/t/dict").json() == {"a": 1}
        # Errors of a direct endpoint still go through the exception handlers...
        assert_problem(client.get("/t/request", params={"fail": 1}), 422, "asked to fail")
        # ...and standard endpoints still validate their parameters.
        assert_problem(client.get("/t/query", params={"n": "three"}), 422, "query.n")
        assert client.post("/t/request").status_code == 405
    finally:
        client.close()


def test_routers_that_cannot_be_registered_flat_are_refused() -> None:
    with_plain_route = APIRouter(prefix="/plain")
    with_plain_route.add_route("/x", lambda request: PlainTextResponse("x"))
    with pytest.raises(ValueError, match="not an APIRoute"):
        register_routes(_app(), [with_plain_route])
    with_startup = APIRouter(prefix="/startup")
    with_startup.on_startup.append(lambda: None)
    with pytest.raises(ValueError, match="startup or shutdown handlers"):
        register_routes(_app(), [with_startup])


def test_the_compute_routes_are_called_directly() -> None:
    app = create_app()
    direct = {route.path for route in _api_routes(app) if _takes_only_the_request(route)}
    assert {"/v1/activations/{name}", "/v1/losses/{name}", "/v1/forward", "/v1/gradients"} <= direct
    assert "/v1/activations/{name}/curve" not in direct  # query parameters: FastAPI validates them


REVIEW = (
    "service/http/routing.py (RequestRoute, register_routes) relies on it: review them for this FastAPI"
    " release before widening the bound on fastapi in pyproject.toml"
)


def test_the_fastapi_internals_routing_relies_on_are_still_there() -> None:
    version = f"FastAPI {fastapi.__version__}"
    dependant = APIRoute("/x", _with_query).dependant
    missing = [name for name in (*DEPENDANT_LISTS, *DEPENDANT_SPECIAL_NAMES) if not hasattr(dependant, name)]
    assert not missing, f"{version}: the route's Dependant has no {missing}; {REVIEW}"
    assert dependant.query_params and dependant.request_param_name == "request", f"{version}: {REVIEW}"
    add_api_route = inspect.signature(APIRouter.add_api_route).parameters
    assert "route_class_override" in add_api_route, (
        f"{version}: APIRouter.add_api_route takes no route_class_override; {REVIEW}"
    )
    route = APIRoute("/x", _request_only)
    not_kept = [name for name in ROUTE_OPTIONS if not hasattr(route, name)]
    assert not not_kept, f"{version}: APIRoute does not keep the add_api_route options {not_kept}; {REVIEW}"
    assert "get_route_handler" in vars(APIRoute), f"{version}: APIRoute has no get_route_handler; {REVIEW}"


def test_direct_endpoints_skip_fastapis_request_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    """FastAPI builds each route's ASGI app from get_route_handler, the method RequestRoute overrides."""

    async def no_dependency_solving(*args: object, **kwargs: object) -> None:
        raise AssertionError("FastAPI's request handler ran")

    router = APIRouter(prefix="/t")
    router.add_api_route("/request", _request_only)
    router.add_api_route("/query", _with_query)
    app = _app()
    install_error_handlers(app)
    register_routes(app, [router])
    monkeypatch.setattr(fastapi.routing, "solve_dependencies", no_dependency_solving)
    client = Client(app)
    try:
        assert client.get("/t/request").text == "GET /t/request", f"FastAPI {fastapi.__version__}: {REVIEW}"
        # The patch does reach FastAPI's own handler, which a route with a query parameter still uses.
        with pytest.raises(AssertionError, match="FastAPI's request handler ran"):
            client.get("/t/query", params={"n": 3})
    finally:
        client.close()
