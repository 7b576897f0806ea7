"""Standardisation without overflow, and data a run's dtype cannot hold refused before the first epoch."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from engine.models import build_architecture
from engine.preparation import Standardization, fit_standardization, prepare_data
from engine.training import FitConfig, fit

EXTREME = np.array([[1e308, 0.0], [-1e308, 1.0], [5e-324, 0.0], [-0.0, 1.0]])


def test_an_overflowing_column_gets_a_finite_scale_worked_by_hand() -> None:
    # x − mean and (x − mean)² overflow for ±1e308; divided by the largest magnitude first, the column is
    # [1, −1, 5e-632 → 0, −0]: mean 0, variance (1 + 1) / 4 = 0.5, so scale = sqrt(0.5)·1e308.
    std = fit_standardization(EXTREME, np.arange(4))
    assert std.mean[0] == 0.0
    assert std.scale[0] == pytest.approx(math.sqrt(0.5) * 1e308, rel=1e-15)
    # The ordinary column: mean 0.5, standard deviation 0.5.
    assert (std.mean[1], std.scale[1]) == (0.5, 0.5)


def test_apply_does_not_overflow_where_x_minus_mean_would() -> None:
    std = Standardization(mean=np.array([-1e308]), scale=np.array([1e308]))
    # (1e308 − (−1e308)) / 1e308 = 2, though 1e308 − (−1e308) is beyond float64.
    np.testing.assert_array_equal(std.apply(np.array([[1e308], [0.0]])), [[2.0], [1.0]])


@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(2, 20), st.integers(1, 3)),
        # Away from the subnormals, where numpy's own squares underflow (its std of [6.7e-219, 0] is 0).
        elements=st.floats(-1e6, 1e6).filter(lambda v: v == 0 or abs(v) > 1e-100),
    )
)
def test_the_scaled_computation_agrees_with_numpy_mean_and_std(X: np.ndarray) -> None:
    std = fit_standardization(X, np.arange(len(X)))
    np.testing.assert_allclose(std.mean, X.mean(axis=0), rtol=1e-9, atol=1e-9)
    expected = X.std(axis=0)
    expected[expected == 0] = 1
    np.testing.assert_allclose(std.scale, expected, rtol=1e-9, atol=1e-9)


def test_an_overflowing_column_trains_to_a_finite_model() -> None:
    arch = build_architecture("logistic_regression", n_features=2)
    y = np.array([0, 1, 0, 1])
    result = fit(arch, EXTREME, y, FitConfig(epochs=5, standardize=True), np.random.default_rng(0))
    assert result.stop_reason == "completed"
    assert np.isfinite(result.params.flat).all()
    assert np.isfinite(result.standardization.mean).all() and np.isfinite(result.standardization.scale).all()
    _, probabilities = result.predict(EXTREME)
    assert np.isfinite(probabilities).all()


@pytest.mark.parametrize("standardize", [True, False])
def test_values_beyond_float32_are_refused_naming_the_column(standardize: bool) -> None:
    arch = build_architecture("logistic_regression", n_features=2)
    X = EXTREME[:, ::-1].copy()  # the extreme values in column 1
    with pytest.raises(ValueError, match=r"feature column 1 holds values beyond the range of float32"):
        prepare_data(
            arch,
            X,
            np.array([0, 1, 0, 1]),
            np.random.default_rng(0),
            validation_fraction=0,
            standardize=standardize,
            dtype="float32",
        )
