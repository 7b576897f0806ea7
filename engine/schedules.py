"""Learning-rate schedules: the rate of each epoch, registered by the name the API exposes."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from engine.hyperparameters import Hyperparameter, integer, real, resolve

# rate(base_lr, epoch, total_epochs, options) -> the learning rate of that epoch
Rate = Callable[[float, int, int, Mapping[str, float]], float]


def _constant(base_lr: float, epoch: int, total_epochs: int, options: Mapping[str, float]) -> float:
    return base_lr


def _step(base_lr: float, epoch: int, total_epochs: int, options: Mapping[str, float]) -> float:
    return base_lr * options["gamma"] ** (epoch // int(options["step_size"]))


def _exponential(base_lr: float, epoch: int, total_epochs: int, options: Mapping[str, float]) -> float:
    return base_lr * options["gamma"] ** epoch


def _cosine(base_lr: float, epoch: int, total_epochs: int, options: Mapping[str, float]) -> float:
    min_lr = options["min_lr"]
    if min_lr > base_lr:
        raise ValueError(f"min_lr must be in [0, base_lr={base_lr!r}], got {min_lr!r}")
    return min_lr + (base_lr - min_lr) * (1.0 + math.cos(math.pi * epoch / total_epochs)) / 2.0


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule: its rule, as code and as the API documents it, and its options."""

    name: str
    rate: Rate
    formula: str
    options: Mapping[str, Hyperparameter] = field(default_factory=dict)


_GAMMA = "Decay factor γ."
SCHEDULES: dict[str, Schedule] = {
    s.name: s
    for s in [
        Schedule("constant", _constant, "η"),
        Schedule(
            "step",
            _step,
            "η · γ^⌊epoch / step_size⌋",
            {
                "step_size": Hyperparameter(10, 1, integer=True, description="Epochs per step."),
                "gamma": Hyperparameter(0.5, 0.0, 1.0, low_open=True, high_open=False, description=_GAMMA),
            },
        ),
        Schedule(
            "exponential",
            _exponential,
            "η · γ^epoch",
            {"gamma": Hyperparameter(0.95, 0.0, 1.0, low_open=True, high_open=False, description=_GAMMA)},
        ),
        Schedule(
            "cosine",
            _cosine,
            "min_lr + (η − min_lr) · (1 + cos(π · epoch / epochs)) / 2",
            {"min_lr": Hyperparameter(0.0, 0.0, description="The final learning rate, at most η.")},
        ),
    ]
}


def get_schedule(name: str) -> Schedule:
    """Look up a schedule by its API name; ValueError lists the allowed names."""
    try:
        return SCHEDULES[name]
    except KeyError:
        raise ValueError(f"unknown schedule {name!r}; allowed: {', '.join(SCHEDULES)}") from None


def default_options(name: str) -> dict[str, float]:
    """The options schedule ``name`` takes, with their defaults."""
    return {key: spec.default for key, spec in get_schedule(name).options.items()}


def learning_rate_at(
    base_lr: float, epoch: int, total_epochs: int, schedule: str = "constant", **options: float
) -> float:
    """Return the learning rate of 0-based ``epoch`` under ``schedule``.

    Parameters
    ----------
    base_lr : float
        Learning rate at epoch 0, finite and > 0.
    epoch : int
        0-based epoch, in [0, total_epochs] (``total_epochs`` gives the end point of the curve).
    total_epochs : int
        Number of epochs of the run, >= 1.
    schedule : str
        A key of ``SCHEDULES``: ``constant`` gives ``base_lr``; ``step`` gives
        ``base_lr * gamma ** (epoch // step_size)``; ``exponential`` gives ``base_lr * gamma ** epoch``;
        ``cosine`` gives ``min_lr + (base_lr - min_lr) * (1 + cos(pi * epoch / total_epochs)) / 2``.
    **options : float
        Values for the schedule's options (defaults fill the rest): ``step_size`` an integer >= 1,
        ``gamma`` in (0, 1], ``min_lr`` in [0, base_lr].

    Returns
    -------
    learning_rate : float
    """
    entry = get_schedule(schedule)
    base_lr = real("base_lr", base_lr)
    if base_lr <= 0.0:
        raise ValueError(f"base_lr must be positive, got {base_lr!r}")
    total_epochs = integer("total_epochs", total_epochs, 1)
    epoch = integer("epoch", epoch, 0)
    if epoch > total_epochs:
        raise ValueError(f"epoch must be in [0, total_epochs={total_epochs}], got {epoch}")
    return entry.rate(base_lr, epoch, total_epochs, resolve("option", schedule, options, entry.options))
