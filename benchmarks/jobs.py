"""Training jobs through the API against the engine called directly, in the same run.

Starts `descent serve` (embedded runner, its default worker pool, a fresh SQLite file) on 127.0.0.1
and measures:
- a ~5 s and a ~0.2 s training run: the job's time from creation to its end (the store's timestamps),
  against `engine.training.fit` on the same data and configuration in this process, one BLAS thread
  (targets ≤ 1.10× and ≤ 1.5×);
- submit → running latency on an idle service, 20 jobs one after another (target p50 ≤ 50 ms);
- the throughput of 200 tiny jobs submitted at once.

Run: python benchmarks/jobs.py. Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.datasets import make_dataset  # noqa: E402
from engine.models import build_architecture  # noqa: E402
from engine.training import FitConfig, fit  # noqa: E402

GENERATOR = {"kind": "spiral", "n_samples": 3000, "noise": 0.2, "n_classes": 3, "seed": 1}
MODEL = {"type": "mlp", "hidden_layers": [64, 64], "activation": "relu"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def wait(client: httpx.Client, job_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        # The timings come from the store's timestamps; a gentle poll keeps this client off the CPU.
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} did not finish in {timeout} s")


def engine_seconds(epochs: int) -> float:
    X, y = make_dataset(
        "spiral", GENERATOR["n_samples"], noise=GENERATOR["noise"], n_classes=3, rng=np.random.default_rng(1)
    )
    arch = build_architecture(
        "mlp", 2, 3, hidden_layers=[64, 64], activation="relu", output_activation="softmax"
    )
    config = FitConfig(epochs=epochs, optimizer="adam", learning_rate=0.01, batch_size=64)
    with threadpool_limits(1):
        t0 = time.perf_counter()
        fit(arch, X, y, config, np.random.default_rng(7))
        return time.perf_counter() - t0


def job_config(dataset_id: str, epochs: int) -> dict[str, Any]:
    return {
        "dataset_id": dataset_id,
        "model": MODEL,
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "epochs": epochs,
        "batch_size": 64,
        "seed": 7,
    }


def main() -> None:
    # Calibrate the epochs for ~5 s and ~0.2 s of engine time.
    per_epoch = engine_seconds(20) / 20
    long_epochs, short_epochs = max(1, round(5.0 / per_epoch)), max(1, round(0.2 / per_epoch))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {
            **os.environ,
            "DESCENT_PORT": str(port),
            "DESCENT_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "DESCENT_LOG_LEVEL": "warning",
            "DESCENT_MAX_QUEUED_JOBS": "1000",
        }
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "descent"), "serve"], env=env, start_new_session=True
        )
        try:
            client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
            for _ in range(300):
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            ds = client.post("/v1/datasets", json={"name": "spiral", "generator": GENERATOR}).json()["id"]
            for label, epochs, target in (("~5 s", long_epochs, 1.10), ("~0.2 s", short_epochs, 1.5)):
                direct = engine_seconds(epochs)
                job = wait(client, client.post("/v1/jobs", json=job_config(ds, epochs)).json()["id"])
                through_api = ts(job["finished_at"]) - ts(job["created_at"])
                rows.append(
                    f"| training run {label} ({epochs} epochs, MLP 2→64→64→3, 3,000 samples, batch 64) | "
                    f"{through_api:.3f} s through the API | {direct:.3f} s engine.fit | "
                    f"{through_api / direct:.2f}× | ≤ {target}× |"
                )
            latencies = []
            for _ in range(20):
                job = wait(client, client.post("/v1/jobs", json=job_config(ds, 1)).json()["id"])
                latencies.append((ts(job["started_at"]) - ts(job["created_at"])) * 1000)
            p50 = statistics.median(latencies)
            rows.append(
                f"| submit → running, idle service, 20 jobs | p50 {p50:.1f} ms "
                f"(max {max(latencies):.1f} ms) | | | p50 ≤ 50 ms |"
            )
            t0 = time.perf_counter()
            ids = [client.post("/v1/jobs", json=job_config(ds, 1)).json()["id"] for _ in range(200)]
            done = [wait(client, job_id) for job_id in ids]
            elapsed = time.perf_counter() - t0
            ok = sum(job["status"] == "succeeded" for job in done)
            rows.append(
                f"| 200 tiny jobs (1 epoch) submitted at once | {elapsed:.1f} s, "
                f"{200 / elapsed:.1f} jobs/s, {ok}/200 succeeded | | | |"
            )
        finally:
            server.terminate()
            server.wait(30)
    print("| benchmark | Descent | reference | ratio | target |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
