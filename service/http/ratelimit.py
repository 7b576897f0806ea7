"""Rate limits per API key, with the ``limits`` library: a moving window of N requests per period.

The counters live in this process (``memory://``) or in Redis (a ``redis://`` URL), where every API
replica shares them. A key's budget is ``DESCENT_RATE_LIMIT`` unless the key overrides it. A request
over budget gets 429 with ``Retry-After``; every limited response carries ``RateLimit-Limit``,
``RateLimit-Remaining``, ``RateLimit-Reset`` (seconds) and ``RateLimit-Policy``.

Should Redis not answer, requests go through (logged): a rate limit protects the service, it must not
take it down.
"""

from __future__ import annotations

import logging
import math
import time
from functools import lru_cache

import redis.asyncio
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from service.errors import RateLimited

log = logging.getLogger("descent.ratelimit")

Headers = list[tuple[bytes, bytes]]


@lru_cache(maxsize=64)
def parse_rate(rate: str) -> RateLimitItem:
    """``"20/second"`` → the library's item (cached: a few distinct rates serve every request)."""
    return parse(rate)


class KeyRateLimiter:
    """One moving window per key and rate, in the storage at ``url``."""

    def __init__(self, url: str) -> None:
        if not url.startswith(("memory://", "redis://", "rediss://")):
            raise ValueError(f"DESCENT_RATE_LIMIT_URL must be memory:// or a redis:// URL, got {url!r}")
        self.url = url
        self._limiter: MovingWindowRateLimiter | None = None
        self._pool: redis.asyncio.ConnectionPool | None = None
        self._warned_at = 0.0

    def _strategy(self) -> MovingWindowRateLimiter:
        # Made on first use, inside the event loop the requests run on.
        if self._limiter is None:
            storage: Storage
            if self.url.startswith("memory://"):
                storage = MemoryStorage()
            else:
                # redis-py (already a dependency, for Celery) rather than the library's default client,
                # on a pool of ours that close() disconnects.
                self._pool = redis.asyncio.ConnectionPool.from_url(self.url)
                storage = RedisStorage(
                    "async+" + self.url,
                    implementation="redispy",
                    key_prefix="descent-rate",
                    connection_pool=self._pool,  # type: ignore[arg-type]
                )
            self._limiter = MovingWindowRateLimiter(storage)
        return self._limiter

    async def close(self) -> None:
        """Disconnect from Redis (at shutdown)."""
        if self._pool is not None:
            await self._pool.aclose()

    async def hit(self, key_id: str, rate: str) -> Headers:
        """Count one request of ``key_id``; the RateLimit headers of its answer.

        Raises
        ------
        RateLimited
            429 with Retry-After and the same headers, when the key has no budget left.
        """
        item = parse_rate(rate)
        strategy = self._strategy()
        try:
            allowed = await strategy.hit(item, key_id)
            stats = await strategy.get_window_stats(item, key_id)
        except Exception as exc:  # Redis down or slow: let the request through, say so (once a minute)
            now = time.monotonic()
            if now - self._warned_at > 60:
                self._warned_at = now
                log.warning("rate limits not enforced: the counters' store fails", extra={"error": str(exc)})
            return []
        reset_s = max(0, math.ceil(stats.reset_time - time.time()))
        window_s = item.get_expiry()
        headers = [
            (b"ratelimit-limit", str(item.amount).encode()),
            (b"ratelimit-remaining", str(max(0, stats.remaining)).encode()),
            (b"ratelimit-reset", str(reset_s).encode()),
            (b"ratelimit-policy", f"{item.amount};w={window_s}".encode()),
        ]
        if not allowed:
            raise RateLimited(
                f"the API key made more than {item.amount} requests in {window_s} s ({rate}); "
                f"retry after {max(1, reset_s)} s",
                retry_after=max(1, reset_s),
                headers={name.decode(): value.decode() for name, value in headers},
            )
        return headers
