"""A running job's snapshot: its latest parameters as a model document, and predictions with them."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from service.http.body import parse_json, read_json_bytes
from service.http.deps import ScopeDep, SettingsDep, StoreDep
from service.http.offload import heavy
from service.http.responses import JSONResponse
from service.http.schemas.common import problem_responses, request_body
from service.http.schemas.models import PredictRequest
from service.http.schemas.snapshots import JobSnapshot, SnapshotPrediction
from service.services import snapshots

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

JobId = Annotated[str, Path(description="The job's id.", examples=["job_0194b2c3d4e5f6a7b8c9d0e1"])]


@router.get(
    "/{job_id}/snapshot",
    operation_id="jobs-snapshot",
    response_model=JobSnapshot,
    summary="A job's latest parameters",
    responses=problem_responses(404, 409, 500, 503),
)
async def get_snapshot(job_id: JobId, store: StoreDep, owner: ScopeDep) -> Response:
    """The parameters of the job's latest progress write, as a model document, to follow a model while
    it trains (a `progress` event announces each new one). Written at most as often as progress
    (`DESCENT_PROGRESS_INTERVAL_S`) and for models of at most 100,000 parameters; until the first (or
    for a larger model) a 409 `no-snapshot`, while an unknown job is a 404. After the job ends the last
    snapshot stays; the job's model holds the final weights.
    """
    return JSONResponse(await anyio.to_thread.run_sync(snapshots.document, store, owner, job_id))


@router.post(
    "/{job_id}/snapshot/predict",
    operation_id="jobs-snapshot-predict",
    response_model=SnapshotPrediction,
    summary="Predict with a job's latest parameters",
    responses=problem_responses(404, 409, 413, 415, 422, 500, 503),
    openapi_extra=request_body(
        PredictRequest,
        {
            "a grid, for a decision boundary": {
                "grid": {"start": [-1.5, -1.5], "stop": [1.5, 1.5], "num": [100, 100]}
            },
            "rows of X": {"X": [[0.5, 1.0], [-1.0, 0.0]]},
        },
    ),
)
async def predict_with_snapshot(
    job_id: JobId, request: Request, store: StoreDep, settings: SettingsDep, owner: ScopeDep
) -> Response:
    """As POST /v1/models/{id}/predict, with the parameters of the job's latest snapshot, and the epoch
    they are from: the decision boundary of a model that is still training."""
    raw = await read_json_bytes(request)

    def work() -> Response:
        return JSONResponse(snapshots.predict(store, settings, job_id, parse_json(raw), owner=owner))

    return await heavy(request, work)
