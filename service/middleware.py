"""Pure-ASGI middleware: request ids, access logs and metrics; the request body size limit.

Pure ASGI rather than ``BaseHTTPMiddleware``: the latter runs each request through an extra task and
memory streams, which costs more than a small compute call itself.
"""

from __future__ import annotations

import logging
import os
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import PayloadTooLarge, problem_response, unhandled_error_response
from service.metrics import Metrics

access_logger = logging.getLogger("descent.access")

REQUEST_ID_HEADER = b"x-request-id"
# Incoming ids are echoed into headers and logs, so only short, plain tokens are honoured.
_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
UNMATCHED_ROUTE = "<unmatched>"


class RequestContextMiddleware:
    """Give every request an id, log one JSON line for it, record metrics, and answer 500 on crashes.

    The id comes from an incoming ``X-Request-ID`` header when it is a plain token of at most 128
    characters, otherwise 32 random hex digits; it is stored in ``request.state.request_id`` and returned in
    the ``X-Request-ID`` response header.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                if _VALID_REQUEST_ID.fullmatch(value):
                    request_id = value.decode("ascii")
                break
        if request_id is None:
            # 128 random bits as hex: as unique as a UUID4, a fifth of the cost of uuid.uuid4().
            request_id = os.urandom(16).hex()
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state["request_id"] = request_id
        id_header = (REQUEST_ID_HEADER, request_id.encode("ascii"))
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        metrics = self.metrics
        metrics.in_progress += 1
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if started:
                raise
            await unhandled_error_response(scope, exc)(scope, receive, send_with_id)
        finally:
            metrics.in_progress -= 1
            duration = time.perf_counter() - start
            route = scope.get("route")
            method = scope["method"]
            metrics.observe(method, getattr(route, "path", UNMATCHED_ROUTE), status, duration)
            if access_logger.isEnabledFor(logging.INFO):
                fields = {
                    "method": method,
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(duration * 1000, 3),
                    "request_id": request_id,
                }
                # makeRecord + handle is logger.info without its stack walk for the caller's file and line.
                access_logger.handle(
                    access_logger.makeRecord(
                        access_logger.name, logging.INFO, __file__, 0, "request", (), None, extra=fields
                    )
                )


class BodySizeLimitMiddleware:
    """Answer 413 for request bodies over ``max_body_bytes``.

    A ``Content-Length`` over the limit is refused before the application runs; a body without one
    (chunked) is counted while it streams and refused as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"the request body exceeds the limit of {self.max_body_bytes} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > limit:
                    await self._reject(scope, receive, send)
                    return
                # The server holds the body to its declared length, so nothing is left to count.
                await self.app(scope, receive, send)
                return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise self._too_large()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except PayloadTooLarge:
            # The application normally turns this into a 413 itself; this covers reads outside a handler.
            if started:
                raise
            await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        exc = self._too_large()
        # The connection stays open: the server drops the rest of the body, so a client that sends
        # it all before reading (most do) still gets this answer instead of a reset.
        response = problem_response(scope, exc.status, exc.title, exc.detail, type=exc.type)
        await response(scope, receive, send)
