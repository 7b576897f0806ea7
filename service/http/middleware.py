"""The one pure-ASGI middleware: request ids, the request body size limit, the gate (identity, cross-site
refusals, rate limits), metrics and access logs.

Pure ASGI rather than ``BaseHTTPMiddleware``: the latter runs each request through an extra task and
memory streams, which costs more than a small compute call itself. One layer rather than one per
concern: every layer is another coroutine call on each request and on each message it sends.
"""

from __future__ import annotations

import random
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import DomainError, PayloadTooLarge
from service.http.auth import Gate
from service.http.problems import error_response, problem_response, unhandled_error_response
from service.logs import log_access
from service.metrics import Metrics

REQUEST_ID_HEADER = b"x-request-id"
# Incoming ids are echoed into headers and logs, so only short, plain tokens are honoured.
_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
UNMATCHED_ROUTE = "<unmatched>"


class RequestContextMiddleware:
    """Give every request an id, hold its body to a size limit, record metrics, log one JSON line
    for it, and answer 500 (with the id) when the application crashes.

    The id comes from an incoming ``X-Request-ID`` header when it is a plain token of at most 128
    characters, otherwise 32 random hex digits; it is stored in ``request.state.request_id`` and
    returned in the ``X-Request-ID`` response header.

    Bodies over ``max_body_bytes`` get 413: a ``Content-Length`` over the limit is refused before
    the application runs; a body without one (chunked) is counted while it streams and refused as
    soon as it passes the limit.

    The gate (``service.http.auth``) then admits the request, recording its principal in
    ``request.state.principal`` and the settings as it sees them in ``request.state.settings``, or
    answers it (401, 403, 415, 429).
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, max_body_bytes: int, gate: Gate | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = content_length = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                if content_length is None:
                    content_length = value
            elif name == REQUEST_ID_HEADER and request_id is None:
                # The first header decides; an unsafe one is replaced, not skipped for a later one.
                request_id = value.decode("ascii") if _VALID_REQUEST_ID.fullmatch(value) else ""
        if not request_id:
            # 128 random bits as hex: as unique as a UUID4. From the random module's generator (seeded
            # from os.urandom, and again in each forked worker), not from os.urandom itself: an id is
            # no secret, and a system call per request is not free.
            request_id = random.getrandbits(128).to_bytes(16, "big").hex()
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state["request_id"] = request_id
        extra_headers = [(REQUEST_ID_HEADER, request_id.encode("ascii"))]
        status = 0  # until the response starts
        principal = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *extra_headers]
            await send(message)

        metrics = self.metrics
        metrics.in_progress += 1
        try:
            if self.gate is not None:
                try:
                    principal, limit_headers = await self.gate.admit(scope)
                except DomainError as exc:
                    await error_response(scope, exc)(scope, receive, send_with_id)
                    return
                extra_headers.extend(limit_headers)
                if principal is not None:
                    state["principal"], state["settings"] = principal, principal.settings
            if content_length is None:
                await self.app(scope, self._counting(receive), send_with_id)
            elif content_length.isdigit() and int(content_length) > self.max_body_bytes:
                await self._reject(scope, receive, send_with_id)
            else:
                # The server holds the body to its declared length, so nothing is left to count.
                await self.app(scope, receive, send_with_id)
        except PayloadTooLarge:
            # The application normally turns this into a 413 itself; this covers reads outside a handler.
            if status:
                raise
            await self._reject(scope, receive, send_with_id)
        except Exception as exc:
            if status:
                raise
            await unhandled_error_response(scope, exc)(scope, receive, send_with_id)
        finally:
            metrics.in_progress -= 1
            duration = time.perf_counter() - start
            method = scope["method"]
            status = status or 500  # no response at all: the server answers 500
            metrics.observe(method, getattr(scope.get("route"), "path", UNMATCHED_ROUTE), status, duration)
            if principal is None or principal.key_id is None:
                log_access(method, scope["path"], status, duration, request_id)
            else:
                log_access(
                    method, scope["path"], status, duration, request_id, principal.owner, principal.key_id
                )

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"the request body exceeds the limit of {self.max_body_bytes} bytes")

    def _counting(self, receive: Receive) -> Receive:
        """``receive`` that raises PayloadTooLarge once the body read so far passes the limit."""
        limit = self.max_body_bytes
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise self._too_large()
            return message

        return counting_receive

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        exc = self._too_large()
        # The connection stays open: the server drops the rest of the body, so a client that sends
        # it all before reading (most do) still gets this answer instead of a reset.
        response = problem_response(scope, exc.status, exc.title, exc.detail, type=exc.type)
        await response(scope, receive, send)
