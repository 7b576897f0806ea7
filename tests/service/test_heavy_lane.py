"""The heavy lane of a real ``descent serve`` (full, it answers 503 with Retry-After; large answers come
from a file), and the priority of its worker processes and of the job workers."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from service.http import offload
from tests.processes import wait_until
from tests.service.test_jobs_e2e import ServiceProcess
from tests.timing import REQUEST_S


def _gradients_body(rows: int, features: int) -> bytes:
    rng = np.random.default_rng(0)
    return orjson.dumps(
        {
            "model": {"type": "logistic_regression", "weights": rng.normal(size=features), "bias": 0.0},
            "X": rng.normal(size=(rows, features)),
            "y": (rng.random(rows) > 0.5).astype(np.int64),
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


@pytest.mark.parametrize("mode", ["processes", "threads"])
def test_a_full_lane_answers_503_with_retry_after(tmp_path: Path, mode: str) -> None:
    # One slot and no waiting line: a heavy request that arrives while another is computed is refused.
    raw = _gradients_body(20_000, 20)
    headers = {"content-type": "application/json"}
    refused: list[httpx.Response] = []
    with (
        ServiceProcess(
            tmp_path, workers=0, compute_threads=1, heavy_lane_queue=0, heavy_lane_mode=mode
        ) as service,
        httpx.Client(base_url=service.url, timeout=120) as client,
        ThreadPoolExecutor(4) as pool,
    ):
        for _ in range(20):
            answers = list(
                pool.map(lambda _: client.post("/v1/gradients", content=raw, headers=headers), range(4))
            )
            # Every request is either computed or refused by the lane; nothing else.
            assert {a.status_code for a in answers} <= {200, 503}, [a.text[:300] for a in answers]
            assert any(a.status_code == 200 for a in answers)
            refused += [a for a in answers if a.status_code == 503]
            if refused:
                break
        assert refused, "four simultaneous heavy requests never met a busy lane"
        answer = refused[0]
        assert answer.headers["content-type"] == "application/problem+json"
        assert int(answer.headers["retry-after"]) >= 1
        body = answer.json()
        assert body["type"] == "urn:descent:problem:heavy-lane-full"
        assert body["status"] == 503
        assert "DESCENT_COMPUTE_THREADS" in body["detail"] and "DESCENT_HEAVY_LANE_QUEUE" in body["detail"]
        # The lane is free again once the work is done: the same request is computed.
        assert client.post("/v1/gradients", content=raw, headers=headers).status_code == 200
        metrics = client.get("/metrics").text
        assert "descent_heavy_lane_busy 0" in metrics and "descent_heavy_lane_waiting 0" in metrics
        # A refusal leaves the lane whole: more requests, computed or refused, never a server error.
        for _ in range(3):
            answers = list(
                pool.map(lambda _: client.post("/v1/gradients", content=raw, headers=headers), range(4))
            )
            assert {a.status_code for a in answers} <= {200, 503}, [a.text[:300] for a in answers]


def _niceness(pid: int) -> int:
    # /proc/PID/stat: the fields after the command name's last ')' start with the state (field 3);
    # the nice value is field 19.
    return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[16])


def test_heavy_work_runs_in_worker_processes_below_the_api_process(tmp_path: Path) -> None:
    # When the cores are busy, the event loop (health checks, small requests) is scheduled first.
    raw = _gradients_body(2_000, 5)
    with ServiceProcess(tmp_path, workers=0, heavy_lane_mode="processes") as service:
        answer = httpx.post(
            service.url + "/v1/gradients",
            content=raw,
            headers={"content-type": "application/json"},
            timeout=120,
        )
        assert answer.status_code == 200, answer.text
        lane_workers = [pid for pid, cmdline in service.children() if "anyio" in cmdline]
        assert lane_workers, service.children()
        assert all(_niceness(pid) > _niceness(service.pid) for pid in lane_workers)


def test_a_lost_worker_process_costs_one_request_a_503_and_nothing_more(tmp_path: Path) -> None:
    # kill -9 of the lane's worker process while it computes: that request gets 503 worker-lost with
    # Retry-After, never a 500, and the next request is computed by a fresh worker process.
    raw = _gradients_body(100_000, 20)
    headers = {"content-type": "application/json"}
    with (
        ServiceProcess(tmp_path, workers=0, compute_threads=1, heavy_lane_mode="processes") as service,
        httpx.Client(base_url=service.url, timeout=300) as client,
        ThreadPoolExecutor(1) as pool,
    ):
        assert client.post("/v1/gradients", content=raw, headers=headers).status_code == 200  # warm-up
        lost = None
        for _ in range(10):
            pending = pool.submit(client.post, "/v1/gradients", content=raw, headers=headers)
            wait_until(
                lambda pending=pending: (
                    "descent_heavy_lane_busy 1" in client.get("/metrics").text or pending.done()
                ),
                REQUEST_S,
                "a heavy request being computed",
            )
            for pid, cmdline in service.children():
                if "anyio" in cmdline:
                    os.kill(pid, signal.SIGKILL)
            answer = pending.result()
            assert answer.status_code in {200, 503}, answer.text
            if answer.status_code == 503:
                lost = answer
                break
        assert lost is not None, "the worker process never died while it computed"
        assert lost.headers["content-type"] == "application/problem+json"
        assert lost.json()["type"] == "urn:descent:problem:worker-lost"
        assert int(lost.headers["retry-after"]) >= 1
        assert client.post("/v1/gradients", content=raw, headers=headers).status_code == 200


def test_a_large_answer_of_a_worker_process_is_sent_from_a_file_that_is_gone_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A few MB of JSON: the worker writes it to the lane's folder and the API sends it from there in
    # chunks; no file stays behind, and the folder goes when the service stops.
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    x = np.random.default_rng(0).normal(size=200_000)
    with ServiceProcess(tmp_path, workers=0, heavy_lane_mode="processes") as service:
        answer = httpx.post(
            service.url + "/v1/activations/sigmoid",
            content=orjson.dumps({"x": x}, option=orjson.OPT_SERIALIZE_NUMPY),
            headers={"content-type": "application/json"},
            timeout=120,
        )
        assert answer.status_code == 200, answer.text
        assert int(answer.headers["content-length"]) == len(answer.content) > offload.SPOOL_BYTES
        np.testing.assert_allclose(answer.json()["y"], 1 / (1 + np.exp(-x)), rtol=1e-12)
        (folder,) = temp.glob("descent-answers-*")
        assert list(folder.iterdir()) == []
    assert list(temp.glob("descent-answers-*")) == []


def test_job_workers_run_below_the_api_process(tmp_path: Path) -> None:
    # Training is batch work: when the cores are busy, the event loop is scheduled before it.
    with ServiceProcess(tmp_path, workers=2) as service:
        wait_until(lambda: len(service.worker_pids()) == 2, REQUEST_S, "two job workers")
        wait_until(
            lambda: all(_niceness(pid) > _niceness(service.pid) for pid in service.worker_pids()),
            REQUEST_S,
            "job workers below the API process",
        )


def test_a_large_answer_comes_back_as_bytes_when_it_cannot_be_written_to_a_file(tmp_path: Path) -> None:
    # The lane's folder gone (at shutdown) or a full disk: the worker answers the bytes themselves.
    body = {"y": list(range(offload.SPOOL_BYTES // 4))}
    kind, answer = offload._run_encoded(lambda _: body, b"{}", offload.Exchange(), str(tmp_path / "gone"))
    assert kind == "application/json"
    assert isinstance(answer, bytes) and orjson.loads(answer) == body
    kind, spooled = offload._run_encoded(lambda _: body, b"{}", offload.Exchange(), str(tmp_path))
    assert isinstance(spooled, offload.Spooled) and Path(spooled.path).parent == tmp_path
    assert orjson.loads(Path(spooled.path).read_bytes()) == body
