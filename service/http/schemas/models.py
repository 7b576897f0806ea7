"""Request and response models of the /v1/models resource, and the model exchange format.

A model's parameters are arrays named W0, b0, W1, b1, … (layer i computes a = φ(a_prev @ Wi + bi),
Wi of shape [inputs, units], bi of shape [units]). The export/import document
(``"format": "descent.model/v1"``) holds everything needed to predict: architecture, task, classes,
standardization, dtype and parameters.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.architecture import MODEL_TYPES, ModelType
from engine.losses import LOSSES
from service.http.schemas.common import ArrayField, exactly_one_of
from service.http.schemas.datasets import DATASET_ID_EXAMPLE
from service.http.schemas.names import ActivationName, LossName, ModelTypeName
from service.vocabulary import MAX_CLASS_NAME_LENGTH, Task

MODEL_FORMAT = "descent.model/v1"
MODEL_ID_EXAMPLE = "mdl_06231f0e9d8c7b6a5f4e3d2c"
Dtype = Literal["float32", "float64"]

_STRICT = ConfigDict(extra="forbid", strict=True)
_ARCHITECTURE_EXAMPLE: dict[str, Any] = {
    "type": "mlp",
    "n_features": 2,
    "layers": [{"units": 2, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
    "loss": "binary_cross_entropy",
}
_PARAMETERS_EXAMPLE: dict[str, Any] = {
    "W0": [[1.0, -1.0], [0.5, 0.5]],
    "b0": [0.0, 0.1],
    "W1": [[1.0], [-2.0]],
    "b1": [0.3],
}
_LOGISTIC_ARCHITECTURE: dict[str, Any] = {
    "type": "logistic_regression",
    "n_features": 2,
    "layers": [{"units": 1, "activation": "sigmoid"}],
    "loss": "binary_cross_entropy",
}
_STANDARDIZATION_EXAMPLE: dict[str, Any] = {"mean": [0.5, -0.25], "scale": [1.5, 0.75]}
_METRICS_EXAMPLE = {
    "train_loss": 0.08,
    "val_loss": 0.11,
    "epochs_run": 200,
    "best_epoch": 187,
    "stop_reason": "completed",
    "weights_epoch": 200,
}
_SHA256_EXAMPLE = "4c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d"
# Parameter arrays: matrices (W) and vectors (b), by name.
PARAMETERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "propertyNames": {"pattern": "^[Wb][0-9]+$"},
    "additionalProperties": {
        "anyOf": [
            {"type": "array", "items": {"type": "number"}, "minItems": 1},
            {
                "type": "array",
                "items": {"type": "array", "items": {"type": "number"}, "minItems": 1},
                "minItems": 1,
            },
        ]
    },
}


class ModelLayer(BaseModel):
    """One layer: units = φ(a_prev @ W + b)."""

    model_config = _STRICT

    units: int = Field(ge=1, le=1_000_000, description="Outputs of the layer.", examples=[16])
    activation: ActivationName = Field(
        description="φ; GET /v1/activations lists them (softmax only on the last layer).", examples=["relu"]
    )
    params: dict[str, float] | None = Field(
        None,
        description="Parameters of φ, such as alpha for leaky_relu and elu (defaults filled in when shown;"
        " omitted on import: the defaults GET /v1/activations lists).",
        examples=[{"alpha": 0.1}],
    )


def _single_layer(model_type: ModelType) -> dict[str, Any]:
    """The one layer of a type that has one (its output activation and number of units), and the losses that
    output cannot take: a classification loss needs the activation that gives probabilities."""
    units: dict[str, Any] = {"minimum": model_type.min_outputs}
    if model_type.max_outputs is not None:
        units["maximum"] = model_type.max_outputs
    refused = [name for name, loss in LOSSES.items() if loss.output not in (None, model_type.output)]
    return {
        "if": {"properties": {"type": {"const": model_type.name}}, "required": ["type"]},
        "then": {
            "properties": {
                "layers": {
                    "maxItems": 1,
                    "items": {"properties": {"activation": {"const": model_type.output}, "units": units}},
                },
                "loss": {"allOf": [{"not": {"const": name}} for name in refused]},
            }
        },
    }


# The types but mlp have one layer, fixed by the type (engine.architecture.MODEL_TYPES).
_ARCHITECTURE_RULES: dict[str, Any] = {
    "allOf": [
        _single_layer(model_type) for model_type in MODEL_TYPES.values() if model_type.output is not None
    ]
}


class ModelArchitecture(BaseModel):
    """A model's layers, input to output, and the loss it was trained with."""

    model_config = ConfigDict(
        **_STRICT, json_schema_extra={"examples": [_ARCHITECTURE_EXAMPLE], **_ARCHITECTURE_RULES}
    )

    type: ModelTypeName = Field(
        description="logistic_regression (one sigmoid unit), linear_regression (identity units),"
        " softmax_regression (one softmax layer) or mlp.",
        examples=["mlp"],
    )
    n_features: int | None = Field(
        None,
        ge=1,
        description="Inputs of the first layer; equals the model's n_features when given.",
        examples=[2],
    )
    layers: list[ModelLayer] = Field(
        min_length=1,
        max_length=1000,
        description="The layers, input to output.",
        examples=[_ARCHITECTURE_EXAMPLE["layers"]],
    )
    loss: LossName | None = Field(
        None,
        description="The loss; when omitted on import, the one the output activation pairs with (sigmoid:"
        " binary_cross_entropy, softmax: cross_entropy, otherwise mean_squared_error).",
        examples=["binary_cross_entropy"],
    )


class Standardization(BaseModel):
    """Feature standardization applied before the model: x' = (x − mean) / scale."""

    model_config = ConfigDict(**_STRICT, json_schema_extra={"examples": [_STANDARDIZATION_EXAMPLE]})

    mean: list[Annotated[float, Field(allow_inf_nan=False)]] = Field(
        description="Per-feature mean, n_features entries.", examples=[[0.5, -0.25]]
    )
    scale: list[Annotated[float, Field(allow_inf_nan=False, json_schema_extra={"not": {"const": 0}})]] = (
        Field(
            description="Per-feature scale (standard deviation, 1 for constant features), n_features non-zero"
            " entries.",
            examples=[[1.5, 0.75]],
        )
    )


class Model(BaseModel):
    """A trained or imported model."""

    id: str = Field(description="The model's id.", examples=[MODEL_ID_EXAMPLE])
    created_at: datetime = Field(
        description="When it was stored (RFC 3339, UTC).", examples=["2025-01-31T12:00:00.123456+00:00"]
    )
    job_id: str | None = Field(
        description="The job that trained it; null for an imported model and once that job is deleted.",
        examples=["job_06231f0e9d8c7b6a5f4e3d2b"],
    )
    job_status: Literal["succeeded", "failed", "cancelled"] | None = Field(
        None,
        description="How the job that trained it ended: failed for a job that diverged or ran out of time"
        " (the model holds the weights of the epoch metrics.weights_epoch names), cancelled for the best"
        " weights of a cancelled job; null for a model imported without it.",
        examples=["succeeded"],
    )
    architecture: ModelArchitecture = Field(description="Layers and loss.", examples=[_LOGISTIC_ARCHITECTURE])
    n_features: int = Field(description="Columns X must have to predict.", examples=[2])
    n_parameters: int = Field(description="Number of weights and biases.", examples=[9])
    task: Task = Field(description="binary, multiclass, multilabel or regression.", examples=["binary"])
    classes: list[int | float | str] | None = Field(
        description="Classifiers: the label of each class index (output k stands for classes[k]); null for"
        " regression.",
        examples=[[0, 1]],
    )
    metrics: dict[str, Any] = Field(
        description="Final metrics of the training job (empty unless given for an imported model).",
        examples=[_METRICS_EXAMPLE],
    )
    standardization: Standardization | None = Field(
        description="The standardization predictions apply to X first; null when none.",
        examples=[_STANDARDIZATION_EXAMPLE],
    )
    sha256: str = Field(description="SHA-256 of the stored parameter arrays.", examples=[_SHA256_EXAMPLE])
    dtype: Dtype | None = Field(
        None,
        description="Floating-point type of the parameters; present with include=parameters.",
        examples=["float64"],
    )
    parameters: dict[str, Any] | None = Field(
        None,
        description="The parameter arrays by name (W0, b0, W1, b1, …); present with include=parameters.",
        examples=[_PARAMETERS_EXAMPLE],
        json_schema_extra=PARAMETERS_SCHEMA,
    )


class ModelPage(BaseModel):
    """One page of models, newest first."""

    items: list[Model] = Field(
        description="At most `limit` models (without parameters).",
        examples=[
            [
                {
                    "id": MODEL_ID_EXAMPLE,
                    "created_at": "2025-01-31T12:00:00.123456+00:00",
                    "job_id": "job_06231f0e9d8c7b6a5f4e3d2b",
                    "architecture": _ARCHITECTURE_EXAMPLE,
                    "n_features": 2,
                    "n_parameters": 9,
                    "task": "binary",
                    "classes": [0, 1],
                    "metrics": _METRICS_EXAMPLE,
                    "standardization": None,
                    "sha256": _SHA256_EXAMPLE,
                }
            ]
        ],
    )
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page.",
        examples=[MODEL_ID_EXAMPLE],
    )


MAX_GRID_AXIS = 2000


class GridSpec(BaseModel):
    """Evenly spaced points over a box: every combination of ``num[i]`` values from ``start[i]`` to
    ``stop[i]`` (both included), the first feature varying fastest. For two features that is
    ``num[1]`` rows of ``num[0]`` points each: point k is (x₀[k mod num[0]], x₁[k div num[0]])."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"start": [-1.5, -1.5], "stop": [1.5, 1.5], "num": [100, 100]}]},
    )

    start: list[Annotated[float, Field(allow_inf_nan=False)]] = Field(
        min_length=1, description="First value of each feature.", examples=[[-1.5, -1.5]]
    )
    stop: list[Annotated[float, Field(allow_inf_nan=False)]] = Field(
        min_length=1, description="Last value of each feature.", examples=[[1.5, 1.5]]
    )
    num: list[Annotated[int, Field(ge=1, le=MAX_GRID_AXIS)]] = Field(
        min_length=1, description="Values of each feature (1 gives start alone).", examples=[[100, 100]]
    )

    @model_validator(mode="after")
    def _same_lengths(self) -> GridSpec:
        if not len(self.start) == len(self.stop) == len(self.num):
            raise ValueError(
                f"start, stop and num must have one entry per feature, got {len(self.start)}, "
                f"{len(self.stop)} and {len(self.num)}"
            )
        return self

    @property
    def n_points(self) -> int:
        return math.prod(self.num)


class PredictRequest(BaseModel):
    """Inputs to predict on: rows of X, a stored dataset, or a grid the service builds."""

    model_config = ConfigDict(
        **_STRICT,
        json_schema_extra={
            "examples": [
                {"X": [[0.5, 1.0], [-1.0, 0.0]]},
                {"dataset_id": DATASET_ID_EXAMPLE},
                {"grid": {"start": [-1.5, -1.5], "stop": [1.5, 1.5], "num": [100, 100]}},
            ],
            **exactly_one_of(("X",), ("dataset_id",), ("grid",)),
        },
    )

    X: Annotated[
        Any,
        ArrayField(
            2, "Inputs, shape [n_samples, n_features], before standardization.", [[0.5, 1.0], [-1.0, 0.0]]
        ),
    ] = None
    dataset_id: str | None = Field(
        None, min_length=1, description="Predict on this dataset's X instead.", examples=[DATASET_ID_EXAMPLE]
    )
    grid: GridSpec | None = Field(
        None,
        description="Predict on a grid instead (e.g. to draw a decision boundary): the answer has one row"
        " per grid point, in the order GridSpec describes. Cheaper than sending the same points as X.",
        examples=[{"start": [-1.5, -1.5], "stop": [1.5, 1.5], "num": [100, 100]}],
    )

    @model_validator(mode="after")
    def _one_input(self) -> PredictRequest:
        given = [name for name in ("X", "dataset_id", "grid") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of X, dataset_id and grid, got {', '.join(given) or 'none'}")
        return self


class Prediction(BaseModel):
    """Predictions, and class probabilities for classifiers."""

    predictions: Annotated[
        Any,
        Field(
            description="One per row: the predicted class label (as in classes) for classifiers, the"
            " predicted value for regression; a row per sample for several outputs: 0 or 1 per label"
            " (multilabel, 1 when its probability is at least 0.5) or one value per target.",
            examples=[["cat", "dog"]],
            json_schema_extra={
                "type": "array",
                "items": {
                    "anyOf": [
                        {"type": "number"},
                        {"type": "string"},
                        {"type": "array", "items": {"type": "number"}},
                    ]
                },
            },
        ),
    ]
    probabilities: Annotated[
        Any,
        ArrayField(
            (1, 2),
            "Classifiers only: binary, the probability of classes[1], shape [n_samples]; multiclass, one"
            " row per sample and one column per class, shape [n_samples, n_classes]; multilabel, each"
            " label's probability of 1, shape [n_samples, n_labels].",
            [0.12, 0.93],
            default=None,
        ),
    ]
    classes: list[int | float | str] | None = Field(
        None,
        description="Classifiers only: the labels, in the order of the probability columns.",
        examples=[["cat", "dog"]],
    )


_CLASSES_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "array", "minItems": 2, "uniqueItems": True, "items": {"type": "number"}},
        {
            "type": "array",
            "minItems": 2,
            "uniqueItems": True,
            "items": {"type": "string", "maxLength": MAX_CLASS_NAME_LENGTH},
        },
        {"type": "null"},
    ]
}


class ModelMeta(BaseModel):
    """Everything of an exported model but its parameters: the ``meta`` member of an ``.npz`` export."""

    model_config = _STRICT

    format: Literal["descent.model/v1"] = Field(description="The format marker.", examples=[MODEL_FORMAT])
    architecture: ModelArchitecture = Field(description="Layers and loss.", examples=[_LOGISTIC_ARCHITECTURE])
    n_features: int = Field(ge=1, description="Columns of X.", examples=[2])
    task: Task = Field(
        description="binary (one sigmoid output, or a 2-class softmax), multiclass (softmax over the"
        " classes), multilabel (one sigmoid output per label) or regression (one output per target).",
        examples=["binary"],
    )
    classes: list[int | float | str] | None = Field(
        None,
        description="Classifiers: the label of each output class (2 for binary, one per output for"
        " multiclass), distinct, all numbers or all strings (of at most 256 characters); null for regression"
        " and multilabel.",
        examples=[[0, 1]],
        json_schema_extra=_CLASSES_SCHEMA,
    )
    standardization: Standardization | None = Field(
        None, description="Applied to X before the model; null for none.", examples=[_STANDARDIZATION_EXAMPLE]
    )
    dtype: Dtype = Field(description="Floating-point type of the parameters.", examples=["float64"])
    metrics: dict[str, Any] | None = Field(
        None, description="Training metrics to keep with the model.", examples=[_METRICS_EXAMPLE]
    )


class ModelDocument(ModelMeta):
    """A model in the exchange format: GET /v1/models/{id}/export writes it, POST /v1/models reads it.

    As ``.npz``, the arrays are members W0, b0, … in the stated dtype and every other field is a JSON
    object in the member ``meta`` (uint8 bytes of UTF-8 JSON).
    """

    model_config = ConfigDict(
        **_STRICT,
        json_schema_extra={
            "examples": [
                {
                    "format": MODEL_FORMAT,
                    "architecture": _ARCHITECTURE_EXAMPLE,
                    "n_features": 2,
                    "task": "binary",
                    "classes": [0, 1],
                    "standardization": None,
                    "dtype": "float64",
                    "parameters": _PARAMETERS_EXAMPLE,
                    "metrics": {},
                }
            ],
        },
    )

    parameters: dict[str, Any] = Field(
        description="W0, b0, W1, b1, … with the shapes the architecture gives (W0 and b0 at least: every"
        " model has a first layer). The JSON export writes float32 values in their exact decimal form, so an"
        " import restores the same bits.",
        examples=[_PARAMETERS_EXAMPLE],
        json_schema_extra={**PARAMETERS_SCHEMA, "required": ["W0", "b0"]},
    )
