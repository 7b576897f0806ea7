"""GET /v1/usage: the caller's usage against its quotas."""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter
from starlette.responses import Response

from service.http.deps import SettingsDep, StoreDep
from service.http.responses import JSONResponse
from service.http.schemas.common import problem_responses
from service.http.schemas.usage import Usage
from service.services import identity

router = APIRouter(prefix="/v1/usage", tags=["usage"])


@router.get(
    "",
    operation_id="usage-get",
    response_model=Usage,
    summary="Usage and quotas",
    responses=problem_responses(503),
)
async def get_usage(store: StoreDep, settings: SettingsDep) -> Response:
    """The owner's active jobs, datasets, models and stored bytes, each beside its quota."""
    return JSONResponse(await anyio.to_thread.run_sync(identity.usage_document, store, settings))
