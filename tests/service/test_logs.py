"""service.logs: the access line written directly in batches, and through ``logging`` when others listen."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest

from service.app import create_app
from service.logs import ACCESS_FLUSH_SECONDS, JSONFormatter, _StderrHandler, flush_access_log, log_access
from tests.service.conftest import Client, make_settings

ACCESS_KEYS = ["time", "level", "logger", "message", "method", "path", "status", "duration_ms", "request_id"]


class Stream:
    """A stand-in for sys.stderr that records each write."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def access_lines(self) -> list[dict]:
        lines = [orjson.loads(line) for text in self.writes for line in text.splitlines()]
        return [line for line in lines if line["logger"] == "descent.access"]


@contextmanager
def service_handler_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stream]:
    """Leave the service's own handler alone on the ``descent`` logger, writing to a recording stderr.

    Test runners attach handlers of their own (pytest does, to every non-propagating logger), and
    swap sys.stderr at each phase of a test: so this is entered in the test itself.
    """
    flush_access_log()  # nothing left over from earlier requests
    stream = Stream()
    monkeypatch.setattr(sys, "stderr", stream)
    root = logging.getLogger("descent")
    others = [h for h in root.handlers if not isinstance(h, _StderrHandler)]
    for handler in others:
        root.removeHandler(handler)
    try:
        yield stream
    finally:
        for handler in others:
            root.addHandler(handler)
        flush_access_log()
        monkeypatch.undo()


class LoopClock:
    """The client's event loop on a clock that moves only when the test says: timers come due then.

    So a test of the batching does not depend on how fast the machine serves requests.
    """

    def __init__(self, client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
        self.client, self.now = client, client.loop.time()
        monkeypatch.setattr(client.loop, "time", lambda: self.now)

    def advance(self, seconds: float) -> None:
        """Move the clock on and let the loop run the callbacks that came due."""
        self.now += seconds
        self.client.run(asyncio.sleep(0))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    c = Client(create_app(make_settings(tmp_path, log_level="info")))
    try:
        yield c
    finally:
        c.close()


def sigmoid(client: Client, request_id: str) -> None:
    response = client.post("/v1/activations/sigmoid", json={"x": [0.0]}, headers={"X-Request-ID": request_id})
    assert response.status_code == 200


def test_requests_in_a_burst_are_written_together_soon_after(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    with service_handler_only(monkeypatch) as stderr:
        clock = LoopClock(client, monkeypatch)
        for i in range(3):
            sigmoid(client, f"burst-{i}")
        assert stderr.writes == []  # waiting for the batch
        clock.advance(ACCESS_FLUSH_SECONDS * 0.9)
        assert stderr.writes == []
        clock.advance(ACCESS_FLUSH_SECONDS * 0.2)
        assert len(stderr.writes) == 1
    lines = stderr.access_lines()
    assert [line["request_id"] for line in lines] == ["burst-0", "burst-1", "burst-2"]
    for line in lines:
        assert list(line) == ACCESS_KEYS
        assert line["level"] == "info" and line["message"] == "request"
        assert (line["method"], line["path"], line["status"]) == ("POST", "/v1/activations/sigmoid", 200)
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])


def test_waiting_lines_are_written_when_the_service_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Client(create_app(make_settings(tmp_path, log_level="info")))
    with service_handler_only(monkeypatch) as stderr:
        LoopClock(client, monkeypatch)  # the batch's timer never comes due
        sigmoid(client, "last-one")
        assert stderr.access_lines() == []
        client.close()
        assert [line["request_id"] for line in stderr.access_lines()] == ["last-one"]


def test_without_an_event_loop_the_line_is_written_at_once(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    with service_handler_only(monkeypatch) as stderr:
        log_access("GET", "/healthz", 200, 0.00125, "no-loop")
        [line] = stderr.access_lines()
    assert (line["method"], line["path"], line["status"], line["request_id"]) == (
        "GET",
        "/healthz",
        200,
        "no-loop",
    )
    assert line["duration_ms"] == 1.25


def test_the_direct_line_is_the_one_logging_would_write(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    records: list[logging.LogRecord] = []
    listener = logging.Handler()
    listener.emit = records.append  # type: ignore[method-assign]
    access = logging.getLogger("descent.access")
    with service_handler_only(monkeypatch) as stderr:
        sigmoid(client, "direct")
        flush_access_log()
        access.addHandler(listener)
        try:
            sigmoid(client, "through-logging")
        finally:
            access.removeHandler(listener)
        # The record also reached the service's own handler, which wrote it at once.
        direct, written = stderr.access_lines()
    [record] = records
    formatted = orjson.loads(JSONFormatter().format(record))
    assert list(direct) == list(formatted) == list(written) == ACCESS_KEYS
    for key in ("level", "logger", "message", "method", "path", "status"):
        assert direct[key] == formatted[key] == written[key]
    assert (direct["request_id"], written["request_id"]) == ("direct", "through-logging")


def test_a_handler_on_the_descent_logger_gets_access_records(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    records: list[logging.LogRecord] = []
    listener = logging.Handler()
    listener.emit = records.append  # type: ignore[method-assign]
    root = logging.getLogger("descent")
    with service_handler_only(monkeypatch):
        root.addHandler(listener)
        try:
            sigmoid(client, "seen")
        finally:
            root.removeHandler(listener)
    assert [r.request_id for r in records if r.name == "descent.access"] == ["seen"]  # type: ignore[attr-defined]


def test_nothing_is_logged_below_the_access_level(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client = Client(create_app(make_settings(tmp_path, log_level="warning")))
    with service_handler_only(monkeypatch) as stderr:
        try:
            sigmoid(client, "quiet")
        finally:
            client.close()
    assert stderr.access_lines() == []
