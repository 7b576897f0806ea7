"""When a request's work leaves the event loop: large bodies are parsed, computed and rendered in a thread."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from service.errors import DomainError
from service.http.body import JSONBody, parse_json, read_json_bytes
from service.http.lane import HeavyLane
from service.http.responses import JSONResponse

T = TypeVar("T")

# Bodies from this size (about 15,000 numbers) are parsed and computed in a worker thread, so that
# large requests never hold the event loop for long; below it the thread hop would cost more.
OFFLOAD_BYTES = 256 * 1024


async def respond_json(
    request: Request, work: Callable[[JSONBody], Mapping[str, Any]], *, offload: bool | None = None
) -> Response:
    """Read a JSON body, run ``work`` on it and answer its result as JSON.

    Parsing, the computation and rendering run in the application's heavy lane (a worker thread,
    a bounded few at once: 503 with Retry-After when it is full) when ``offload`` is true, or when it
    is None and the body is at least ``OFFLOAD_BYTES`` long.
    """
    raw = await read_json_bytes(request)

    def run() -> Response:
        return JSONResponse(work(parse_json(raw)))

    if offload or (offload is None and len(raw) >= OFFLOAD_BYTES):
        lane: HeavyLane = request.app.state.heavy_lane
        if lane.processes:
            # Raw bytes in, encoded bytes (or the domain error) back: no GIL shared with the loop.
            kind, result = await lane.run_in_process(_run_encoded, work, raw)
            if isinstance(result, DomainError):
                raise result
            return Response(result, media_type=kind)
        return await lane.run(run)
    return run()


def _run_encoded(
    work: Callable[[JSONBody], Mapping[str, Any]], raw: bytes
) -> tuple[str, bytes | DomainError]:
    """In a worker process: parse, compute and render; a domain error is returned, not raised."""
    try:
        response = JSONResponse(work(parse_json(raw)))
    except DomainError as exc:
        return "", _portable(exc)
    return response.media_type or "application/json", bytes(response.body)


def _portable(exc: DomainError) -> DomainError:
    """A plain DomainError with the same status, title, type, detail, errors, headers and extensions
    (subclasses with their own constructors do not survive pickling)."""
    copy = DomainError(exc.detail, errors=exc.errors, headers=exc.headers)
    copy.status, copy.title, copy.slug = exc.status, exc.title, exc.slug
    copy.extensions = exc.extensions
    return copy


async def heavy(request: Request, work: Callable[[], T]) -> T:
    """Run ``work`` in the application's heavy lane (``service.http.lane``)."""
    lane: HeavyLane = request.app.state.heavy_lane
    return await lane.run(work)
