"""Engine speed, side by side with its references, on one BLAS thread.

1. Logistic regression, full-batch GD, N = 100,000, D = 20: the engine's time per epoch against
   the floor measured in the same run (the bare X @ w, sigmoid, X.T @ r of one step).
2. MLP 20→64→64→1, ReLU, Adam, N = 100,000, float32, batch 256 and 32: the engine against
   PyTorch (CPU) and scikit-learn's MLPClassifier with the same architecture, batch and epochs,
   each when installed (`pip install -e '.[bench]'`; PyTorch separately).
3. Memory: the peak NumPy allocation while training on an N × D float32 dataset, in copies of X.

Every figure is the median of repeats after a warm-up, the runs compared taking turns, in wall time
and in the CPU time of the benchmark's thread (which leaves out the time other processes held the
core on a shared machine). Run: python benchmarks/engine.py [--quick]. Prints a Markdown report for
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

# This file is named like the package it measures: import the package, not this script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

from engine.datasets import make_dataset  # noqa: E402
from engine.models import build_architecture  # noqa: E402
from engine.training import FitConfig, fit  # noqa: E402


def side_by_side(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, tuple[float, float]]:
    """Median wall and CPU (this thread's) seconds of each run, after a warm-up of each.

    The runs take turns, so a change in the machine's load affects them alike. CPU time leaves out
    the time other processes held the core, which wall time on a shared machine includes.
    """
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for fn in runs.values():
        fn()
    for _ in range(repeats):
        for name, fn in runs.items():
            c0, t0 = time.thread_time(), time.perf_counter()
            fn()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.thread_time() - c0)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in runs}


def gemv_floor(X: np.ndarray, epochs: int) -> Callable[[], None]:
    """The two matrix-vector products of a full-batch step alone, X @ w and r @ X (= X.T @ r)."""
    w = np.zeros(X.shape[1], dtype=X.dtype)
    z = np.empty(len(X), dtype=X.dtype)
    g = np.empty(X.shape[1], dtype=X.dtype)
    r = np.random.default_rng(1).normal(size=len(X)).astype(X.dtype)

    def run() -> None:
        for _ in range(epochs):
            np.matmul(X, w, out=z)
            np.matmul(r, X, out=g)

    return run


def logistic_floor(X: np.ndarray, y: np.ndarray, epochs: int) -> Callable[[], None]:
    """The bare arithmetic of full-batch GD epochs: X @ w, sigmoid, X.T @ r, nothing else."""
    w = np.zeros(X.shape[1], dtype=X.dtype)
    lr = X.dtype.type(0.1)
    n = X.dtype.type(len(X))

    def run() -> None:
        nonlocal w
        w[:] = 0
        for _ in range(epochs):
            z = X @ w
            with np.errstate(over="ignore"):
                p = 1 / (1 + np.exp(-z))
            r = p - y
            w -= lr * (X.T @ r) / n

    return run


def bench_logistic(n: int, epochs: int, repeats: int) -> list[str]:
    """Per epoch: the engine (loss and accuracy recorded every epoch) against the two floors."""
    rows = []
    rng = np.random.default_rng(0)
    X64 = rng.normal(size=(n, 20))
    y = (X64 @ rng.normal(size=20) + rng.normal(size=n) > 0).astype(np.int64)
    arch = build_architecture("logistic_regression", 20)
    for dtype in ("float32", "float64"):
        X = X64.astype(dtype)
        config = FitConfig(epochs=epochs, optimizer="gd", learning_rate=0.1, dtype=dtype)

        def engine_run(X: np.ndarray = X, config: FitConfig = config) -> None:
            result = fit(arch, X, y, config, np.random.default_rng(0))
            assert len(result.history["train_accuracy"]) == config.epochs

        res = side_by_side(
            {
                "gemv": gemv_floor(X, epochs),
                "step": logistic_floor(X, y.astype(dtype), epochs),
                "engine": engine_run,
            },
            repeats,
        )
        (gemv, gemv_cpu), (step, _), (engine, engine_cpu) = (
            (wall / epochs, cpu / epochs) for wall, cpu in (res["gemv"], res["step"], res["engine"])
        )
        rows.append(
            f"| logistic regression GD, N={n:,}, D=20, {dtype}, per epoch, loss and accuracy recorded | "
            f"{engine * 1e3:.3f} ms (CPU {engine_cpu * 1e3:.3f} ms) | "
            f"{gemv * 1e3:.3f} ms (CPU {gemv_cpu * 1e3:.3f} ms): X @ w and X.T @ r alone | "
            f"{engine / gemv:.2f}× (CPU {engine_cpu / gemv_cpu:.2f}×) | ≤ 1.2× |"
        )
        rows.append(
            f"| same, against the bare GD step (products, sigmoid, update) | {engine * 1e3:.3f} ms | "
            f"{step * 1e3:.3f} ms | {engine / step:.2f}× | |"
        )
    return rows


def mlp_runs(n: int, batch: int) -> dict[str, Callable[[], Any]]:
    """One epoch of each implementation that is installed, each with the same architecture and batch."""
    X, y = make_dataset("blobs", n, n_classes=2, n_features=20, noise=2.0, rng=np.random.default_rng(0))
    X = X.astype(np.float32)
    arch = build_architecture(
        "mlp", 20, 1, hidden_layers=[64, 64], activation="relu", output_activation="sigmoid"
    )
    config = FitConfig(epochs=1, optimizer="adam", learning_rate=1e-3, batch_size=batch, dtype="float32")
    runs: dict[str, Callable[[], Any]] = {
        "engine": lambda: fit(arch, X, y, config, np.random.default_rng(0)),
    }
    try:
        import torch
    except ImportError:
        pass
    else:
        torch.set_num_threads(1)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.float32)).reshape(-1, 1)

        def torch_run() -> None:
            torch.manual_seed(0)
            model = torch.nn.Sequential(
                torch.nn.Linear(20, 64),
                torch.nn.ReLU(),
                torch.nn.Linear(64, 64),
                torch.nn.ReLU(),
                torch.nn.Linear(64, 1),
            )
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            loss_fn = torch.nn.BCEWithLogitsLoss()
            order = torch.randperm(n)
            for lo in range(0, n, batch):
                idx = order[lo : lo + batch]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(Xt[idx]), yt[idx])
                loss.backward()
                opt.step()

        runs["pytorch"] = torch_run
    try:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        pass
    else:
        import warnings

        def sklearn_run() -> None:
            clf = MLPClassifier(
                hidden_layer_sizes=(64, 64),
                activation="relu",
                solver="adam",
                learning_rate_init=1e-3,
                batch_size=batch,
                max_iter=1,
                tol=0.0,
                n_iter_no_change=10**9,
                alpha=0.0,
                random_state=0,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.fit(X, y)

        runs["sklearn"] = sklearn_run
    return runs


def bench_memory(n: int) -> str:
    X, y = make_dataset("blobs", n, n_classes=2, n_features=20, noise=2.0, rng=np.random.default_rng(0))
    X = X.astype(np.float32)
    arch = build_architecture(
        "mlp", 20, 1, hidden_layers=[64, 64], activation="relu", output_activation="sigmoid"
    )
    config = FitConfig(
        epochs=1,
        optimizer="adam",
        learning_rate=1e-3,
        batch_size=256,
        dtype="float32",
        validation_fraction=0.2,
    )
    tracemalloc.start()
    fit(arch, X, y, config, np.random.default_rng(0))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    copies = 1 + peak / X.nbytes  # the caller's X plus what training allocated at its peak
    return (
        f"| memory: MLP training on {n:,} × 20 float32 (X = {X.nbytes / 2**20:.1f} MiB), validation 20% | "
        f"peak {peak / 2**20:.1f} MiB allocated | {copies:.2f} copies of X | | ≤ ~3 copies |"
    )


def machine() -> str:
    blas = [f"{i['internal_api']} {i.get('version')} ({i.get('architecture')})" for i in threadpool_info()]
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    torch_version = "not installed"
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, NumPy {np.__version__}, "
        f"BLAS: {'; '.join(blas)}; PyTorch {torch_version}; one BLAS thread"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    n = 10_000 if args.quick else 100_000
    print(f"Machine: {machine()}\n")
    print("| benchmark | Descent | reference | ratio | target |")
    print("|---|---|---|---|---|")
    with threadpool_limits(1):
        for row in bench_logistic(n, epochs=20 if args.quick else 50, repeats=3 if args.quick else 7):
            print(row, flush=True)
        for batch, torch_target, sk_target in ((256, 2.0, 2.5), (32, 3.5, None)):
            res = side_by_side(mlp_runs(n, batch), repeats=3 if args.quick else 5)
            engine, engine_cpu = res.pop("engine")
            for ref, (wall, cpu) in res.items():
                target = torch_target if ref == "pytorch" else sk_target
                goal = f"≥ {target}× faster" if target else "(no target)"
                print(
                    f"| MLP 20→64→64→1 ReLU Adam, N={n:,}, float32, batch {batch}, per epoch | "
                    f"{engine:.3f} s (CPU {engine_cpu:.3f} s) | {wall:.3f} s (CPU {cpu:.3f} s) ({ref}) | "
                    f"{wall / engine:.2f}× faster (CPU {cpu / engine_cpu:.2f}×) | {goal} |",
                    flush=True,
                )
        print(bench_memory(n))


if __name__ == "__main__":
    main()
