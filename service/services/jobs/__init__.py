"""The jobs service: create, read, list, metrics, cancel and the event stream of /v1/jobs.

Modules: ``creation`` (POST: validation, inline data, the queue, the Idempotency-Key), ``target`` (what a
job trains on, and the checks against it), ``document`` (the Job as the API shows it), ``access`` (one
job, pages, cancel, delete), ``history`` (the metric history), ``events`` (server-sent events).

Every function here that touches the store is synchronous (one short transaction or a few) and is
called from a worker thread by the router, except :func:`event_stream`, an async generator that polls
the store from a thread. Responses are plain dicts whose shape is documented by
``service.http.schemas.jobs``.
"""

from service.services.jobs.access import cancel, delete, list_page, read, status
from service.services.jobs.creation import IDEMPOTENCY_SCOPE, Created, create, job_scope, request_hash
from service.services.jobs.document import document, job_document, location
from service.services.jobs.events import (
    EVENT_ID_DIGITS,
    KEEPALIVE,
    MAX_EVENT_ID,
    event_stream,
    format_event,
    parse_last_event_id,
)
from service.services.jobs.history import downsample_indices, metrics

__all__ = [
    "EVENT_ID_DIGITS",
    "IDEMPOTENCY_SCOPE",
    "KEEPALIVE",
    "MAX_EVENT_ID",
    "Created",
    "cancel",
    "create",
    "delete",
    "document",
    "downsample_indices",
    "event_stream",
    "format_event",
    "job_document",
    "job_scope",
    "list_page",
    "location",
    "metrics",
    "parse_last_event_id",
    "read",
    "request_hash",
    "status",
]
