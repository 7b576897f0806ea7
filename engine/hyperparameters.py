"""Named numbers with a default and an allowed interval: the options of optimizers and schedules.

Each optimizer and schedule lists the hyperparameters it takes as ``Hyperparameter`` entries, so
the default, the interval and the check live in one place, and the service derives its schema
fields and defaults from them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Hyperparameter:
    """A hyperparameter's default and the interval its values must lie in.

    Attributes
    ----------
    default : float
    low, high : float
        The ends of the interval (``high`` may be infinite).
    low_open, high_open : bool
        Whether each end is excluded.
    integer : bool
        Whether the value must be a whole number.
    description : str
        What it is, for the API's documentation.
    """

    default: float
    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = True
    integer: bool = False
    description: str = ""

    @property
    def interval(self) -> str:
        """The allowed values in words: "in [0, 1)", "positive", "an integer >= 1"."""
        if self.integer:
            return f"an integer >= {self.low:g}"
        if math.isinf(self.high):
            if self.low == 0:
                return "positive" if self.low_open else "non-negative"
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"in {left}{self.low:g}, {self.high:g}{right}"

    def check(self, name: str, value: object) -> float:
        """Return ``value`` as a float, or raise ValueError naming ``name`` and the interval."""
        number = real(name, value)
        inside = (number > self.low if self.low_open else number >= self.low) and (
            number < self.high if self.high_open else number <= self.high
        )
        if not inside or (self.integer and number != int(number)):
            raise ValueError(f"{name} must be {self.interval}, got {number!r}")
        return number


def real(what: str, value: object) -> float:
    """Return ``value`` as a finite float, or raise ValueError naming it."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()  # scalars come back from .npz checkpoints as 0-d arrays
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def integer(what: str, value: object, minimum: int) -> int:
    """Return ``value`` as an int of at least ``minimum``, or raise ValueError naming it."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def resolve(
    kind: str, owner: str, given: Mapping[str, object], takes: Mapping[str, Hyperparameter]
) -> dict[str, float]:
    """Check the values ``given`` for ``owner`` and fill in the defaults of the rest.

    Parameters
    ----------
    kind : str
        What the values are, for messages ("hyperparameter", "option").
    owner : str
        The optimizer or schedule they belong to.
    given : mapping of str to number
    takes : mapping of str to Hyperparameter
        Everything ``owner`` takes.

    Returns
    -------
    dict of str to float
        One value per entry of ``takes``, in its order.
    """
    unknown = sorted(set(given) - set(takes))
    if unknown:
        allowed = ", ".join(takes) or "none"
        raise ValueError(f"unknown {kind} {unknown[0]!r} for {owner!r}; allowed: {allowed}")
    return {key: spec.check(key, given.get(key, spec.default)) for key, spec in takes.items()}
