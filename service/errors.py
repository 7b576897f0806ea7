"""The service's domain errors: one hierarchy, each class carrying its HTTP status, title and type.

This module imports nothing but the standard library, so every layer may raise these errors: the
store (``NotFound``, ``Conflict``, ``QueueFull``, ``StoreUnavailable``...), the services and the HTTP
layer alike. ``service.http.problems`` is the one place that turns them, and every other error, into
RFC 9457 ``application/problem+json``.

A field-level failure is built one way, :func:`field_error`; :func:`validation_error` turns pydantic's
errors into the same shape.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

PROBLEM_TYPE_PREFIX = "urn:descent:problem:"

Loc = Sequence[str | int]
Source = Literal["body", "query", "path", "header"]


def problem_type(slug: str) -> str:
    """The ``type`` URI of a problem, e.g. ``urn:descent:problem:invalid-input``."""
    return PROBLEM_TYPE_PREFIX + slug


class DomainError(Exception):
    """An error with its own HTTP status, answered as a problem document.

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
        #: Extension members of the problem document (RFC 9457 §3.2), beside type, title and detail.
        self.extensions: dict[str, Any] = {}

    @property
    def type(self) -> str:
        return problem_type(self.slug)


class BadRequest(DomainError):
    """400: the request is not well-formed HTTP (refused by the server's parser, before any route)."""

    status, title, slug = 400, "Bad Request", "bad-request"


class Unauthorized(DomainError):
    """401 with ``WWW-Authenticate: Bearer``: no API key, or one that is malformed, unknown or revoked."""

    status, title, slug = 401, "Unauthorized", "unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="descent"'})


class Forbidden(DomainError):
    """403: the key is valid but may not do this."""

    status, title, slug = 403, "Forbidden", "forbidden"


class QuotaExceeded(Forbidden):
    """403: the owner's usage would pass one of its quotas.

    The problem document carries ``quota``: its name, the owner's usage and the limit.
    """

    title, slug = "Quota Exceeded", "quota-exceeded"

    def __init__(self, name: str, *, usage: int, limit: int, adding: int = 1, unit: str = "") -> None:
        shown = f" {unit}" if unit else ""
        super().__init__(
            f"quota {name} exceeded: {usage}{shown} in use, {adding}{shown} more would pass the limit of "
            f"{limit}{shown}; free some up or ask an administrator for a larger quota"
        )
        self.extensions = {"quota": {"name": name, "usage": usage, "limit": limit, "requested": adding}}


class NotFound(DomainError):
    """404: no resource here, or no resource of this kind with this id (or it is another owner's)."""

    status, title, slug = 404, "Not Found", "not-found"

    @classmethod
    def resource(cls, kind: str, id: str) -> NotFound:
        """``NotFound.resource("job", "job_1")``: detail "job 'job_1' not found"."""
        return cls(f"{kind} {id!r} not found")


class MethodNotAllowed(DomainError):
    """405: the path exists but does not take this method; ``Allow`` lists those it takes."""

    status, title, slug = 405, "Method Not Allowed", "method-not-allowed"


class NotAcceptable(DomainError):
    """406: none of the media types the request accepts can be produced."""

    status, title, slug = 406, "Not Acceptable", "not-acceptable"


class Conflict(DomainError):
    """409: the resource is in a state that does not allow the change."""

    status, title, slug = 409, "Conflict", "conflict"


class NoSnapshot(Conflict):
    """409: the job exists but has no snapshot: none written yet, or its model is too large for one."""

    title, slug = "No Snapshot", "no-snapshot"


class StaleAttempt(Conflict):
    """A run wrote with an attempt that no longer owns the job; nothing was written.

    It is a ``Conflict``, so callers that only care that the job refused the write can catch one class.
    """

    title, slug = "Stale Attempt", "stale-attempt"

    def __init__(self, job_id: str, attempt: int) -> None:
        super().__init__(f"attempt {attempt} no longer owns job {job_id!r}")
        self.job_id = job_id
        self.attempt = attempt


class PayloadTooLarge(DomainError):
    status, title, slug = 413, "Content Too Large", "payload-too-large"


class OverLimit(PayloadTooLarge):
    """413: the request's estimated cost (memory or response size) is over a configured limit.

    The problem document carries ``limit``: the setting, the limit and the estimate in bytes, and the
    estimate's terms.
    """

    title, slug = "Over Limit", "over-limit"

    def __init__(self, what: str, *, setting: str, limit_bytes: int, estimate: Mapping[str, int]) -> None:
        total = estimate["total_bytes"]
        super().__init__(
            f"{what} is estimated at {_bytes(total)}, over the limit of {_bytes(limit_bytes)} "
            f"({setting}); make it smaller or raise {setting}"
        )
        self.extensions = {
            "limit": {
                "setting": setting,
                "limit_bytes": limit_bytes,
                "estimate_bytes": total,
                "estimate": dict(estimate),
            }
        }


def _bytes(n: int) -> str:
    mib = 1024 * 1024
    if n >= 1024 * mib:
        return f"{n / (1024 * mib):.1f} GiB"
    if n >= mib:
        return f"{n / mib:.1f} MiB"
    return f"{n} bytes"


class UnsupportedMediaType(DomainError):
    status, title, slug = 415, "Unsupported Media Type", "unsupported-media-type"


class InvalidInput(DomainError):
    """422: the request is well-formed but its content is not acceptable (build with :func:`field_error`)."""

    status, title, slug = 422, "Invalid Input", "invalid-input"


class _RetryLater(DomainError):
    """An error the client may retry after ``retry_after`` seconds (sent as ``Retry-After``)."""

    retry_after_s: int = 1

    def __init__(
        self,
        detail: str,
        *,
        retry_after: int | None = None,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.retry_after = self.retry_after_s if retry_after is None else retry_after
        super().__init__(
            detail, errors=errors, headers={"Retry-After": str(self.retry_after), **(headers or {})}
        )


class TooManyRequests(_RetryLater):
    """429 with ``Retry-After`` (seconds): a limit on requests or queued work was reached."""

    status, title, slug = 429, "Too Many Requests", "too-many-requests"


class QueueFull(TooManyRequests):
    """The number of queued jobs has reached the configured limit."""

    title, slug, retry_after_s = "Queue Full", "queue-full", 5

    def __init__(self, limit: int) -> None:
        super().__init__(f"the job queue is full ({limit} queued jobs at most); retry later")
        self.limit = limit


class RateLimited(TooManyRequests):
    """429: the key has used up its request budget; ``RateLimit`` headers tell when it refills."""

    title, slug = "Rate Limited", "rate-limited"


class ServiceUnavailable(_RetryLater):
    """503 with ``Retry-After`` (seconds): a dependency (database, broker) is down."""

    status, title, slug = 503, "Service Unavailable", "service-unavailable"


class StoreUnavailable(ServiceUnavailable):
    """The database could not be reached or did not answer in time."""

    title, slug, retry_after_s = "Store Unavailable", "store-unavailable", 5


class StorageCorrupted(DomainError):
    """500: stored bytes failed their sha256 check or cannot be decoded; they are never served.

    The problem document carries ``resource``: ``{"kind", "id"}`` of what is damaged (a dataset, a
    model, a job's checkpoint or snapshot).
    """

    title, slug = "Storage Corrupted", "storage-corrupted"

    def __init__(self, kind: str, id: str, why: str, *, remedy: str | None = None) -> None:
        remedy = remedy or "delete it and create it again, or restore the store from a backup"
        super().__init__(f"{kind} {id!r} is corrupted in the store ({why}); {remedy}")
        self.kind = kind
        self.id = id
        self.extensions = {"resource": {"kind": kind, "id": id}}


class InsufficientStorage(DomainError):
    """507: the store's disk is full; deleting datasets, models or jobs frees space."""

    status, title, slug = 507, "Insufficient Storage", "insufficient-storage"


#: The store cannot take a write right now (unreachable, or its disk is full): not the fault of the
#: request or job that tried, so a run waits these out rather than failing its job.
STORE_OUTAGES: tuple[type[DomainError], ...] = (StoreUnavailable, InsufficientStorage)


_LOC_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def field_loc(name: str, source: Source = "body") -> list[str | int]:
    """``"model.parameters[0].weights"`` → ``["body", "model", "parameters", 0, "weights"]``."""
    parts: list[str | int] = [source]
    for key, index in _LOC_PART.findall(name):
        parts.append(int(index) if index else key)
    return parts


def field_error(name: str, msg: str, *, source: Source = "body", detail: str | None = None) -> InvalidInput:
    """The 422 about one field of the request: the one way to build it.

    Parameters
    ----------
    name : str
        The field as a reader writes it: ``"X"``, ``"model.parameters[0].weights"``, ``"X[3][1]"``;
        for a query parameter, header or path parameter its name (``"cursor"``, ``"Idempotency-Key"``).
        An empty name with the body source means the whole body.
    msg : str
        What is wrong, as the rest of a sentence about the field: ``"must not be empty"``.
    source : {"body", "query", "path", "header"}
        Where the field is; the first element of the error's ``loc``.
    detail : str, optional
        The problem's detail when ``msg`` is a sentence of its own (e.g. the engine's ``ValueError``
        message); by default "X must not be empty" for a body field, "query parameter cursor must ..."
        or "header Idempotency-Key must ..." for the others.

    Returns
    -------
    InvalidInput
        With one error, ``{"loc": [source, ...], "msg": msg}``.
    """
    if source == "body":
        subject = name or "the request body"
        loc = field_loc(name)
    else:
        subject = f"header {name}" if source == "header" else f"{source} parameter {name}"
        loc = [source, name.lower() if source == "header" else name]
    return InvalidInput(detail or f"{subject} {msg}", errors=[{"loc": loc, "msg": msg}])


def _loc_str(loc: Loc) -> str:
    return ".".join(str(part) for part in loc)


def validation_error(raw: Sequence[Mapping[str, Any]], prefix: Loc = ()) -> InvalidInput:
    """An InvalidInput from pydantic's ``ValidationError.errors()``, each loc prefixed (e.g. with "body").

    Inputs are left out (they can be huge); the detail lists every failure as "loc: msg".
    """
    errors: list[dict[str, Any]] = [{"loc": [*prefix, *e.get("loc", ())], "msg": _message(e)} for e in raw]
    parts = [f"{_loc_str(e['loc'])}: {e['msg']}" if e["loc"] else str(e["msg"]) for e in errors]
    detail = parts[0] if len(parts) == 1 else f"{len(parts)} invalid fields: " + "; ".join(parts)
    return InvalidInput(detail, errors=errors)


def _message(error: Mapping[str, Any]) -> str:
    msg = str(error.get("msg", "invalid value"))
    # pydantic prefixes the message of a ValueError raised by a validator; the reader needs the reason.
    if error.get("type") == "value_error" and msg.startswith("Value error, "):
        return msg.removeprefix("Value error, ")
    return msg
