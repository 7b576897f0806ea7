"""Service functions of the stateless compute endpoints: JSON in, engine call, JSON out.

Each takes the parsed body, validates the small fields with pydantic, converts the arrays with
``arrays.to_array``, calls the engine and returns the response content (ndarrays included; the
JSON response serializes them). The engine's ``ValueError``s become 422 problems here, at the
call, and so do non-finite results.
"""

from __future__ import annotations

import math
from types import TracebackType
from typing import Any

import numpy as np

from engine.activations import ACTIVATIONS, resolve_params
from engine.gradcheck import check_gradients
from engine.losses import compute_loss
from engine.models import forward, loss_and_gradient, targets
from service.errors import field_error
from service.http.arrays import to_array
from service.http.body import JSONBody, validate
from service.http.responses import ensure_finite
from service.http.schemas.compute import ActivationRequest, ForwardRequest, GradientsRequest, LossRequest
from service.services import admission
from service.services.modelspec import build_model, outputs_to_json, parameters_to_json
from service.settings import Settings

Array = np.ndarray[Any, Any]

# A gradient check evaluates the loss twice per parameter, each evaluation costing about
# n_samples × n_parameters multiply-adds; these bound it to a few seconds.
MAX_CHECK_PARAMETERS = 5_000
MAX_CHECK_WORK = 2e8


class engine_errors:
    """Turn the engine's ValueErrors into 422 (``name`` is the field they concern) and let overflow
    produce inf silently: results are checked for finiteness before they are sent.

    A class rather than ``@contextmanager``: it sits on every compute call and costs half as much.
    """

    __slots__ = ("_errstate", "name")

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._errstate = np.errstate(all="ignore")

    def __enter__(self) -> None:
        self._errstate.__enter__()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._errstate.__exit__(kind, exc, tb)
        if isinstance(exc, ValueError):
            raise field_error(self.name, str(exc), detail=str(exc)) from None


def _number_or_array(a: Array) -> float | Array:
    return float(a) if a.ndim == 0 else a


def list_activations() -> dict[str, Any]:
    """Every registered activation with its formulas, output range and parameter defaults."""
    return {
        "items": [
            {
                "name": act.name,
                "formula": act.formula,
                "derivative_formula": act.derivative_formula,
                "output_range": {"min": act.output_range[0], "max": act.output_range[1]},
                "params": dict(act.params),
                "elementwise": act.elementwise,
            }
            for act in ACTIVATIONS.values()
        ]
    }


# What a body that gives x alone means (see evaluate_activation).
_DEFAULT_DERIVATIVE: bool = ActivationRequest.model_fields["derivative"].default
_DEFAULT_PARAMS: dict[str, float] | None = ActivationRequest.model_fields["params"].default


def evaluate_activation(name: str, body: JSONBody, settings: Settings) -> dict[str, Any]:
    """POST /v1/activations/{name}: φ(x) and optionally dφ/dx, shaped like x."""
    data = body.data
    if len(data) == 1 and "x" in data:
        # Only the required field, which pydantic passes through untouched: nothing to validate,
        # and validating would cost as much as the rest of a small call.
        value, derivative, given = data["x"], _DEFAULT_DERIVATIVE, _DEFAULT_PARAMS
    else:
        request = validate(ActivationRequest, body)
        value, derivative, given = request.x, request.derivative, request.params
    x = to_array(value, "x", max_elements=settings.max_array_elements, scan_booleans=body.scan_booleans)
    act = ACTIVATIONS[name]
    if not act.elementwise and x.ndim == 0:
        raise field_error(
            "x", f"must be an array for {name}, which works along the last axis; got a single number"
        )
    if given is None:
        params = dict(act.params)  # the engine's own defaults, valid by construction
    else:
        try:
            params = resolve_params(name, given)
        except ValueError as exc:
            raise field_error("params", str(exc), detail=str(exc)) from None
    if act.bounded:
        # φ and dφ lie in finite ranges and raise no floating-point error (``Activation.bounded``):
        # nothing to silence or check, which is a sixth of a small call's own time.
        try:
            y = act.function(x, **params)
            dy = act.derivative(x, y, **params) if derivative else None
        except ValueError as exc:
            raise field_error("x", str(exc), detail=str(exc)) from None
        finite = True
    else:
        with engine_errors("x"):
            y = act.function(x, **params)
            # The derivative reuses y, as backpropagation does, rather than recomputing φ(x).
            dy = act.derivative(x, y, **params) if derivative else None
            # x and the parameters are finite, so only φ and dφ can have overflowed. NaN and
            # infinities carry through a sum, so finite sums prove them finite in one pass each (an
            # overflowing sum, silenced here, only sends them to the exact check below).
            finite = math.isfinite(np.add.reduce(y, axis=None)) and (
                dy is None or math.isfinite(np.add.reduce(dy, axis=None))
            )
    outputs = {"y": _number_or_array(y)}
    if dy is not None:
        outputs["dy"] = _number_or_array(dy)
    if not finite:
        ensure_finite(outputs)
    return {"activation": name, "params": params, "shape": list(x.shape), **outputs}


def activation_curve(
    name: str, start: float, stop: float, num: int, alpha: float | None, settings: Settings
) -> dict[str, Any]:
    """GET /v1/activations/{name}/curve: φ and dφ/dz at ``num`` evenly spaced points.

    Softmax is not elementwise; its curve is that of the first output of softmax([z, 0]), which is
    sigmoid(z).
    """
    if not start < stop:
        raise field_error(
            "start",
            f"must be less than stop ({stop})",
            source="query",
            detail=f"start must be less than stop, got start={start}, stop={stop}",
        )
    act = ACTIVATIONS[name]
    try:
        params = resolve_params(name, None if alpha is None else {"alpha": alpha})
    except ValueError as exc:
        raise field_error("alpha", str(exc), source="query", detail=str(exc)) from None
    # x, φ(x) and dφ/dx: three numbers per point.
    admission.admit_response(settings, admission.response_bytes(3 * num), what="curve")
    x = np.linspace(start, stop, num)
    with engine_errors():
        if act.elementwise:
            y = act.function(x, **params)
            dy = act.derivative(x, y, **params)
        else:
            pairs = np.stack([x, np.zeros_like(x)], axis=-1)
            out = act.function(pairs, **params)
            y, dy = out[:, 0], act.derivative(pairs, out, **params)[:, 0]
    content = {"activation": name, "params": params, "points": {"x": x, "y": y, "dy": dy}}
    ensure_finite(content)
    return content


def evaluate_loss(name: str, body: JSONBody, settings: Settings) -> dict[str, Any]:
    """POST /v1/losses/{name}: the loss from y_pred or logits, and optionally its gradient."""
    request = validate(LossRequest, body)
    if (request.y_pred is None) == (request.logits is None):
        raise field_error("", "must hold exactly one of y_pred and logits")
    limit, scan = settings.max_array_elements, body.scan_booleans
    y_true = to_array(request.y_true, "y_true", ndim=(1, 2), max_elements=limit, scan_booleans=scan)
    wrt = "y_pred" if request.y_pred is not None else "logits"
    pred = to_array(getattr(request, wrt), wrt, ndim=(1, 2), max_elements=limit, scan_booleans=scan)
    with engine_errors():
        if wrt == "y_pred":
            loss, grad = compute_loss(name, y_true, pred, reduction=request.reduction)
        else:
            loss, grad = compute_loss(name, y_true, logits=pred, reduction=request.reduction)
    content: dict[str, Any] = {"loss": loss, "reduction": request.reduction}
    if request.gradient:
        content["gradient"] = grad
        content["gradient_wrt"] = wrt
    ensure_finite(content)
    return content


def forward_pass(body: JSONBody, settings: Settings) -> dict[str, Any]:
    """POST /v1/forward: the model's outputs on X, and every layer's z and a when asked."""
    request = validate(ForwardRequest, body)
    limit, scan = settings.max_array_elements, body.scan_booleans
    X = to_array(request.X, "X", ndim=2, max_elements=limit, scan_booleans=scan)
    spec = build_model(request.model, X.shape[1], max_elements=limit, scan_booleans=scan)
    memory, response = admission.forward_request(
        n_rows=X.shape[0],
        layer_sizes=spec.architecture.layer_sizes,
        return_intermediates=request.return_intermediates,
    )
    admission.admit_compute(settings, memory, response, what="forward")
    with engine_errors():
        output, layers = forward(spec.architecture, spec.parameters, X, return_intermediates=True)
    content: dict[str, Any] = {"outputs": outputs_to_json(spec.architecture, output)}
    if request.return_intermediates:
        content["layers"] = [{"z": z, "a": a} for z, a in layers]
    ensure_finite(content)
    return content


def gradients(body: JSONBody, settings: Settings) -> dict[str, Any]:
    """POST /v1/gradients: loss, ∂loss/∂θ for every parameter, predictions, and an optional check."""
    request = validate(GradientsRequest, body)
    limit, scan = settings.max_array_elements, body.scan_booleans
    X = to_array(request.X, "X", ndim=2, max_elements=limit, scan_booleans=scan)
    y = to_array(request.y, "y", ndim=(1, 2), max_elements=limit, scan_booleans=scan)
    if y.shape[0] != X.shape[0]:
        raise field_error("y", f"has {y.shape[0]} rows but X has {X.shape[0]}")
    spec = build_model(request.model, X.shape[1], loss=request.loss, max_elements=limit, scan_booleans=scan)
    arch, params = spec.architecture, spec.parameters
    memory, response = admission.forward_request(
        n_rows=X.shape[0], layer_sizes=arch.layer_sizes, return_intermediates=False, gradients=True
    )
    admission.admit_compute(settings, memory, response, what="gradients")
    if request.check:
        _check_affordable(arch.n_parameters, X.shape[0])
    with engine_errors("y"):
        Y = targets(arch, y)
    with engine_errors():
        loss, grads, output = loss_and_gradient(arch, params, X, Y, request.l2)
        check = check_gradients(arch, params, X, Y, request.l2) if request.check else None
    content: dict[str, Any] = {
        "loss": loss,
        "gradients": parameters_to_json(arch, grads),
        "predictions": outputs_to_json(arch, output),
    }
    if check is not None:
        content["check"] = {
            "max_abs_error": check.max_abs_error,
            "max_rel_error": check.max_rel_error,
            "passed": check.passed,
        }
    ensure_finite(content)
    return content


def _check_affordable(n_parameters: int, n_samples: int) -> None:
    work = float(n_parameters) * n_parameters * n_samples
    if n_parameters > MAX_CHECK_PARAMETERS or work > MAX_CHECK_WORK:
        raise field_error(
            "check",
            f"costs two loss evaluations per parameter: {n_parameters} parameters on {n_samples} samples"
            f" is too much work (limits: {MAX_CHECK_PARAMETERS} parameters and parameters² × samples"
            f" ≤ {MAX_CHECK_WORK:.0e}); check on fewer samples or a smaller model",
        )
