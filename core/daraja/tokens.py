"""Caches for Daraja OAuth tokens.

Daraja's FAQ says a new token may invalidate the previous one for the same app, so every process using one
consumer key should share one cached token and only one of them should fetch a new one at a time; otherwise
workers would keep knocking out each other's tokens.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, cast

import redis.asyncio as redis_asyncio
import structlog

log = structlog.get_logger(__name__)

TokenFetcher = Callable[[], Awaitable[tuple[str, int]]]

# Compare-and-delete, so a process never removes a token (or lock) that someone else has since replaced.
_DELETE_IF_EQUAL = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


def cache_seconds(expires_in: int, early_seconds: int) -> float:
    """How long to keep a token that Daraja says lives ``expires_in`` seconds.

    Normally ``expires_in - early_seconds``, so a token is never handed out just before it dies. For a
    lifetime shorter than the margin (only ever seen from test doubles) half the lifetime is used instead of
    not caching at all.
    """
    if expires_in <= 0:
        return 0.0
    return float(max(expires_in - early_seconds, expires_in / 2))


class TokenStore(Protocol):
    async def get_token(self, key: str, fetch: TokenFetcher) -> str:
        """Return the cached token for ``key``, calling ``fetch`` (once across waiters) when there is none."""
        ...

    async def invalidate(self, key: str, token: str) -> None:
        """Forget the cached token for ``key`` only if it is still ``token``."""
        ...


class MemoryTokenStore:
    """A per-process cache: right for one process, or for tests."""

    def __init__(self, *, early_seconds: int = 120, clock: Callable[[], float] = time.monotonic) -> None:
        self._early_seconds = early_seconds
        self._clock = clock
        self._entries: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _cached(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        token, refresh_at = entry
        if self._clock() >= refresh_at:
            return None
        return token

    async def get_token(self, key: str, fetch: TokenFetcher) -> str:
        token = self._cached(key)
        if token is not None:
            return token
        async with self._locks.setdefault(key, asyncio.Lock()):
            # Another waiter may have fetched while we queued for the lock.
            token = self._cached(key)
            if token is not None:
                return token
            token, expires_in = await fetch()
            self._entries[key] = (token, self._clock() + cache_seconds(expires_in, self._early_seconds))
            return token

    async def invalidate(self, key: str, token: str) -> None:
        entry = self._entries.get(key)
        if entry is not None and entry[0] == token:
            del self._entries[key]


class RedisTokenStore:
    """A cache shared by every process that talks to the same Redis.

    One process fetches while the others poll the cached value; if the fetching process dies, its lock expires
    and the waiters give up after ``wait_seconds`` and fetch for themselves, so a crash costs a delay, not an
    outage.

    Each store also keeps the token it last read or stored, for no longer than Redis keeps it and at most
    ``local_seconds``, so a push does not wait on a Redis round trip (which cost more CPU than the rest of
    the push). A copy that another process has since replaced is refused by Daraja as an invalid token; the
    client then calls :meth:`invalidate` and asks again, which reads the new token from Redis.
    """

    def __init__(
        self,
        redis: redis_asyncio.Redis,
        *,
        prefix: str = "lipapush:daraja-token:",
        early_seconds: int = 120,
        lock_seconds: float = 15.0,
        wait_seconds: float = 10.0,
        poll_seconds: float = 0.05,
        local_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._early_seconds = early_seconds
        self._lock_ms = int(lock_seconds * 1000)
        self._wait_seconds = wait_seconds
        self._poll_seconds = poll_seconds
        self._local_seconds = local_seconds
        self._clock = clock
        self._local: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _cache_key(self, key: str) -> str:
        return f"{self._prefix}{key}"

    def _remember(self, cache_key: str, token: str, ttl_ms: int) -> None:
        # A negative TTL is Redis saying "no expiry": the local cap alone applies.
        seconds = self._local_seconds if ttl_ms < 0 else min(ttl_ms / 1000, self._local_seconds)
        self._local[cache_key] = (token, self._clock() + seconds)

    def _remembered(self, cache_key: str) -> str | None:
        entry = self._local.get(cache_key)
        if entry is None or self._clock() >= entry[1]:
            return None
        return entry[0]

    async def _cached(self, cache_key: str) -> str | None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(cache_key)
        pipe.pttl(cache_key)
        value, ttl_ms = await pipe.execute()
        if value is None:
            return None
        token = value.decode() if isinstance(value, bytes) else str(value)
        self._remember(cache_key, token, int(ttl_ms))
        return token

    async def _delete_if_equal(self, redis_key: str, value: str) -> None:
        await self._redis.eval(_DELETE_IF_EQUAL, 1, redis_key, value)

    async def _fetch_and_store(self, cache_key: str, fetch: TokenFetcher) -> str:
        token, expires_in = await fetch()
        ttl_ms = int(cache_seconds(expires_in, self._early_seconds) * 1000)
        if ttl_ms > 0:
            await cast(Awaitable[Any], self._redis.set(cache_key, token, px=ttl_ms))
            self._remember(cache_key, token, ttl_ms)
        return token

    async def get_token(self, key: str, fetch: TokenFetcher) -> str:
        cache_key = self._cache_key(key)
        token = self._remembered(cache_key)
        if token is not None:
            return token
        token = await self._cached(cache_key)
        if token is not None:
            return token
        # The local lock keeps this process's coroutines from all polling Redis for the same key at once.
        async with self._locks.setdefault(key, asyncio.Lock()):
            token = await self._cached(cache_key)
            if token is not None:
                return token
            return await self._fetch_single_flight(cache_key, fetch)

    async def _fetch_single_flight(self, cache_key: str, fetch: TokenFetcher) -> str:
        lock_key = f"{cache_key}:lock"
        lock_value = secrets.token_hex(16)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_seconds
        while True:
            acquired = await cast(
                Awaitable[Any], self._redis.set(lock_key, lock_value, nx=True, px=self._lock_ms)
            )
            if acquired:
                try:
                    # The holder before us may have stored a token between our last read and our SET NX.
                    token = await self._cached(cache_key)
                    if token is not None:
                        return token
                    return await self._fetch_and_store(cache_key, fetch)
                finally:
                    await self._delete_if_equal(lock_key, lock_value)
            await asyncio.sleep(self._poll_seconds)
            token = await self._cached(cache_key)
            if token is not None:
                return token
            if loop.time() >= deadline:
                log.warning("daraja.token.lock_wait_expired", wait_seconds=self._wait_seconds)
                return await self._fetch_and_store(cache_key, fetch)

    async def invalidate(self, key: str, token: str) -> None:
        cache_key = self._cache_key(key)
        entry = self._local.get(cache_key)
        if entry is not None and entry[0] == token:
            del self._local[cache_key]
        await self._delete_if_equal(cache_key, token)
