"""Dependencies as ``Annotated`` aliases; tests swap them with ``app.dependency_overrides``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from service.metrics import Metrics
from service.runners import Runner
from service.services.identity import Principal, anonymous
from service.settings import Settings
from service.store import Store


async def get_settings(request: Request) -> Settings:
    """The settings as the request's principal sees them (its owner, quotas and rate limit), else the
    application's (created by ``create_app``)."""
    settings: Settings | None = request.scope.get("state", {}).get("settings")
    return settings if settings is not None else request.app.state.settings


async def get_principal(request: Request) -> Principal:
    """Who the request acts as (set by the gate; the single user when no gate ran)."""
    principal: Principal | None = request.scope.get("state", {}).get("principal")
    return principal if principal is not None else anonymous(request.app.state.settings)


async def get_read_owner(
    request: Request,
    owner: Annotated[
        str | None,
        Query(
            description="Admin keys only: just this owner's resources (default: every owner's). "
            "Another key may name only its own owner.",
            examples=["alice"],
        ),
    ] = None,
) -> str | None:
    """The owner whose resources a list shows: the caller's own; for an admin, ``?owner=`` or all (None)."""
    principal = await get_principal(request)
    return principal.read_owner(owner)


async def get_own_scope(request: Request) -> str | None:
    """The owner whose resources a request by id may reach: the caller's own; for an admin, any (None)."""
    principal = await get_principal(request)
    return principal.read_owner(None)


async def get_metrics(request: Request) -> Metrics:
    """The process's request metrics."""
    metrics: Metrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
# The owner whose resources a list shows, with the ``owner`` query parameter of admins.
OwnerFilterDep = Annotated[str | None, Depends(get_read_owner)]
# The owner whose resources a request by id may reach (None: any, for admins).
ScopeDep = Annotated[str | None, Depends(get_own_scope)]
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
