"""A worker's cache of decoded datasets: read once per process, read-only, bounded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from service.runners import cache
from service.store import Store, get_dataset, load_dataset_arrays, open_store
from tests.service.store.factories import make_dataset


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    cache.clear()
    yield opened
    cache.clear()
    opened.close()


def test_a_dataset_is_read_once_then_served_read_only_from_memory(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = get_dataset(store, make_dataset(store, n=20).id)
    reads: list[str] = []

    def counting(store: Store, dataset_id: str) -> tuple[np.ndarray, np.ndarray]:
        reads.append(dataset_id)
        return load_dataset_arrays(store, dataset_id)

    monkeypatch.setattr(cache, "load_dataset_arrays", counting)
    X, y = cache.dataset_arrays(store, record)
    X2, y2 = cache.dataset_arrays(store, record)
    assert reads == [record.id]
    assert X2 is X and y2 is y
    stored_X, stored_y = load_dataset_arrays(store, record.id)
    np.testing.assert_array_equal(X, stored_X)
    np.testing.assert_array_equal(y, stored_y)
    with pytest.raises(ValueError, match="read-only"):
        X[0, 0] = 1.0


def test_the_cache_keeps_the_most_recent_datasets_within_its_bound(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = get_dataset(store, make_dataset(store, n=100, seed=1).id)
    second = get_dataset(store, make_dataset(store, n=100, seed=2).id)
    one = sum(a.nbytes for a in load_dataset_arrays(store, first.id))
    monkeypatch.setattr(cache, "MAX_BYTES", one + one // 2)  # room for one of them
    cache.dataset_arrays(store, first)
    cache.dataset_arrays(store, second)
    assert [key[0] for key in cache._cache] == [second.id]
    monkeypatch.setattr(cache, "MAX_BYTES", one // 2)  # too large to keep at all
    cache.clear()
    X, _ = cache.dataset_arrays(store, first)
    assert cache._cache == {} and X.flags.writeable
