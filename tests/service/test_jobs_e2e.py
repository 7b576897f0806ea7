"""Training jobs end to end: a real ``descent serve`` (uvicorn, worker processes) on 127.0.0.1.

:class:`ServiceProcess` starts the service in a process group of its own on a free port with a
SQLite file, waits for /readyz, and stops it with SIGTERM or kills the whole group with SIGKILL; the
durability tests reuse it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.processes import Process, free_port, group_members, wait_until
from tests.timing import JOB_S, REQUEST_S, STARTUP_S

pytestmark = pytest.mark.e2e

BIN_DIR = Path(sys.executable).parent


class ServiceProcess:
    """``descent serve`` against the SQLite file ``workdir/descent.db``; restartable on the same database.

    Parameters
    ----------
    workdir : Path
        Holds the database and the log file.
    **settings : str or number
        Extra ``DESCENT_*`` settings by lower-case name, e.g. ``workers=2``.
    """

    def __init__(self, workdir: Path, **settings: Any) -> None:
        self.workdir = workdir
        self.settings = {
            "database_url": f"sqlite:///{workdir / 'descent.db'}",
            "workers": 1,
            "progress_interval_s": 0.05,
            "checkpoint_interval_s": 0.2,
            # Workers stop at their next epoch; the grace only bounds a worker that does not.
            "shutdown_grace_s": STARTUP_S / 2,
            "log_level": "warning",
            **settings,
        }
        self.log_path = workdir / "service.log"
        self.process: Process | None = None
        self.url = ""

    @property
    def pid(self) -> int:
        assert self.process is not None, "the service is not started"
        return self.process.pid

    def start(self, *, same_port: bool = False) -> ServiceProcess:
        """Start the service on a free port, or (``same_port``) on the one it had: a restart in place."""
        port = int(self.url.rsplit(":", 1)[1]) if same_port and self.url else free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, **{f"DESCENT_{k.upper()}": str(v) for k, v in self.settings.items()}}
        env.update(DESCENT_HOST="127.0.0.1", DESCENT_PORT=str(port))
        # A process group of its own: the workers are killed with it.
        self.process = Process(
            "descent serve",
            [str(BIN_DIR / "descent"), "serve"],
            env=env,
            cwd=self.workdir,
            log_path=self.log_path,
        )
        self.process.start()
        self.process.wait_for_http(self.url + "/readyz", STARTUP_S)
        return self

    def kill_group(self) -> None:
        """kill -9 of the service and every process of its group (workers included)."""
        self._end(graceful=False)

    def stop(self) -> None:
        """SIGTERM (a graceful shutdown), then kill -9 of the group if it lingers."""
        self._end(graceful=True)

    def _end(self, *, graceful: bool) -> None:
        if self.process is None:
            return
        pgid = self.process.pid
        if graceful:
            self.process.stop(timeout=STARTUP_S)
        else:
            self.process.kill()
        # Workers are reparented once the service dies; wait until none of the group is left.
        wait_until(lambda: not group_members(pgid), STARTUP_S, "the killed process group to vanish")
        self.process = None

    def children(self) -> list[tuple[int, str]]:
        """(pid, command line) of the service's child processes."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            # The command name may hold spaces and parentheses: the fields after it follow the last ')'.
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.pid:
                found.append((int(entry.name), cmdline))
        return found

    def worker_pids(self) -> list[int]:
        return [pid for pid, cmdline in self.children() if "spawn_main" in cmdline]

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServiceProcess]:
    with ServiceProcess(tmp_path) as running:
        yield running


def parse_sse(text: str) -> list[tuple[int, str, dict[str, Any]]]:
    """The events of a complete SSE body as (id, event, data); comments are skipped."""
    events = []
    for block in text.split("\n\n"):
        fields = dict(
            line.partition(": ")[::2] for line in block.splitlines() if line and not line.startswith(":")
        )
        if fields:
            events.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
    return events


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = JOB_S) -> dict[str, Any]:
    """Poll until the job is terminal; fail with its last state otherwise."""
    last: dict[str, Any] = {}

    def terminal() -> bool:
        nonlocal last
        last = client.get(f"/v1/jobs/{job_id}").json()
        return last["status"] in ("succeeded", "failed", "cancelled")

    try:
        wait_until(terminal, timeout, f"job {job_id} to finish", interval=0.1)
    except TimeoutError as exc:
        pytest.fail(f"{exc}; last seen: {last}")
    return last


def stream_events(stream: httpx.Response) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """The events of a server-sent event stream as (id, event, data), each as soon as it is read."""
    fields: dict[str, str] = {}
    for line in stream.iter_lines():
        if line.startswith(":"):
            continue  # a keep-alive comment
        if line:
            name, _, value = line.partition(": ")
            fields[name] = value
        elif fields:
            yield int(fields["id"]), fields["event"], json.loads(fields["data"])
            fields = {}


def test_dataset_job_events_and_prediction_over_http(service: ServiceProcess) -> None:
    with httpx.Client(base_url=service.url, timeout=REQUEST_S) as client:
        spec = {"kind": "xor", "n_samples": 400, "noise": 0.0, "seed": 0}
        dataset = client.post("/v1/datasets", json={"name": "xor", "generator": spec})
        assert dataset.status_code == 201, dataset.text
        body = {
            "dataset_id": dataset.json()["id"],
            "model": {"type": "mlp", "hidden_layers": [16], "activation": "tanh"},
            "optimizer": {"name": "adam", "learning_rate": 0.05},
            "batch_size": 400,
            # Long enough (about a second) for several progress events at the test's 0.05 s interval.
            "epochs": 8000,
            "seed": 0,
        }
        created = client.post("/v1/jobs", json=body)
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]
        assert created.headers["location"] == f"/v1/jobs/{job_id}"

        with client.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            events = list(stream_events(stream))
        # The server closed the stream after 'end' (iter_lines returned on its own).
        assert events[-1][1] == "end"
        ids = [event_id for event_id, _, _ in events]
        assert ids == sorted(set(ids))
        progress = [data["epoch"] for _, kind, data in events if kind == "progress"]
        assert len(progress) >= 3 and progress == sorted(progress) and progress[-1] == 8000

        job = wait_for_job(client, job_id)
        assert job["status"] == "succeeded" and events[-1][2]["model_id"] == job["model_id"]
        prediction = client.post(
            f"/v1/models/{job['model_id']}/predict", json={"dataset_id": dataset.json()["id"]}
        )
        assert prediction.status_code == 200, prediction.text
        labels = client.get(f"/v1/datasets/{dataset.json()['id']}/data").json()["y"]
        accuracy = float(np.mean(np.asarray(prediction.json()["predictions"]) == np.asarray(labels)))
        assert accuracy >= 0.98


def test_events_arrive_while_the_job_runs(service: ServiceProcess) -> None:
    with httpx.Client(base_url=service.url, timeout=REQUEST_S) as client:
        body = {
            "dataset": {"generator": {"kind": "moons", "n_samples": 200, "noise": 0.2, "seed": 1}},
            "model": {"type": "logistic_regression"},
            "optimizer": {"name": "sgd", "learning_rate": 0.1},
            "batch_size": 8,
            # Far more than the test waits for: the job ends when the test cancels it, not before.
            "epochs": 1_000_000,
            "seed": 2,
        }
        job_id = client.post("/v1/jobs", json=body).json()["id"]
        events: list[tuple[int, str, dict[str, Any]]] = []
        with client.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
            assert stream.status_code == 200
            for event in stream_events(stream):
                events.append(event)
                if event[1] == "progress" and sum(kind == "progress" for _, kind, _ in events) == 3:
                    # Three progress events came through a stream still open on a running job.
                    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "running"
                    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
        # After the cancel, the same stream carried the rest, to the end.
        assert [data["status"] for _, kind, data in events if kind == "status"][-1] == "cancelled"
        assert events[-1][1] == "end" and events[-1][2]["status"] == "cancelled"
        assert [event_id for event_id, _, _ in events] == sorted({event_id for event_id, _, _ in events})
        epochs = [data["epoch"] for _, kind, data in events if kind == "progress"]
        assert len(epochs) >= 3 and epochs == sorted(epochs) and epochs[-1] < 1_000_000


def test_a_graceful_restart_requeues_a_running_job_which_then_resumes(tmp_path: Path) -> None:
    service = ServiceProcess(tmp_path).start()
    try:
        with httpx.Client(base_url=service.url, timeout=REQUEST_S) as client:
            body = {
                "dataset": {"generator": {"kind": "moons", "n_samples": 200, "noise": 0.2, "seed": 1}},
                "model": {"type": "mlp", "hidden_layers": [8], "activation": "tanh"},
                "optimizer": {"name": "sgd", "learning_rate": 0.1},
                "batch_size": 4,
                "epochs": 600,
                "seed": 5,
            }
            job_id = client.post("/v1/jobs", json=body).json()["id"]
            wait_until(
                lambda: client.get(f"/v1/jobs/{job_id}").json()["progress"]["epoch"] >= 20,
                JOB_S,
                "the job to make progress",
            )
        service.stop()  # SIGTERM: the worker checkpoints and gives the job back to the queue
        service.start()
        with httpx.Client(base_url=service.url, timeout=REQUEST_S) as client:
            job = wait_for_job(client, job_id)
            assert job["status"] == "succeeded", job
            assert job["attempt"] == 2
            history = client.get(f"/v1/jobs/{job_id}/metrics").json()
            assert history["epochs"] == list(range(1, 601))
            events = parse_sse(client.get(f"/v1/jobs/{job_id}/events").text)
            statuses = [data for _, kind, data in events if kind == "status"]
            assert {"status": "queued", "attempt": 1, "reason": "shutdown"} in statuses
            # The second run started from the checkpoint taken at shutdown, not from epoch 0.
            second = [
                i for i, (_, kind, data) in enumerate(events) if kind == "status" and data["attempt"] == 2
            ]
            first_progress = next(data for _, kind, data in events[second[0] :] if kind == "progress")
            before = max(data["epoch"] for _, kind, data in events[: second[0]] if kind == "progress")
            assert first_progress["epoch"] > before
    finally:
        service.stop()
