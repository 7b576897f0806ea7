"""How routes reach the application: registered flat, and called directly when they take only the request.

Routes are registered on the application itself rather than included (:func:`register_routes`), and
endpoints that take nothing but the request skip FastAPI's per-request handler (:class:`RequestRoute`).
Both lean on FastAPI internals (the ``Dependant`` attributes, the options of ``add_api_route``);
``tests/service/test_routing.py`` fails with a clear message when a FastAPI release changes them, and
``pyproject.toml`` bounds FastAPI to the releases tested.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.routing import APIRoute
from starlette.responses import Response


def operation_id(route: APIRoute) -> str:
    """Fallback operation id for routes without an explicit one: ``<tag>-<function name>``."""
    name = route.name.replace("_", "-")
    return f"{route.tags[0]}-{name}" if route.tags else name


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class RequestRoute(APIRoute):
    """An APIRoute that calls an endpoint taking only the Request (or nothing) directly.

    FastAPI's request handler resolves dependencies, validates parameters and serializes what the
    endpoint returns; for an ``async`` endpoint with no parameter but the request, declared to return
    a Response, all of that is a no-op that costs about as much as a small compute call. Any other
    endpoint gets FastAPI's handler, so this class changes nothing but the cost. (FastAPI's own
    telemetry spans for dependencies and the endpoint are not opened for direct endpoints.)

    For routes registered on the application itself (:func:`register_routes`): a route of a router
    passed to ``include_router`` may gain dependencies there, which this class would not see.
    """

    def get_route_handler(self) -> Handler:
        endpoint = self.endpoint
        if not _takes_only_the_request(self):
            return super().get_route_handler()
        if self.dependant.request_param_name is None:

            async def handler(request: Request) -> Response:
                response: Response = await endpoint()
                return response

        else:

            async def handler(request: Request) -> Response:
                response: Response = await endpoint(request)
                return response

        return handler


# The attributes of FastAPI's ``Dependant`` that tell what an endpoint takes: lists of parameters
# and dependencies, and the names of special parameters (None when the endpoint does not take one).
DEPENDANT_LISTS = (
    "path_params",
    "query_params",
    "header_params",
    "cookie_params",
    "body_params",
    "dependencies",
)
DEPENDANT_SPECIAL_NAMES = (
    "websocket_param_name",
    "http_connection_param_name",
    "response_param_name",
    "background_tasks_param_name",
    "security_scopes_param_name",
)


def _takes_only_the_request(route: APIRoute) -> bool:
    """Whether the route's endpoint is ``async def f(request: Request) -> Response`` (or takes nothing)."""
    dependant = route.dependant
    if not inspect.iscoroutinefunction(route.endpoint):
        return False
    if any(getattr(dependant, name) for name in DEPENDANT_LISTS):
        return False
    if any(getattr(dependant, name) is not None for name in DEPENDANT_SPECIAL_NAMES):
        return False
    parameters = list(inspect.signature(route.endpoint).parameters.values())
    expected = 0 if dependant.request_param_name is None else 1
    if len(parameters) != expected or any(
        p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters
    ):
        return False
    try:
        returns = typing.get_type_hints(route.endpoint).get("return")
    except (NameError, TypeError):  # annotations that cannot be resolved: let FastAPI handle it
        return False
    return isinstance(returns, type) and issubclass(returns, Response)


# What add_api_route takes besides the path and the endpoint; an APIRoute keeps each under its name
# (an option it did not keep would fail loudly, at startup, in getattr below).
ROUTE_OPTIONS = tuple(
    name
    for name in inspect.signature(APIRouter.add_api_route).parameters
    if name not in {"self", "path", "endpoint", "route_class_override"}
)


def register_routes(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    """Register every route of ``routers`` on the application itself, as ``include_router`` would.

    ``include_router`` keeps each router as one node of a tree, which every request walks twice
    (once to find the router, once to find the route in it): a tenth of the time of a small compute
    call. Here each route is registered again through ``app.router.add_api_route`` with all its own
    options, so the application's defaults (response class, operation ids) and its dependency
    overrides apply exactly as they do to included routes, the OpenAPI document is the same, and
    requests match one flat list. Plain APIRoutes become :class:`RequestRoute`.

    Parameters
    ----------
    app : FastAPI
        The application.
    routers : sequence of APIRouter
        Routers of APIRoutes only, without startup or shutdown handlers (their prefix and tags are
        already part of each of their routes), e.g. ``service.http.routers.ROUTERS``.
    """
    for router in routers:
        if router.on_startup or router.on_shutdown:
            raise ValueError(f"router {router.prefix!r} has startup or shutdown handlers; include it instead")
        for route in router.routes:
            if not isinstance(route, APIRoute):
                raise ValueError(
                    f"router {router.prefix!r} holds {route!r}, not an APIRoute; include it instead"
                )
            options = {name: getattr(route, name) for name in ROUTE_OPTIONS}
            route_class = RequestRoute if type(route) is APIRoute else type(route)
            app.router.add_api_route(route.path, route.endpoint, route_class_override=route_class, **options)
