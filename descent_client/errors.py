"""The client's exceptions: one class per kind of HTTP failure, each carrying the problem+json document.

Every error the service answers is an RFC 9457 problem document (``type``, ``title``, ``status``,
``detail``, ``instance``, ``request_id``, ``errors``); :func:`error_from_response` turns one into the
:class:`APIError` subclass of its status, so callers catch what they can handle::

    try:
        client.jobs.get("job_missing")
    except NotFound as exc:
        print(exc.status, exc.type, exc.detail)
"""

from __future__ import annotations

from typing import Any

import httpx

PROBLEM_MEDIA_TYPE = "application/problem+json"


class DescentError(Exception):
    """Base class of every exception the client raises."""


class TransportError(DescentError):
    """The service could not be reached (connection refused, reset or timed out) after the retries."""


class APIError(DescentError):
    """The service answered with an error status; the fields come from its problem+json body.

    Attributes
    ----------
    status : int
        The HTTP status code.
    type : str
        The problem type URI, e.g. ``urn:descent:problem:not-found`` (``about:blank`` for plain HTTP errors).
    title, detail, instance : str
        The kind of problem, what went wrong in this request, and the request path.
    request_id : str or None
        The service's request id: quote it when reporting a problem.
    errors : list of dict
        Field-level failures ``{"loc": [...], "msg": ...}`` of a validation error; empty otherwise.
    problem : dict
        The whole problem document as received.
    """

    def __init__(self, problem: dict[str, Any], *, headers: httpx.Headers | None = None) -> None:
        self.problem = problem
        self.status = int(problem.get("status") or 0)
        self.type = str(problem.get("type") or "about:blank")
        self.title = str(problem.get("title") or "")
        self.detail = str(problem.get("detail") or self.title)
        self.instance = str(problem.get("instance") or "")
        self.request_id: str | None = problem.get("request_id")
        self.errors: list[dict[str, Any]] = list(problem.get("errors") or [])
        self.headers = headers if headers is not None else httpx.Headers()
        super().__init__(f"{self.status} {self.type}: {self.detail}")

    @property
    def slug(self) -> str:
        """The last part of the problem type: ``not-found`` for ``urn:descent:problem:not-found``."""
        return self.type.rsplit(":", 1)[-1].rsplit("/", 1)[-1]


class BadRequest(APIError):
    """400 and any other 4xx without a class of its own."""


class Unauthorized(APIError):
    """401: the API key is missing, malformed, unknown or revoked."""


class Forbidden(APIError):
    """403: not allowed, e.g. a quota is exhausted."""


class NotFound(APIError):
    """404: no such dataset, job or model (or not yours)."""


class NotAcceptable(APIError):
    """406: the service cannot answer in a requested media type."""


class Conflict(APIError):
    """409: the resource's state does not allow this (a finished job, an Idempotency-Key reused)."""


class PayloadTooLarge(APIError):
    """413: the request body or the estimated cost is over a configured limit."""


class UnsupportedMediaType(APIError):
    """415: the request body's media type is not one the endpoint takes."""


class InvalidInput(APIError):
    """422: the content is not acceptable; ``errors`` locates each bad field."""


class _RetryAfter(APIError):
    @property
    def retry_after(self) -> float | None:
        """Seconds to wait before trying again, from the ``Retry-After`` header (None when absent)."""
        value = self.headers.get("retry-after")
        try:
            return max(0.0, float(value)) if value is not None else None
        except ValueError:
            return None


class RateLimited(_RetryAfter):
    """429: the job queue is full or a rate limit was hit; wait ``retry_after`` seconds."""


class ServerError(APIError):
    """5xx: the service failed; the detail carries its request id."""


class ServiceUnavailable(_RetryAfter, ServerError):
    """503: a dependency (database, broker) is down; wait ``retry_after`` seconds."""


class JobFailed(DescentError):
    """A job that was waited for ended ``failed`` or ``cancelled`` rather than ``succeeded``.

    Attributes
    ----------
    job : Job
        The job in its final state; ``job.error`` holds the error type and detail of a failure.
    """

    def __init__(self, job: Any) -> None:
        self.job = job
        error = getattr(job, "error", None)
        what = f": {error.type}: {error.detail}" if error is not None else ""
        super().__init__(f"job {job.id} ended {job.status}{what}")


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    406: NotAcceptable,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: InvalidInput,
    429: RateLimited,
    503: ServiceUnavailable,
}


def error_class(status: int) -> type[APIError]:
    """The exception class of an error status."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else BadRequest


def problem_of(response: httpx.Response) -> dict[str, Any]:
    """The response's problem document; one made from the status and text when the body is not one."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "status" in body and "detail" in body:
        return body
    text = response.text.strip()
    return {
        "type": "about:blank",
        "title": response.reason_phrase,
        "status": response.status_code,
        "detail": text[:500] or response.reason_phrase,
        "instance": response.request.url.path,
    }


def error_from_response(response: httpx.Response) -> APIError:
    """The :class:`APIError` subclass of the response's status, carrying its problem document."""
    return error_class(response.status_code)(problem_of(response), headers=response.headers)
