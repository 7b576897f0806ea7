"""One router per resource, each with its prefix and tags; ``service.http.routing.register_routes`` puts
them on the app.

The compute handlers read ``request.app.state.settings`` instead of depending on ``SettingsDep``:
resolving a dependency costs about as much as evaluating a small activation. For the same reason
the ``{name}`` path parameters are read from ``request.path_params`` and checked against the engine's
registry by ``routers.params.registry_name`` (FastAPI's parameter validation costs more than the computation);
their OpenAPI documentation, with the allowed names as an enum, comes from ``name_parameter``.
"""

from __future__ import annotations

from fastapi import APIRouter

from service.http.routers import (
    activations,
    compute,
    datasets,
    jobs,
    losses,
    models,
    operations,
    snapshots,
    usage,
)

# The stateless compute routers come first: they serve the most (and the smallest) requests, and
# routes are matched in order.
ROUTERS: list[APIRouter] = [
    activations.router,
    losses.router,
    compute.router,
    operations.router,
    datasets.router,
    jobs.router,
    snapshots.router,
    models.router,
    usage.router,
]
