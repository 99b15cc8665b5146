"""Abuse and flood limits, on the `limits` library: Redis when configured, so every process counts
together; this process's memory otherwise, or while Redis is unreachable (a Redis outage must never
stop payments nor lock buyers out: it only makes each process count on its own for a while).

Two shapes, one mechanism:
- `hit(key, window)`: a fixed-window counter (USSD payers, the captive portal, sign-ups, resets) whose
  caller compares the count with its own limit;
- `acquire(limit, *ids)`: a moving window that refuses past `limit.amount` in any `limit.window`
  seconds and says how long until a slot frees (API pushes per key and per phone), so the refusal can
  carry Retry-After.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from core.runtime import runtime

log = logging.getLogger(__name__)
T = TypeVar("T")

# A Redis that hangs instead of refusing must not hold a payment up: past this, count in memory.
REDIS_TIMEOUT_SECONDS = 1.0

# Per event loop (async clients and asyncio locks must not cross loops), and per Redis client (the
# runtime makes one per loop and per configuration).
_memory: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, MemoryStorage] = weakref.WeakKeyDictionary()
_redis: weakref.WeakKeyDictionary[Any, RedisStorage] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Limit:
    """At most `amount` events in any `window` seconds; `name` says which limit refused."""

    name: str
    amount: int
    window: int

    @property
    def item(self) -> RateLimitItemPerSecond:
        return RateLimitItemPerSecond(self.amount, self.window, namespace=self.name)


def _memory_store() -> MemoryStorage:
    loop = asyncio.get_running_loop()
    store = _memory.get(loop)
    if store is None:
        store = _memory[loop] = MemoryStorage()
    return store


def _redis_store() -> RedisStorage | None:
    rt = runtime()
    client = rt.redis()
    if client is None:
        return None
    store = _redis.get(client)
    if store is None:
        # The runtime's own connection pool (per loop, closed with the runtime): no second set of
        # connections to manage.
        store = _redis[client] = RedisStorage(
            rt.settings.REDIS_URL or "redis://",
            implementation="redispy",
            key_prefix=f"{rt.settings.REDIS_NAMESPACE}:limits",
            connection_pool=client.connection_pool,
        )
    return store


async def _on_store(action: Callable[[Storage], Awaitable[T]]) -> T:
    store = _redis_store()
    if store is not None:
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                return await action(store)
        except Exception as exc:  # an outage must not lock anyone out: count in this process
            log.warning("rate limit store unavailable (%s); counting in memory", type(exc).__name__)
    return await action(_memory_store())


async def hit(key: str, window: int) -> int:
    """Count one event under `key` in a fixed `window`-second window; returns the count so far."""

    async def count(store: Storage) -> int:
        return int(await store.incr(f"rl/{key}", window))

    return await _on_store(count)


async def acquire(limit: Limit, *identifiers: str) -> int | None:
    """Take one slot of `limit` for `identifiers`. None when taken; when refused (nothing is counted),
    the whole seconds until the oldest event in the window leaves it and a slot frees."""

    async def take(store: Storage) -> int | None:
        limiter = MovingWindowRateLimiter(store)
        if await limiter.hit(limit.item, *identifiers):
            return None
        stats = await limiter.get_window_stats(limit.item, *identifiers)
        return max(1, math.ceil(stats.reset_time - time.time()))

    return await _on_store(take)
