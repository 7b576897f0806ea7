"""Rate limits as token buckets, with the ``throttled-py`` library's GCRA.

A bucket holds ``burst`` tokens and refills at the configured rate (``20/second``: one token every 50 ms);
a request takes one token, and a request that finds none gets 429. The library keeps a bucket the way
the generic cell rate algorithm does: as one number, the theoretical arrival time (TAT) of the next
request, which moves on by one emission interval (period / N) per request and may run at most ``burst``
intervals ahead of now. That admits exactly the requests a token bucket admits (tokens = burst − (TAT −
now) / interval), with one value to store and one atomic step per request.

The buckets live in this process (``memory://``) or in Redis (a ``redis://`` URL), where a Lua script
reads Redis's own clock, so every API replica shares each bucket and no replica's clock skews it. Every
counted answer carries ``RateLimit-Limit`` (the burst), ``RateLimit-Remaining`` (whole tokens left),
``RateLimit-Reset`` (seconds until the bucket is full again) and ``RateLimit-Policy`` (``N;w=period;
burst=B``); a refused one adds ``Retry-After``, the whole seconds (at least 1) until the next token.

Should Redis not answer, requests go through (logged, and the store is left alone for a few seconds):
a rate limit protects the service, it must not take it down.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import NamedTuple, cast

import redis.asyncio
from throttled.asyncio import BaseStore, MemoryStore, RedisStore
from throttled.asyncio.rate_limiter import GCRARateLimiter, RateLimitState, per_duration

from service.errors import RateLimited

log = logging.getLogger("descent.ratelimit")

Headers = list[tuple[bytes, bytes]]

PERIODS_S = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
KEY_PREFIX = "descent-rate"
# Buckets one process keeps in memory; past that the least recently used is dropped (it comes back full).
MEMORY_BUCKETS = 100_000
REDIS_TIMEOUT_S = 1.0
# After a store failure, requests go through without asking it for this long.
STORE_BACKOFF_S = 5.0


@dataclass(frozen=True, slots=True)
class Policy:
    """A bucket of ``burst`` tokens refilled at ``count`` per ``period_s`` seconds (``rate``)."""

    rate: str
    count: int
    period_s: int
    burst: int
    # The answers' constant headers, encoded once.
    limit_header: bytes
    policy_header: bytes

    @property
    def interval_s(self) -> float:
        """Seconds between two tokens."""
        return self.period_s / self.count

    def describe(self) -> str:
        """``"3 at once, then 20/second"``."""
        return f"{self.burst} at once, then {self.rate}"


@lru_cache(maxsize=256)
def policy(rate: str, burst: int = 0) -> Policy:
    """``policy("20/second", 40)``; a burst of 0 is the rate's N (cached: a few policies serve every request).

    ``rate`` is checked by the settings (``N/second|minute|hour|day``).
    """
    count, _, unit = rate.partition("/")
    n, period_s = int(count), PERIODS_S[unit]
    burst = burst or n
    return Policy(
        rate=rate,
        count=n,
        period_s=period_s,
        burst=burst,
        limit_header=str(burst).encode(),
        policy_header=f"{n};w={period_s};burst={burst}".encode(),
    )


class Verdict(NamedTuple):
    """A bucket's answer to one request: whether it was refused, and the numbers of its headers."""

    limited: bool
    remaining: int
    reset_s: int
    retry_after_s: int
    policy: Policy

    @classmethod
    def of(cls, limited: bool, state: RateLimitState, policy: Policy) -> Verdict:
        # The time until one token, from the time until a full bucket: the bucket is full once the TAT
        # is now, and holds one token once the TAT is no more than burst − 1 intervals ahead. (Computed
        # here for taking and peeking alike: the library's peek reports another retry_after.)
        reset_after = max(0.0, state.reset_after)
        wait = reset_after - (policy.burst - 1) * policy.interval_s
        return cls(
            limited=limited,
            remaining=max(0, state.remaining),
            reset_s=math.ceil(reset_after),
            retry_after_s=max(1, math.ceil(wait)) if limited else 0,
            policy=policy,
        )

    def headers(self) -> Headers:
        """The ``RateLimit-*`` headers of the answer."""
        return [
            (b"ratelimit-limit", self.policy.limit_header),
            (b"ratelimit-remaining", b"%d" % self.remaining),
            (b"ratelimit-reset", b"%d" % self.reset_s),
            (b"ratelimit-policy", self.policy.policy_header),
        ]

    def header_map(self) -> dict[str, str]:
        """:meth:`headers` as a mapping (for a DomainError)."""
        return {name.decode(): value.decode() for name, value in self.headers()}

    def refusal(self, what: str) -> RateLimited:
        """429 with Retry-After and the RateLimit headers; ``what`` says whose bucket is empty."""
        return RateLimited(
            f"{what}: {self.policy.describe()}; retry after {self.retry_after_s} s",
            retry_after=self.retry_after_s,
            headers=self.header_map(),
        )


class RateLimiter:
    """Token buckets by subject (a key id, a client address), in the store at ``url``."""

    def __init__(self, url: str) -> None:
        if not url.startswith(("memory://", "redis://", "rediss://")):
            raise ValueError(f"DESCENT_RATE_LIMIT_URL must be memory:// or a redis:// URL, got {url!r}")
        self.url = url
        self._store: BaseStore | None = None
        self._client: redis.asyncio.Redis | None = None
        self._limiters: dict[Policy, GCRARateLimiter] = {}
        self._resume_at = 0.0
        self._warned_at = -math.inf

    def _limiter(self, policy: Policy) -> GCRARateLimiter:
        limiter = self._limiters.get(policy)
        if limiter is None:
            quota = per_duration(timedelta(seconds=policy.period_s), policy.count, policy.burst)
            limiter = self._limiters[policy] = GCRARateLimiter(quota, self._open(), key_prefix=KEY_PREFIX)
        return limiter

    def _open(self) -> BaseStore:
        # Made on first use, inside the event loop the requests run on.
        if self._store is None:
            if self.url.startswith("memory://"):
                self._store = MemoryStore(options={"MAX_SIZE": MEMORY_BUCKETS})
            else:
                store = RedisStore(
                    server=self.url,
                    options={"SOCKET_TIMEOUT": REDIS_TIMEOUT_S, "SOCKET_CONNECT_TIMEOUT": REDIS_TIMEOUT_S},
                )
                # The store opens its own connection pool and offers no way to close it: keep its client
                # (one per store) to close at shutdown.
                self._client = cast(redis.asyncio.Redis, store._backend.get_client())
                self._store = store
        return self._store

    async def close(self) -> None:
        """Disconnect from Redis (at shutdown)."""
        if self._client is not None:
            await self._client.aclose(close_connection_pool=True)

    async def take(self, subject: str, policy: Policy) -> Verdict | None:
        """Take a token from ``subject``'s bucket; None when the store fails (the request goes through)."""
        if self._resume_at and time.monotonic() < self._resume_at:
            return None
        try:
            result = await self._limiter(policy).limit(subject)
        except Exception as exc:  # Redis down or slow
            self._failed(exc)
            return None
        return Verdict.of(result.limited, result.state, policy)

    async def peek(self, subject: str, policy: Policy) -> Verdict | None:
        """The state of ``subject``'s bucket, taking nothing (``limited``: it has no token now)."""
        if self._resume_at and time.monotonic() < self._resume_at:
            return None
        try:
            state = await self._limiter(policy).peek(subject)
        except Exception as exc:
            self._failed(exc)
            return None
        return Verdict.of(state.remaining < 1, state, policy)

    def _failed(self, exc: Exception) -> None:
        now = time.monotonic()
        self._resume_at = now + STORE_BACKOFF_S
        if now - self._warned_at > 60:  # once a minute
            self._warned_at = now
            log.warning(
                "rate limits not enforced: the buckets' store fails",
                extra={"error": f"{type(exc).__name__}: {exc}"},
            )
