import itertools
import math

import pytest

from engine.schedules import SCHEDULES, default_options, learning_rate_at


def test_registry_keys_each_schedule_by_its_name_with_its_formula():
    assert list(SCHEDULES) == ["constant", "step", "exponential", "cosine"]
    assert all(s.name == name and s.formula for name, s in SCHEDULES.items())
    assert default_options("step") == {"step_size": 10, "gamma": 0.5}
    assert default_options("constant") == {}


@pytest.mark.parametrize(
    ("epoch", "schedule", "options", "expected"),
    [
        (0, "constant", {}, 0.1),
        (73, "constant", {}, 0.1),
        (9, "step", {}, 0.1),
        (10, "step", {}, 0.05),
        (25, "step", {}, 0.025),
        (7, "step", {"step_size": 3, "gamma": 0.1}, 0.001),
        (0, "exponential", {}, 0.1),
        (2, "exponential", {}, 0.1 * 0.9025),
        (3, "exponential", {"gamma": 0.5}, 0.0125),
        (0, "cosine", {}, 0.1),
        (50, "cosine", {}, 0.05),
        (25, "cosine", {}, 0.05 * (1 + math.sqrt(0.5))),
        (100, "cosine", {}, 0.0),
        (50, "cosine", {"min_lr": 0.01}, 0.055),
        (100, "cosine", {"min_lr": 0.01}, 0.01),
    ],
)
def test_schedule_by_hand(epoch, schedule, options, expected):
    assert learning_rate_at(0.1, epoch, 100, schedule, **options) == pytest.approx(expected, rel=1e-12, abs=0)


@pytest.mark.parametrize("schedule", ["step", "exponential", "cosine"])
def test_decaying_schedules_never_increase(schedule):
    rates = [learning_rate_at(0.3, epoch, 40, schedule) for epoch in range(41)]
    assert rates[0] == 0.3
    assert all(later <= earlier for earlier, later in itertools.pairwise(rates))


@pytest.mark.parametrize(
    ("args", "options", "message"),
    [
        ((0.1, 0, 10, "linear"), {}, r"'linear'.*constant, step, exponential, cosine"),
        ((0.1, 0, 10, "step"), {"min_lr": 0.0}, r"'min_lr'.*allowed: step_size, gamma"),
        ((0.1, 0, 10, "constant"), {"gamma": 0.5}, r"'gamma'.*allowed: none"),
        ((0.1, 0, 10, "step"), {"gamma": 0.0}, r"gamma must be in \(0, 1\], got 0\.0"),
        ((0.1, 0, 10, "exponential"), {"gamma": 1.5}, r"gamma must be in \(0, 1\], got 1\.5"),
        ((0.1, 0, 10, "exponential"), {"gamma": math.nan}, r"gamma must be a finite number, got nan"),
        ((0.1, 0, 10, "step"), {"step_size": 0}, r"step_size must be an integer >= 1, got 0"),
        ((0.1, 0, 10, "step"), {"step_size": 2.5}, r"step_size must be an integer >= 1, got 2\.5"),
        ((0.1, 0, 10, "cosine"), {"min_lr": 0.2}, r"min_lr must be in \[0, base_lr=0\.1\], got 0\.2"),
        ((0.1, 0, 10, "cosine"), {"min_lr": -0.01}, r"min_lr must be non-negative, got -0\.01"),
        ((0.0, 0, 10), {}, r"base_lr must be positive, got 0\.0"),
        ((math.inf, 0, 10), {}, r"base_lr must be a finite number, got inf"),
        ((0.1, -1, 10), {}, r"epoch must be an integer >= 0, got -1"),
        ((0.1, 11, 10), {}, r"epoch must be in \[0, total_epochs=10\], got 11"),
        ((0.1, 0, 0), {}, r"total_epochs must be an integer >= 1, got 0"),
    ],
)
def test_learning_rate_at_rejects_bad_input(args, options, message):
    with pytest.raises(ValueError, match=message):
        learning_rate_at(*args, **options)
