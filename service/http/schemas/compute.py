"""Request and response models of the stateless compute endpoints.

Array fields are ``Any`` documented with an array schema (see ``ArrayField``): pydantic validates the
small fields only and ``arrays.to_array`` converts the arrays. Allowed names come from the engine's
registries, so the schema can never drift from what the engine accepts.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from service.http.schemas.common import ArrayField, exactly_one_of
from service.http.schemas.names import ActivationName, LossName, Reduction

# Requests reject unknown fields (a typo such as "derivatve" must not be ignored silently) and do
# not coerce types: true is not 1, "1" is not a number.
_REQUEST = ConfigDict(extra="forbid", strict=True)


# ---- activations -------------------------------------------------------------------------------


class OutputRange(BaseModel):
    """The interval an activation's outputs lie in; null for an unbounded side."""

    min: float | None = Field(description="Lower bound (null: unbounded).", examples=[0.0])
    max: float | None = Field(description="Upper bound (null: unbounded).", examples=[1.0])


class ActivationInfo(BaseModel):
    """An activation function φ and its derivative, as the engine implements them."""

    name: ActivationName = Field(description="The name used in paths and model layers.", examples=["sigmoid"])
    formula: str = Field(description="φ(z).", examples=["1 / (1 + exp(-z))"])
    derivative_formula: str = Field(description="dφ/dz.", examples=["sigmoid(z) * (1 - sigmoid(z))"])
    output_range: OutputRange = Field(
        description="The range of φ (approximate for gelu and silu minima).",
        examples=[{"min": 0.0, "max": 1.0}],
    )
    params: dict[str, float] = Field(
        description="Parameters the activation takes, with their defaults.", examples=[{"alpha": 0.01}]
    )
    elementwise: bool = Field(
        description="False for softmax, which mixes the entries along the last axis.", examples=[True]
    )


class ActivationList(BaseModel):
    """Every activation the engine provides."""

    items: list[ActivationInfo] = Field(
        description="The activations, in registry order.",
        examples=[
            [
                {
                    "name": "relu",
                    "formula": "max(0, z)",
                    "derivative_formula": "1 if z > 0 else 0",
                    "output_range": {"min": 0.0, "max": None},
                    "params": {},
                    "elementwise": True,
                }
            ]
        ],
    )


class ActivationRequest(BaseModel):
    """Evaluate an activation at every entry of x."""

    model_config = ConfigDict(
        **_REQUEST, json_schema_extra={"examples": [{"x": [-2.0, 0.0, 2.0], "derivative": True}]}
    )

    x: Annotated[
        Any,
        ArrayField(
            None,
            "The pre-activation z: a number or a rectangular nested array of any shape"
            " (softmax works along the last axis, so it needs an array).",
            [-2.0, 0.0, 2.0],
        ),
    ]
    derivative: bool = Field(
        False, description="Also return dy = dφ/dz (softmax: the diagonal of its Jacobian).", examples=[True]
    )
    params: dict[str, float] | None = Field(
        None,
        description="Parameters such as alpha for leaky_relu and elu; omitted ones take the defaults"
        " listed by GET /v1/activations.",
        examples=[{"alpha": 0.1}],
    )


class ActivationResult(BaseModel):
    """φ(x), and dφ/dx when asked for, with x's shape."""

    activation: ActivationName = Field(description="The activation evaluated.", examples=["sigmoid"])
    params: dict[str, float] = Field(description="The parameters used, defaults filled in.", examples=[{}])
    shape: list[int] = Field(description="The shape of x, y and dy ([] for a single number).", examples=[[3]])
    y: Annotated[
        Any, ArrayField(None, "φ(x), shaped like x.", [0.11920292202211755, 0.5, 0.8807970779778823])
    ]
    dy: Annotated[
        Any,
        ArrayField(
            None,
            "dφ/dx, shaped like x; present only when derivative was true.",
            [0.10499358540350652, 0.25, 0.10499358540350662],
            default=None,
        ),
    ]


class CurvePoints(BaseModel):
    """The sampled curve as parallel arrays: point i is (x[i], y[i], dy[i])."""

    x: list[float] = Field(
        description="Evenly spaced inputs from start to stop.", examples=[[-1.0, 0.0, 1.0]]
    )
    y: list[float] = Field(description="φ at each x.", examples=[[0.0, 0.0, 1.0]])
    dy: list[float] = Field(description="dφ/dz at each x.", examples=[[0.0, 0.0, 1.0]])


class CurveResult(BaseModel):
    """An activation and its derivative sampled on an interval, for plotting."""

    activation: ActivationName = Field(description="The activation sampled.", examples=["relu"])
    params: dict[str, float] = Field(description="The parameters used, defaults filled in.", examples=[{}])
    points: CurvePoints = Field(
        description="Parallel arrays x, y, dy (ready for plot(x, y)).",
        examples=[{"x": [-1.0, 0.0, 1.0], "y": [0.0, 0.0, 1.0], "dy": [0.0, 0.0, 1.0]}],
    )


# ---- losses ------------------------------------------------------------------------------------


class LossRequest(BaseModel):
    """Evaluate a loss from predictions or from logits."""

    model_config = ConfigDict(
        **_REQUEST,
        json_schema_extra={
            "examples": [
                {"y_true": [1, 0, 1], "y_pred": [0.9, 0.2, 0.6], "reduction": "mean", "gradient": True}
            ],
            **exactly_one_of(("y_pred",), ("logits",)),
        },
    )

    y_true: Annotated[
        Any,
        ArrayField(
            (1, 2),
            "Targets: labels 0/1 for binary_cross_entropy; class indices (n,) or one-hot rows (n, k)"
            " for cross_entropy; values for mean_squared_error.",
            [1, 0, 1],
        ),
    ]
    y_pred: Annotated[
        Any,
        ArrayField(
            (1, 2),
            "Predictions shaped like y_true (probabilities in [0, 1] for the cross-entropies; rows of"
            " shape (n, k) for cross_entropy). Give exactly one of y_pred and logits.",
            [0.9, 0.2, 0.6],
            default=None,
        ),
    ]
    logits: Annotated[
        Any,
        ArrayField(
            (1, 2),
            "Raw scores z instead of probabilities: sigmoid(z) for binary_cross_entropy, softmax of each"
            " row for cross_entropy. Give exactly one of y_pred and logits.",
            [2.0, -1.0, 0.5],
            default=None,
        ),
    ]
    reduction: Reduction = Field(
        "mean",
        description="Average or add the per-sample losses, or return them all ('none'). A sample's loss is"
        " the mean over its outputs for binary_cross_entropy and mean_squared_error (the sum over the"
        " classes for cross_entropy), so with several outputs 'mean' is the mean over all elements, as"
        " PyTorch and Keras report it.",
        examples=["sum"],
    )
    gradient: bool = Field(
        False, description="Also return the gradient with respect to y_pred (or logits).", examples=[True]
    )


class LossResult(BaseModel):
    """The loss, and its gradient when asked for."""

    loss: float | list[float] = Field(
        description="The reduced loss, or one loss per sample for reduction 'none'.",
        examples=[0.2797765635793422],
    )
    reduction: Reduction = Field(description="The reduction applied.", examples=["mean"])
    gradient: Annotated[
        Any,
        ArrayField(
            (1, 2),
            "∂loss/∂y_pred (or ∂loss/∂logits), shaped like it; present only when gradient was true.",
            [-0.3703703703703704, 0.41666666666666674, -0.5555555555555556],
            default=None,
        ),
    ]
    gradient_wrt: Literal["y_pred", "logits"] | SkipJsonSchema[None] = Field(
        None,
        description="What the gradient is taken with respect to; present with the gradient.",
        examples=["y_pred"],
    )


# ---- models with parameters -----------------------------------------------------------------------

_VECTOR_WEIGHTS = "One weight per feature: shape [D], D = the number of columns of X."


class LogisticRegression(BaseModel):
    """ŷ = sigmoid(X·w + b); binary_cross_entropy by default."""

    model_config = _REQUEST

    type: Literal["logistic_regression"] = Field(
        description="The model type.", examples=["logistic_regression"]
    )
    weights: Annotated[Any, ArrayField(1, _VECTOR_WEIGHTS, [0.5, -0.25])]
    bias: float = Field(description="The intercept b.", examples=[0.1])


class LinearRegression(BaseModel):
    """ŷ = X·w + b; mean_squared_error by default."""

    model_config = _REQUEST

    type: Literal["linear_regression"] = Field(description="The model type.", examples=["linear_regression"])
    weights: Annotated[Any, ArrayField(1, _VECTOR_WEIGHTS, [2.0, -1.0])]
    bias: float = Field(description="The intercept b.", examples=[0.5])


class SoftmaxRegression(BaseModel):
    """ŷ = softmax(X·W + b) over K classes; cross_entropy by default."""

    model_config = _REQUEST

    type: Literal["softmax_regression"] = Field(
        description="The model type.", examples=["softmax_regression"]
    )
    weights: Annotated[
        Any,
        ArrayField(
            2, "W, shape [D, K]: one row per feature, one column per class (K ≥ 2).", [[1, -1], [0.5, 0]]
        ),
    ]
    bias: Annotated[Any, ArrayField(1, "b, shape [K]: one intercept per class.", [0.0, 0.1])]


class MLPLayer(BaseModel):
    """One layer of an MLP: units = φ(a_prev @ W + b)."""

    model_config = _REQUEST

    units: int = Field(
        ge=1, le=1_000_000, description="Number of units (outputs) of the layer.", examples=[4]
    )
    activation: ActivationName = Field(
        description="φ of the layer; softmax only on the last layer.", examples=["relu"]
    )
    params: dict[str, float] | None = Field(
        None,
        description="Parameters of φ, such as alpha for leaky_relu and elu; omitted ones take the defaults"
        " GET /v1/activations lists.",
        examples=[{"alpha": 0.1}],
    )


class LayerParameters(BaseModel):
    """Weights and bias of one layer."""

    model_config = _REQUEST

    weights: Annotated[
        Any,
        ArrayField(
            2, "W, shape [inputs, units]: inputs = X's columns or the previous layer's units.", [[0.1, -0.2]]
        ),
    ]
    bias: Annotated[Any, ArrayField(1, "b, shape [units].", [0.0, 0.0])]


class MLP(BaseModel):
    """A multi-layer perceptron; the last layer's activation picks the default loss."""

    model_config = _REQUEST

    type: Literal["mlp"] = Field(description="The model type.", examples=["mlp"])
    layers: list[MLPLayer] = Field(
        min_length=1,
        max_length=1000,
        description="The layers, input to output (sigmoid last: binary_cross_entropy; softmax last:"
        " cross_entropy; anything else: mean_squared_error).",
        examples=[[{"units": 2, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]],
    )
    parameters: list[LayerParameters] = Field(
        min_length=1,
        max_length=1000,
        description="One {weights, bias} per layer, in the same order.",
        examples=[
            [{"weights": [[1.0, -1.0]], "bias": [0.0, 0.5]}, {"weights": [[1.0], [2.0]], "bias": [-0.5]}]
        ],
    )


ModelWithParameters = Annotated[
    LogisticRegression | LinearRegression | SoftmaxRegression | MLP,
    Field(discriminator="type"),
]
# The model classes by their "type"; a test checks the keys match engine.models.MODEL_TYPES.
MODEL_CLASSES: dict[str, type[BaseModel]] = {
    "logistic_regression": LogisticRegression,
    "linear_regression": LinearRegression,
    "softmax_regression": SoftmaxRegression,
    "mlp": MLP,
}

_MODEL_DESCRIPTION = "The model: its type and every parameter value."
_LOGISTIC_EXAMPLE: dict[str, Any] = {"type": "logistic_regression", "weights": [0.5, -0.25], "bias": 0.1}


class ForwardRequest(BaseModel):
    """Run a model on X."""

    model_config = ConfigDict(
        **_REQUEST,
        json_schema_extra={
            "examples": [
                {"model": _LOGISTIC_EXAMPLE, "X": [[1.0, 2.0], [0.0, -1.0]], "return_intermediates": True}
            ]
        },
    )

    model: ModelWithParameters = Field(description=_MODEL_DESCRIPTION, examples=[_LOGISTIC_EXAMPLE])
    X: Annotated[Any, ArrayField(2, "Inputs, shape [n_samples, n_features].", [[1.0, 2.0], [0.0, -1.0]])]
    return_intermediates: bool = Field(
        False, description="Also return each layer's pre-activation z and activation a.", examples=[True]
    )


class LayerValues(BaseModel):
    """One layer of the forward pass: z = a_prev @ W + b, a = φ(z)."""

    z: Annotated[Any, ArrayField(2, "Pre-activations, shape [n_samples, units].", [[0.1], [0.35]])]
    a: Annotated[
        Any,
        ArrayField(
            2, "Activations φ(z), shape [n_samples, units].", [[0.52497918747894], [0.5866175789173301]]
        ),
    ]


class ForwardResult(BaseModel):
    """The model's outputs, and the computational graph's values when asked for."""

    outputs: Annotated[
        Any,
        ArrayField(
            (1, 2),
            "ŷ: shape [n_samples] for logistic and linear regression, [n_samples, units] for softmax"
            " regression and MLPs.",
            [0.52497918747894, 0.5866175789173301],
        ),
    ]
    layers: list[LayerValues] | SkipJsonSchema[None] = Field(
        None,
        description="z and a of every layer, input to output; present only with return_intermediates.",
        examples=[[{"z": [[0.1], [0.35]], "a": [[0.52497918747894], [0.5866175789173301]]}]],
    )


class GradientsRequest(BaseModel):
    """The loss of a model on (X, y) and its gradient for every parameter."""

    model_config = ConfigDict(
        **_REQUEST,
        json_schema_extra={
            "examples": [
                {"model": _LOGISTIC_EXAMPLE, "X": [[1.0, 2.0], [0.0, -1.0]], "y": [1, 0], "check": True}
            ]
        },
    )

    model: ModelWithParameters = Field(description=_MODEL_DESCRIPTION, examples=[_LOGISTIC_EXAMPLE])
    X: Annotated[Any, ArrayField(2, "Inputs, shape [n_samples, n_features].", [[1.0, 2.0], [0.0, -1.0]])]
    y: Annotated[
        Any,
        ArrayField(
            (1, 2),
            "Targets, one per row of X: labels 0/1 (logistic regression), class indices or one-hot rows"
            " (softmax), values (linear regression); [n_samples, units] for multi-output MLPs.",
            [1, 0],
        ),
    ]
    loss: LossName | None = Field(
        None,
        description="The loss; defaults to the one the output activation pairs with.",
        examples=["binary_cross_entropy"],
    )
    l2: float = Field(
        0.0,
        ge=0.0,
        le=1e6,
        description="L2 penalty: the loss gains (l2 / 2)·Σ‖W‖² over the weights, not the biases, and each"
        " weight's gradient gains l2·W.",
        examples=[0.01],
    )
    check: bool = Field(
        False,
        description="Also compare the gradient with central finite differences (costs two loss"
        " evaluations per parameter).",
        examples=[True],
    )


class VectorGradients(BaseModel):
    """Gradients of a logistic or linear regression."""

    weights: Annotated[Any, ArrayField(1, "∂loss/∂w, shape [D].", [-0.23751040626053, -0.768329601979725])]
    bias: float = Field(description="∂loss/∂b.", examples=[0.05579838319813507])


class MatrixGradients(BaseModel):
    """Gradients of a softmax regression."""

    weights: Annotated[Any, ArrayField(2, "∂loss/∂W, shape [D, K].", [[0.1, -0.1], [0.2, -0.2]])]
    bias: Annotated[Any, ArrayField(1, "∂loss/∂b, shape [K].", [0.05, -0.05])]


class MLPGradients(BaseModel):
    """Gradients of an MLP, one entry per layer."""

    parameters: list[LayerParameters] = Field(
        description="∂loss/∂W and ∂loss/∂b of each layer, shaped like model.parameters.",
        examples=[[{"weights": [[0.01, -0.02]], "bias": [0.003, 0.0]}]],
    )


class GradientCheck(BaseModel):
    """The analytic gradient compared with central finite differences."""

    max_abs_error: float = Field(
        description="max |analytic − numerical| over all parameters.", examples=[3.1e-11]
    )
    max_rel_error: float = Field(
        description="max |analytic − numerical| / max(|analytic| + |numerical|, 1e-8).", examples=[2.4e-10]
    )
    passed: bool = Field(description="max_rel_error below 1e-6.", examples=[True])


class GradientsResult(BaseModel):
    """Loss, gradients and predictions of a model on (X, y)."""

    loss: float = Field(
        description="The mean loss, plus the L2 penalty if any.", examples=[0.763889407746174]
    )
    gradients: VectorGradients | MatrixGradients | MLPGradients = Field(
        description="∂loss/∂θ with the structure of the model's parameter fields (weights and bias,"
        " or parameters for an MLP).",
        examples=[{"weights": [-0.23751040626053, -0.768329601979725], "bias": 0.05579838319813507}],
    )
    predictions: Annotated[
        Any,
        ArrayField(
            (1, 2),
            "ŷ, the outputs the loss compares with y (shaped as in POST /v1/forward).",
            [0.52497918747894, 0.5866175789173301],
        ),
    ]
    check: GradientCheck | SkipJsonSchema[None] = Field(
        None,
        description="Present only when check was true.",
        examples=[{"max_abs_error": 3.1e-11, "max_rel_error": 2.4e-10, "passed": True}],
    )
