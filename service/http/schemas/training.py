"""The training configuration a job is created with (POST /v1/jobs), and its resolved form."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.activations import resolve_params
from engine.architecture import MODEL_TYPES
from engine.hyperparameters import Hyperparameter
from engine.optimizers import OPTIMIZERS, default_hyperparameters
from engine.schedules import SCHEDULES, default_options
from service.http.schemas.common import ArrayField, exactly_one_of
from service.http.schemas.names import (
    ActivationName,
    GeneratorKind,
    ModelTypeName,
    OptimizerName,
    ScheduleName,
)
from service.vocabulary import MIN_SAMPLES, Task

# Strict: JSON types as documented ("epochs": "10" or 10.5 is refused, not coerced).
_STRICT = ConfigDict(extra="forbid", strict=True)
# What each optimizer and schedule takes; every name here is a field of the configs below.
OPTIMIZER_OPTIONS = {name: cls.HYPERPARAMETERS for name, cls in OPTIMIZERS.items()}
SCHEDULE_OPTIONS = {name: s.options for name, s in SCHEDULES.items()}


def _with_defaults(what: str, defaults: dict[str, float], given: dict[str, Any]) -> dict[str, float]:
    """The defaults updated with the given (non-null) values; a value ``what`` does not take → ValueError."""
    given = {k: v for k, v in given.items() if v is not None}
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"{what} takes no {', '.join(unknown)}; allowed: {', '.join(defaults) or 'none'}")
    return {**defaults, **given}


def _option_field(key: str, owners: Mapping[str, Mapping[str, Hyperparameter]]) -> Any:
    """An optional schema field for option ``key``: its interval and the defaults of those who take it.

    ``owners`` maps each optimizer (or schedule) to the options it takes; the field's bounds and
    description come from those entries, so the schema states what the engine checks.
    """
    takers = {owner: options[key] for owner, options in owners.items() if key in options}
    spec = next(iter(takers.values()))
    defaults = {f"{spec.default:g}" for spec in takers.values()}
    default = (
        f"default {defaults.pop()}"
        if len(defaults) == 1
        else "default " + ", ".join(f"{owner}: {s.default:g}" for owner, s in takers.items())
    )
    high = None if math.isinf(spec.high) else spec.high
    return Field(
        None,
        gt=spec.low if spec.low_open else None,
        ge=None if spec.low_open else spec.low,
        lt=high if spec.high_open else None,
        le=None if spec.high_open else high,
        description=f"{spec.description} Taken by {', '.join(takers)} ({default}).",
        examples=[int(spec.default) if spec.integer else spec.default],
    )


# Most epochs a job may run; a metrics query counts epochs up to it too.
MAX_EPOCHS = 1_000_000


class GeneratorSpec(BaseModel):
    """A synthetic dataset drawn from a seeded generator."""

    model_config = _STRICT

    kind: GeneratorKind = Field(
        description="linear (regression), xor, circles, moons (binary), spiral, blobs (K classes).",
        examples=["xor"],
    )
    n_samples: int = Field(
        200, ge=MIN_SAMPLES, le=1_000_000, description="Number of samples.", examples=[400]
    )
    noise: float = Field(
        0.1, ge=0, le=100, description="Noise level (std of the Gaussian noise added).", examples=[0.1]
    )
    n_classes: int | None = Field(
        None, ge=2, le=1000, description="Classes, for spiral and blobs (default 3).", examples=[3]
    )
    n_features: int | None = Field(
        None, ge=1, le=1000, description="Features, for linear and blobs (default 2).", examples=[2]
    )
    seed: int = Field(0, ge=0, le=2**63 - 1, description="Seed of the generator.", examples=[7])


class InlineDataset(BaseModel):
    """Data given with the job instead of a stored dataset: arrays, or a generator."""

    model_config = ConfigDict(**_STRICT, json_schema_extra=exactly_one_of(("X", "y"), ("generator",)))

    name: str = Field(
        "inline",
        max_length=200,
        description="Name of the dataset created for the job.",
        examples=["xor-inline"],
    )
    X: Annotated[
        Any,
        ArrayField(
            2,
            f"Features, shape (n_samples, n_features), at least {MIN_SAMPLES} samples.",
            [[0, 0], [1, 1]],
            min_items=MIN_SAMPLES,
        ),
    ] = None
    y: Annotated[
        Any,
        ArrayField(
            (1, 2),
            "Labels or targets, shape (n_samples,); or (n_samples, n_outputs) for several 0/1 labels per"
            " sample (multilabel) or several targets (multi-output regression).",
            [0, 0],
            min_items=MIN_SAMPLES,
        ),
    ] = None
    generator: GeneratorSpec | None = Field(
        None,
        description="Generate the data instead of sending it.",
        examples=[{"kind": "xor", "n_samples": 400, "noise": 0.1, "seed": 1}],
    )
    task: Task | None = Field(
        None,
        description="Override the inferred task (e.g. regression on integer targets).",
        examples=["binary"],
    )

    @model_validator(mode="after")
    def _one_source(self) -> InlineDataset:
        if (self.generator is None) == (self.X is None and self.y is None):
            raise ValueError("give either X and y, or a generator")
        if self.generator is None and (self.X is None or self.y is None):
            raise ValueError("give both X and y")
        return self


class ModelConfig(BaseModel):
    """The model to train; the output layer follows from the dataset's task."""

    model_config = ConfigDict(
        **_STRICT,
        json_schema_extra={
            # hidden_layers: at least one for an mlp, none for the other types.
            "if": {"properties": {"type": {"const": "mlp"}}, "required": ["type"]},
            "then": {"required": ["hidden_layers"], "properties": {"hidden_layers": {"minItems": 1}}},
            "else": {"properties": {"hidden_layers": {"maxItems": 0}}},
        },
    )

    type: ModelTypeName = Field(description="Model type.", examples=["mlp"])
    hidden_layers: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        default_factory=list,
        max_length=16,
        description="Units of each hidden layer (mlp only).",
        examples=[[16, 16]],
    )
    activation: ActivationName = Field(
        "relu",
        description="Activation of the hidden layers (mlp only); softmax is for output layers only.",
        examples=["relu"],
        json_schema_extra={"not": {"const": "softmax"}},
    )
    activation_params: dict[str, float] | None = Field(
        None,
        description="Parameters of the hidden activation, such as alpha for leaky_relu and elu (mlp only);"
        " omitted ones take the defaults GET /v1/activations lists.",
        examples=[{"alpha": 0.1}],
    )

    @model_validator(mode="after")
    def _hidden_only_for_mlp(self) -> ModelConfig:
        takes_hidden = MODEL_TYPES[self.type].hidden_layers
        if not takes_hidden and self.hidden_layers:
            raise ValueError(f"hidden_layers are for mlp models, got {self.hidden_layers} for {self.type}")
        if takes_hidden and not self.hidden_layers:
            raise ValueError("an mlp needs at least one hidden layer, e.g. hidden_layers: [16]")
        if self.activation == "softmax":
            raise ValueError("softmax is only used as an output activation; choose another hidden activation")
        if self.activation_params is not None:
            if not takes_hidden:
                raise ValueError(f"activation_params are for mlp models, got them for {self.type}")
            resolve_params(self.activation, self.activation_params)
        return self


class OptimizerConfig(BaseModel):
    """The update rule: gd is w ← w − η ∂L/∂w on the full batch."""

    model_config = _STRICT

    name: OptimizerName = Field(
        "gd",
        description="Optimizer (g is the gradient, η the learning rate): "
        + "; ".join(f"{name}: {cls.rule}" for name, cls in OPTIMIZERS.items())
        + ".",
        examples=["adam"],
    )
    learning_rate: float = Field(0.1, gt=0, le=1e3, description="The step size η.", examples=[0.01])
    momentum: float | None = _option_field("momentum", OPTIMIZER_OPTIONS)
    beta1: float | None = _option_field("beta1", OPTIMIZER_OPTIONS)
    beta2: float | None = _option_field("beta2", OPTIMIZER_OPTIONS)
    eps: float | None = _option_field("eps", OPTIMIZER_OPTIONS)
    weight_decay: float | None = _option_field("weight_decay", OPTIMIZER_OPTIONS)
    max_grad_norm: float | None = Field(
        None,
        gt=0,
        le=1e12,
        description="Clip each step's gradient to this global L2 norm (the l2 term included), as PyTorch's"
        " clip_grad_norm_: the gradient is scaled by max_grad_norm / (norm + 1e-6) when that is below 1."
        " Null: no clipping. Any optimizer.",
        examples=[1.0],
    )

    def hyperparameters(self) -> dict[str, float]:
        """The optimizer's hyperparameters with the registry's defaults filled; others given → ValueError."""
        given = {k: getattr(self, k) for options in OPTIMIZER_OPTIONS.values() for k in options}
        return _with_defaults(f"optimizer {self.name!r}", default_hyperparameters(self.name), given)


class ScheduleConfig(BaseModel):
    """How the learning rate changes with the epoch."""

    model_config = _STRICT

    name: ScheduleName = Field(
        "constant",
        description="Schedule (η is the base learning rate): "
        + "; ".join(f"{name}: {s.formula}" for name, s in SCHEDULES.items())
        + ".",
        examples=["cosine"],
    )
    step_size: int | None = _option_field("step_size", SCHEDULE_OPTIONS)
    gamma: float | None = _option_field("gamma", SCHEDULE_OPTIONS)
    min_lr: float | None = _option_field("min_lr", SCHEDULE_OPTIONS)

    def options(self) -> dict[str, float]:
        """The schedule's options with the registry's defaults filled; others given → ValueError."""
        given = {k: getattr(self, k) for options in SCHEDULE_OPTIONS.values() for k in options}
        return _with_defaults(f"schedule {self.name!r}", default_options(self.name), given)


class EarlyStoppingConfig(BaseModel):
    """Stop when the validation loss (training loss without validation) stops improving."""

    model_config = _STRICT

    patience: int = Field(
        10, ge=1, le=100_000, description="Epochs without improvement before stopping.", examples=[10]
    )
    min_delta: float = Field(
        0.0,
        ge=0,
        description="Smallest decrease of the monitored loss that resets the patience count. It decides only"
        " when to stop: the best epoch is the one with the lowest monitored loss, however small its lead.",
        examples=[0.0001],
    )
    restore_best: bool = Field(
        True,
        description="End with the best epoch's weights (the lowest monitored loss: val_loss, or train_loss"
        " without a validation set).",
        examples=[True],
    )


class TrainingConfig(BaseModel):
    """Everything a training job needs. Omitted fields take their defaults; the seed is chosen if null."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            **exactly_one_of(("dataset_id",), ("dataset",)),
            # gd is full-batch: batch_size stays null with it (and gd is the default optimizer).
            "if": {
                "anyOf": [
                    {"not": {"required": ["optimizer"]}},
                    {"properties": {"optimizer": {"not": {"required": ["name"]}}}},
                    {"properties": {"optimizer": {"properties": {"name": {"const": "gd"}}}}},
                ]
            },
            "then": {"properties": {"batch_size": {"type": "null"}}},
            "examples": [
                {
                    "dataset": {"generator": {"kind": "xor", "n_samples": 400, "noise": 0.1, "seed": 1}},
                    "model": {"type": "mlp", "hidden_layers": [16], "activation": "tanh"},
                    "optimizer": {"name": "adam", "learning_rate": 0.01},
                    "epochs": 200,
                    "batch_size": 32,
                    "validation_fraction": 0.2,
                    "seed": 42,
                }
            ],
        },
    )

    dataset_id: str | None = Field(
        None, description="A stored dataset's id.", examples=["ds_0194b2c3d4e5f6a7b8c9d0e1"]
    )
    dataset: InlineDataset | None = Field(
        None,
        description="Inline data instead of dataset_id: X and y, or a generator.",
        examples=[{"generator": {"kind": "circles", "n_samples": 300, "noise": 0.05, "seed": 2}}],
    )
    model: ModelConfig = Field(
        description="The model to train.",
        examples=[{"type": "mlp", "hidden_layers": [16], "activation": "tanh"}],
    )
    optimizer: OptimizerConfig = Field(
        default_factory=OptimizerConfig,
        description="The update rule (default: gd with learning_rate 0.1).",
        examples=[{"name": "adam", "learning_rate": 0.01}],
    )
    lr_schedule: ScheduleConfig | None = Field(
        None,
        description="Learning-rate schedule (default constant).",
        examples=[{"name": "step", "step_size": 50, "gamma": 0.5}],
    )
    epochs: int = Field(
        100, ge=1, le=MAX_EPOCHS, description="Passes over the training data.", examples=[200]
    )
    batch_size: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="Mini-batch size; null is full-batch gradient descent.",
        examples=[32],
    )
    l2: float = Field(
        0.0,
        ge=0,
        le=1e3,
        description="Coupled L2 penalty: the loss gains (l2/2)·Σ‖W‖² over the weights, not the biases, and"
        " its gradient l2·W goes through the optimizer (with adam, through its moment estimates; adamw's"
        " weight_decay is the decoupled alternative).",
        examples=[0.0001],
    )
    validation_fraction: float = Field(
        0.0, ge=0, lt=1, description="Share of samples held out for validation (stratified).", examples=[0.2]
    )
    early_stopping: EarlyStoppingConfig | None = Field(
        None,
        description="Early stopping; off when null.",
        examples=[{"patience": 20, "min_delta": 0.0001, "restore_best": True}],
    )
    seed: int | None = Field(
        None, ge=0, le=2**63 - 1, description="Seed of the run; chosen and returned when null.", examples=[42]
    )
    dtype: Literal["float32", "float64"] = Field(
        "float64", description="Floating-point type.", examples=["float64"]
    )
    standardize: bool = Field(
        False, description="Standardise features with the training part's mean and std.", examples=[True]
    )
    max_runtime_s: float | None = Field(
        None,
        gt=0,
        le=7 * 24 * 3600,
        description="Time budget; the job fails deadline_exceeded past it.",
        examples=[60],
    )
    max_retries: int = Field(2, ge=0, le=10, description="Restarts after a lost worker.", examples=[2])
    warm_start_model_id: str | None = Field(
        None, description="Start from this model's weights (same architecture).", examples=[None]
    )

    @model_validator(mode="after")
    def _one_dataset(self) -> TrainingConfig:
        if (self.dataset_id is None) == (self.dataset is None):
            raise ValueError("give exactly one of dataset_id and dataset")
        if OPTIMIZERS[self.optimizer.name].full_batch_only and self.batch_size is not None:
            others = [repr(name) for name, cls in OPTIMIZERS.items() if not cls.full_batch_only]
            raise ValueError(
                f"optimizer {self.optimizer.name!r} is full-batch gradient descent: batch_size must be"
                f" null, got {self.batch_size}; use {', '.join(others[:-1])} or {others[-1]} for mini-batches"
            )
        self.optimizer.hyperparameters()
        if self.lr_schedule is not None:
            self.lr_schedule.options()
        return self

    @field_validator("dataset_id", "warm_start_model_id")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty")
        return value
