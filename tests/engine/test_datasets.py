import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.datasets import (
    BLOB_CENTER_BOX,
    BLOB_MIN_STD,
    GENERATORS,
    MAX_CLASSES,
    MAX_FEATURES,
    MAX_SAMPLES,
    make_dataset,
    task_of,
)

CLASSIFIERS = ["xor", "circles", "moons", "spiral", "blobs"]
DEFAULT_CLASSES = {"xor": 2, "circles": 2, "moons": 2, "spiral": 3, "blobs": 3}


def _names(field, value):
    """Pattern for an error message that names the field and its bad value."""
    return rf"{field}.*got {re.escape(repr(value))}"


def _make(kind, n_samples=60, seed=0, **kwargs):
    return make_dataset(kind, n_samples, rng=np.random.default_rng(seed), **kwargs)


def test_registry_names_are_the_api_generator_kinds():
    assert set(GENERATORS) == {"linear", "xor", "circles", "moons", "spiral", "blobs"}
    assert len(GENERATORS) == 6


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_shapes_and_dtypes(kind):
    X, y = _make(kind, n_samples=31, noise=0.1)
    assert X.shape == (31, 2)
    assert y.shape == (31,)
    assert X.dtype == np.float64
    assert y.dtype == (np.float64 if kind == "linear" else np.int64)
    assert np.isfinite(X).all()
    assert np.isfinite(y).all()


@pytest.mark.parametrize("kind", CLASSIFIERS)
def test_labels_cover_every_class_and_nothing_else(kind):
    _, y = _make(kind, noise=0.1)
    assert set(np.unique(y).tolist()) == set(range(DEFAULT_CLASSES[kind]))


@pytest.mark.parametrize(("kind", "n_classes"), [("spiral", 2), ("spiral", 5), ("blobs", 2), ("blobs", 7)])
def test_n_classes_sets_the_label_set(kind, n_classes):
    _, y = _make(kind, n_samples=50, n_classes=n_classes)
    assert set(np.unique(y).tolist()) == set(range(n_classes))


@pytest.mark.parametrize(("kind", "n_classes"), [("xor", None), ("circles", 2), ("spiral", 3), ("blobs", 4)])
def test_class_sizes_split_remainder_to_first_classes(kind, n_classes):
    # 11 = 4 + 4 + 3 for three classes, 3 + 3 + 3 + 2 for four, 6 + 5 for two.
    _, y = _make(kind, n_samples=11, n_classes=n_classes)
    k = n_classes or 2
    expected = [11 // k + (c < 11 % k) for c in range(k)]
    assert np.bincount(y, minlength=k).tolist() == expected


@pytest.mark.parametrize("kind", CLASSIFIERS)
def test_rows_are_shuffled(kind):
    _, y = _make(kind, n_samples=200, noise=0.1)
    # Unshuffled labels would be sorted; 200 shuffled labels are sorted with negligible probability.
    assert not np.all(np.diff(y) >= 0)


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_same_seed_gives_identical_arrays(kind):
    X1, y1 = _make(kind, seed=123, noise=0.2)
    X2, y2 = _make(kind, seed=123, noise=0.2)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_different_seeds_give_different_arrays(kind):
    X1, _ = _make(kind, seed=1, noise=0.2)
    X2, _ = _make(kind, seed=2, noise=0.2)
    assert not np.array_equal(X1, X2)


@pytest.mark.parametrize("kind", ["linear", "xor", "circles", "moons", "blobs"])
def test_different_seeds_differ_without_noise(kind):
    X1, _ = _make(kind, seed=1)
    X2, _ = _make(kind, seed=2)
    assert not np.array_equal(np.sort(X1, axis=0), np.sort(X2, axis=0))


def test_linear_target_is_exactly_affine_without_noise():
    X, y = _make("linear", n_samples=50, n_features=4)
    A = np.column_stack([X, np.ones(len(X))])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    np.testing.assert_allclose(A @ coef, y, rtol=0, atol=1e-10)
    # The weights are fully determined: refitting on a disjoint half gives the same w and b.
    coef_half, *_ = np.linalg.lstsq(A[:25], y[:25], rcond=None)
    np.testing.assert_allclose(coef_half, coef, rtol=0, atol=1e-10)


def test_linear_noise_is_residual_with_that_std():
    X, y = _make("linear", n_samples=20_000, noise=0.5, n_features=3)
    A = np.column_stack([X, np.ones(len(X))])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    assert np.std(y - A @ coef) == pytest.approx(0.5, rel=0.03)


def test_linear_n_features_sets_columns():
    X, y = _make("linear", n_samples=10, n_features=7)
    assert X.shape == (10, 7)
    assert y.shape == (10,)


def test_xor_label_rule_and_box_without_noise():
    X, y = _make("xor", n_samples=400)
    assert np.all(np.abs(X) <= 1.0)
    np.testing.assert_array_equal(y, (X[:, 0] * X[:, 1] > 0).astype(np.int64))


def test_xor_is_at_chance_for_a_linear_model():
    # The least-squares linear fit to XOR labels explains almost nothing: no linear rule separates it.
    X, y = _make("xor", n_samples=4000)
    A = np.column_stack([X, np.ones(len(X))])
    coef, *_ = np.linalg.lstsq(A, y.astype(float), rcond=None)
    accuracy = np.mean((A @ coef > 0.5) == y)
    assert 0.4 < accuracy < 0.6


def test_circles_radii_are_exact_without_noise():
    X, y = _make("circles", n_samples=101)
    radius = np.hypot(X[:, 0], X[:, 1])
    np.testing.assert_allclose(radius[y == 1], 0.5, rtol=0, atol=1e-12)
    np.testing.assert_allclose(radius[y == 0], 1.0, rtol=0, atol=1e-12)


def test_circles_noise_moves_points_off_the_circles():
    X, y = _make("circles", n_samples=2000, noise=0.1)
    radius = np.hypot(X[:, 0], X[:, 1])
    assert np.std(radius[y == 0] - 1.0) == pytest.approx(0.1, rel=0.15)


def test_moons_lie_on_their_half_circles_without_noise():
    X, y = _make("moons", n_samples=100)
    upper, lower = X[y == 0], X[y == 1]
    np.testing.assert_allclose(np.hypot(upper[:, 0], upper[:, 1]), 1.0, rtol=0, atol=1e-12)
    assert np.all(upper[:, 1] >= 0)
    np.testing.assert_allclose(np.hypot(lower[:, 0] - 1.0, lower[:, 1] - 0.5), 1.0, rtol=0, atol=1e-12)
    assert np.all(lower[:, 1] <= 0.5)


def test_spiral_radii_run_evenly_from_zero_to_one_without_noise():
    X, y = _make("spiral", n_samples=30, n_classes=3)
    for k in range(3):
        radius = np.sort(np.hypot(X[y == k, 0], X[y == k, 1]))
        np.testing.assert_allclose(radius, np.linspace(0.0, 1.0, 10), rtol=0, atol=1e-12)


def test_spiral_arm_angle_follows_radius_without_noise():
    # On arm k the point of radius r sits at angle 4 r + 2 pi k / K, with (x, y) = r (sin t, cos t).
    X, y = _make("spiral", n_samples=40, n_classes=4)
    radius = np.hypot(X[:, 0], X[:, 1])
    keep = radius > 0
    angle = np.arctan2(X[keep, 0], X[keep, 1])
    expected = 4.0 * radius[keep] + 2.0 * math.pi * y[keep] / 4
    np.testing.assert_allclose(np.angle(np.exp(1j * (angle - expected))), 0.0, atol=1e-9)


def test_spiral_noise_perturbs_angle_not_radius():
    X, y = _make("spiral", n_samples=30, n_classes=3, noise=0.3)
    clean, _ = _make("spiral", n_samples=30, n_classes=3)
    for k in range(3):
        np.testing.assert_allclose(
            np.sort(np.hypot(*X[y == k].T)), np.linspace(0.0, 1.0, 10), rtol=0, atol=1e-12
        )
    assert not np.allclose(np.sort(X, axis=0), np.sort(clean, axis=0))


def test_blobs_clusters_have_the_requested_spread_and_box():
    X, y = _make("blobs", n_samples=6000, noise=0.1, n_classes=3, n_features=5)
    assert X.shape == (6000, 5)
    for k in range(3):
        cluster = X[y == k]
        centre = cluster.mean(axis=0)
        assert np.all(np.abs(centre) <= BLOB_CENTER_BOX + 0.1)
        np.testing.assert_allclose(cluster.std(axis=0), 0.1, rtol=0.1)


@pytest.mark.parametrize("noise", [0.0, BLOB_MIN_STD / 2])
def test_blobs_spread_has_a_floor_below_min_std(noise):
    X, y = _make("blobs", n_samples=3000, n_classes=2, noise=noise)
    for k in range(2):
        np.testing.assert_allclose(X[y == k].std(axis=0), BLOB_MIN_STD, rtol=0.1)


@pytest.mark.parametrize(
    ("kind", "n_classes", "task"),
    [
        ("linear", None, "regression"),
        ("xor", None, "binary"),
        ("circles", 2, "binary"),
        ("moons", None, "binary"),
        ("spiral", None, "multiclass"),
        ("spiral", 2, "binary"),
        ("blobs", 2, "binary"),
        ("blobs", 5, "multiclass"),
    ],
)
def test_task_of(kind, n_classes, task):
    assert task_of(kind, n_classes) == task


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_task_of_matches_generated_labels(kind):
    _, y = _make(kind)
    if y.dtype == np.float64:
        assert task_of(kind) == "regression"
    else:
        assert task_of(kind) == ("binary" if len(np.unique(y)) == 2 else "multiclass")


def test_unknown_kind_lists_allowed_names():
    with pytest.raises(ValueError, match="'swiss_roll'") as info:
        _make("swiss_roll")
    for name in GENERATORS:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="'swiss_roll'"):
        task_of("swiss_roll")


@pytest.mark.parametrize("n_samples", [1, 0, -5, MAX_SAMPLES + 1, 2.5, True])
def test_bad_n_samples(n_samples):
    with pytest.raises(ValueError, match=_names("n_samples", n_samples)):
        _make("xor", n_samples=n_samples)


def test_n_samples_bounds_are_inclusive():
    X, _ = _make("linear", n_samples=2)
    assert X.shape == (2, 2)


@pytest.mark.parametrize("noise", [-0.1, math.nan, math.inf, -math.inf])
def test_bad_noise(noise):
    with pytest.raises(ValueError, match=_names("noise", noise)):
        _make("moons", noise=noise)


def test_non_numeric_noise():
    with pytest.raises(ValueError, match=r"noise.*got 'loud'"):
        _make("moons", noise="loud")


@pytest.mark.parametrize(
    ("kind", "n_classes"),
    [("spiral", 1), ("blobs", 0), ("blobs", -3), ("xor", 3), ("circles", 1), ("moons", 4), ("spiral", 2.0)],
)
def test_bad_n_classes(kind, n_classes):
    with pytest.raises(ValueError, match=_names("n_classes", n_classes)):
        _make(kind, n_classes=n_classes)
    with pytest.raises(ValueError, match=_names("n_classes", n_classes)):
        task_of(kind, n_classes)


def test_n_classes_above_max():
    with pytest.raises(ValueError, match=f"n_classes.*got {MAX_CLASSES + 1}"):
        _make("blobs", n_samples=MAX_CLASSES + 10, n_classes=MAX_CLASSES + 1)


def test_n_classes_not_allowed_for_linear():
    with pytest.raises(ValueError, match=r"n_classes.*got 2"):
        _make("linear", n_classes=2)


def test_more_classes_than_samples():
    with pytest.raises(ValueError, match=r"n_classes \(5\).*n_samples \(4\)"):
        _make("blobs", n_samples=4, n_classes=5)


@pytest.mark.parametrize("n_features", [0, -1, MAX_FEATURES + 1, 2.0])
@pytest.mark.parametrize("kind", ["linear", "blobs"])
def test_bad_n_features(kind, n_features):
    with pytest.raises(ValueError, match=_names("n_features", n_features)):
        _make(kind, n_features=n_features)


@pytest.mark.parametrize("kind", ["xor", "circles", "moons", "spiral"])
def test_n_features_fixed_for_2d_kinds(kind):
    with pytest.raises(ValueError, match=r"n_features.*got 3"):
        _make(kind, n_features=3)
    X, _ = _make(kind, n_features=2)
    assert X.shape[1] == 2


def test_rng_must_be_a_generator():
    with pytest.raises(ValueError, match=r"rng.*got int"):
        make_dataset("xor", 10, rng=42)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(["spiral", "blobs"]),
    seed=st.integers(0, 2**32 - 1),
    n_classes=st.integers(2, 9),
    n_samples=st.integers(2, 300),
    noise=st.floats(0.0, 2.0),
)
def test_class_counts_differ_by_at_most_one(kind, seed, n_classes, n_samples, noise):
    n_classes = min(n_classes, n_samples)
    X, y = make_dataset(kind, n_samples, noise=noise, n_classes=n_classes, rng=np.random.default_rng(seed))
    counts = np.bincount(y, minlength=n_classes)
    assert len(counts) == n_classes
    assert counts.sum() == n_samples == len(X)
    assert counts.max() - counts.min() <= 1
    # The remainder goes to the first classes: counts never increase with the label.
    assert np.all(np.diff(counts) <= 0)


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(["xor", "circles", "moons"]), seed=st.integers(0, 2**32 - 1), n=st.integers(2, 300)
)
def test_binary_counts_differ_by_at_most_one(kind, seed, n):
    _, y = make_dataset(kind, n, noise=0.1, rng=np.random.default_rng(seed))
    counts = np.bincount(y, minlength=2)
    assert counts.tolist() == [n - n // 2, n // 2]
