from __future__ import annotations

import hashlib

import numpy as np
import pytest
from sqlalchemy import select

from service.errors import NotFound
from service.store import (
    Store,
    claim_job,
    create_model,
    delete_model,
    finish_job,
    get_job,
    get_model,
    list_models,
    load_model_parameters,
)
from service.store.tables import BlobRow
from tests.service.store.factories import make_dataset, make_job


def _import(store: Store, *, owner: str = "default", seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    return create_model(
        store,
        owner=owner,
        architecture={
            "type": "mlp",
            "layers": [{"units": 4, "activation": "relu"}, {"units": 3, "activation": "softmax"}],
        },
        n_features=2,
        task="multiclass",
        classes=["a", "b", "c"],
        metrics={"val_accuracy": 0.75},
        standardization=None,
        parameters={
            "W0": rng.normal(size=(2, 4)),
            "b0": rng.normal(size=4),
            "W1": rng.normal(size=(4, 3)).astype(np.float32),
            "b1": rng.normal(size=3).astype(np.float32),
        },
    ).id


def test_imported_model_round_trips_exactly(store: Store) -> None:
    rng = np.random.default_rng(0)
    expected: dict[str, np.ndarray] = {
        "W0": rng.normal(size=(2, 4)),
        "b0": rng.normal(size=4),
        "W1": rng.normal(size=(4, 3)).astype(np.float32),
        "b1": rng.normal(size=3).astype(np.float32),
    }
    model = get_model(store, _import(store, seed=0))

    params = load_model_parameters(store, model.id)

    assert list(params) == ["W0", "b0", "W1", "b1"]
    for name, array in expected.items():
        assert params[name].dtype == array.dtype and params[name].tobytes() == array.tobytes()
    assert (model.job_id, model.task, model.classes, model.standardization) == (
        None,
        "multiclass",
        ["a", "b", "c"],
        None,
    )
    assert model.architecture["layers"][1] == {"units": 3, "activation": "softmax"}
    with store.read() as session:
        data = session.scalar(select(BlobRow.data).where(BlobRow.id == model.blob_id))
    assert data is not None and model.sha256 == hashlib.sha256(data).hexdigest()


def test_models_list_newest_first_per_owner(store: Store) -> None:
    ids = [_import(store, seed=i) for i in range(4)]
    _import(store, owner="bob")
    first, cursor = list_models(store, "default", limit=3)
    rest, end = list_models(store, "default", limit=3, cursor=cursor)
    assert [m.id for m in first + rest] == ids[::-1] and end is None
    with pytest.raises(NotFound):
        get_model(store, ids[0], owner="bob")


def test_delete_model_removes_parameters_and_unlinks_its_job(store: Store) -> None:
    job = make_job(store, make_dataset(store).id)
    attempt = claim_job(store, job.id)
    assert attempt == 1
    model = {
        "architecture": {"type": "linear_regression"},
        "n_features": 3,
        "task": "regression",
        "classes": None,
        "metrics": {},
        "standardization": None,
        "parameters": {"weights": np.ones(3), "bias": np.zeros(())},
    }
    model_id = finish_job(store, job.id, attempt, status="succeeded", model=model).model_id
    assert model_id is not None
    blob_id = get_model(store, model_id).blob_id

    delete_model(store, model_id)

    with pytest.raises(NotFound):
        load_model_parameters(store, model_id)
    with store.read() as session:
        assert session.get(BlobRow, blob_id) is None
    unlinked = get_job(store, job.id)
    assert (unlinked.status, unlinked.model_id) == ("succeeded", None)
    with pytest.raises(NotFound):
        delete_model(store, model_id)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"task": "ranking"}, "task must be one of"),
        ({"n_features": 0}, "n_features must be a positive integer"),
        ({"parameters": {}}, "at least one array"),
        (
            {"parameters": {"weights": np.array([1.0, np.nan]), "bias": np.zeros(())}},
            "weights holds non-finite",
        ),
        ({"standardization": {"mean": [0.0, 0.0], "scale": [1.0, np.inf]}}, "scale holds non-finite"),
    ],
)
def test_invalid_models_are_refused(store: Store, changes: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "architecture": {"type": "logistic_regression"},
        "n_features": 2,
        "task": "binary",
        "parameters": {"weights": np.zeros(2), "bias": np.zeros(())},
    }
    with pytest.raises(ValueError, match=message):
        create_model(store, **(arguments | changes))  # type: ignore[arg-type]
    assert list_models(store) == ([], None)
