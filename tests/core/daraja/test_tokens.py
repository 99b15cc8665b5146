"""Token stores: the in-process cache, and the Redis cache shared across processes (real Redis)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis_asyncio
from redis.exceptions import RedisError

from core.daraja import MemoryTokenStore, RedisTokenStore
from core.daraja.tokens import cache_seconds

REDIS_URL = "redis://127.0.0.1:6379/15"
KEY = "0f" * 32  # shaped like the client's sha256 cache keys


class Fetcher:
    """A stand-in for the OAuth call that counts how often it runs."""

    def __init__(self, *, expires_in: int = 3599, delay: float = 0.0) -> None:
        self.calls = 0
        self.expires_in = expires_in
        self.delay = delay

    async def __call__(self) -> tuple[str, int]:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return f"token-{self.calls}", self.expires_in


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


class TestCacheSeconds:
    def test_normal_lifetime_keeps_the_early_margin(self) -> None:
        assert cache_seconds(3599, 120) == 3479

    def test_short_lifetime_still_caches_for_half_of_it(self) -> None:
        assert cache_seconds(100, 120) == 50

    def test_no_lifetime_is_not_cached(self) -> None:
        assert cache_seconds(0, 120) == 0


class TestMemoryTokenStore:
    async def test_concurrent_callers_share_one_fetch(self) -> None:
        store = MemoryTokenStore()
        fetch = Fetcher(delay=0.05)
        tokens = await asyncio.gather(*(store.get_token(KEY, fetch) for _ in range(10)))
        assert fetch.calls == 1
        assert set(tokens) == {"token-1"}

    async def test_refreshes_early(self) -> None:
        clock = FakeClock()
        store = MemoryTokenStore(clock=clock, early_seconds=120)
        fetch = Fetcher(expires_in=3599)
        assert await store.get_token(KEY, fetch) == "token-1"
        clock.now += 3599 - 121
        assert await store.get_token(KEY, fetch) == "token-1"
        clock.now += 2
        assert await store.get_token(KEY, fetch) == "token-2"
        assert fetch.calls == 2

    async def test_keys_are_separate(self) -> None:
        store = MemoryTokenStore()
        fetch = Fetcher()
        await store.get_token("a", fetch)
        await store.get_token("b", fetch)
        assert fetch.calls == 2

    async def test_invalidate_drops_only_the_matching_token(self) -> None:
        store = MemoryTokenStore()
        fetch = Fetcher()
        await store.get_token(KEY, fetch)
        await store.invalidate(KEY, "some-older-token")
        assert await store.get_token(KEY, fetch) == "token-1"
        await store.invalidate(KEY, "token-1")
        assert await store.get_token(KEY, fetch) == "token-2"

    async def test_a_failed_fetch_is_not_cached(self) -> None:
        store = MemoryTokenStore()

        async def failing() -> tuple[str, int]:
            raise RuntimeError("Daraja down")

        with pytest.raises(RuntimeError):
            await store.get_token(KEY, failing)
        assert await store.get_token(KEY, Fetcher()) == "token-1"


@pytest.fixture
async def redis() -> AsyncIterator[redis_asyncio.Redis]:
    client = redis_asyncio.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        if os.environ.get("LIPAPUSH_REQUIRE_SERVICES"):
            pytest.fail(f"Redis at {REDIS_URL} is required (LIPAPUSH_REQUIRE_SERVICES is set): {exc}")
        pytest.skip(f"Redis at {REDIS_URL} is not reachable ({exc}); set LIPAPUSH_REQUIRE_SERVICES to fail")
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis: redis_asyncio.Redis) -> AsyncIterator[str]:
    value = f"lipapush-test:{uuid.uuid4().hex}:"
    yield value
    keys = [key async for key in redis.scan_iter(match=f"{value}*")]
    if keys:
        await redis.delete(*keys)


class TestRedisTokenStore:
    async def test_two_stores_fetch_once_under_concurrency(
        self, redis: redis_asyncio.Redis, prefix: str
    ) -> None:
        # Two stores on two connections stand in for two worker processes.
        other = redis_asyncio.Redis.from_url(REDIS_URL)
        try:
            stores = [RedisTokenStore(redis, prefix=prefix), RedisTokenStore(other, prefix=prefix)]
            fetch = Fetcher(delay=0.2)
            tokens = await asyncio.gather(*(stores[i % 2].get_token(KEY, fetch) for i in range(10)))
        finally:
            await other.aclose()
        assert fetch.calls == 1
        assert set(tokens) == {"token-1"}

    async def test_token_ttl_keeps_the_early_margin(self, redis: redis_asyncio.Redis, prefix: str) -> None:
        store = RedisTokenStore(redis, prefix=prefix, early_seconds=120)
        await store.get_token(KEY, Fetcher(expires_in=3599))
        ttl_ms = await redis.pttl(f"{prefix}{KEY}")
        assert 3_478_000 < ttl_ms <= 3_479_000

    async def test_lock_is_released_after_fetching(self, redis: redis_asyncio.Redis, prefix: str) -> None:
        store = RedisTokenStore(redis, prefix=prefix)
        await store.get_token(KEY, Fetcher())
        assert await redis.exists(f"{prefix}{KEY}:lock") == 0

    async def test_cached_token_is_reused_by_a_new_store(
        self, redis: redis_asyncio.Redis, prefix: str
    ) -> None:
        fetch = Fetcher()
        await RedisTokenStore(redis, prefix=prefix).get_token(KEY, fetch)
        assert await RedisTokenStore(redis, prefix=prefix).get_token(KEY, fetch) == "token-1"
        assert fetch.calls == 1

    async def test_works_with_decoded_responses(self, prefix: str, redis: redis_asyncio.Redis) -> None:
        decoded = redis_asyncio.Redis.from_url(REDIS_URL, decode_responses=True)
        try:
            store = RedisTokenStore(decoded, prefix=prefix)
            fetch = Fetcher()
            assert await store.get_token(KEY, fetch) == "token-1"
            assert await store.get_token(KEY, fetch) == "token-1"
            await store.invalidate(KEY, "token-1")
            assert await store.get_token(KEY, fetch) == "token-2"
        finally:
            await decoded.aclose()

    async def test_invalidate_drops_only_the_matching_token(
        self, redis: redis_asyncio.Redis, prefix: str
    ) -> None:
        store = RedisTokenStore(redis, prefix=prefix)
        fetch = Fetcher()
        await store.get_token(KEY, fetch)
        await store.invalidate(KEY, "a-token-someone-already-replaced")
        assert await redis.get(f"{prefix}{KEY}") == b"token-1"
        await store.invalidate(KEY, "token-1")
        assert await redis.get(f"{prefix}{KEY}") is None
        assert await store.get_token(KEY, fetch) == "token-2"

    async def test_waiters_fetch_themselves_when_the_lock_holder_is_stuck(
        self, redis: redis_asyncio.Redis, prefix: str
    ) -> None:
        # A lock left by a process that died mid-fetch, with plenty of its expiry left.
        await redis.set(f"{prefix}{KEY}:lock", "dead-process", px=60_000)
        store = RedisTokenStore(redis, prefix=prefix, wait_seconds=0.3, poll_seconds=0.05)
        fetch = Fetcher()
        assert await store.get_token(KEY, fetch) == "token-1"
        assert fetch.calls == 1
        # Someone else's lock is left alone.
        assert await redis.get(f"{prefix}{KEY}:lock") == b"dead-process"

    async def test_a_failed_fetch_releases_the_lock(self, redis: redis_asyncio.Redis, prefix: str) -> None:
        store = RedisTokenStore(redis, prefix=prefix)

        async def failing() -> tuple[str, int]:
            raise RuntimeError("Daraja down")

        with pytest.raises(RuntimeError):
            await store.get_token(KEY, failing)
        assert await redis.exists(f"{prefix}{KEY}:lock") == 0
        assert await store.get_token(KEY, Fetcher()) == "token-1"


class TestRedisTokenStoreLocalCopy:
    """Each process keeps the token it read, so a push does not wait on Redis."""

    async def test_the_copy_is_used_until_local_seconds_pass(
        self, redis: redis_asyncio.Redis, prefix: str
    ) -> None:
        clock = FakeClock()
        store = RedisTokenStore(redis, prefix=prefix, local_seconds=60, clock=clock)
        fetch = Fetcher()
        assert await store.get_token(KEY, fetch) == "token-1"
        await redis.set(f"{prefix}{KEY}", "token-from-elsewhere", px=600_000)
        clock.now += 59
        assert await store.get_token(KEY, fetch) == "token-1"
        clock.now += 1
        assert await store.get_token(KEY, fetch) == "token-from-elsewhere"
        assert fetch.calls == 1

    async def test_the_copy_never_outlives_the_redis_entry(
        self, redis: redis_asyncio.Redis, prefix: str
    ) -> None:
        clock = FakeClock()
        await redis.set(f"{prefix}{KEY}", "short-lived", px=5_000)
        store = RedisTokenStore(redis, prefix=prefix, local_seconds=60, clock=clock)
        assert await store.get_token(KEY, Fetcher()) == "short-lived"
        await redis.set(f"{prefix}{KEY}", "next", px=600_000)
        clock.now += 4
        assert await store.get_token(KEY, Fetcher()) == "short-lived"
        clock.now += 1.5
        assert await store.get_token(KEY, Fetcher()) == "next"

    async def test_a_token_stored_without_expiry_is_copied_for_local_seconds(
        self, redis: redis_asyncio.Redis, prefix: str
    ) -> None:
        clock = FakeClock()
        await redis.set(f"{prefix}{KEY}", "no-expiry")
        store = RedisTokenStore(redis, prefix=prefix, local_seconds=30, clock=clock)
        assert await store.get_token(KEY, Fetcher()) == "no-expiry"
        await redis.set(f"{prefix}{KEY}", "next")
        clock.now += 29
        assert await store.get_token(KEY, Fetcher()) == "no-expiry"
        clock.now += 1
        assert await store.get_token(KEY, Fetcher()) == "next"

    async def test_a_refused_copy_is_dropped_and_redis_asked_again(
        self, redis: redis_asyncio.Redis, prefix: str
    ) -> None:
        store = RedisTokenStore(redis, prefix=prefix)
        fetch = Fetcher()
        assert await store.get_token(KEY, fetch) == "token-1"
        # Another process had token-1 refused by Daraja and stored a new one.
        await redis.set(f"{prefix}{KEY}", "token-new", px=600_000)
        await store.invalidate(KEY, "token-1")
        assert await redis.get(f"{prefix}{KEY}") == b"token-new"
        assert await store.get_token(KEY, fetch) == "token-new"
        assert fetch.calls == 1

    async def test_invalidating_another_token_keeps_the_copy(
        self, redis: redis_asyncio.Redis, prefix: str
    ) -> None:
        store = RedisTokenStore(redis, prefix=prefix)
        fetch = Fetcher()
        await store.get_token(KEY, fetch)
        await redis.delete(f"{prefix}{KEY}")
        await store.invalidate(KEY, "some-older-token")
        assert await store.get_token(KEY, fetch) == "token-1"
        assert fetch.calls == 1
