"""Loss functions: evaluate a loss and its gradient."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from service import compute
from service.jsonio import respond_json
from service.schemas.common import problem_responses, request_body
from service.schemas.compute import LossName, LossRequest, LossResult

router = APIRouter(prefix="/v1/losses", tags=["losses"])


@router.post(
    "/{name}",
    operation_id="losses-evaluate",
    response_model=LossResult,
    summary="Evaluate a loss",
    responses=problem_responses(413, 415, 422),
    openapi_extra=request_body(
        LossRequest,
        {
            "binary cross-entropy from probabilities": {
                "y_true": [1, 0, 1],
                "y_pred": [0.9, 0.2, 0.6],
                "gradient": True,
            },
            "cross-entropy from logits, class indices": {
                "y_true": [0, 2],
                "logits": [[2.0, 1.0, 0.1], [0.5, 0.5, 3.0]],
                "reduction": "none",
            },
            "mean squared error": {"y_true": [1.5, -0.5], "y_pred": [1.0, 0.0], "reduction": "sum"},
        },
    ),
)
async def evaluate_loss(
    name: Annotated[LossName, Path(description="The loss.", examples=["binary_cross_entropy"])],
    request: Request,
) -> Response:
    """The loss of `y_pred` (or `logits`) against `y_true`, reduced by mean, sum or not at all.

    With `gradient: true` also ∂loss/∂y_pred, or ∂loss/∂logits when logits were given (for the
    sigmoid/softmax pairings that is ŷ − y, scaled by the reduction).
    """
    return await respond_json(request, partial(compute.evaluate_loss, name, settings=request.app.state.settings))
