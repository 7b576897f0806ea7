"""The training configuration a job is created with (POST /v1/jobs), and its resolved form."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.activations import ACTIVATIONS
from engine.datasets import GENERATORS
from engine.models import MODEL_TYPES
from engine.optimizers import DEFAULT_HYPERPARAMETERS, OPTIMIZERS, SCHEDULE_OPTIONS, SCHEDULES
from service.http.schemas.common import ArrayField
from service.vocabulary import Task

if TYPE_CHECKING:
    ActivationName = str
    OptimizerName = str
    ScheduleName = str
    ModelType = str
    GeneratorKind = str
else:
    # The allowed names come from the engine's registries, so the schema can never drift from them.
    ActivationName = Literal[tuple(ACTIVATIONS)]
    OptimizerName = Literal[tuple(OPTIMIZERS)]
    ScheduleName = Literal[tuple(SCHEDULES)]
    ModelType = Literal[tuple(MODEL_TYPES)]
    GeneratorKind = Literal[tuple(GENERATORS)]

_STRICT = ConfigDict(extra="forbid")


def _with_defaults(what: str, defaults: dict[str, float], given: dict[str, Any]) -> dict[str, float]:
    """The defaults updated with the given (non-null) values; a value ``what`` does not take → ValueError."""
    given = {k: v for k, v in given.items() if v is not None}
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"{what} takes no {', '.join(unknown)}; allowed: {', '.join(defaults) or 'none'}")
    return {**defaults, **given}


class GeneratorSpec(BaseModel):
    """A synthetic dataset drawn from a seeded generator."""

    model_config = _STRICT

    kind: GeneratorKind = Field(
        description="linear (regression), xor, circles, moons (binary), spiral, blobs (K classes).",
        examples=["xor"],
    )
    n_samples: int = Field(200, ge=2, le=1_000_000, description="Number of samples.", examples=[400])
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

    model_config = _STRICT

    name: str = Field(
        "inline",
        max_length=200,
        description="Name of the dataset created for the job.",
        examples=["xor-inline"],
    )
    X: Annotated[Any, ArrayField(2, "Features, shape (n_samples, n_features).", [[0, 0], [1, 1]])] = None
    y: Annotated[Any, ArrayField(1, "Labels or targets, shape (n_samples,).", [0, 0])] = None
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

    model_config = _STRICT

    type: ModelType = Field(description="Model type.", examples=["mlp"])
    hidden_layers: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        default_factory=list,
        max_length=16,
        description="Units of each hidden layer (mlp only).",
        examples=[[16, 16]],
    )
    activation: ActivationName = Field(
        "relu", description="Activation of the hidden layers (mlp only).", examples=["relu"]
    )

    @model_validator(mode="after")
    def _hidden_only_for_mlp(self) -> ModelConfig:
        if self.type != "mlp" and self.hidden_layers:
            raise ValueError(f"hidden_layers are for mlp models, got {self.hidden_layers} for {self.type}")
        if self.type == "mlp" and not self.hidden_layers:
            raise ValueError("an mlp needs at least one hidden layer, e.g. hidden_layers: [16]")
        if self.activation == "softmax":
            raise ValueError("softmax is only used as an output activation; choose another hidden activation")
        return self


class OptimizerConfig(BaseModel):
    """The update rule: gd is w ← w − η ∂L/∂w on the full batch."""

    model_config = _STRICT

    name: OptimizerName = Field("gd", description="Optimizer.", examples=["adam"])
    learning_rate: float = Field(0.1, gt=0, le=1e3, description="The step size η.", examples=[0.01])
    momentum: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="Momentum coefficient (momentum, nesterov; default 0.9).",
        examples=[0.9],
    )
    beta1: float | None = Field(None, ge=0, lt=1, description="Adam's β₁ (default 0.9).", examples=[0.9])
    beta2: float | None = Field(None, ge=0, lt=1, description="Adam's β₂ (default 0.999).", examples=[0.999])
    eps: float | None = Field(None, gt=0, le=1, description="Adam's ε (default 1e-8).", examples=[1e-8])

    def hyperparameters(self) -> dict[str, float]:
        """The optimizer's hyperparameters with defaults filled; others given → ValueError."""
        given = {k: getattr(self, k) for k in ("momentum", "beta1", "beta2", "eps")}
        return _with_defaults(f"optimizer {self.name!r}", DEFAULT_HYPERPARAMETERS[self.name], given)


class ScheduleConfig(BaseModel):
    """How the learning rate changes with the epoch."""

    model_config = _STRICT

    name: ScheduleName = Field("constant", description="Schedule.", examples=["cosine"])
    step_size: int | None = Field(
        None, ge=1, description="Epochs per step (step; default 10).", examples=[10]
    )
    gamma: float | None = Field(
        None, gt=0, le=1, description="Decay factor (step: 0.5, exponential: 0.95).", examples=[0.5]
    )
    min_lr: float | None = Field(
        None, ge=0, description="Final learning rate (cosine; default 0).", examples=[0]
    )

    def options(self) -> dict[str, float]:
        """The schedule's options with defaults filled; others given → ValueError."""
        given = {k: getattr(self, k) for k in ("step_size", "gamma", "min_lr")}
        return _with_defaults(f"schedule {self.name!r}", SCHEDULE_OPTIONS[self.name], given)


class EarlyStoppingConfig(BaseModel):
    """Stop when the validation loss (training loss without validation) stops improving."""

    model_config = _STRICT

    patience: int = Field(
        10, ge=1, le=100_000, description="Epochs without improvement before stopping.", examples=[10]
    )
    min_delta: float = Field(
        0.0, ge=0, description="Smallest decrease that counts as improvement.", examples=[0.0001]
    )
    restore_best: bool = Field(True, description="End with the best epoch's weights.", examples=[True])


class TrainingConfig(BaseModel):
    """Everything a training job needs. Omitted fields take their defaults; the seed is chosen if null."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
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
            ]
        },
    )

    dataset_id: str | None = Field(
        None, description="A stored dataset's id.", examples=["ds_0194b2c3d4e5f6a7b8c9d0e1f2"]
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
    epochs: int = Field(100, ge=1, le=1_000_000, description="Passes over the training data.", examples=[200])
    batch_size: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="Mini-batch size; null is full-batch gradient descent.",
        examples=[32],
    )
    l2: float = Field(
        0.0, ge=0, le=1e3, description="L2 penalty (l2/2)·Σ‖W‖² on the weights.", examples=[0.0001]
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
        if self.optimizer.name == "gd" and self.batch_size is not None:
            raise ValueError(
                "optimizer 'gd' is full-batch gradient descent: batch_size must be null, "
                f"got {self.batch_size}; use 'sgd', 'momentum', 'nesterov' or 'adam' for mini-batches"
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
