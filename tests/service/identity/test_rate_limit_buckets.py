"""The token buckets themselves (``service.http.ratelimit``): a burst, then the steady rate, Retry-After the
time until one token, RateLimit numbers from the bucket; in memory on an injected clock, and in Redis
(Redis's own clock) shared by two limiters as by two API replicas."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
import throttled.utils

from service.http.ratelimit import KEY_PREFIX, RateLimiter, Verdict, policy
from tests.deploy.stack import RedisServer, free_port
from tests.timing import limit


class FakeClock:
    """The monotonic clock the in-memory store reads, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    # The in-memory store reads time through this one function (the buckets and their expiry alike).
    monkeypatch.setattr(throttled.utils, "now_mono_f", fake)
    return fake


@pytest.fixture
def memory() -> Iterator[RateLimiter]:
    limiter = RateLimiter("memory://")
    yield limiter
    asyncio.run(limiter.close())


def take(limiter: RateLimiter, subject: str, rate: str, burst: int = 0) -> Verdict:
    verdict = asyncio.run(limiter.take(subject, policy(rate, burst)))
    assert verdict is not None
    return verdict


def test_a_bucket_admits_its_burst_then_its_rate(memory: RateLimiter, clock: FakeClock) -> None:
    # 2/second with a bucket of 4: 4 at once, then one every 0.5 s.
    burst = [take(memory, "k", "2/second", 4) for _ in range(5)]
    assert [v.limited for v in burst] == [False] * 4 + [True]
    assert [v.remaining for v in burst] == [3, 2, 1, 0, 0]
    assert [v.reset_s for v in burst] == [1, 1, 2, 2, 2]  # until the bucket is full again
    assert burst[-1].retry_after_s == 1  # one token in 0.5 s, in whole seconds
    assert [v.retry_after_s for v in burst[:4]] == [0] * 4

    clock.advance(0.25)
    assert take(memory, "k", "2/second", 4).limited
    clock.advance(0.25)
    assert not take(memory, "k", "2/second", 4).limited  # the first token is back
    assert take(memory, "k", "2/second", 4).limited

    # The steady rate: a request every 1/8 s for 10 s gets exactly 2 per second through.
    admitted = 0
    for _ in range(80):
        clock.advance(0.125)
        admitted += not take(memory, "k", "2/second", 4).limited
    assert admitted == 20

    # Idle long enough, the bucket is full again, and no fuller.
    clock.advance(60)
    assert [take(memory, "k", "2/second", 4).limited for _ in range(5)] == [False] * 4 + [True]
    # Another subject has a bucket of its own.
    assert take(memory, "other", "2/second", 4).remaining == 3


def test_retry_after_is_the_time_until_one_token(memory: RateLimiter, clock: FakeClock) -> None:
    # 1/minute, a bucket of 2: after 2 requests the next token is a minute away, the full bucket two.
    assert [take(memory, "k", "1/minute", 2).limited for _ in range(2)] == [False, False]
    refused = take(memory, "k", "1/minute", 2)
    assert (refused.limited, refused.retry_after_s, refused.reset_s, refused.remaining) == (True, 60, 120, 0)
    clock.advance(59.5)
    refused = take(memory, "k", "1/minute", 2)
    assert (refused.limited, refused.retry_after_s) == (True, 1)  # 0.5 s, rounded up
    clock.advance(0.5)
    assert not take(memory, "k", "1/minute", 2).limited
    # The refusal names the bucket, and carries its headers.
    refusal = take(memory, "k", "1/minute", 2).refusal("the API key has used up its requests")
    assert refusal.status == 429 and refusal.retry_after == 60
    assert (
        refusal.detail == "the API key has used up its requests: 2 at once, then 1/minute; retry after 60 s"
    )
    assert refusal.headers == {
        "Retry-After": "60",
        "ratelimit-limit": "2",
        "ratelimit-remaining": "0",
        "ratelimit-reset": "120",
        "ratelimit-policy": "1;w=60;burst=2",
    }


def test_a_burst_of_zero_is_the_rate_count_and_peek_takes_nothing(
    memory: RateLimiter, clock: FakeClock
) -> None:
    assert policy("5/minute").burst == 5 and policy("5/minute", 8).burst == 8
    rule = policy("5/minute")
    fresh = asyncio.run(memory.peek("k", rule))
    assert fresh is not None and (fresh.limited, fresh.remaining) == (False, 5)
    take(memory, "k", "5/minute")
    for _ in range(3):
        state = asyncio.run(memory.peek("k", rule))
        assert state is not None and state.remaining == 4
    for _ in range(4):
        take(memory, "k", "5/minute")
    empty = asyncio.run(memory.peek("k", rule))
    assert empty is not None and (empty.limited, empty.remaining, empty.retry_after_s) == (True, 0, 12)


def test_buckets_in_redis_are_shared_by_every_limiter(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        one, two = RateLimiter(redis_server.url), RateLimiter(redis_server.url)
        try:
            # Two limiters (two API replicas) take from one bucket of 3, refilled at 1/minute.
            rule = policy("1/minute", 3)
            verdicts = [await limiter.take("key_1", rule) for limiter in (one, two, one, two, one)]
            assert all(v is not None for v in verdicts)
            assert [(v.limited, v.remaining) for v in verdicts if v] == [
                (False, 2),
                (False, 1),
                (False, 0),
                (True, 0),
                (True, 0),
            ]
            last = verdicts[-1]
            assert last is not None and 1 <= last.retry_after_s <= 60
            assert last.reset_s - last.retry_after_s == 120  # the full bucket is two more tokens away
            peeked = await two.peek("key_1", rule)
            assert peeked is not None and peeked.limited

            # The bucket refills on Redis's clock: 4/second, a bucket of 1.
            fast = policy("4/second", 1)
            for _ in range(100):  # empties the bucket, however slowly the requests go
                taken = await one.take("key_2", fast)
                assert taken is not None
                if taken.limited:
                    break
            else:
                pytest.fail("a bucket of 1 at 4/second never ran out")
            deadline = asyncio.get_running_loop().time() + limit(10)
            while True:
                verdict = await two.take("key_2", fast)
                assert verdict is not None
                if not verdict.limited:
                    break
                assert verdict.retry_after_s == 1
                assert asyncio.get_running_loop().time() < deadline, "the bucket did not refill"
                await asyncio.sleep(0.05)
        finally:
            await one.close()
            await two.close()

    asyncio.run(scenario())
    stored = sorted(name.decode() for name in redis_server.client().keys("*"))
    assert stored == [f"{KEY_PREFIX}:v1:gcra:key_1", f"{KEY_PREFIX}:v1:gcra:key_2"]
    # Each bucket expires once it would be full again.
    assert 0 < redis_server.client().ttl(stored[0]) <= 180


def test_requests_go_through_while_redis_does_not_answer(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> list[Verdict | None]:
        limiter = RateLimiter(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
        try:
            return [await limiter.take("key_1", policy("1/minute")) for _ in range(3)]
        finally:
            await limiter.close()

    with caplog.at_level(logging.WARNING, logger="descent.ratelimit"):
        assert asyncio.run(scenario()) == [None, None, None]
    # One warning: after a failure the store is left alone for a few seconds.
    assert [r.getMessage() for r in caplog.records] == ["rate limits not enforced: the buckets' store fails"]


def test_the_store_url_is_checked() -> None:
    with pytest.raises(ValueError, match="memory:// or a redis:// URL"):
        RateLimiter("postgresql://localhost/db")
