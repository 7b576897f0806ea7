"""The datasets a worker process trained on last, kept decoded in memory for its next jobs.

A dataset never changes once stored (its id names one blob and one SHA-256, checked when the blob is
read), so a worker that runs many short jobs on the same data reads, checks and decodes it once. The
arrays are read-only: a job that tried to write into them would fail loudly rather than change the
data of the next. The cache holds at most
``MAX_BYTES``; a larger dataset is never kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from service.store import DatasetRecord, Store, load_dataset_arrays

MAX_BYTES = 64 * 1024 * 1024
Arrays = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]

_lock = threading.Lock()
_cache: OrderedDict[tuple[str, str, str], Arrays] = OrderedDict()


def dataset_arrays(store: Store, dataset: DatasetRecord) -> Arrays:
    """``(X, y)`` of ``dataset``, from this process's cache or from the store."""
    key = (dataset.id, dataset.blob_id, dataset.sha256)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    X, y = load_dataset_arrays(store, dataset.id)
    size = X.nbytes + y.nbytes
    if size > MAX_BYTES:
        return X, y
    X.setflags(write=False)
    y.setflags(write=False)
    with _lock:
        _cache[key] = (X, y)
        while sum(a.nbytes + b.nbytes for a, b in _cache.values()) > MAX_BYTES:
            _cache.popitem(last=False)
    return X, y


def clear() -> None:
    """Forget every cached dataset."""
    with _lock:
        _cache.clear()
