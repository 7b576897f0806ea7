"""Between a ``ModelWithParameters`` request and the engine's ``Architecture`` and ``Parameters``.

Shapes are checked here, against the data the model is applied to, so that errors name both sides
("model.weights has 3 entries but X has 2 columns") instead of surfacing as a matmul failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.activations import resolve_params
from engine.models import Architecture, Parameters, build_architecture, from_arrays
from service.errors import field_error
from service.http.arrays import to_array
from service.http.schemas.compute import MLP, LinearRegression, LogisticRegression, SoftmaxRegression

Array = np.ndarray[Any, Any]
ModelRequest = LogisticRegression | LinearRegression | SoftmaxRegression | MLP


@dataclass(frozen=True)
class ModelSpec:
    """A model ready for the engine.

    Attributes
    ----------
    architecture : Architecture
        Layer sizes, activations and loss.
    parameters : Parameters
        Every weight and bias, in one flat float64 buffer.
    """

    architecture: Architecture
    parameters: Parameters


def build_model(
    model: ModelRequest,
    n_features: int,
    *,
    loss: str | None = None,
    max_elements: int,
    scan_booleans: bool = True,
    source: str = "X",
    prefix: str = "model",
) -> ModelSpec:
    """Convert a validated model request to the engine's architecture and parameters.

    Parameters
    ----------
    model : LogisticRegression, LinearRegression, SoftmaxRegression or MLP
        The request's model, its array fields still raw JSON.
    n_features : int
        Columns of the data the model will see.
    loss : str, optional
        A loss overriding the one the output activation pairs with.
    max_elements : int
        Most numbers one parameter array may hold.
    scan_booleans : bool
        Passed to ``to_array`` (False when the raw body ruled booleans out).
    source : str
        The data's name in messages.
    prefix : str
        The model's field name in messages.

    Returns
    -------
    ModelSpec

    Raises
    ------
    InvalidInput
        For arrays of the wrong shape, naming both the parameter and what it must match.
    """

    def array(value: Any, name: str, ndim: int) -> Array:
        return to_array(value, name, ndim=ndim, max_elements=max_elements, scan_booleans=scan_booleans)

    if isinstance(model, LogisticRegression | LinearRegression):
        w = array(model.weights, f"{prefix}.weights", 1)
        if w.shape[0] != n_features:
            raise field_error(
                f"{prefix}.weights", f"has {w.shape[0]} entries but {source} has {n_features} columns"
            )
        arch = _architecture(prefix, model.type, n_features, 1, loss=loss)
        weights, biases = [w.reshape(-1, 1)], [np.array([model.bias], dtype=np.float64)]
    elif isinstance(model, SoftmaxRegression):
        weights, biases = _softmax_arrays(model, n_features, array, source, prefix)
        arch = _architecture(prefix, model.type, n_features, weights[0].shape[1], loss=loss)
    else:
        weights, biases = _mlp_arrays(model, n_features, array, source, prefix)
        layers = model.layers
        for i, layer in enumerate(layers):
            try:
                resolve_params(layer.activation, layer.params)
            except ValueError as exc:
                raise field_error(f"{prefix}.layers[{i}].params", str(exc)) from None
        arch = _architecture(
            prefix,
            "mlp",
            n_features,
            layers[-1].units,
            hidden_layers=[layer.units for layer in layers[:-1]],
            activation=[layer.activation for layer in layers[:-1]],
            activation_params=[layer.params or {} for layer in layers[:-1]],
            output_activation=layers[-1].activation,
            output_params=layers[-1].params,
            loss=loss,
        )
    try:
        params = from_arrays(arch, weights, biases)
    except ValueError as exc:
        raise field_error(prefix, str(exc), detail=str(exc)) from None
    return ModelSpec(arch, params)


def _softmax_arrays(
    model: SoftmaxRegression, n_features: int, array: Any, source: str, prefix: str
) -> tuple[list[Array], list[Array]]:
    W = array(model.weights, f"{prefix}.weights", 2)
    b = array(model.bias, f"{prefix}.bias", 1)
    if W.shape[0] != n_features:
        raise field_error(f"{prefix}.weights", f"has {W.shape[0]} rows but {source} has {n_features} columns")
    if W.shape[1] < 2:
        raise field_error(
            f"{prefix}.weights",
            f"has {W.shape[1]} column; softmax regression needs one per class, at least 2",
        )
    if b.shape[0] != W.shape[1]:
        raise field_error(
            f"{prefix}.bias",
            f"has {b.shape[0]} entries but {prefix}.weights has {W.shape[1]} columns (classes)",
        )
    return [W], [b]


def _mlp_arrays(
    model: MLP, n_features: int, array: Any, source: str, prefix: str
) -> tuple[list[Array], list[Array]]:
    layers, parameters = model.layers, model.parameters
    if len(parameters) != len(layers):
        raise field_error(
            f"{prefix}.parameters", f"has {len(parameters)} entries but {prefix}.layers has {len(layers)}"
        )
    weights, biases = [], []
    fan_in, fan_in_source = n_features, f"{source}'s columns"
    for i, (layer, p) in enumerate(zip(layers, parameters, strict=True)):
        w_name, b_name = f"{prefix}.parameters[{i}].weights", f"{prefix}.parameters[{i}].bias"
        W, b = array(p.weights, w_name, 2), array(p.bias, b_name, 1)
        if W.shape != (fan_in, layer.units):
            raise field_error(
                w_name,
                f"has shape {list(W.shape)} but must be [{fan_in}, {layer.units}]: {fan_in} inputs"
                f" ({fan_in_source}) by {layer.units} units ({prefix}.layers[{i}].units)",
            )
        if b.shape[0] != layer.units:
            raise field_error(
                b_name, f"has {b.shape[0]} entries but {prefix}.layers[{i}] has {layer.units} units"
            )
        weights.append(W)
        biases.append(b)
        fan_in, fan_in_source = layer.units, f"{prefix}.layers[{i}].units"
    return weights, biases


def _architecture(prefix: str, kind: str, n_features: int, n_outputs: int, **kwargs: Any) -> Architecture:
    try:
        return build_architecture(kind, n_features, n_outputs, **kwargs)
    except ValueError as exc:
        raise field_error(prefix, str(exc), detail=str(exc)) from None


def parameters_to_json(architecture: Architecture, params: Parameters) -> dict[str, Any]:
    """Parameters (or gradients) with the structure of the request's parameter fields.

    Parameters
    ----------
    architecture : Architecture
    params : Parameters

    Returns
    -------
    dict
        ``{"weights": [D], "bias": b}`` for logistic and linear regression, ``{"weights": [[D x K]],
        "bias": [K]}`` for softmax regression, ``{"parameters": [{"weights", "bias"}, ...]}`` for MLPs;
        the arrays are ndarrays (the JSON response serializes them).
    """
    if architecture.kind in ("logistic_regression", "linear_regression"):
        return {"weights": params.weights[0][:, 0], "bias": float(params.biases[0][0])}
    if architecture.kind == "softmax_regression":
        return {"weights": params.weights[0], "bias": params.biases[0]}
    return {
        "parameters": [{"weights": w, "bias": b} for w, b in zip(params.weights, params.biases, strict=True)]
    }


def outputs_to_json(architecture: Architecture, output: Array) -> Array:
    """The network's output of shape (n_samples, n_outputs) as the API shows it.

    Logistic and linear regression have one output per sample, shown as shape (n_samples,); softmax
    regression and MLPs keep (n_samples, units).
    """
    if architecture.kind in ("logistic_regression", "linear_regression"):
        return output[:, 0]
    return output
