"""What checking stored bytes and probing the store's health cost, in process, on SQLite files.

- Reading a dataset of 40 MB: ``load_dataset_arrays`` (reads, hashes, decodes) against the same read
  and decode without the hash (the reference: what the store did before it checked).
- ``StoreHealth.problems``: one /readyz probe of the store (free space, a fresh connection's read and
  rolled-back write; the file check cached), and one ``PRAGMA quick_check`` of a 200 MB file.
- Storing and deleting a dataset of 40 MB in a store created with ``auto_vacuum = INCREMENTAL`` (what a
  new store is) against one with ``auto_vacuum = NONE`` (the reference: an older store), and giving the
  deleted pages back to the file system (what a delete adds when the disk is low on space).

Median of 7 after 2 warm-up runs each (means of the 9 store-and-delete cycles), the two sides taking
turns. Run: python benchmarks/store_integrity.py.
Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.store import Store, create_dataset, delete_dataset, load_dataset_arrays, open_store, space  # noqa: E402
from service.store.blobs import blob_data, decode_npz  # noqa: E402
from service.store.tables import DatasetRow  # noqa: E402

REPEATS, WARMUP = 7, 2
ROWS, FEATURES = 125_000, 40  # 40 MB of float64


def median_ms(run: Callable[[], object]) -> float:
    for _ in range(WARMUP):
        run()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def paired_ms(ours: Callable[[], object], reference: Callable[[], object]) -> tuple[float, float]:
    """Medians of the two, timed taking turns."""
    for _ in range(WARMUP):
        ours()
        reference()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(REPEATS):
        for run, sink in ((ours, times[0]), (reference, times[1])):
            start = time.perf_counter()
            run()
            sink.append(time.perf_counter() - start)
    return statistics.median(times[0]) * 1000, statistics.median(times[1]) * 1000


def unchecked_read(store: Store, dataset_id: str) -> None:
    with store.read() as session:
        row = session.get(DatasetRow, dataset_id)
        assert row is not None
        data = blob_data(session, row.blob_id)
    assert data is not None
    decode_npz(data)


def dataset(store: Store, X: np.ndarray) -> str:
    return create_dataset(store, name="d", X=X, y=np.zeros(len(X)), task="regression").id


def store_with_auto_vacuum(path: Path, mode: str) -> Store:
    with sqlite3.connect(path) as db:  # the mode must be set before the first table
        db.execute(f"PRAGMA auto_vacuum = {mode}")
        db.execute("CREATE TABLE IF NOT EXISTS bench_marker (x)")
    return open_store(f"sqlite:///{path}")


def main() -> None:
    X = np.random.default_rng(0).normal(size=(ROWS, FEATURES))
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'read.db'}")
        dataset_id = dataset(store, X)
        checked, reference = paired_ms(
            lambda: load_dataset_arrays(store, dataset_id), lambda: unchecked_read(store, dataset_id)
        )
        rows.append(("read a 40 MB dataset (checked / unchecked)", checked, reference))
        digest = median_ms(lambda: hashlib.sha256(X.tobytes()).digest()) - median_ms(X.tobytes)
        rows.append(("sha256 of 40 MB (hashlib)", digest, float("nan")))
        for seed in range(4):
            dataset(store, X + seed)
        probe = median_ms(lambda: store.health.problems(64 * 2**20))
        store.health._checked_at = None
        quick = median_ms(lambda: store.health._quick_check(store.database_path))  # type: ignore[arg-type]
        size = store.database_path.stat().st_size / 2**20  # type: ignore[union-attr]
        rows.append(("/readyz store probe (file check cached)", probe, float("nan")))
        rows.append((f"PRAGMA quick_check of a {size:.0f} MB file (background)", quick, float("nan")))
        store.close()

        incremental = store_with_auto_vacuum(Path(tmp) / "incremental.db", "INCREMENTAL")
        plain = store_with_auto_vacuum(Path(tmp) / "none.db", "NONE")
        for s in (incremental, plain):
            dataset(s, X)  # a dataset before the one deleted: the delete must move pages
        writes = {id(s): [0.0, 0.0, 0.0] for s in (incremental, plain)}

        def cycle(s: Store) -> None:
            start = time.perf_counter()
            new = dataset(s, X)
            dataset(s, X)
            stored = time.perf_counter()
            delete_dataset(s, new)  # the disk has room: the pages stay free in the file
            deleted = time.perf_counter()
            space.give_back(s)  # what a delete adds on a disk low on space
            writes[id(s)][0] += stored - start
            writes[id(s)][1] += deleted - stored
            writes[id(s)][2] += time.perf_counter() - deleted

        for _ in range(WARMUP + REPEATS):
            for s in (incremental, plain):
                cycle(s)
        n = WARMUP + REPEATS
        ours, theirs = writes[id(incremental)], writes[id(plain)]
        rows.append(
            (
                "store two 40 MB datasets (auto_vacuum incremental / none)",
                ours[0] / n * 1e3,
                theirs[0] / n * 1e3,
            )
        )
        rows.append(("delete one, keeping its pages for reuse", ours[1] / n * 1e3, theirs[1] / n * 1e3))
        rows.append(
            ("then give its pages back (low disk only; none: impossible)", ours[2] / n * 1e3, float("nan"))
        )
        incremental.close()
        plain.close()
    print("| operation | ms | reference ms |")
    print("|---|---:|---:|")
    for name, ms, reference_ms in rows:
        shown = "" if math.isnan(reference_ms) else f"{reference_ms:.1f}"
        print(f"| {name} | {ms:.1f} | {shown} |")


if __name__ == "__main__":
    main()
