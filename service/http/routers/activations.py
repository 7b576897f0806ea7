"""Activation functions: list them, evaluate them, sample their curves."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from service.http.binary import ArrayFields
from service.http.offload import respond_json
from service.http.responses import JSONResponse
from service.http.routers.params import registry_name
from service.http.schemas.common import (
    binary_answers,
    binary_request,
    name_parameter,
    problem_responses,
    request_body,
)
from service.http.schemas.compute import ActivationList, ActivationRequest, ActivationResult, CurveResult
from service.http.schemas.names import ACTIVATION_NAMES
from service.services import compute

router = APIRouter(prefix="/v1/activations", tags=["activations"])

_NAME_DESCRIPTION = "The activation; GET /v1/activations lists them."
_NAME = name_parameter(_NAME_DESCRIPTION, ACTIVATION_NAMES, "sigmoid")
# The curve's example is an activation that takes the example alpha, so that the examples agree.
_CURVE_NAME = name_parameter(_NAME_DESCRIPTION, ACTIVATION_NAMES, "leaky_relu")
_LIST = compute.list_activations()
_ARRAYS = ArrayFields(request="x", response="y")


@router.get("", operation_id="activations-list", response_model=ActivationList, summary="List activations")
async def list_activations() -> Response:
    """Every activation: name, formula, output range, derivative formula and parameter defaults."""
    return JSONResponse(_LIST)


@router.post(
    "/{name}",
    operation_id="activations-evaluate",
    response_model=ActivationResult,
    summary="Evaluate an activation",
    responses={
        **binary_answers("φ(x), and dφ/dx when asked for.", npy_field="y"),
        **problem_responses(406, 413, 415, 422, 503),
    },
    openapi_extra={
        "parameters": [_NAME],
        **binary_request(
            request_body(
                ActivationRequest,
                {
                    "sigmoid of a vector, with its derivative": {"x": [-2.0, 0.0, 2.0], "derivative": True},
                    "leaky_relu of a matrix with alpha": {
                        "x": [[-1.0, 2.0], [3.0, -4.0]],
                        "params": {"alpha": 0.1},
                    },
                    "a single number": {"x": 0.0},
                },
            ),
            members="`x`",
            npy_field="x",
        ),
    },
)
async def evaluate_activation(request: Request) -> Response:
    """φ(x) for a number or nested array x, and dφ/dx with `derivative: true`; y and dy have x's shape.

    A single number gives a single number back (shape []). Softmax works along the last axis.
    """
    name = registry_name(request, "activation", ACTIVATION_NAMES)
    work = partial(compute.evaluate_activation, name, settings=request.app.state.settings)
    return await respond_json(request, work, arrays=_ARRAYS)


@router.get(
    "/{name}/curve",
    operation_id="activations-curve",
    response_model=CurveResult,
    summary="Sample an activation's curve",
    responses=problem_responses(413, 422),
    openapi_extra={"parameters": [_CURVE_NAME]},
)
async def activation_curve(
    request: Request,
    start: Annotated[
        float,
        Query(
            ge=-1e6, le=1e6, allow_inf_nan=False, description="First x (must be below stop).", examples=[-5.0]
        ),
    ] = -5.0,
    stop: Annotated[
        float, Query(ge=-1e6, le=1e6, allow_inf_nan=False, description="Last x.", examples=[5.0])
    ] = 5.0,
    num: Annotated[int, Query(ge=2, le=10_000, description="Number of points.", examples=[200])] = 200,
    alpha: Annotated[
        float | None,
        Query(
            ge=-1e6,
            le=1e6,
            allow_inf_nan=False,
            description="alpha for leaky_relu and elu (default: the activation's own).",
            examples=[0.1],
        ),
    ] = None,
) -> Response:
    """φ(x) and dφ/dx at `num` evenly spaced x from `start` to `stop`, as parallel arrays for plotting.

    Softmax, which is not elementwise, is sampled as the first output of softmax([x, 0]) (= sigmoid(x)).
    """
    name = registry_name(request, "activation", ACTIVATION_NAMES)
    return JSONResponse(compute.activation_curve(name, start, stop, num, alpha, request.app.state.settings))
