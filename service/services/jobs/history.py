"""A job's metric history: per-epoch losses and accuracies, evenly downsampled for plotting."""

from __future__ import annotations

from typing import Any

import numpy as np

from service.store import Store, get_job, list_job_metrics

Array = np.ndarray[Any, Any]


def downsample_indices(n: int, max_points: int | None) -> Array:
    """Indices of ``max_points`` evenly spaced entries of ``n``, the first and last always among them.

    Parameters
    ----------
    n : int
        Length of the history.
    max_points : int or None
        At least 2; None keeps every entry.

    Returns
    -------
    ndarray of int64, of shape (min(n, max_points),)
        Strictly increasing; ends with ``n - 1`` when ``n > 0``.
    """
    if max_points is None or n <= max_points:
        return np.arange(n, dtype=np.int64)
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    # Integer arithmetic: i·(n−1) // (m−1) steps by at least 1 (n > m), so no index repeats, and the
    # last one is exactly n − 1.
    return np.arange(max_points, dtype=np.int64) * (n - 1) // (max_points - 1)


def metrics(
    store: Store, owner: str | None, job_id: str, *, since_epoch: int | None, max_points: int | None
) -> dict[str, Any]:
    """The job's per-epoch history after ``since_epoch``, downsampled to ``max_points`` (404 when the job
    is not ``owner``'s; None: anyone's)."""
    get_job(store, job_id, owner=owner)
    rows = list_job_metrics(store, job_id, after_epoch=since_epoch)
    keep = downsample_indices(len(rows), max_points)
    chosen = [rows[i] for i in keep.tolist()]
    result: dict[str, Any] = {
        "epochs": [row.epoch for row in chosen],
        "train_loss": [row.train_loss for row in chosen],
        "val_loss": [row.val_loss for row in chosen],
    }
    for key in ("train_accuracy", "val_accuracy"):
        values = [getattr(row, key) for row in chosen]
        if any(value is not None for value in values):
            result[key] = values
    result["total_points"] = len(rows)
    return result
