"""A real service and Debian's Chromium driven by Playwright, for the lab's browser tests.

Playwright cannot download a browser here, so it launches ``/usr/bin/chromium`` (the Debian package
``chromium``, which ``.ci/run`` installs). Every request a page makes is routed through
:meth:`Browser.page`: requests to the service go on, any other is aborted and recorded, so a test can
assert that a view asked no other host. Console errors and uncaught exceptions are recorded too.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.processes import Process, free_port
from tests.timing import JOB_S, STARTUP_S, limit

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESCENT = Path(sys.executable).with_name("descent")
# A page's wait for what it shows (a drawn plot, a status), and for a job the page trains.
TIMEOUT_MS = int(limit(90) * 1000)
JOB_MS = int(JOB_S * 1000)


def require_chromium() -> None:
    """Skip without Chromium, except in CI, which installs it: there its absence is a failure."""
    if CHROMIUM.is_file():
        return
    message = f"{CHROMIUM} is missing: apt-get install -y chromium"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def service(workdir: Path, **settings: str) -> Iterator[str]:
    """``descent serve`` on a free port of 127.0.0.1 with a throwaway SQLite file; yields its URL."""
    port = free_port()
    env = {
        **os.environ,
        "DESCENT_HOST": "127.0.0.1",
        "DESCENT_PORT": str(port),
        "DESCENT_DATABASE_URL": f"sqlite:///{workdir / 'descent.db'}",
        "DESCENT_WORKERS": "2",
        "DESCENT_PROGRESS_INTERVAL_S": "0.1",
        "DESCENT_LOG_LEVEL": "warning",
        **{f"DESCENT_{k.upper()}": v for k, v in settings.items()},
    }
    process = Process(
        "descent serve", [str(DESCENT), "serve"], env=env, cwd=workdir, log_path=workdir / "serve.log"
    )
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        process.wait_for_http(f"{url}/healthz", timeout=STARTUP_S)
        yield url
    finally:
        process.stop(timeout=15)


@dataclass
class Watched:
    """What a page did that a test may forbid: console errors, uncaught exceptions, other hosts."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert self.foreign_requests == [], self.foreign_requests
        assert self.page_errors == [], self.page_errors
        assert self.console_errors == [], self.console_errors


class Browser:
    """One Chromium for a test module; each :meth:`page` is a fresh context (own storage)."""

    def __init__(self, base_url: str) -> None:
        from playwright.sync_api import sync_playwright

        self.base_url = base_url
        self._playwright = sync_playwright().start()
        self.chromium = self._playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)

    @contextmanager
    def page(
        self, width: int = 1280, height: int = 900, *, block: bool = True
    ) -> Iterator[tuple[Any, Watched]]:
        """A page in a fresh context. With ``block``, requests to other hosts are aborted (Playwright's
        routing also turns the HTTP cache off); without, they are only recorded (for timing loads)."""
        context = self.chromium.new_context(
            viewport={"width": width, "height": height}, accept_downloads=True
        )
        context.set_default_timeout(TIMEOUT_MS)
        watched = Watched()
        origin = self.base_url

        def route(route: Any) -> None:
            url = route.request.url
            if url == origin or url.startswith(origin + "/"):
                watched.requests.append(route.request)
                route.continue_()
            else:
                watched.foreign_requests.append(url)
                route.abort()

        page = context.new_page()
        if block:
            context.route(re.compile(".*"), route)
        else:
            page.on(
                "request",
                lambda r: None if r.url.startswith(origin + "/") else watched.foreign_requests.append(r.url),
            )
        page.on("console", lambda m: watched.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: watched.page_errors.append(str(e)))
        try:
            yield page, watched
        finally:
            context.close()

    def close(self) -> None:
        self.chromium.close()
        self._playwright.stop()


def plot_data(page: Any, selector: str) -> list[dict[str, Any]]:
    """The traces Plotly drew in the element (its ``data``), as JSON."""
    data: list[dict[str, Any]] = page.eval_on_selector(
        selector, "el => JSON.parse(JSON.stringify(el.data || []))"
    )
    return data


def trace(page: Any, selector: str, name: str) -> dict[str, Any]:
    for candidate in plot_data(page, selector):
        if candidate.get("name") == name:
            return candidate
    raise AssertionError(f"no trace named {name!r} in {selector}")
