"""Dependencies as ``Annotated`` aliases; tests swap them with ``app.dependency_overrides``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.metrics import Metrics
from service.runners import Runner
from service.settings import Settings
from service.store import Store


async def get_settings(request: Request) -> Settings:
    """The application's settings (created by ``create_app``)."""
    settings: Settings = request.app.state.settings
    return settings


async def get_metrics(request: Request) -> Metrics:
    """The process's request metrics."""
    metrics: Metrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


async def get_store(request: Request) -> Store:
    """The store opened by the lifespan."""
    store: Store = request.app.state.store
    return store


async def get_runner(request: Request) -> Runner:
    """The job runner started by the lifespan."""
    runner: Runner = request.app.state.runner
    return runner


StoreDep = Annotated[Store, Depends(get_store)]
RunnerDep = Annotated[Runner, Depends(get_runner)]
