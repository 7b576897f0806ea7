"""The one place that turns errors into RFC 9457 ``application/problem+json`` responses.

Every error response is::

    {"type", "title", "status", "detail", "instance", "request_id", "errors"?: [{"loc": [...], "msg": ...}]}

:func:`install_error_handlers` maps the domain errors of ``service.errors`` (raised by handlers,
services and the store alike), FastAPI's request validation errors (422), Starlette's HTTP errors
(404 for an unknown path, 405 for a method the path does not take) and anything unexpected (500,
generic detail, logged with the request id, never a stack trace).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Scope

from service.errors import DomainError, MethodNotAllowed, NotFound, problem_type, validation_error

logger = logging.getLogger("descent.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"


def request_id_of(scope: Scope) -> str | None:
    """The id the request-context middleware gave this request, if it ran."""
    state = scope.get("state")
    return state.get("request_id") if isinstance(state, dict) else None


def problem_response(
    scope: Scope,
    status: int,
    title: str,
    detail: str,
    *,
    type: str = "about:blank",
    errors: Sequence[Mapping[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> Response:
    """Build the problem+json response; ``instance`` is the request path."""
    body: dict[str, Any] = {
        "type": type,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": scope.get("path", ""),
    }
    request_id = request_id_of(scope)
    if request_id is not None:
        body["request_id"] = request_id
    if errors:
        body["errors"] = list(errors)
    if extensions:
        body.update({k: v for k, v in extensions.items() if k not in body})
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def error_response(scope: Scope, exc: DomainError) -> Response:
    """The problem+json answer of a domain error: its status, title, type, detail, errors and headers."""
    return problem_response(
        scope,
        exc.status,
        exc.title,
        exc.detail,
        type=exc.type,
        errors=exc.errors,
        headers=exc.headers,
        extensions=exc.extensions,
    )


def unhandled_error_response(scope: Scope, exc: BaseException) -> Response:
    """Log an unexpected exception with the request id and answer a generic 500."""
    request_id = request_id_of(scope)
    logger.error(
        "unhandled error",
        exc_info=exc,
        extra={"request_id": request_id, "method": scope.get("method"), "path": scope.get("path")},
    )
    detail = "the server hit an unexpected error"
    if request_id is not None:
        detail += f"; quote request id {request_id} when reporting it"
    return problem_response(scope, 500, DomainError.title, detail, type=problem_type(DomainError.slug))


def http_error_response(request: Request, exc: StarletteHTTPException) -> Response:
    """The answer to an HTTP error raised by Starlette or FastAPI themselves.

    404 (no route) and 405 (a method the path does not take) are the domain's ``NotFound`` and
    ``MethodNotAllowed``: a 404 for a path with a trailing slash names the path without it when that
    one exists, and a 405's ``Allow`` names every method of the path (Starlette names only those of
    the first route that matched it). Any other status keeps its own, with the standard phrase as
    title and ``about:blank`` as type (RFC 9457: nothing to add to the status code).
    """
    status = exc.status_code
    headers = dict(exc.headers or {})
    path = request.url.path
    error: DomainError
    if status == 404:
        detail = f"no resource at {path}"
        if path.endswith("/") and _methods_of(request, path.rstrip("/")):
            detail += f"; did you mean {path.rstrip('/')}?"
        error = NotFound(detail, headers=headers)
    elif status == 405:
        allowed = ", ".join(_methods_of(request, path)) or headers.get("Allow", "")
        headers["Allow"] = allowed
        error = MethodNotAllowed(
            f"method {request.method} is not allowed on {path}; allowed: {allowed}", headers=headers
        )
    else:
        title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        return problem_response(request.scope, status, title, str(exc.detail), headers=headers)
    return error_response(request.scope, error)


def _methods_of(request: Request, path: str) -> list[str]:
    """Every method some route of the application takes at ``path``, sorted."""
    scope = {**request.scope, "path": path, "method": "GET"}
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


async def _domain_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return error_response(request.scope, exc)


async def _validation_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(request.scope, validation_error(exc.errors()))


async def _http_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return http_error_response(request, exc)


async def _unhandled_handler(request: Request, exc: Exception) -> Response:
    return unhandled_error_response(request.scope, exc)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem+json; the only place that does so."""
    app.add_exception_handler(DomainError, _domain_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    # Starlette runs the Exception handler outside every middleware; RequestContextMiddleware catches
    # unexpected errors first (so the 500 carries X-Request-ID) and calls the same function.
    app.add_exception_handler(Exception, _unhandled_handler)
