"""``client.compute``: activations, losses, forward passes and gradients of models given in full.

Arrays go as JSON while they are small and as NumPy ``.npy``/``.npz`` beyond 64 KiB of numbers
(``_calls.arrays_call``); either way the answer comes back as a dict whose arrays are ndarrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from descent_client import _calls
from descent_client._calls import Call


def activation_call(name: str, x: Any, derivative: bool, params: Mapping[str, float] | None) -> Call:
    body = {"x": x, "derivative": derivative or None, "params": dict(params) if params else None}
    return _calls.arrays_call(f"/v1/activations/{name}", body, npy_field="x")


def loss_call(name: str, y_true: Any, y_pred: Any, logits: Any, reduction: str, gradient: bool) -> Call:
    body = {
        "y_true": y_true,
        "y_pred": y_pred,
        "logits": logits,
        "reduction": reduction,
        "gradient": gradient or None,
    }
    return _calls.arrays_call(f"/v1/losses/{name}", body)


def forward_call(model: Mapping[str, Any], X: Any, return_intermediates: bool) -> Call:
    body = {"model": dict(model), "X": X, "return_intermediates": return_intermediates or None}
    return _calls.arrays_call("/v1/forward", body, npy_field="X")


def gradients_call(
    model: Mapping[str, Any], X: Any, y: Any, loss: str | None, l2: float, check: bool
) -> Call:
    body = {"model": dict(model), "X": X, "y": y, "loss": loss, "l2": l2 or None, "check": check or None}
    return _calls.arrays_call("/v1/gradients", body)


class Compute:
    """``client.compute``: the stateless compute endpoints (see the API's activations, losses, forward
    and gradients)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def _answer(self, call: Call) -> dict[str, Any]:
        return _calls.answer(self._client.send(call))

    def activation(
        self, name: str, x: Any, *, derivative: bool = False, params: Mapping[str, float] | None = None
    ) -> dict[str, Any]:
        """φ(x) as ``y`` (and dφ/dx as ``dy`` with ``derivative``), shaped like x."""
        return self._answer(activation_call(name, x, derivative, params))

    def loss(
        self,
        name: str,
        y_true: Any,
        y_pred: Any = None,
        *,
        logits: Any = None,
        reduction: str = "mean",
        gradient: bool = False,
    ) -> dict[str, Any]:
        """The loss of ``y_pred`` (or ``logits``) against ``y_true``, and its gradient with ``gradient``."""
        return self._answer(loss_call(name, y_true, y_pred, logits, reduction, gradient))

    def forward(
        self, model: Mapping[str, Any], X: Any, *, return_intermediates: bool = False
    ) -> dict[str, Any]:
        """The model's ``outputs`` on X (and every layer's z and a with ``return_intermediates``)."""
        return self._answer(forward_call(model, X, return_intermediates))

    def gradients(
        self,
        model: Mapping[str, Any],
        X: Any,
        y: Any,
        *,
        loss: str | None = None,
        l2: float = 0.0,
        check: bool = False,
    ) -> dict[str, Any]:
        """The mean ``loss``, ``gradients`` shaped like the model's parameters, and ``predictions``."""
        return self._answer(gradients_call(model, X, y, loss, l2, check))


class AsyncCompute:
    """``client.compute`` of the async client (see :class:`Compute`)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    async def _answer(self, call: Call) -> dict[str, Any]:
        return _calls.answer(await self._client.send(call))

    async def activation(
        self, name: str, x: Any, *, derivative: bool = False, params: Mapping[str, float] | None = None
    ) -> dict[str, Any]:
        return await self._answer(activation_call(name, x, derivative, params))

    async def loss(
        self,
        name: str,
        y_true: Any,
        y_pred: Any = None,
        *,
        logits: Any = None,
        reduction: str = "mean",
        gradient: bool = False,
    ) -> dict[str, Any]:
        return await self._answer(loss_call(name, y_true, y_pred, logits, reduction, gradient))

    async def forward(
        self, model: Mapping[str, Any], X: Any, *, return_intermediates: bool = False
    ) -> dict[str, Any]:
        return await self._answer(forward_call(model, X, return_intermediates))

    async def gradients(
        self,
        model: Mapping[str, Any],
        X: Any,
        y: Any,
        *,
        loss: str | None = None,
        l2: float = 0.0,
        check: bool = False,
    ) -> dict[str, Any]:
        return await self._answer(gradients_call(model, X, y, loss, l2, check))
