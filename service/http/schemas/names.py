"""The names the API accepts, each taken from the engine registry that defines it.

Nothing else in the service spells these lists out: schemas, routers and messages use the types and
tuples below, so an activation, loss, model type, optimizer or schedule added to the engine appears in
the API, its OpenAPI document and its error messages at once (a test checks they match).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from engine.activations import ACTIVATIONS
from engine.architecture import MODEL_TYPES
from engine.datasets import GENERATORS
from engine.losses import LOSSES, REDUCTIONS
from engine.optimizers import OPTIMIZERS
from engine.schedules import SCHEDULES

ACTIVATION_NAMES: tuple[str, ...] = tuple(ACTIVATIONS)
LOSS_NAMES: tuple[str, ...] = tuple(LOSSES)
REDUCTION_NAMES: tuple[str, ...] = tuple(REDUCTIONS)
MODEL_TYPE_NAMES: tuple[str, ...] = tuple(MODEL_TYPES)
OPTIMIZER_NAMES: tuple[str, ...] = tuple(OPTIMIZERS)
SCHEDULE_NAMES: tuple[str, ...] = tuple(SCHEDULES)
GENERATOR_NAMES: tuple[str, ...] = tuple(GENERATORS)

if TYPE_CHECKING:
    ActivationName = str
    LossName = str
    Reduction = str
    ModelTypeName = str
    OptimizerName = str
    ScheduleName = str
    GeneratorKind = str
else:
    ActivationName = Literal[ACTIVATION_NAMES]
    LossName = Literal[LOSS_NAMES]
    Reduction = Literal[REDUCTION_NAMES]
    ModelTypeName = Literal[MODEL_TYPE_NAMES]
    OptimizerName = Literal[OPTIMIZER_NAMES]
    ScheduleName = Literal[SCHEDULE_NAMES]
    GeneratorKind = Literal[GENERATOR_NAMES]
