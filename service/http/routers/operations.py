"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from service.errors import ServiceUnavailable
from service.http.deps import MetricsDep
from service.http.responses import JSONResponse
from service.http.schemas.common import problem_responses

router = APIRouter(tags=["operations"])

# A readiness check is an async callable that returns when its dependency answers and raises when it
# does not. Other parts of the service append theirs (store, broker) to app.state.readiness_checks.
ReadinessCheck = Callable[[], Awaitable[Any]]
READINESS_TIMEOUT_S = 2.0
READINESS_RETRY_AFTER_S = 5
PROMETHEUS_MEDIA_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Health(BaseModel):
    """The process is up."""

    status: str = Field(description="Always 'ok'.", examples=["ok"])


class Readiness(BaseModel):
    """Every dependency answered."""

    status: str = Field(
        description="Always 'ready' (otherwise the answer is a 503 problem).", examples=["ready"]
    )
    checks: dict[str, str] = Field(description="Each check by name, all 'ok'.", examples=[{"store": "ok"}])


@router.get("/healthz", operation_id="healthz", response_model=Health, summary="Liveness")
async def healthz() -> Response:
    """200 while the process serves requests; it checks no dependency."""
    return JSONResponse({"status": "ok"})


def _check_name(check: ReadinessCheck) -> str:
    return str(getattr(check, "__name__", None) or type(check).__name__)


async def _run_check(check: ReadinessCheck) -> str | None:
    try:
        await asyncio.wait_for(check(), READINESS_TIMEOUT_S)
    except TimeoutError:
        return f"no answer within {READINESS_TIMEOUT_S:g} s"
    except Exception as exc:
        return str(exc) or "the check failed without a reason"
    return None


@router.get(
    "/readyz",
    operation_id="readyz",
    response_model=Readiness,
    summary="Readiness",
    responses=problem_responses(503),
)
async def readyz(request: Request) -> Response:
    """200 when every dependency (store, broker) answers; otherwise 503 + Retry-After naming the failures."""
    checks: list[ReadinessCheck] = list(getattr(request.app.state, "readiness_checks", []))
    results = await asyncio.gather(*(_run_check(check) for check in checks))
    failures = {_check_name(c): r for c, r in zip(checks, results, strict=True) if r is not None}
    if failures:
        raise ServiceUnavailable(
            "not ready: " + "; ".join(f"{name}: {why}" for name, why in failures.items()),
            retry_after=READINESS_RETRY_AFTER_S,
            errors=[{"loc": ["dependency", name], "msg": why} for name, why in failures.items()],
        )
    return JSONResponse({"status": "ready", "checks": {_check_name(c): "ok" for c in checks}})


@router.get(
    "/metrics",
    operation_id="metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Request counts by method, route and status; latency histograms (format 0.0.4).",
            "content": {
                PROMETHEUS_MEDIA_TYPE: {
                    "schema": {"type": "string"},
                    "example": 'descent_http_requests_total{method="GET",route="/healthz",status="200"} 3\n',
                }
            },
        }
    },
)
async def metrics(metrics: MetricsDep) -> Response:
    """Request counts by method, route template and status, and a latency histogram, for Prometheus."""
    return Response(metrics.render(), media_type=PROMETHEUS_MEDIA_TYPE)
