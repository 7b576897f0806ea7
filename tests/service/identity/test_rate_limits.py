"""Rate limits through the API: a token bucket per key, 429 with Retry-After and RateLimit headers until it
refills; a bucket of failed authentications per client address; in process (embedded), and in Redis where
two API processes (Celery runner) share each bucket."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from service.errors import InvalidInput
from service.services import identity
from tests.deploy.stack import RedisServer
from tests.processes import wait_until
from tests.service.conftest import Client, assert_problem, make_settings
from tests.service.identity.conftest import Keys, make_keys
from tests.service.test_jobs_e2e import ServiceProcess
from tests.timing import REQUEST_S, limit


def assert_rate_limited(response: httpx.Response, burst: int, *fragments: str) -> int:
    """A 429 of a token bucket of ``burst``; its Retry-After."""
    body = assert_problem(response, 429, f"{burst} at once", *fragments)
    assert body["type"] == "urn:descent:problem:rate-limited"
    retry_after = int(response.headers["retry-after"])
    assert retry_after >= 1
    assert response.headers["ratelimit-limit"] == str(burst)
    assert response.headers["ratelimit-remaining"] == "0"
    assert int(response.headers["ratelimit-reset"]) >= retry_after
    return retry_after


def get_from(client: Client, address: str, path: str, **kwargs: Any) -> httpx.Response:
    """A request to the client's app from another client address."""

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=client.app, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
            return await other.get(path, **kwargs)

    result: httpx.Response = client.run(call())
    return result


def test_a_key_over_its_bucket_gets_429_until_it_refills(keyed: Callable[..., Client]) -> None:
    # A bucket of 3 refilled at 1/second; alice's key has its own rate, and with it its own burst (5).
    client = keyed(rate_limit="1/second", rate_limit_burst=3)
    keys: Keys = make_keys(client, rate_limit="5/minute")
    bob = Keys.header(keys.bob)
    # Bob's burst of 3 goes through (unless a token comes back meanwhile, on a slow machine: then the
    # bucket is left to fill and the burst taken again).
    for _ in range(5):
        start = time.monotonic()
        answers = [client.get("/v1/datasets", headers=bob) for _ in range(4)]
        if time.monotonic() - start < 1:
            break
        time.sleep(3)
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    assert [a.headers["ratelimit-remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert [a.headers["ratelimit-limit"] for a in answers[:3]] == ["3", "3", "3"]
    assert answers[0].headers["ratelimit-policy"] == "1;w=1;burst=3"
    assert 1 <= int(answers[0].headers["ratelimit-reset"]) <= int(answers[2].headers["ratelimit-reset"]) <= 3
    assert assert_rate_limited(answers[3], 3, "the API key has used up its requests", "1/second") == 1
    # Others are not affected, and the key gets its tokens back.
    alice = Keys.header(keys.alice)
    assert [client.get("/v1/datasets", headers=alice).status_code for _ in range(5)] == [200] * 5
    assert 1 <= assert_rate_limited(client.get("/v1/datasets", headers=alice), 5, "5/minute") <= 12
    assert client.get("/v1/datasets", headers=Keys.header(keys.admin)).status_code == 200
    wait_until(
        lambda: client.get("/v1/datasets", headers=bob).status_code == 200,
        limit(10),
        "bob's bucket to refill",
        interval=0.25,
    )


def test_retry_after_is_the_time_until_one_token(keyed: Callable[..., Client]) -> None:
    client = keyed(rate_limit="1/minute", rate_limit_burst=2)
    bob = Keys.header(make_keys(client).bob)
    assert [client.get("/v1/usage", headers=bob).status_code for _ in range(2)] == [200, 200]
    refused = client.get("/v1/usage", headers=bob)
    retry_after = assert_rate_limited(refused, 2)
    assert retry_after <= 60
    # The bucket is full again one token (60 s) after it has one.
    assert int(refused.headers["ratelimit-reset"]) - retry_after == 60
    assert refused.headers["ratelimit-policy"] == "1;w=60;burst=2"


def test_failed_authentications_are_limited_per_client_address(keyed: Callable[..., Client]) -> None:
    # A bucket of 3 failures per address, refilled at 3/minute; keys checked once are trusted for a minute.
    client = keyed(auth_failure_rate_limit="3/minute", key_cache_s=60)
    keys: Keys = make_keys(client)
    alice, bob = Keys.header(keys.alice), Keys.header(keys.bob)
    assert client.get("/v1/usage", headers=alice).status_code == 200  # now trusted by this process
    failures = [
        client.get("/v1/usage"),  # no key
        client.get("/v1/usage", headers={"Authorization": "Bearer not-a-key"}),
        client.get("/v1/usage", headers=Keys.header(identity.generate()[1])),  # unknown
        client.get("/v1/usage", headers=Keys.header(keys.revoked)),
    ]
    for answer in failures[:3]:
        assert_problem(answer, 401)
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert answer.headers["ratelimit-policy"] == "3;w=60;burst=3"
    assert [a.headers["ratelimit-remaining"] for a in failures[:3]] == ["2", "1", "0"]
    retry_after = assert_rate_limited(
        failures[3], 3, "too many failed authentications from this client address"
    )
    assert retry_after <= 20
    # From this address, no key is looked at any more, a valid one included, until a token comes back...
    assert_rate_limited(client.get("/v1/usage", headers=bob), 3, "failed authentications")
    # ...but a key this process already trusts still works, and takes no failure token.
    assert client.get("/v1/usage", headers=alice).status_code == 200
    # Another address has its own bucket.
    assert_problem(get_from(client, "10.0.0.2", "/v1/usage"), 401)
    assert get_from(client, "10.0.0.2", "/v1/usage", headers=bob).status_code == 200
    # IPv6 addresses count by their /64 network.
    for host in ("2001:db8::1", "2001:db8::2", "2001:db8::3"):
        assert get_from(client, host, "/v1/usage").status_code == 401
    assert get_from(client, "2001:db8::4", "/v1/usage").status_code == 429
    assert get_from(client, "2001:db8:0:1::1", "/v1/usage").status_code == 401


def test_the_failure_bucket_can_be_turned_off(keyed: Callable[..., Client]) -> None:
    client = keyed(auth_failure_rate_limit="")
    answers = [client.get("/v1/usage") for _ in range(30)]
    assert {a.status_code for a in answers} == {401}
    assert "ratelimit-limit" not in answers[-1].headers


def test_a_keys_burst_is_checked(keyed: Callable[..., Client]) -> None:
    client = keyed()
    with pytest.raises(InvalidInput, match="rate_limit_burst must be a non-negative number"):
        identity.create(client.app.state.store, owner="alice", limits={"rate_limit_burst": -1})
    with pytest.raises(ValidationError, match="DESCENT_AUTH_FAILURE_RATE_LIMIT must look like"):
        make_settings(Path(), auth_failure_rate_limit="ten a minute")


def test_the_embedded_runner_keeps_buckets_in_process(keyed: Callable[..., Client]) -> None:
    client = keyed()
    assert client.app.state.settings.rate_limit_storage == "memory://"


def test_two_api_processes_share_one_bucket_in_redis(tmp_path: Path, redis_server: RedisServer) -> None:
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
            assert remaining.headers["ratelimit-policy"] == "6;w=60;burst=6"
        # The buckets are in Redis, under the key's id (never the key).
        stored = [name.decode() for name in redis_server.client().keys("*")]
        assert any("key_" + key[4:28] in name for name in stored), stored
        assert not any(key[28:] in name for name in stored)
