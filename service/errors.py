"""Domain errors that carry their HTTP status, and the one place that turns errors into problem+json.

Every error response is RFC 9457 ``application/problem+json``::

    {"type", "title", "status", "detail", "instance", "request_id", "errors"?: [{"loc": [...], "msg": ...}]}

Handlers raise a :class:`ProblemError` subclass (never ``HTTPException``); :func:`install_error_handlers`
maps those, the store's errors, FastAPI's request validation errors, Starlette's HTTP errors (404, 405)
and anything unexpected (500, generic detail, logged with the request id, never a stack trace).
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
from starlette.types import Scope

from service.store.errors import StoreError

logger = logging.getLogger("descent.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:descent:problem:"

Loc = Sequence[str | int]


def problem_type(slug: str) -> str:
    """The ``type`` URI of a problem, e.g. ``urn:descent:problem:invalid-input``."""
    return PROBLEM_TYPE_PREFIX + slug


class ProblemError(Exception):
    """An error that becomes a problem+json response with its own status.

    Parameters
    ----------
    detail : str
        Human-readable explanation of this occurrence, naming the bad value.
    errors : sequence of mapping, optional
        Field-level failures, each ``{"loc": [...], "msg": "..."}``.
    headers : mapping, optional
        Extra response headers (e.g. ``Retry-After``).
    """

    status: int = 500
    title: str = "Internal Server Error"
    slug: str = "internal"

    def __init__(
        self,
        detail: str,
        *,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = [dict(e) for e in errors] if errors else None
        self.headers = dict(headers or {})

    @property
    def type(self) -> str:
        return problem_type(self.slug)


class NotFound(ProblemError):
    status, title, slug = 404, "Not Found", "not-found"


class Conflict(ProblemError):
    status, title, slug = 409, "Conflict", "conflict"


class PayloadTooLarge(ProblemError):
    status, title, slug = 413, "Content Too Large", "payload-too-large"


class UnsupportedMediaType(ProblemError):
    status, title, slug = 415, "Unsupported Media Type", "unsupported-media-type"


class InvalidInput(ProblemError):
    """422: the request is well-formed JSON but its content is not acceptable."""

    status, title, slug = 422, "Invalid Input", "invalid-input"

    @classmethod
    def at(cls, loc: Loc, msg: str) -> InvalidInput:
        """An error about one field: ``loc`` like ``("body", "x")``; the detail names the field."""
        return cls(f"{_loc_str(loc)}: {msg}", errors=[{"loc": list(loc), "msg": msg}])


class _RetryLater(ProblemError):
    def __init__(
        self,
        detail: str,
        *,
        retry_after: int = 1,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail, errors=errors, headers={"Retry-After": str(retry_after), **(headers or {})})
        self.retry_after = retry_after


class TooManyRequests(_RetryLater):
    """429 with ``Retry-After`` (seconds): the job queue is full or a rate limit was hit."""

    status, title, slug = 429, "Too Many Requests", "too-many-requests"


class ServiceUnavailable(_RetryLater):
    """503 with ``Retry-After`` (seconds): a dependency (database, broker) is down."""

    status, title, slug = 503, "Service Unavailable", "service-unavailable"


# Seconds a client should wait after a store error that says "later", by status.
_STORE_RETRY_AFTER = {429: 5, 503: 5}


def request_id_of(scope: Scope) -> str | None:
    """The id the request-id middleware gave this request, if it ran."""
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
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


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
    return problem_response(scope, 500, "Internal Server Error", detail, type=problem_type("internal"))


def _loc_str(loc: Loc) -> str:
    return ".".join(str(part) for part in loc)


def _format_validation_errors(raw: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Turn pydantic errors into ``[{"loc", "msg"}]`` (inputs left out: they can be huge) and a detail."""
    errors: list[dict[str, Any]] = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "invalid value"))} for e in raw
    ]
    parts = [f"{_loc_str(e['loc'])}: {e['msg']}" if e["loc"] else str(e["msg"]) for e in errors]
    if len(parts) == 1:
        return parts[0], errors
    return f"{len(parts)} invalid fields: " + "; ".join(parts), errors


def validation_error(raw: Sequence[Mapping[str, Any]], prefix: Loc = ()) -> InvalidInput:
    """An InvalidInput from pydantic's ``ValidationError.errors()``, each loc prefixed (e.g. with "body")."""
    prefixed = [{**e, "loc": (*prefix, *e.get("loc", ()))} for e in raw]
    detail, errors = _format_validation_errors(prefixed)
    return InvalidInput(detail, errors=errors)


async def _problem_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return problem_response(
        request.scope,
        exc.status,
        exc.title,
        exc.detail,
        type=exc.type,
        errors=exc.errors,
        headers=exc.headers,
    )


async def _store_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StoreError)
    status = exc.status_code
    if status >= 500 and status != 503:
        return unhandled_error_response(request.scope, exc)
    headers = {"Retry-After": str(_STORE_RETRY_AFTER[status])} if status in _STORE_RETRY_AFTER else None
    slug = type(exc).__name__
    slug = "".join("-" + c.lower() if c.isupper() else c for c in slug).lstrip("-")
    return problem_response(
        request.scope, status, exc.title, exc.detail, type=problem_type(slug), headers=headers
    )


async def _validation_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problem = validation_error(exc.errors())
    return problem_response(
        request.scope, 422, problem.title, problem.detail, type=problem.type, errors=problem.errors
    )


async def _http_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    if status == 404:
        detail = f"no resource at {request.url.path}"
    elif status == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        detail = f"method {request.method} is not allowed on {request.url.path}; allowed: {allowed}"
    else:
        detail = str(exc.detail)
    return problem_response(request.scope, status, title, detail, headers=exc.headers)


async def _unhandled_handler(request: Request, exc: Exception) -> Response:
    return unhandled_error_response(request.scope, exc)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem+json; the only place that does so."""
    app.add_exception_handler(ProblemError, _problem_handler)
    # The store's domain errors (NotFound, Conflict, StaleAttempt, QueueFull, StoreUnavailable) carry
    # status_code/title/detail; 429 and 503 gain a Retry-After.
    app.add_exception_handler(StoreError, _store_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    # Starlette runs the Exception handler outside every middleware; RequestContextMiddleware catches
    # unexpected errors first (so the 500 carries X-Request-ID) and calls the same function.
    app.add_exception_handler(Exception, _unhandled_handler)
