"""service.services.admission: the estimates bound what the engine really allocates, within a small factor."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from engine.models import build_architecture, forward, init_parameters
from engine.training import FitConfig, fit
from service.services import admission


def _peak_bytes(run: object) -> int:
    """NumPy reports its allocations to tracemalloc, so the traced peak is the arrays' peak."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        run()  # type: ignore[operator]
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("n", "d", "hidden", "optimizer", "batch", "dtype"),
    [
        (5_000, 20, [128, 128], "adam", None, "float64"),
        (8_000, 50, [256], "momentum", 256, "float32"),
        (20_000, 10, [], "gd", None, "float64"),
        (1_000, 20, [512, 512], "adam", 100, "float64"),
    ],
)
def test_training_estimate_bounds_the_measured_peak(
    n: int, d: int, hidden: list[int], optimizer: str, batch: int | None, dtype: str
) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d))
    y = (X[:, 0] > 0).astype(float)
    kind = "mlp" if hidden else "logistic_regression"
    arch = build_architecture(
        kind, d, 1, hidden_layers=hidden, activation="relu", output_activation="sigmoid"
    )
    config = FitConfig(
        epochs=2,
        optimizer=optimizer,
        batch_size=batch,
        dtype=dtype,
        validation_fraction=0.2,
        learning_rate=0.01,
    )
    peak = _peak_bytes(lambda: fit(arch, X, y, config, np.random.default_rng(0)))
    estimate = admission.training_job(
        n_samples=n,
        n_features=d,
        layer_sizes=arch.layer_sizes,
        optimizer=optimizer,
        batch_size=batch,
        validation_fraction=0.2,
        itemsize=np.dtype(dtype).itemsize,
    )
    assert peak <= estimate.total <= 3 * peak, (peak, estimate.terms)


def test_forward_estimate_bounds_the_measured_peak() -> None:
    rng = np.random.default_rng(1)
    arch = build_architecture(
        "mlp", 30, 1, hidden_layers=[400, 400], activation="tanh", output_activation="sigmoid"
    )
    params = init_parameters(arch, rng)
    X = rng.normal(size=(5_000, 30))
    peak = _peak_bytes(lambda: forward(arch, params, X, return_intermediates=True))
    memory, response = admission.forward_request(
        n_rows=5_000, layer_sizes=arch.layer_sizes, return_intermediates=True
    )
    assert peak <= memory.total <= 3 * peak, (peak, memory.terms)
    # Response: outputs plus z and a of every layer, 24 bytes per number.
    assert response == 24 * (5_000 * 1 + 2 * 5_000 * (400 + 400 + 1))


def test_parameters_and_optimizer_state_are_counted_by_hand() -> None:
    # 2 → 3 → 1: (2 + 1)·3 + (3 + 1)·1 = 13 parameters.
    assert admission.n_parameters((2, 3, 1)) == 13
    adam = admission.training_job(
        n_samples=10,
        n_features=2,
        layer_sizes=(2, 3, 1),
        optimizer="adam",
        batch_size=None,
        validation_fraction=0.0,
        itemsize=8,
    )
    gd = admission.training_job(
        n_samples=10,
        n_features=2,
        layer_sizes=(2, 3, 1),
        optimizer="gd",
        batch_size=None,
        validation_fraction=0.0,
        itemsize=8,
    )
    # θ, ∂θ, best, checkpoint θ = 4 vectors for gd; adam adds m and v, and both again in the checkpoint.
    assert gd.terms["parameter_bytes"] == 4 * 13 * 8
    assert adam.terms["parameter_bytes"] == 8 * 13 * 8
    assert adam.terms["validation_bytes"] == 0


def test_describe_names_the_unit() -> None:
    assert admission.describe(512) == "512 bytes"
    assert admission.describe(12 * admission.MB) == "12.0 MiB"
    assert admission.describe(3 * 1024 * admission.MB // 2) == "1.5 GiB"
