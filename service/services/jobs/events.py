"""A job's server-sent event stream: replay after Last-Event-ID, then follow the store until ``end``."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator

import anyio

from service.errors import InvalidInput
from service.http.responses import dumps
from service.store import EventRecord, Store, events_since, get_job
from service.vocabulary import TERMINAL_STATUSES

# How often the store is polled for new events, and how long a stream may stay silent before a comment
# line keeps proxies and clients from timing it out.
EVENT_POLL_S = 0.2
KEEPALIVE_S = 10.0
EVENT_BATCH = 500


# Event ids have at most 18 digits: far more than a store ever numbers, and within the 64-bit integers of
# SQLite and PostgreSQL, so that a resume point is a number the store can compare.
EVENT_ID_DIGITS = 18
MAX_EVENT_ID = 10**EVENT_ID_DIGITS - 1


def parse_last_event_id(header: str | None, query: int | None) -> int:
    """Where a stream resumes: the ``Last-Event-ID`` header, else ``?last_event_id=``, else 0."""
    if header is None or not header.strip():
        return query or 0
    value = header.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= EVENT_ID_DIGITS):
        msg = (
            f"must be a non-negative integer event id of at most {EVENT_ID_DIGITS} digits, got {value[:40]!r}"
        )
        raise InvalidInput(f"Last-Event-ID {msg}", errors=[{"loc": ["header", "last-event-id"], "msg": msg}])
    return int(value)


def format_event(event: EventRecord) -> bytes:
    """One SSE message: ``id``, ``event`` and a single-line JSON ``data``, then a blank line."""
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.id, event.kind.encode(), dumps(event.data))


KEEPALIVE = b": keep-alive\n\n"


async def event_stream(
    store: Store,
    job_id: str,
    after: int = 0,
    *,
    poll_s: float = EVENT_POLL_S,
    keepalive_s: float = KEEPALIVE_S,
    stopping: threading.Event | None = None,
) -> AsyncIterator[bytes]:
    """The job's events after id ``after``, as SSE bytes, until its ``end`` event.

    Parameters
    ----------
    store : Store
    job_id : str
        A job that exists (the caller checks, so that an unknown id gets a 404 and not an empty stream).
    after : int
        The last event id the client has seen (``Last-Event-ID``).
    poll_s : float
        Seconds between polls of the store while no new event is there.
    keepalive_s : float
        A ``: keep-alive`` comment is sent after this many silent seconds.
    stopping : threading.Event, optional
        Set when the server shuts down: the stream ends at its next poll (a client resumes it
        elsewhere with ``Last-Event-ID``).

    Yields
    ------
    bytes
        One or more complete SSE messages (or a keep-alive comment). The generator returns after the
        ``end`` event, or at once when the job is terminal and every event up to its end was seen.
    """
    last_sent = last_check = time.monotonic()
    check_terminal = True
    while stopping is None or not stopping.is_set():
        # Read the status before the events: ending a job appends its 'end' event in the same
        # transaction, so a job seen terminal here has every event committed for the read below.
        terminal = False
        if check_terminal:
            job = await anyio.to_thread.run_sync(get_job, store, job_id)
            terminal = job.status in TERMINAL_STATUSES
            check_terminal, last_check = False, time.monotonic()
        events = await anyio.to_thread.run_sync(events_since, store, job_id, after, EVENT_BATCH)
        if events:
            end = next((i for i, e in enumerate(events) if e.kind == "end"), None)
            if end is not None:
                events = events[: end + 1]
            yield b"".join(format_event(event) for event in events)
            after, last_sent = events[-1].id, time.monotonic()
            if end is not None:
                return
            if len(events) == EVENT_BATCH:
                continue  # more are waiting: no pause
        elif terminal:
            return  # resumed after the end: nothing is left to send
        now = time.monotonic()
        if now - last_sent >= keepalive_s:
            yield KEEPALIVE
            last_sent = now
        # Rarely, recheck the status: a stream never ends on its own if its 'end' event is behind it.
        check_terminal = now - last_check >= keepalive_s
        await anyio.sleep(poll_s)
