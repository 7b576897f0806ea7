"""Small records the store tests build on."""

from __future__ import annotations

import numpy as np

from service.store import DatasetRecord, JobRecord, Store, create_dataset, create_job


def make_dataset(store: Store, *, owner: str = "default", n: int = 6, seed: int = 0) -> DatasetRecord:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    return create_dataset(
        store,
        owner=owner,
        name=f"d{seed}",
        X=X,
        y=y,
        task="binary",
        classes=[0, 1],
        class_counts=[int((y == 0).sum()), int((y == 1).sum())],
        source={"kind": "test", "seed": seed},
    )


def make_job(
    store: Store,
    dataset_id: str,
    *,
    owner: str = "default",
    max_retries: int = 0,
    max_queued: int = 100,
) -> JobRecord:
    return create_job(
        store,
        owner=owner,
        config={"epochs": 5, "seed": 1, "optimizer": {"name": "sgd", "learning_rate": 0.1}},
        config_hash="c" * 64,
        dataset_id=dataset_id,
        max_retries=max_retries,
        max_queued=max_queued,
    )
