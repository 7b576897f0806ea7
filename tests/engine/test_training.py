import itertools
import math
import re

import numpy as np
import pytest

import engine.preparation as preparation
import engine.progress as progress
import engine.training as training
from engine.datasets import make_dataset
from engine.models import Parameters, build_architecture, loss_and_gradient, predict, targets
from engine.optimizers import OPTIMIZERS
from engine.training import EarlyStopping, FitConfig, evaluate, fit, train_validation_split

SEED = 7


def _moons(n=120, seed=0, noise=0.2):
    return make_dataset("moons", n, noise=noise, rng=np.random.default_rng(seed))


def _blobs(n=100, seed=2, noise=0.5):
    return make_dataset("blobs", n, n_classes=2, noise=noise, rng=np.random.default_rng(seed))


def _mlp(hidden=8, activation="tanh"):
    return build_architecture(
        "mlp", 2, 1, hidden_layers=[hidden], activation=activation, output_activation="sigmoid"
    )


LOGISTIC = build_architecture("logistic_regression", 2)


def _snapshots():
    """An on_epoch callback that keeps a copy of the weights after every epoch."""
    snapshots = {}

    def on_epoch(state):
        snapshots[state.epoch] = state.checkpoint().params
        return True

    return snapshots, on_epoch


def _count_steps(monkeypatch):
    """Wrap every optimizer fit creates so that each step is recorded with its learning rate."""
    steps = []
    make = training.make_optimizer

    def counting_make(*args, **kwargs):
        optimizer = make(*args, **kwargs)
        step = optimizer.step

        def counted(params, grads, lr):
            steps.append(lr)
            step(params, grads, lr)

        optimizer.step = counted
        return optimizer

    monkeypatch.setattr(training, "make_optimizer", counting_make)
    return steps


def _record_split(monkeypatch):
    """Wrap train_validation_split so a test sees the parts fit really used."""
    calls = []
    split = preparation.train_validation_split

    def recording_split(y, fraction, rng, stratify):
        train_idx, val_idx = split(y, fraction, rng, stratify)
        calls.append({"train": train_idx, "val": val_idx, "stratify": stratify})
        return train_idx, val_idx

    monkeypatch.setattr(preparation, "train_validation_split", recording_split)
    return calls


def _record_batches(monkeypatch):
    """Wrap loss_and_gradient so a test sees the rows of every batch."""
    batches = []
    original = training.loss_and_gradient

    def recording(architecture, params, X, Y, *args, **kwargs):
        batches.append(X.copy())
        return original(architecture, params, X, Y, *args, **kwargs)

    monkeypatch.setattr(training, "loss_and_gradient", recording)
    return batches


# --- batches and optimizer steps -------------------------------------------------------------


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_full_batch_takes_one_optimizer_step_per_epoch(monkeypatch, optimizer):
    steps = _count_steps(monkeypatch)
    X, y = _moons()
    fit(_mlp(), X, y, FitConfig(epochs=7, optimizer=optimizer), np.random.default_rng(0))
    assert len(steps) == 7


def test_batch_size_at_least_the_training_set_is_full_batch(monkeypatch):
    steps = _count_steps(monkeypatch)
    X, y = _moons(n=50)
    fit(_mlp(), X, y, FitConfig(epochs=4, optimizer="sgd", batch_size=500), np.random.default_rng(0))
    assert len(steps) == 4


def test_mini_batch_epoch_takes_one_step_per_batch(monkeypatch):
    steps = _count_steps(monkeypatch)
    X, y = _moons(n=50)
    fit(_mlp(), X, y, FitConfig(epochs=3, optimizer="sgd", batch_size=16), np.random.default_rng(0))
    assert len(steps) == 3 * math.ceil(50 / 16)


@pytest.mark.parametrize(("batch_size", "steps_per_epoch"), [(None, 1), (16, 4)])
def test_schedule_sets_the_learning_rate_of_each_epoch(monkeypatch, batch_size, steps_per_epoch):
    steps = _count_steps(monkeypatch)
    X, y = _moons(n=50)
    config = FitConfig(
        epochs=5,
        optimizer="sgd",
        learning_rate=0.4,
        batch_size=batch_size,
        schedule="step",
        schedule_params={"step_size": 2, "gamma": 0.5},
    )
    fit(_mlp(), X, y, config, np.random.default_rng(0))
    per_epoch = [0.4, 0.4, 0.2, 0.2, 0.1]
    assert steps == [lr for lr in per_epoch for _ in range(steps_per_epoch)]


def test_mini_batches_cover_every_sample_once_per_epoch(monkeypatch):
    n, batch = 50, 16
    rng = np.random.default_rng(0)
    # The first column is the sample's index, so every batch row can be traced back.
    X = np.column_stack([np.arange(n, dtype=np.float64), rng.standard_normal(n)])
    y = rng.standard_normal(n)
    batches = _record_batches(monkeypatch)
    arch = build_architecture("linear_regression", 2)
    config = FitConfig(epochs=3, optimizer="sgd", learning_rate=1e-5, batch_size=batch)
    fit(arch, X, y, config, np.random.default_rng(1))
    per_epoch = math.ceil(n / batch)
    assert len(batches) == 3 * per_epoch
    orders = []
    for e in range(3):
        epoch_batches = batches[e * per_epoch : (e + 1) * per_epoch]
        assert [len(b) for b in epoch_batches] == [16, 16, 16, 2]
        order = np.concatenate([b[:, 0] for b in epoch_batches]).astype(np.int64)
        np.testing.assert_array_equal(np.sort(order), np.arange(n))
        orders.append(order)
    # Shuffled: not in data order, and a new order each epoch.
    assert not np.array_equal(orders[0], np.arange(n))
    assert not np.array_equal(orders[0], orders[1])
    assert not np.array_equal(orders[1], orders[2])


def test_shuffling_depends_on_the_rng(monkeypatch):
    X, y = _moons(n=60)
    config = FitConfig(epochs=2, optimizer="sgd", learning_rate=0.5, batch_size=8)
    runs = {}
    for name, seed in (("a", 0), ("a_again", 0), ("b", 1)):
        batches = _record_batches(monkeypatch)
        # Logistic regression starts at zero and there is no split: the shuffle is the only randomness.
        result = fit(LOGISTIC, X, y, config, np.random.default_rng(seed))
        runs[name] = (np.concatenate([b[:, 0] for b in batches]), result.params.flat)
    np.testing.assert_array_equal(runs["a"][0], runs["a_again"][0])
    assert np.array_equal(runs["a"][1], runs["a_again"][1])
    assert not np.array_equal(runs["a"][0], runs["b"][0])
    assert not np.array_equal(runs["a"][1], runs["b"][1])


# --- validation split and standardisation ----------------------------------------------------


def test_stratified_split_keeps_class_proportions_and_is_disjoint():
    y = np.repeat([0, 1, 2], [50, 30, 7])
    fraction = 0.2
    train_idx, val_idx = train_validation_split(y, fraction, np.random.default_rng(0), stratify=True)
    assert np.intersect1d(train_idx, val_idx).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train_idx, val_idx])), np.arange(len(y)))
    for c, size in enumerate([50, 30, 7]):
        assert abs(np.count_nonzero(y[val_idx] == c) - fraction * size) <= 1


def test_split_is_random_but_reproducible():
    y = np.repeat([0, 1], 40)
    a = train_validation_split(y, 0.25, np.random.default_rng(0), stratify=True)
    again = train_validation_split(y, 0.25, np.random.default_rng(0), stratify=True)
    other = train_validation_split(y, 0.25, np.random.default_rng(1), stratify=True)
    np.testing.assert_array_equal(a[1], again[1])
    assert not np.array_equal(a[1], other[1])


def test_unstratified_split_holds_out_the_fraction_of_all_samples():
    y = np.linspace(0.0, 1.0, 40)
    train_idx, val_idx = train_validation_split(y, 0.3, np.random.default_rng(0), stratify=False)
    assert len(val_idx) == 12
    assert len(train_idx) == 28
    assert np.intersect1d(train_idx, val_idx).size == 0


def test_zero_validation_fraction_trains_on_everything():
    train_idx, val_idx = train_validation_split(np.zeros(5), 0.0, np.random.default_rng(0), stratify=True)
    np.testing.assert_array_equal(train_idx, np.arange(5))
    assert val_idx.size == 0


def test_split_leaving_an_empty_part_is_rejected():
    with pytest.raises(ValueError, match=r"validation_fraction 0\.1 .* 4 samples"):
        train_validation_split(np.array([0, 0, 1, 1]), 0.1, np.random.default_rng(0), stratify=True)


def test_fit_splits_classifiers_stratified_and_regressors_not(monkeypatch):
    calls = _record_split(monkeypatch)
    y = np.repeat([0, 1], [90, 30])
    X = np.random.default_rng(0).standard_normal((120, 2))
    fit(LOGISTIC, X, y, FitConfig(epochs=1, validation_fraction=0.25), np.random.default_rng(0))
    assert calls[-1]["stratify"] is True
    val = calls[-1]["val"]
    assert abs(np.count_nonzero(y[val] == 0) - 22.5) <= 1
    assert abs(np.count_nonzero(y[val] == 1) - 7.5) <= 1
    regressor = build_architecture("linear_regression", 2)
    fit(
        regressor, X, y.astype(float), FitConfig(epochs=1, validation_fraction=0.25), np.random.default_rng(0)
    )
    assert calls[-1]["stratify"] is False


def test_standardization_is_fitted_on_the_training_part_only(monkeypatch):
    calls = _record_split(monkeypatch)
    X, y = _moons()
    X_scaled = X * [3.0, 0.5] + [10.0, -4.0]
    config = FitConfig(epochs=1, validation_fraction=0.3, standardize=True)
    result = fit(_mlp(), X_scaled, y, config, np.random.default_rng(0))
    train_idx = calls[-1]["train"]
    np.testing.assert_allclose(result.standardization.mean, X_scaled[train_idx].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(result.standardization.scale, X_scaled[train_idx].std(axis=0), rtol=1e-12)
    assert not np.allclose(result.standardization.mean, X_scaled.mean(axis=0), rtol=1e-6, atol=0)


def test_validation_rows_do_not_move_the_standardization(monkeypatch):
    calls = _record_split(monkeypatch)
    X, y = _moons()
    config = FitConfig(epochs=1, validation_fraction=0.3, standardize=True)
    reference = fit(_mlp(), X, y, config, np.random.default_rng(0))
    X_shifted = X.copy()
    X_shifted[calls[-1]["val"]] += 100.0
    shifted = fit(_mlp(), X_shifted, y, config, np.random.default_rng(0))
    np.testing.assert_array_equal(shifted.standardization.mean, reference.standardization.mean)
    np.testing.assert_array_equal(shifted.standardization.scale, reference.standardization.scale)


def test_constant_feature_is_standardized_to_zero_not_nan():
    X, y = _moons(n=40)
    X[:, 1] = 3.0
    result = fit(_mlp(), X, y, FitConfig(epochs=2, standardize=True), np.random.default_rng(0))
    assert result.standardization.scale[1] == 1.0
    assert np.all(np.isfinite(result.params.flat))


def test_result_predict_standardizes_raw_inputs():
    X, y = _moons()
    X_raw = X * 50.0 + 20.0
    result = fit(_mlp(), X_raw, y, FitConfig(epochs=20, standardize=True), np.random.default_rng(0))
    s = result.standardization
    labels, probabilities = result.predict(X_raw)
    expected_labels, expected_probabilities = predict(
        result.architecture, result.params, (X_raw - s.mean) / s.scale
    )
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_allclose(probabilities, expected_probabilities, rtol=1e-12)


# --- history and reported metrics ------------------------------------------------------------


@pytest.mark.parametrize("validation_fraction", [0.0, 0.25])
def test_classifier_history_has_loss_and_accuracy_for_every_epoch(validation_fraction):
    X, y = _moons()
    config = FitConfig(
        epochs=6, optimizer="adam", learning_rate=0.02, validation_fraction=validation_fraction
    )
    result = fit(_mlp(), X, y, config, np.random.default_rng(0))
    expected = {"train_loss", "train_accuracy"}
    if validation_fraction:
        expected |= {"val_loss", "val_accuracy"}
    assert set(result.history) == expected
    for key, values in result.history.items():
        assert len(values) == 6, key
        assert all(np.isfinite(values)), key
    for key in expected - {"train_loss", "val_loss"}:
        assert all(0.0 <= a <= 1.0 for a in result.history[key])


def test_regressor_history_has_losses_only():
    X, y = make_dataset("linear", 80, noise=0.1, rng=np.random.default_rng(0))
    arch = build_architecture("linear_regression", 2)
    result = fit(arch, X, y, FitConfig(epochs=5, validation_fraction=0.25), np.random.default_rng(0))
    assert set(result.history) == {"train_loss", "val_loss"}
    assert all(len(v) == 5 for v in result.history.values())


def test_one_hot_targets_give_losses_without_empty_accuracy_lists():
    X, labels = make_dataset("blobs", 90, n_classes=3, noise=0.5, rng=np.random.default_rng(0))
    Y = np.eye(3)[labels]
    arch = build_architecture("softmax_regression", 2, 3)
    result = fit(arch, X, Y, FitConfig(epochs=4, validation_fraction=0.2), np.random.default_rng(0))
    assert set(result.history) == {"train_loss", "val_loss"}
    assert all(len(v) == 4 for v in result.history.values())


def test_full_batch_train_loss_is_the_loss_before_each_step():
    X, y = _moons()
    arch = _mlp()
    initial = np.random.default_rng(3).normal(0.0, 0.5, arch.n_parameters)
    snapshots, on_epoch = _snapshots()
    config = FitConfig(epochs=5, learning_rate=0.5)
    result = fit(arch, X, y, config, np.random.default_rng(0), on_epoch=on_epoch, initial_params=initial)
    Y = targets(arch, y)
    before = [initial] + [snapshots[e] for e in range(1, 5)]
    for e, flat in enumerate(before):
        params = Parameters(arch, flat.copy())
        loss, _, _ = loss_and_gradient(arch, params, X, Y)
        assert result.history["train_loss"][e] == pytest.approx(loss, rel=1e-12)
        accuracy = np.mean(predict(arch, params, X)[0] == y)
        assert result.history["train_accuracy"][e] == accuracy
    # The loss went down, so the steps were real.
    assert result.history["train_loss"][-1] < result.history["train_loss"][0]


def test_reported_accuracy_is_that_of_the_predictions_at_a_tie():
    # Logistic regression starts at zero weights: every probability is exactly 0.5, which
    # predict() calls class 1, so the first epoch's accuracy is the share of class 1.
    X, y = _blobs()
    keep = np.flatnonzero(y == 1)[:20].tolist() + np.flatnonzero(y == 0).tolist()
    X, y = X[keep], y[keep]
    result = fit(LOGISTIC, X, y, FitConfig(epochs=1), np.random.default_rng(0))
    assert result.history["train_accuracy"][0] == pytest.approx(np.mean(y == 1))


def test_epoch_state_reports_the_history_row_and_best_so_far():
    X, y = _moons()
    states = []
    config = FitConfig(epochs=5, optimizer="adam", learning_rate=0.05, validation_fraction=0.25)
    result = fit(_mlp(), X, y, config, np.random.default_rng(0), on_epoch=states.append)
    assert [s.epoch for s in states] == [1, 2, 3, 4, 5]
    assert all(s.total_epochs == 5 for s in states)
    for i, s in enumerate(states):
        assert s.metrics == {key: values[i] for key, values in result.history.items()}
        best = int(np.argmin(result.history["val_loss"][: i + 1]))
        assert s.best_epoch == best + 1
        assert s.best_loss == result.history["val_loss"][best]
    assert all(a.elapsed_s <= b.elapsed_s for a, b in itertools.pairwise(states))
    assert result.stop_reason == "completed"
    assert result.epochs_run == 5


# --- early stopping and restoring the best weights -------------------------------------------


def test_min_delta_decides_patience_but_the_best_weights_are_the_lowest_loss():
    # With min_delta this large only the first epoch (from an infinite best) resets the patience,
    # yet the loss keeps falling a little, and the weights kept are those of its lowest epoch.
    X, y = _moons()
    snapshots, on_epoch = _snapshots()
    config = FitConfig(epochs=50, learning_rate=0.5, early_stopping=EarlyStopping(patience=4, min_delta=1e9))
    result = fit(_mlp(), X, y, config, np.random.default_rng(0), on_epoch=on_epoch)
    assert result.stop_reason == "early_stopped"
    assert result.epochs_run == 5
    losses = result.history["train_loss"]
    assert len(losses) == 5
    assert result.best_epoch == int(np.argmin(losses)) + 1 > 1
    assert result.best_loss == min(losses)
    assert result.weights_epoch == result.best_epoch
    assert result.monitor == "train_loss"
    np.testing.assert_array_equal(result.params.flat, snapshots[result.best_epoch])


def _overfitting_run(monkeypatch, restore_best):
    """A wide MLP on few noisy moons: the validation loss turns up after a few epochs."""
    calls = _record_split(monkeypatch)
    X, y = _moons(n=80, seed=1, noise=0.35)
    arch = _mlp(hidden=64, activation="relu")
    snapshots, on_epoch = _snapshots()
    config = FitConfig(
        epochs=400,
        optimizer="adam",
        learning_rate=0.05,
        validation_fraction=0.3,
        early_stopping=EarlyStopping(patience=10, restore_best=restore_best),
    )
    result = fit(arch, X, y, config, np.random.default_rng(0), on_epoch=on_epoch)
    return result, snapshots, X[calls[-1]["val"]], y[calls[-1]["val"]]


def test_early_stopping_on_rising_validation_loss(monkeypatch):
    result, _, _, _ = _overfitting_run(monkeypatch, restore_best=True)
    val_loss = result.history["val_loss"]
    assert result.stop_reason == "early_stopped"
    assert result.epochs_run < 400
    assert result.epochs_run == result.best_epoch + 10
    assert result.best_loss == min(val_loss)
    assert result.best_epoch == int(np.argmin(val_loss)) + 1
    assert all(v >= result.best_loss for v in val_loss[result.best_epoch :])


def test_restore_best_restores_the_best_epoch_weights(monkeypatch):
    result, snapshots, X_val, y_val = _overfitting_run(monkeypatch, restore_best=True)
    np.testing.assert_array_equal(result.params.flat, result.best_params.flat)
    np.testing.assert_array_equal(result.params.flat, snapshots[result.best_epoch])
    val = evaluate(result.architecture, result.params, X_val, targets(result.architecture, y_val), y_val)
    assert val["loss"] == pytest.approx(min(result.history["val_loss"]), rel=1e-12)


def test_without_restore_best_the_last_weights_are_kept(monkeypatch):
    result, snapshots, _, _ = _overfitting_run(monkeypatch, restore_best=False)
    np.testing.assert_array_equal(result.params.flat, snapshots[result.epochs_run])
    np.testing.assert_array_equal(result.best_params.flat, snapshots[result.best_epoch])
    assert not np.array_equal(result.params.flat, result.best_params.flat)


# --- divergence, cancellation and deadlines --------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("optimizer", "batch_size"), [("gd", None), ("sgd", 10)])
def test_huge_learning_rate_diverges_with_finite_weights(dtype, optimizer, batch_size):
    X, y = make_dataset("linear", 100, n_features=3, noise=0.1, rng=np.random.default_rng(0))
    arch = build_architecture("linear_regression", 3)
    snapshots, on_epoch = _snapshots()
    config = FitConfig(epochs=500, optimizer=optimizer, learning_rate=1e3, batch_size=batch_size, dtype=dtype)
    result = fit(arch, X, y, config, np.random.default_rng(0), on_epoch=on_epoch)
    assert result.stop_reason == "diverged"
    assert result.epochs_run < 500
    assert f"epoch {result.epochs_run + 1}" in result.detail
    assert np.all(np.isfinite(result.params.flat))
    assert result.params.flat.dtype == np.dtype(dtype)
    # The weights are those of the best finite epoch (the zeros it started from if none was better).
    losses = result.history["train_loss"]
    assert result.best_epoch == (int(np.argmin(losses)) + 1 if losses else 0)
    assert result.weights_epoch == result.best_epoch
    assert f"the weights kept are those of epoch {result.best_epoch}" in result.detail
    best = snapshots.get(result.best_epoch, np.zeros(arch.n_parameters))
    np.testing.assert_array_equal(result.params.flat, best)
    assert len(losses) == result.epochs_run


@pytest.mark.parametrize("optimizer", ["gd", "momentum", "adam"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_step_to_overflowing_weights_diverges_quietly_with_finite_weights(optimizer, dtype):
    # A learning rate near the float64 maximum sends the weights to inf in one step while the
    # loss was still finite; pytest turns any overflow warning into an error.
    X, y = make_dataset("linear", 60, n_features=3, noise=0.1, rng=np.random.default_rng(0))
    arch = build_architecture("linear_regression", 3)
    config = FitConfig(
        epochs=50, optimizer=optimizer, learning_rate=1e306, validation_fraction=0.2, dtype=dtype
    )
    result = fit(arch, X * 100, y * 100, config, np.random.default_rng(0))
    assert result.stop_reason == "diverged"
    assert re.search(r"non-finite in epoch \d+", result.detail)
    assert np.all(np.isfinite(result.params.flat))
    assert np.all(np.isfinite(result.best_params.flat))


def test_on_epoch_returning_false_cancels_and_keeps_best_params():
    X, y = _moons()
    snapshots = {}

    def on_epoch(state):
        snapshots[state.epoch] = state.checkpoint().params
        return state.epoch < 6

    config = FitConfig(epochs=50, learning_rate=2.0, optimizer="momentum", validation_fraction=0.25)
    result = fit(_mlp(), X, y, config, np.random.default_rng(0), on_epoch=on_epoch)
    assert result.stop_reason == "cancelled"
    assert result.epochs_run == 6
    assert all(len(v) == 6 for v in result.history.values())
    assert result.best_epoch == int(np.argmin(result.history["val_loss"])) + 1
    np.testing.assert_array_equal(result.best_params.flat, snapshots[result.best_epoch])
    np.testing.assert_array_equal(result.params.flat, snapshots[6])


@pytest.mark.parametrize("standardize", [False, True])
def test_on_epoch_sees_the_current_parameters_and_the_standardization(standardize):
    X, y = _moons()
    seen = {}

    def on_epoch(state):
        seen[state.epoch] = (state.params.copy(), state.checkpoint().params, state.standardization)

    config = FitConfig(epochs=4, learning_rate=0.5, optimizer="adam", standardize=standardize)
    result = fit(_mlp(), X, y, config, np.random.default_rng(0), on_epoch=on_epoch)
    for params, checkpointed, _ in seen.values():
        np.testing.assert_array_equal(params, checkpointed)
    assert not np.array_equal(seen[1][0], seen[4][0])
    np.testing.assert_array_equal(seen[4][0], result.params.flat)
    standardization = seen[4][2]
    if standardize:
        np.testing.assert_array_equal(standardization.mean, result.standardization.mean)
        np.testing.assert_array_equal(standardization.scale, result.standardization.scale)
    else:
        assert standardization is None and result.standardization is None


def test_on_epoch_returning_none_does_not_cancel():
    X, y = _moons(n=40)
    result = fit(_mlp(), X, y, FitConfig(epochs=3), np.random.default_rng(0), on_epoch=lambda state: None)
    assert result.stop_reason == "completed"
    assert result.epochs_run == 3


def test_should_stop_cancels_between_mini_batches(monkeypatch):
    monkeypatch.setattr(progress, "POLL_INTERVAL_S", 0.0)
    steps = _count_steps(monkeypatch)
    polls = []

    def should_stop():
        polls.append(1)
        return len(polls) == 8

    X, y = _moons(n=96)
    # 96 samples in batches of 16: six steps per epoch, so the eighth poll is inside epoch 2.
    config = FitConfig(epochs=20, optimizer="sgd", batch_size=16)
    result = fit(_mlp(), X, y, config, np.random.default_rng(0), should_stop=should_stop)
    assert result.stop_reason == "cancelled"
    assert len(steps) == 8
    assert result.epochs_run == 1
    assert len(result.history["train_loss"]) == 1


def test_should_stop_is_polled_between_full_batch_epochs(monkeypatch):
    monkeypatch.setattr(progress, "POLL_INTERVAL_S", 0.0)
    polls = []

    def should_stop():
        polls.append(1)
        return len(polls) == 3

    X, y = _moons(n=40)
    result = fit(_mlp(), X, y, FitConfig(epochs=20), np.random.default_rng(0), should_stop=should_stop)
    assert result.stop_reason == "cancelled"
    assert result.epochs_run == 3
    assert len(result.history["train_loss"]) == 3


def test_should_stop_returning_false_lets_the_run_complete(monkeypatch):
    monkeypatch.setattr(progress, "POLL_INTERVAL_S", 0.0)
    X, y = _moons(n=40)
    config = FitConfig(epochs=3, optimizer="sgd", batch_size=8)
    result = fit(_mlp(), X, y, config, np.random.default_rng(0), should_stop=lambda: False)
    assert result.stop_reason == "completed"
    assert result.epochs_run == 3


@pytest.mark.parametrize("batch_size", [None, 8])
def test_tiny_max_runtime_ends_deadline_exceeded(batch_size):
    X, y = _moons()
    config = FitConfig(epochs=10_000, optimizer="sgd", batch_size=batch_size, max_runtime_s=1e-9)
    result = fit(_mlp(), X, y, config, np.random.default_rng(0))
    assert result.stop_reason == "deadline_exceeded"
    assert result.epochs_run < 10_000
    assert "max_runtime_s=1e-09" in result.detail
    assert f"after {result.epochs_run} epochs" in result.detail
    assert len(result.history["train_loss"]) == result.epochs_run


# --- dtypes and warm start -------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_both_dtypes_train_and_keep_their_dtype(dtype, optimizer):
    X, y = _blobs()
    config = FitConfig(
        epochs=40,
        optimizer=optimizer,
        learning_rate=0.05,
        dtype=dtype,
        standardize=True,
        validation_fraction=0.2,
        batch_size=None if optimizer == "gd" else 16,
    )
    result = fit(_mlp(), X, y, config, np.random.default_rng(0))
    expected = np.dtype(dtype)
    assert result.params.flat.dtype == expected
    assert result.best_params.flat.dtype == expected
    assert result.standardization.mean.dtype == expected
    labels, probabilities = result.predict(X)
    assert probabilities.dtype == expected
    assert np.mean(labels == y) >= 0.95


def test_float32_follows_the_float64_trajectory():
    X, y = _moons()
    config = {"epochs": 20, "optimizer": "gd", "learning_rate": 0.5}
    single = fit(_mlp(), X, y, FitConfig(**config, dtype="float32"), np.random.default_rng(0))
    double = fit(_mlp(), X, y, FitConfig(**config, dtype="float64"), np.random.default_rng(0))
    np.testing.assert_allclose(single.params.flat, double.params.flat, rtol=1e-3, atol=1e-4)


def test_warm_start_continues_from_initial_params():
    X, y = _moons()
    arch = _mlp()
    first = fit(arch, X, y, FitConfig(epochs=3, learning_rate=0.5), np.random.default_rng(0))
    continued = fit(
        arch,
        X,
        y,
        FitConfig(epochs=2, learning_rate=0.5),
        np.random.default_rng(99),
        initial_params=first.params.flat,
    )
    straight = fit(arch, X, y, FitConfig(epochs=5, learning_rate=0.5), np.random.default_rng(0))
    # Full-batch gd keeps no state, so 3 + 2 epochs are the same steps as 5.
    assert np.array_equal(continued.params.flat, straight.params.flat)


def test_warm_start_does_not_modify_the_given_weights():
    X, y = _moons(n=40)
    arch = _mlp()
    initial = np.full(arch.n_parameters, 0.1)
    fit(arch, X, y, FitConfig(epochs=3), np.random.default_rng(0), initial_params=initial)
    np.testing.assert_array_equal(initial, np.full(arch.n_parameters, 0.1))


def test_warm_start_with_wrong_shape_is_rejected():
    X, y = _moons(n=40)
    with pytest.raises(ValueError, match=re.escape("initial parameters have shape (3,), expected (33,)")):
        fit(_mlp(), X, y, FitConfig(epochs=1), np.random.default_rng(0), initial_params=np.zeros(3))


def test_l2_adds_l2_times_weights_to_the_weight_gradient_only():
    X, y = _blobs(noise=2.0)
    w0, b0, lr, l2 = np.array([0.4, -0.3]), 0.25, 0.2, 0.5
    result = fit(
        LOGISTIC,
        X,
        y,
        FitConfig(epochs=1, learning_rate=lr, l2=l2),
        np.random.default_rng(0),
        initial_params=np.array([*w0, b0]),
    )
    y_hat = 1 / (1 + np.exp(-(X @ w0 + b0)))
    w = w0 - lr * (np.mean((y_hat - y)[:, None] * X, axis=0) + l2 * w0)
    b = b0 - lr * np.mean(y_hat - y)
    np.testing.assert_allclose(result.params.flat, [*w, b], rtol=1e-12)


# --- configuration and input validation ------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epochs": 0}, "epochs must be an integer of at least 1, got 0"),
        ({"epochs": 2.5}, "epochs must be an integer of at least 1, got 2.5"),
        ({"epochs": True}, "epochs must be an integer of at least 1, got True"),
        ({"optimizer": "rmsprop"}, "unknown optimizer 'rmsprop'"),
        ({"learning_rate": 0.0}, "learning_rate must be positive and finite, got 0.0"),
        ({"learning_rate": -0.1}, "learning_rate must be positive and finite, got -0.1"),
        ({"learning_rate": math.nan}, "learning_rate must be positive and finite, got nan"),
        ({"learning_rate": math.inf}, "learning_rate must be positive and finite, got inf"),
        (
            {"optimizer": "sgd", "batch_size": 0},
            "batch_size must be a positive integer or null for full batch, got 0",
        ),
        (
            {"optimizer": "sgd", "batch_size": 2.5},
            "batch_size must be a positive integer or null for full batch, got 2.5",
        ),
        ({"optimizer": "gd", "batch_size": 8}, "batch_size must be null, got 8"),
        ({"l2": -0.1}, "l2 must be non-negative, got -0.1"),
        ({"l2": math.nan}, "l2 must be non-negative, got nan"),
        ({"validation_fraction": 1.0}, "validation_fraction must be in [0, 1), got 1.0"),
        ({"validation_fraction": -0.1}, "validation_fraction must be in [0, 1), got -0.1"),
        ({"dtype": "float16"}, "unknown dtype 'float16'"),
        ({"max_runtime_s": 0.0}, "max_runtime_s must be positive, got 0.0"),
        ({"max_runtime_s": -1.0}, "max_runtime_s must be positive, got -1.0"),
        (
            {"early_stopping": EarlyStopping(patience=0)},
            "early_stopping.patience must be an integer of at least 1, got 0",
        ),
        (
            {"early_stopping": EarlyStopping(min_delta=-0.1)},
            "early_stopping.min_delta must be non-negative, got -0.1",
        ),
        (
            {"optimizer": "momentum", "optimizer_params": {"momentum": 1.5}},
            "momentum must be in [0, 1), got 1.5",
        ),
        ({"optimizer": "adam", "optimizer_params": {"lr": 0.1}}, "unknown hyperparameter 'lr' for 'adam'"),
        ({"schedule": "linear"}, "unknown schedule 'linear'"),
        (
            {"schedule": "step", "schedule_params": {"step_size": 0}},
            "step_size must be an integer >= 1, got 0.0",
        ),
        ({"schedule": "step", "schedule_params": {"gamma": 2.0}}, "gamma must be in (0, 1], got 2.0"),
    ],
)
def test_fit_config_rejects_bad_values_naming_them(overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        FitConfig(**{"epochs": 10, **overrides})


def test_fit_rejects_x_with_the_wrong_number_of_features():
    with pytest.raises(ValueError, match=re.escape("X must have shape (n_samples, 2), got (10, 3)")):
        fit(LOGISTIC, np.zeros((10, 3)), np.zeros(10), FitConfig(epochs=1), np.random.default_rng(0))


def test_fit_rejects_y_of_another_length():
    with pytest.raises(ValueError, match="X has 10 rows but y has 9 labels"):
        fit(LOGISTIC, np.zeros((10, 2)), np.zeros(9), FitConfig(epochs=1), np.random.default_rng(0))


# --- reproducibility and resuming ------------------------------------------------------------


def _config(optimizer, batch_size, dtype="float64", **overrides):
    settings = {
        "epochs": 24,
        "optimizer": optimizer,
        "learning_rate": 0.05,
        "batch_size": batch_size,
        "schedule": "step",
        "schedule_params": {"step_size": 5, "gamma": 0.5},
        "validation_fraction": 0.25,
        "early_stopping": EarlyStopping(patience=50, restore_best=False),
        "standardize": True,
        "l2": 1e-3,
        "dtype": dtype,
    }
    return FitConfig(**{**settings, **overrides})


RUN_CASES = [(opt, batch) for opt in OPTIMIZERS for batch in (None, 16) if not (opt == "gd" and batch)]


@pytest.mark.parametrize(("optimizer", "batch_size"), RUN_CASES)
def test_same_seed_gives_bitwise_the_same_run(optimizer, batch_size):
    X, y = _moons()
    config = _config(optimizer, batch_size)
    a = fit(_mlp(), X, y, config, np.random.default_rng(SEED))
    b = fit(_mlp(), X, y, config, np.random.default_rng(SEED))
    assert np.array_equal(a.params.flat, b.params.flat)
    assert np.array_equal(a.best_params.flat, b.best_params.flat)
    assert a.history == b.history


@pytest.mark.parametrize("batch_size", [None, 16])
def test_different_seeds_give_different_mlp_weights(batch_size):
    X, y = _moons()
    config = _config("adam", batch_size)
    a = fit(_mlp(), X, y, config, np.random.default_rng(1))
    b = fit(_mlp(), X, y, config, np.random.default_rng(2))
    assert not np.array_equal(a.params.flat, b.params.flat)


def _stopped_at(architecture, X, y, config, k):
    """Run until epoch k, take a checkpoint there and cancel."""
    saved = []

    def on_epoch(state):
        if state.epoch == k:
            saved.append(state.checkpoint())
            return False
        return True

    interrupted = fit(architecture, X, y, config, np.random.default_rng(SEED), on_epoch=on_epoch)
    assert interrupted.stop_reason == "cancelled"
    assert interrupted.epochs_run == k
    return saved[0]


def _assert_same_run(resumed, uninterrupted):
    assert np.array_equal(resumed.params.flat, uninterrupted.params.flat)
    assert np.array_equal(resumed.best_params.flat, uninterrupted.best_params.flat)
    assert resumed.history == uninterrupted.history
    assert resumed.stop_reason == uninterrupted.stop_reason
    assert resumed.epochs_run == uninterrupted.epochs_run
    assert resumed.best_epoch == uninterrupted.best_epoch
    assert resumed.best_loss == uninterrupted.best_loss


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("optimizer", "batch_size"), RUN_CASES)
def test_resume_from_checkpoint_gives_the_uninterrupted_run(optimizer, batch_size, dtype):
    X, y = _moons()
    arch = _mlp()
    config = _config(optimizer, batch_size, dtype)
    uninterrupted = fit(arch, X, y, config, np.random.default_rng(SEED))
    # Epoch 9 is inside the second step of the schedule, with optimizer state well under way.
    checkpoint = _stopped_at(arch, X, y, config, k=9)
    assert checkpoint.params.dtype == np.dtype(dtype)
    resumed = fit(arch, X, y, config, np.random.default_rng(SEED), resume=checkpoint)
    _assert_same_run(resumed, uninterrupted)
    assert resumed.stop_reason == "completed"
    assert resumed.epochs_run == 24


@pytest.mark.parametrize("batch_size", [None, 16])
def test_resume_before_early_stopping_stops_at_the_same_epoch(batch_size):
    X, y = _moons(n=80, seed=1, noise=0.35)
    arch = _mlp(hidden=64, activation="relu")
    config = _config(
        "adam",
        batch_size,
        epochs=200,
        learning_rate=0.05,
        schedule="constant",
        schedule_params={},
        early_stopping=EarlyStopping(patience=5),
    )
    uninterrupted = fit(arch, X, y, config, np.random.default_rng(SEED))
    assert uninterrupted.stop_reason == "early_stopped"
    stopped = uninterrupted.epochs_run
    for k in (uninterrupted.best_epoch, stopped - 1, stopped):
        checkpoint = _stopped_at(arch, X, y, config, k)
        resumed = fit(arch, X, y, config, np.random.default_rng(SEED), resume=checkpoint)
        _assert_same_run(resumed, uninterrupted)


def test_checkpoint_is_a_snapshot_not_a_view():
    X, y = _moons()
    arch = _mlp()
    config = _config("momentum", 16)
    saved = []

    def on_epoch(state):
        if state.epoch == 5:
            saved.append(state.checkpoint())

    uninterrupted = fit(arch, X, y, config, np.random.default_rng(SEED), on_epoch=on_epoch)
    checkpoint = saved[0]
    assert checkpoint.epoch == 5
    assert len(checkpoint.history["train_loss"]) == 5
    resumed = fit(arch, X, y, config, np.random.default_rng(SEED), resume=checkpoint)
    _assert_same_run(resumed, uninterrupted)
