"""Models with given parameters: forward pass and gradients."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Request
from starlette.responses import Response

from service.http.binary import ArrayFields
from service.http.offload import respond_json
from service.http.schemas.common import binary_answers, binary_request, problem_responses, request_body
from service.http.schemas.compute import ForwardRequest, ForwardResult, GradientsRequest, GradientsResult
from service.services import compute

router = APIRouter(prefix="/v1", tags=["compute"])

_X = [[1.0, 2.0], [0.0, -1.0]]
_LOGISTIC = {"type": "logistic_regression", "weights": [0.5, -0.25], "bias": 0.1}
_SOFTMAX = {
    "type": "softmax_regression",
    "weights": [[1.0, -1.0, 0.0], [0.5, 0.0, -0.5]],
    "bias": [0.0, 0.1, 0.0],
}
_MLP = {
    "type": "mlp",
    "layers": [{"units": 2, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
    "parameters": [
        {"weights": [[1.0, -1.0], [0.5, 0.5]], "bias": [0.0, 0.1]},
        {"weights": [[1.0], [-2.0]], "bias": [0.3]},
    ],
}


@router.post(
    "/forward",
    operation_id="forward",
    response_model=ForwardResult,
    summary="Run a model forward",
    responses={
        **binary_answers("The outputs, and every layer's z and a when asked for.", npy_field="outputs"),
        **problem_responses(406, 413, 415, 422, 503),
    },
    openapi_extra=binary_request(
        request_body(
            ForwardRequest,
            {
                "logistic regression, with intermediates": {
                    "model": _LOGISTIC,
                    "X": _X,
                    "return_intermediates": True,
                },
                "softmax regression": {"model": _SOFTMAX, "X": _X},
                "two-layer MLP": {"model": _MLP, "X": _X, "return_intermediates": True},
            },
        ),
        members="`X`, `model.weights`, `model.bias`, `model.parameters.0.weights`, …",
        npy_field="X",
    ),
)
async def forward(request: Request) -> Response:
    """The model's outputs on X; with `return_intermediates` every layer's z = a_prev·W + b and a = φ(z)."""
    return await respond_json(
        request,
        partial(compute.forward_pass, settings=request.app.state.settings),
        arrays=ArrayFields(request="X", response="outputs"),
    )


@router.post(
    "/gradients",
    operation_id="gradients",
    response_model=GradientsResult,
    summary="Loss and gradients of a model",
    responses={
        **binary_answers("The loss, the gradients and the predictions.", npy_field=None),
        **problem_responses(406, 413, 415, 422, 503),
    },
    openapi_extra=binary_request(
        request_body(
            GradientsRequest,
            {
                "logistic regression, checked": {"model": _LOGISTIC, "X": _X, "y": [1, 0], "check": True},
                "softmax regression, class indices": {"model": _SOFTMAX, "X": _X, "y": [0, 2], "l2": 0.01},
                "two-layer MLP": {"model": _MLP, "X": _X, "y": [1, 0], "check": True},
            },
        ),
        members="`X`, `y`, `model.weights`, `model.parameters.0.weights`, …",
        npy_field=None,
    ),
)
async def gradients(request: Request) -> Response:
    """The mean loss on (X, y), ∂loss/∂θ for every parameter, and the predictions.

    For logistic regression the gradients are ∂L/∂w = mean((ŷ − y)·x) and ∂L/∂b = mean(ŷ − y).
    With `check: true` they are compared with central finite differences.
    """
    # Always in a thread: even a small body can ask for a gradient check. Bodies and answers hold
    # several arrays: binary ones are .npz, never .npy.
    return await respond_json(
        request, partial(compute.gradients, settings=request.app.state.settings), offload=True
    )
