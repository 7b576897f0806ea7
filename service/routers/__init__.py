"""One router per resource, each with its prefix and tags; ``ROUTERS`` is included by ``create_app``.

The compute handlers read ``request.app.state.settings`` instead of depending on ``SettingsDep``:
resolving a dependency costs about as much as evaluating a small activation.
"""

from __future__ import annotations

from fastapi import APIRouter

from service.routers import activations, compute, datasets, jobs, losses, models, operations

ROUTERS: list[APIRouter] = [
    operations.router,
    activations.router,
    losses.router,
    compute.router,
    datasets.router,
    jobs.router,
    models.router,
]
