"""The application factory: ``uvicorn service.app:create_app --factory`` or ``descent serve``."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import FastAPI

from service.http.auth import Gate
from service.http.cors import install_cors
from service.http.lane import HeavyLane
from service.http.middleware import RequestContextMiddleware
from service.http.openapi import DESCRIPTION, TAGS, TITLE, build_openapi
from service.http.problems import install_error_handlers
from service.http.responses import JSONResponse
from service.http.routers import ROUTERS
from service.http.routing import operation_id, register_routes
from service.lab import install_lab
from service.logs import configure_logging, flush_access_log
from service.metrics import Metrics
from service.settings import Settings
from service.state import close_state, open_state

logger = logging.getLogger("descent.app")

try:
    __version__ = version("descent")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Create the long-lived objects that need a running event loop, and log start and stop."""
    settings: Settings = app.state.settings
    # Large compute requests run in threads, a bounded few at once (each holds its arrays in memory);
    # uploads and imports share the same threads.
    lane = HeavyLane(
        settings.compute_threads,
        settings.heavy_lane_queue,
        settings.heavy_lane_wait_s,
        processes=settings.heavy_lane_mode == "processes",
    )
    app.state.heavy_lane = lane
    app.state.compute_limiter = lane.limiter
    app.state.metrics.gauges[:] = [
        ("descent_heavy_lane_busy", "Heavy requests being computed now.", lambda: lane.busy),
        ("descent_heavy_lane_waiting", "Heavy requests waiting for a slot.", lambda: lane.waiting),
    ]
    await open_state(app)
    # Everything alive now (modules, the app, the store) lives as long as the process. Frozen, it is
    # skipped by full garbage collections, which large JSON bodies (one list per row) trigger often:
    # about 15% of the time of a 10,000 × 20 gradients request. (Freezing is O(1); a collection
    # first would cost more than the little startup garbage it would free.)
    gc.freeze()
    logger.info("service started", extra={"version": __version__, "runner": settings.runner})
    try:
        yield
    finally:
        flush_access_log()  # the last requests' lines come before the stopping line
        logger.info("service stopping")
        gc.unfreeze()
        await app.state.gate.rate_limiter.close()
        await close_state(app)
        lane.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application.

    Parameters
    ----------
    settings : Settings, optional
        Defaults to ``Settings()``, read from ``DESCENT_*`` environment variables.

    Returns
    -------
    FastAPI
        With ``state.settings``, ``state.metrics``, ``state.readiness_checks`` (a list other
        components append their async dependency checks to) and ``state.stopping`` (an event set
        when the server begins to shut down).
    """
    settings = settings or Settings()
    configure_logging(settings.log_level)
    app = FastAPI(
        title=TITLE,
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        default_response_class=JSONResponse,
        generate_unique_id_function=operation_id,
        separate_input_output_schemas=False,
        # The lab serves both pages, with Swagger UI and ReDoc from installed packages (no CDN).
        docs_url=None,
        redoc_url=None,
        # The service's observability is its own: Prometheus metrics and a JSON access log. FastAPI's
        # OpenTelemetry instrumentation would look up the global providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.readiness_checks = []
    # Set at SIGTERM (``descent serve``): event streams end so that the server can drain.
    app.state.stopping = threading.Event()
    install_error_handlers(app)
    app.state.gate = Gate(settings)
    app.add_middleware(
        RequestContextMiddleware,
        metrics=app.state.metrics,
        max_body_bytes=settings.max_body_bytes,
        gate=app.state.gate,
    )
    install_cors(app, settings)
    register_routes(app, ROUTERS)
    install_lab(app)
    # /v1/jobs/ is a 404 naming /v1/jobs, not an empty redirect.
    app.router.redirect_slashes = False

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
