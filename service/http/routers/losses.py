"""Loss functions: evaluate a loss and its gradient."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Request
from starlette.responses import Response

from service.http.binary import ArrayFields
from service.http.offload import respond_json
from service.http.routers.params import registry_name
from service.http.schemas.common import (
    binary_answers,
    binary_request,
    name_parameter,
    problem_responses,
    request_body,
)
from service.http.schemas.compute import LossRequest, LossResult
from service.http.schemas.names import LOSS_NAMES
from service.services import compute

router = APIRouter(prefix="/v1/losses", tags=["losses"])


@router.post(
    "/{name}",
    operation_id="losses-evaluate",
    response_model=LossResult,
    summary="Evaluate a loss",
    responses={
        **binary_answers("The loss, and its gradient when asked for.", npy_field="loss"),
        **problem_responses(406, 413, 415, 422, 503),
    },
    openapi_extra={
        "parameters": [name_parameter("The loss.", LOSS_NAMES, "binary_cross_entropy")],
        **binary_request(
            request_body(
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
            members="`y_true`, and `y_pred` or `logits`",
            npy_field=None,
        ),
    },
)
async def evaluate_loss(request: Request) -> Response:
    """The loss of `y_pred` (or `logits`) against `y_true`, reduced by mean, sum or not at all.

    With `gradient: true` also ∂loss/∂y_pred, or ∂loss/∂logits when logits were given (for the
    sigmoid/softmax pairings that is ŷ − y, scaled by the reduction).
    """
    name = registry_name(request, "loss", LOSS_NAMES)
    return await respond_json(
        request,
        partial(compute.evaluate_loss, name, settings=request.app.state.settings),
        arrays=ArrayFields(response="loss"),
    )
