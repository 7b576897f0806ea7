"""Domain errors raised by the store.

Each carries the HTTP status it stands for, so the HTTP layer turns all of them into problem+json in one
place; the workers use the same classes to decide what to do (e.g. stop a run on ``StaleAttempt``).
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""

    status_code: int = 500
    title: str = "Store error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(StoreError):
    """No resource of this kind has this id (or it belongs to another owner)."""

    status_code = 404
    title = "Not found"

    def __init__(self, kind: str, id: str) -> None:
        super().__init__(f"{kind} {id!r} not found")
        self.kind = kind
        self.id = id


class Conflict(StoreError):
    """The resource is in a state that does not allow the change."""

    status_code = 409
    title = "Conflict"


class StaleAttempt(Conflict):
    """A run wrote with an attempt that no longer owns the job; nothing was written.

    It is a ``Conflict``, so callers that only care that the job refused the write can catch one class.
    """

    title = "Stale attempt"

    def __init__(self, job_id: str, attempt: int) -> None:
        super().__init__(f"attempt {attempt} no longer owns job {job_id!r}")
        self.job_id = job_id
        self.attempt = attempt


class QueueFull(StoreError):
    """The number of queued jobs has reached the configured limit."""

    status_code = 429
    title = "Queue full"

    def __init__(self, limit: int) -> None:
        super().__init__(f"the job queue is full ({limit} queued jobs at most); retry later")
        self.limit = limit


class StoreUnavailable(StoreError):
    """The database could not be reached or did not answer in time."""

    status_code = 503
    title = "Store unavailable"
