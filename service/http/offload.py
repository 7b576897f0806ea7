"""When a request's work leaves the event loop: large bodies are parsed, computed and rendered in a thread."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from service.http.body import JSONBody, parse_json, read_json_bytes
from service.http.responses import JSONResponse

# Bodies from this size (about 15,000 numbers) are parsed and computed in a worker thread, so that
# large requests never hold the event loop for long; below it the thread hop would cost more.
OFFLOAD_BYTES = 256 * 1024


async def respond_json(
    request: Request, work: Callable[[JSONBody], Mapping[str, Any]], *, offload: bool | None = None
) -> Response:
    """Read a JSON body, run ``work`` on it and answer its result as JSON.

    Parsing, the computation and rendering run in a worker thread (one of the application's
    ``compute_limiter``) when ``offload`` is true, or when it is None and the body is at least
    ``OFFLOAD_BYTES`` long.
    """
    raw = await read_json_bytes(request)

    def run() -> Response:
        return JSONResponse(work(parse_json(raw)))

    if offload or (offload is None and len(raw) >= OFFLOAD_BYTES):
        limiter = getattr(request.app.state, "compute_limiter", None)
        return await anyio.to_thread.run_sync(run, limiter=limiter)
    return run()
