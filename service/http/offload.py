"""Bodies in and answers out in the format asked for; large bodies are parsed, computed and rendered off
the event loop, in the heavy lane."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from service.errors import DomainError
from service.http import binary
from service.http.binary import NPY_MEDIA_TYPE, NPZ_MEDIA_TYPE, ArrayFields
from service.http.body import JSONBody, parse_json
from service.http.lane import HeavyLane
from service.http.media import JSON_MEDIA_TYPE, content_kind, preferred_media_type
from service.http.responses import JSONResponse

T = TypeVar("T")

# Bodies from this size (about 15,000 numbers) are parsed and computed in a worker thread, so that
# large requests never hold the event loop for long; below it the thread hop would cost more.
OFFLOAD_BYTES = 256 * 1024

# An answer of a worker process from this size on is written to a file by the worker and sent from it a
# chunk at a time: the API process never holds it whole (a forward pass with intermediates answers tens
# of MB), and its event loop neither unpickles nor copies it.
SPOOL_BYTES = 1024 * 1024
SPOOL_CHUNK_BYTES = 1024 * 1024

_BODY_FORMATS = {JSON_MEDIA_TYPE: "json", NPY_MEDIA_TYPE: "npy", NPZ_MEDIA_TYPE: "npz"}
_ANSWER_MEDIA_TYPES = (JSON_MEDIA_TYPE, NPZ_MEDIA_TYPE, NPY_MEDIA_TYPE)
_ANSWER_FORMATS = {JSON_MEDIA_TYPE: "json", NPZ_MEDIA_TYPE: "npz", NPY_MEDIA_TYPE: "npy"}
_JSON_ACCEPTS = frozenset({JSON_MEDIA_TYPE, "*/*"})
#: An endpoint with no lone array: binary bodies and answers are ``.npz`` only.
NO_ARRAYS = ArrayFields()


@dataclass(frozen=True, slots=True)
class Exchange:
    """The formats of one request: what its body is and what its answer must be (picklable, for the
    worker-process lane).

    Attributes
    ----------
    body, answer : {"json", "npy", "npz"}
        From ``Content-Type`` and ``Accept`` (JSON without an Accept header or when it takes none of
        the binary types).
    fields : ArrayFields
        The fields a lone ``.npy`` array stands for on the endpoint.
    query : tuple of (str, str)
        The query parameters, which are fields of a binary body (``service.http.binary``).
    max_elements : int
        Most elements one array of a binary body may hold (checked before its data is read).
    max_bytes : int or None
        Most bytes the arrays of an ``.npz`` body may hold once decompressed (the body-size limit).
    """

    body: str = "json"
    answer: str = "json"
    fields: ArrayFields = NO_ARRAYS
    query: tuple[tuple[str, str], ...] = ()
    max_elements: int = 0
    max_bytes: int | None = None

    def decode(self, raw: bytes) -> JSONBody:
        """The body object, from JSON or from the arrays and query parameters of a binary body."""
        if self.body == "json":
            return parse_json(raw)
        fields = binary.request_fields(
            raw, self.body, self.query, self.fields, self.max_elements, self.max_bytes
        )
        return JSONBody(fields)

    def encode(self, content: Mapping[str, Any], *, joined: bool = False) -> Response:
        """The answer in the negotiated format; an ``.npy`` answer sends the array's own memory after
        its header unless ``joined`` (one bytes object, to cross a process boundary)."""
        if self.answer == "json":
            return JSONResponse(content)
        if self.answer == "npz":
            return Response(binary.npz_bytes(content), media_type=NPZ_MEDIA_TYPE)
        header, data = binary.npy_parts(content, self.fields)
        if joined:
            return Response(b"".join([header, data]), media_type=NPY_MEDIA_TYPE)
        return NpyResponse(header, data)


class NpyResponse(Response):
    """An ``.npy`` answer sent as two body messages, NumPy's header and then the array's memory, so
    that the array is never copied into a joined buffer."""

    media_type = NPY_MEDIA_TYPE

    def __init__(self, header: bytes, data: memoryview) -> None:
        super().__init__(header)
        self.data = data
        length = str(len(header) + data.nbytes).encode("latin-1")
        self.raw_headers = [(k, length if k == b"content-length" else v) for k, v in self.raw_headers]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": True})
        await send({"type": "http.response.body", "body": self.data})


@dataclass(frozen=True, slots=True)
class Spooled:
    """An answer a worker process wrote to the file ``path`` (``size`` bytes), for the API to send."""

    path: str
    size: int


class SpooledResponse(Response):
    """An answer sent from a worker process's file, ``SPOOL_CHUNK_BYTES`` at a time (each read in a
    thread). The file is removed at once: it lives on only while this response holds it open."""

    def __init__(self, spooled: Spooled, media_type: str) -> None:
        self.file = open(spooled.path, "rb")  # closed once sent (or by its finalizer)
        os.unlink(spooled.path)
        super().__init__(b"", media_type=media_type)
        length = str(spooled.size).encode("latin-1")
        self.raw_headers = [(k, length if k == b"content-length" else v) for k, v in self.raw_headers]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with self.file:
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            while True:
                chunk = await anyio.to_thread.run_sync(self.file.read, SPOOL_CHUNK_BYTES)
                more = len(chunk) == SPOOL_CHUNK_BYTES
                await send({"type": "http.response.body", "body": chunk, "more_body": more})
                if not more:
                    return


def negotiate(request: Request, fields: ArrayFields) -> Exchange:
    """The body's format from ``Content-Type`` (415 for any other) and the answer's from ``Accept``."""
    content_type = accept = None
    # Straight from the ASGI scope: building request.headers costs more than the rest of a small call.
    for name, value in request.scope["headers"]:
        if name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"accept":
            accept = value.decode("latin-1")
    body = "json" if content_type == JSON_MEDIA_TYPE else content_kind(content_type, _BODY_FORMATS)[0]
    if accept is None or accept in _JSON_ACCEPTS:
        answer = "json"
    else:
        answer = _ANSWER_FORMATS[preferred_media_type(accept, _ANSWER_MEDIA_TYPES)]
    if body == "json":
        return Exchange(body, answer, fields)
    settings = request.app.state.settings
    query = tuple(request.query_params.multi_items())
    return Exchange(body, answer, fields, query, settings.max_array_elements, settings.max_body_bytes)


async def respond_json(
    request: Request,
    work: Callable[[JSONBody], Mapping[str, Any]],
    *,
    offload: bool | None = None,
    arrays: ArrayFields = NO_ARRAYS,
) -> Response:
    """Read a body (JSON, ``.npy`` or ``.npz``), run ``work`` on it and answer its result as the
    ``Accept`` header asks (JSON, ``.npz`` or ``.npy``).

    Parsing, the computation and rendering run in the application's heavy lane (a worker thread,
    a bounded few at once: 503 with Retry-After when it is full) when ``offload`` is true, or when it
    is None and the body is at least ``OFFLOAD_BYTES`` long.
    """
    exchange = negotiate(request, arrays)
    raw = await request.body()

    def run() -> Response:
        return exchange.encode(work(exchange.decode(raw)))

    if offload or (offload is None and len(raw) >= OFFLOAD_BYTES):
        lane: HeavyLane = request.app.state.heavy_lane
        if lane.processes:
            # Raw bytes in, encoded bytes (or the domain error) back: no GIL shared with the loop.
            kind, result = await lane.run_in_process(_run_encoded, work, raw, exchange, lane.spool_dir())
            if isinstance(result, DomainError):
                raise result
            if isinstance(result, Spooled):
                return SpooledResponse(result, kind)
            return Response(result, media_type=kind)
        return await lane.run(run)
    return run()


def _run_encoded(
    work: Callable[[JSONBody], Mapping[str, Any]], raw: bytes, exchange: Exchange, spool_dir: str
) -> tuple[str, bytes | Spooled | DomainError]:
    """In a worker process: parse, compute and render; a domain error is returned, not raised. An answer
    of at least ``SPOOL_BYTES`` is written to a file in ``spool_dir`` (its bytes come back only when
    that fails)."""
    try:
        response = exchange.encode(work(exchange.decode(raw)), joined=True)
    except DomainError as exc:
        return "", _portable(exc)
    kind, body = response.media_type or JSON_MEDIA_TYPE, bytes(response.body)
    if len(body) < SPOOL_BYTES:
        return kind, body
    path = None
    try:
        fd, path = tempfile.mkstemp(prefix="answer-", dir=spool_dir)
        with os.fdopen(fd, "wb") as file:
            file.write(body)
    except OSError:  # a full disk, or the folder gone at shutdown: the bytes come back as they are
        if path is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)
        return kind, body
    return kind, Spooled(path, len(body))


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
