"""Fixtures for in-process API tests: an httpx client on the ASGI app, with its lifespan.

The client is synchronous (pytest-anyio is not a dependency): it drives an ``httpx.AsyncClient``
over ``httpx.ASGITransport`` on one event loop that runs in its own thread, so the app's lifespan and
every request run on the same, continuously running loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import pytest
from fastapi import FastAPI

from service.app import create_app
from service.settings import Settings


class Client:
    """A synchronous front for ``httpx.AsyncClient(transport=ASGITransport(app))``.

    The event loop runs without a break in a thread of its own (an anyio blocking portal), as it does
    in ``uvicorn``: what the app starts on it (the heavy lane's worker processes, background tasks)
    lives from one request to the next.
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._portal_cm = anyio.from_thread.start_blocking_portal("asyncio")
        self._portal = self._portal_cm.__enter__()
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        self._lifespan = app.router.lifespan_context(app)
        self._loop: asyncio.AbstractEventLoop = self._portal.call(_running_loop)
        self.run(self._lifespan.__aenter__())

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.run(self._client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def run(self, coroutine: Any) -> Any:
        """Run a coroutine on the client's event loop (e.g. a request with a streaming body)."""
        return self._portal.call(_await, coroutine)

    @property
    def httpx(self) -> httpx.AsyncClient:
        return self._client

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the app and every request run on."""
        return self._loop

    def close(self) -> None:
        try:
            self.run(self._lifespan.__aexit__(None, None, None))
            self.run(self._client.aclose())
        finally:
            self._portal_cm.__exit__(None, None, None)


async def _await(coroutine: Any) -> Any:
    return await coroutine


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for tests: a throwaway SQLite file and no job workers."""
    values: dict[str, Any] = {"database_url": f"sqlite:///{tmp_path / 'descent.db'}", "workers": 0}
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[Client]:
    c = Client(app)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Any]:
    """Build clients on apps with custom settings, e.g. ``make_client(max_body_bytes=100)``."""
    clients: list[Client] = []

    def make(**overrides: Any) -> Client:
        c = Client(create_app(make_settings(tmp_path, **overrides)))
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def assert_problem(response: httpx.Response, status: int, *fragments: str) -> dict[str, Any]:
    """Check an RFC 9457 problem response: status, media type, members, and the detail's content."""
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["instance"] == response.request.url.path
    assert "Traceback" not in response.text
    for fragment in fragments:
        assert fragment in body["detail"], (fragment, body["detail"])
    return body


# The same mistake gets the same answer on every resource: these two are checked on each one that takes
# the parameter (jobs, datasets, models), word for word.


def assert_bad_cursor(response: httpx.Response, kind: str, cursor: str) -> None:
    """The 422 of a list given a ``cursor`` that is not an id of its ``kind``."""
    body = assert_problem(response, 422)
    msg = f"must be a {kind} id, got {cursor!r}"
    assert body["detail"] == f"query parameter cursor {msg}"
    assert body["errors"] == [{"loc": ["query", "cursor"], "msg": msg}]


def assert_bad_idempotency_key(response: httpx.Response, key: str) -> None:
    """The 422 of a POST given an empty, too long, unprintable or space-padded ``Idempotency-Key``."""
    body = assert_problem(response, 422)
    spaced = ", the first a space" if key[:1] == " " else ", the last a space" if key[-1:] == " " else ""
    msg = (
        "must be 1 to 255 printable ASCII characters, the first and last not a space;"
        f" got {len(key)} characters{spaced}"
    )
    assert body["detail"] == f"header Idempotency-Key {msg}"
    assert body["errors"] == [{"loc": ["header", "idempotency-key"], "msg": msg}]


# HTTP strips spaces around a header's value, but in-process requests keep them: " padded" and "k " are
# what a key with a space at its start or end is checked as.
BAD_IDEMPOTENCY_KEYS = ["", "k" * 256, "tab\there", " padded", "k "]
