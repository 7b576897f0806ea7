"""Structured logging: one JSON object per line on stderr for the ``descent`` loggers.

The access log (one line per request, logger ``descent.access``) has a fast path: while the
service's own stderr handler is the only place its records would go, :func:`log_access` builds the
line with one orjson call and leaves it for a batch written at most ``ACCESS_FLUSH_SECONDS`` later
(and when the service stops), instead of creating a ``LogRecord``, taking the handler's lock,
formatting and writing for every request: together about as long as a small compute call. So an
access line can come after lines the other loggers wrote meanwhile. As soon as anything else
listens (a handler or filter added by a test runner or a ``logging.config``), access lines go
through ``logging`` as the other records do.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import time
from typing import Any

import orjson

ACCESS_LOGGER = "descent.access"

# Attributes every LogRecord has; anything else on a record came in through ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

# (millisecond, its text) and (second, its text): lines come in bursts, so most share the millisecond
# of the line before, and one strftime per second is enough. Single tuples, so that a thread never
# sees one part updated without the other.
_milli_cache: tuple[int, str] = (-1, "")
_second_cache: tuple[int, str] = (-1, "")


def _timestamp(created: float) -> str:
    """``created`` (seconds since the epoch) as ``2024-05-01T12:00:00.123Z``."""
    global _milli_cache, _second_cache
    milli = int(created * 1000)
    cached_milli, text = _milli_cache
    if milli == cached_milli:
        return text
    second, fraction = divmod(milli, 1000)
    cached_second, prefix = _second_cache
    if second != cached_second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second_cache = (second, prefix)
    text = f"{prefix}.{fraction:03d}Z"
    _milli_cache = (milli, text)
    return text


class JSONFormatter(logging.Formatter):
    """Format a record as ``{"time", "level", "logger", "message", **extra}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = record.__dict__
        for key in [k for k in fields if k not in _STANDARD]:
            if not key.startswith("_"):
                entry[key] = fields[key]
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler on whatever ``sys.stderr`` is at the time of each record (servers and test
    runners swap it), not the one it was when logging was configured."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


_root = logging.getLogger("descent")
_access = logging.getLogger(ACCESS_LOGGER)
# Access lines wait at most this long to be written, and at most this many wait: a write (a system
# call) per line would cost a small request about a tenth of its time.
ACCESS_FLUSH_SECONDS = 0.05
ACCESS_BATCH_LINES = 1000
_pending: list[bytes] = []
# The loop a flush of _pending is scheduled on, if any (a loop closed before running it is replaced).
_flush_loop: asyncio.AbstractEventLoop | None = None


def configure_logging(level: str) -> None:
    """Send the ``descent`` loggers to stderr as JSON lines at ``level``; idempotent."""
    _root.setLevel(level.upper())
    if not any(isinstance(h, _StderrHandler) for h in _root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(JSONFormatter())
        _root.addHandler(handler)
    # The handler above is the only output; the root logger (uvicorn's, pytest's) would print twice.
    _root.propagate = False


def _only_stderr_handler() -> bool:
    """Whether an access record would reach nothing but the handler of :func:`configure_logging`."""
    if _access.handlers or _access.filters or not _access.propagate:
        return False
    handlers = _root.handlers
    if len(handlers) != 1 or _root.filters or _root.propagate:
        return False
    handler = handlers[0]
    return type(handler) is _StderrHandler and not handler.filters and handler.level <= logging.INFO


def log_access(
    method: str,
    path: str,
    status: int,
    seconds: float,
    request_id: str,
    owner: str | None = None,
    key_id: str | None = None,
) -> None:
    """Log one request on ``descent.access`` (at info): method, path, status, duration and id, and the
    owner and key id (never the key) it acted as, when it was authenticated."""
    global _flush_loop
    if not _access.isEnabledFor(logging.INFO):
        return
    # Whole microseconds as milliseconds: the shortest repr of n / 1000 has at most three decimals,
    # as round(x, 3) would give, at a fifth of its cost.
    duration_ms = int(seconds * 1e6) / 1000
    if not _only_stderr_handler():
        fields: dict[str, Any] = {
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
            "request_id": request_id,
        }
        if owner is not None:
            fields["owner"] = owner
            fields["key_id"] = key_id
        # makeRecord + handle is logger.info without its stack walk for the caller's file and line.
        record = _access.makeRecord(
            ACCESS_LOGGER, logging.INFO, __file__, 0, "request", (), None, extra=fields
        )
        _access.handle(record)
        return
    # The same line JSONFormatter would write for that record.
    entry: dict[str, Any] = {
        "time": _timestamp(time.time()),
        "level": "info",
        "logger": ACCESS_LOGGER,
        "message": "request",
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": duration_ms,
        "request_id": request_id,
    }
    if owner is not None:
        entry["owner"] = owner
        entry["key_id"] = key_id
    _pending.append(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE))
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        flush_access_log()
        return
    if len(_pending) >= ACCESS_BATCH_LINES:
        flush_access_log()
    elif loop is not _flush_loop:
        loop.call_later(ACCESS_FLUSH_SECONDS, flush_access_log)
        _flush_loop = loop


def flush_access_log() -> None:
    """Write the access lines not yet written (one write for the batch)."""
    global _flush_loop
    _flush_loop = None
    count = len(_pending)
    if not count:
        return
    # Only the lines counted: a loop in another thread may be appending meanwhile.
    data = b"".join(_pending[:count])
    del _pending[:count]
    stream = sys.stderr
    if stream is None:  # no console (pythonw) and nothing redirected: nowhere to write
        return
    try:
        stream.write(data.decode())
        stream.flush()
    except (OSError, ValueError):  # a closed or broken stderr must not fail requests
        pass


atexit.register(flush_access_log)
