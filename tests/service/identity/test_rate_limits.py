"""Rate limits per key: 429 with Retry-After and RateLimit headers, recovered once the window moves on;
in process (embedded), and in Redis where two API processes (Celery runner) share one budget."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from service.services import identity
from tests.deploy.stack import RedisServer
from tests.processes import wait_until
from tests.service.conftest import Client, assert_problem
from tests.service.identity.conftest import Keys, make_keys
from tests.service.test_jobs_e2e import ServiceProcess
from tests.timing import REQUEST_S, limit


def assert_rate_limited(response: httpx.Response, limit_: int) -> int:
    body = assert_problem(response, 429, f"more than {limit_} requests")
    assert body["type"] == "urn:descent:problem:rate-limited"
    retry_after = int(response.headers["retry-after"])
    assert retry_after >= 1
    assert response.headers["ratelimit-limit"] == str(limit_)
    assert response.headers["ratelimit-remaining"] == "0"
    return retry_after


def test_a_key_over_its_rate_gets_429_until_the_window_moves_on(keyed: Callable[..., Client]) -> None:
    client = keyed(rate_limit="3/second")
    keys: Keys = make_keys(client, rate_limit="5/minute")  # alice's key has its own rate
    bob = Keys.header(keys.bob)
    # Bob's budget of 3 per second: one burst of 3 goes through (unless the second turns meanwhile, on a
    # slow machine: then the burst is simply taken again).
    for _ in range(5):
        start = time.monotonic()
        answers = [client.get("/v1/datasets", headers=bob) for _ in range(4)]
        if time.monotonic() - start < 1:
            break
        time.sleep(1)
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    assert [a.headers["ratelimit-remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert answers[0].headers["ratelimit-policy"] == "3;w=1"
    assert_rate_limited(answers[3], 3)
    # Others are not affected, and the key gets its budget back.
    alice = Keys.header(keys.alice)
    assert [client.get("/v1/datasets", headers=alice).status_code for _ in range(5)] == [200] * 5
    assert_rate_limited(client.get("/v1/datasets", headers=alice), 5)
    wait_until(
        lambda: client.get("/v1/datasets", headers=bob).status_code == 200,
        limit(10),
        "bob's budget to refill",
        interval=0.25,
    )
    # Requests without a key never reach the limiter: they are 401 however many there are.
    assert all(client.get("/v1/datasets").status_code == 401 for _ in range(5))


def test_the_embedded_runner_keeps_counters_in_process(keyed: Callable[..., Client]) -> None:
    client = keyed()
    assert client.app.state.settings.rate_limit_storage == "memory://"


def test_two_api_processes_share_one_budget_in_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    key = identity.generate()[1]
    settings = {
        "auth": "keys",
        "bootstrap_key": key,
        "runner": "celery",
        "broker_url": redis_server.url,
        "rate_limit": "6/minute",
        "workers": 0,
        "database_url": f"sqlite:///{tmp_path / 'descent.db'}",
    }
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    with (
        ServiceProcess(tmp_path / "one", **settings) as one,
        ServiceProcess(tmp_path / "two", **settings) as two,
    ):
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(timeout=REQUEST_S, headers=headers) as http:
            statuses = [http.get(f"{url}/v1/usage").status_code for url in [one.url, two.url] * 3]
            assert statuses == [200] * 6
            remaining = http.get(f"{two.url}/v1/usage")
            assert_rate_limited(remaining, 6)
            assert_rate_limited(http.get(f"{one.url}/v1/usage"), 6)
        # The counters are in Redis, under the key's id (never the key).
        stored = [name.decode() for name in redis_server.client().keys("*")]
        assert any("key_" + key[4:28] in name for name in stored), stored
        assert not any(key[28:] in name for name in stored)
