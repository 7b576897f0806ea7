"""The heavy lane of a real ``descent serve``: full, it answers 503 with Retry-After."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import orjson

from tests.service.test_jobs_e2e import ServiceProcess


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


def test_a_full_lane_answers_503_with_retry_after(tmp_path: Path) -> None:
    # One slot and no waiting line: a heavy request that arrives while another is computed is refused.
    raw = _gradients_body(20_000, 20)
    headers = {"content-type": "application/json"}
    refused: list[httpx.Response] = []
    with (
        ServiceProcess(tmp_path, workers=0, compute_threads=1, heavy_lane_queue=0) as service,
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
