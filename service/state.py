"""The stateful half of the service: the store and the job runner, opened and closed with the app."""

from __future__ import annotations

import logging

import anyio
from fastapi import FastAPI

from service.runners import NoRunner, Runner
from service.runners.run_job import RunSettings
from service.services.identity import ensure_bootstrap_key
from service.settings import Settings
from service.store import Store, open_store

log = logging.getLogger("descent.state")


def make_runner(settings: Settings, store: Store) -> Runner:
    """The runner the settings ask for."""
    if settings.runner == "celery":
        from service.runners.distributed import CeleryRunner

        return CeleryRunner(store, settings)
    if settings.workers == 0:
        return NoRunner()
    from service.runners.embedded import EmbeddedRunner

    return EmbeddedRunner(
        store,
        settings.database_url,
        settings.workers,
        RunSettings.from_settings(settings),
        stale_after_s=settings.heartbeat_timeout_s,
        grace_s=settings.shutdown_grace_s,
    )


async def open_state(app: FastAPI) -> None:
    """Open the store (running migrations) and start the runner; called by the lifespan."""
    settings: Settings = app.state.settings
    store = await anyio.to_thread.run_sync(open_store, settings.database_url)
    await anyio.to_thread.run_sync(ensure_bootstrap_key, store, settings)
    runner = make_runner(settings, store)
    await anyio.to_thread.run_sync(runner.start)
    app.state.store, app.state.runner = store, runner
    app.state.event_hub = None
    if settings.event_feed == "shared":
        from service.services.jobs.feed import EventHub

        app.state.event_hub = EventHub(store, app.state.stopping)

    min_free_bytes = int(settings.min_free_mb * 1024 * 1024)

    async def store_check() -> None:
        problems = await anyio.to_thread.run_sync(store.health.problems, min_free_bytes)
        if problems:
            raise ConnectionError("; ".join(problems))

    async def runner_check() -> None:
        if not await anyio.to_thread.run_sync(runner.ready):
            raise ConnectionError(runner.describe_unready())

    store_check.__name__, runner_check.__name__ = "store", "runner"
    app.state.readiness_checks.extend([store_check, runner_check])


def begin_shutdown(app: FastAPI) -> None:
    """Called at SIGTERM, before the HTTP server drains: event streams end, workers start stopping.

    Running jobs get the whole shutdown grace from now to checkpoint, whatever the draining takes.
    """
    app.state.stopping.set()
    hub = getattr(app.state, "event_hub", None)
    if hub is not None:
        hub.shutting_down()
    runner: Runner | None = getattr(app.state, "runner", None)
    if runner is not None:
        runner.begin_stop()


async def close_state(app: FastAPI) -> None:
    """Stop the runner (running jobs checkpoint and go back to the queue), then close the store."""
    runner: Runner | None = getattr(app.state, "runner", None)
    if runner is not None:
        await anyio.to_thread.run_sync(runner.stop)
    hub = getattr(app.state, "event_hub", None)
    if hub is not None:
        hub.close()
    store: Store | None = getattr(app.state, "store", None)
    if store is not None:
        store.close()
