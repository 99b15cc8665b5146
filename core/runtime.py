"""The process-wide wiring, built once by the composition root (`web`), never at import time.

Services take what they need as arguments; entry points (routes, jobs, CLI commands) reach the
runtime through `runtime()` and open a `unit_of_work()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, TypeVar

import httpx
from redis.exceptions import RedisError
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from core.access import key_cache
from core.config import Settings
from core.crypto import SecretBox
from core.daraja.client import DarajaClient
from core.daraja.tokens import MemoryTokenStore, RedisTokenStore, TokenStore
from core.db import Database, Scope, log_platform_scope, scope_log, session_scope
from core.jobs.broker import JobRunner
from core.jobs.models import JobOutbox
from core.jobs.registry import running_job
from core.webhooks.delivery import WebhookSender

T = TypeVar("T")
log = logging.getLogger(__name__)


class PerLoop(Generic[T]):
    """One instance per event loop: async clients (httpx, redis, DB pools) must not cross loops."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._items: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        item = self._items.get(loop)
        if item is None:
            item = self._factory()
            self._items[loop] = item
        return item

    def pop(self) -> T | None:
        return self._items.pop(asyncio.get_running_loop(), None)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    secrets: SecretBox
    jobs: JobRunner
    _redis: PerLoop[Any] = field(init=False)
    _daraja: PerLoop[tuple[DarajaClient, httpx.AsyncClient]] = field(init=False)
    _memory_tokens: MemoryTokenStore = field(init=False, default_factory=MemoryTokenStore)
    _webhooks: PerLoop[WebhookSender] = field(init=False)

    def __post_init__(self) -> None:
        self._redis = PerLoop(self._make_redis)
        self._daraja = PerLoop(self._make_daraja)
        self._webhooks = PerLoop(self._make_webhook_sender)

    def _make_webhook_sender(self) -> WebhookSender:
        s = self.settings
        return WebhookSender(
            allow_private=s.WEBHOOK_ALLOW_PRIVATE_TARGETS,
            connect_timeout=s.WEBHOOK_CONNECT_TIMEOUT_SECONDS,
            timeout=s.WEBHOOK_TIMEOUT_SECONDS,
        )

    def webhook_sender(self) -> WebhookSender:
        """The worker's pool of connections to merchants' webhook receivers (core.webhooks.delivery)."""
        return self._webhooks.get()

    def _make_redis(self) -> Any:
        if not self.settings.REDIS_URL:
            return None
        import redis.asyncio as aioredis

        return aioredis.Redis.from_url(self.settings.REDIS_URL)

    def redis(self) -> Any:
        return self._redis.get()

    def _make_daraja(self) -> tuple[DarajaClient, httpx.AsyncClient]:
        from core.daraja.transport import DarajaTransport

        r = self.redis()
        tokens: TokenStore = (
            FallbackTokenStore(
                RedisTokenStore(r, prefix=f"{self.settings.REDIS_NAMESPACE}:daraja-token:"),
                self._memory_tokens,
            )
            if r is not None
            else self._memory_tokens
        )
        timeout = httpx.Timeout(self.settings.DARAJA_TIMEOUT_SECONDS, connect=10.0)
        headers = {"User-Agent": "lipapush/0.1"}
        # Daraja has a client of its own over aiohttp (core.daraja.transport: a quarter of the CPU per push
        # of httpx's default transport with 50 in flight), which drops idle connections after 2 s as well.
        daraja_http = httpx.AsyncClient(
            timeout=timeout, headers=headers, transport=DarajaTransport(max_connections=100)
        )
        # Idle connections are dropped after 2 s, before a server's own idle timeout (5 s for uvicorn and
        # many proxies). Reusing one the server is closing at that moment fails a POST with a ReadError
        # after the request went out: for an STK push, an "outcome unknown" the merchant must wait on.
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=2.0)
        http = httpx.AsyncClient(timeout=timeout, limits=limits, headers=headers)
        return DarajaClient(http=daraja_http, tokens=tokens), http

    def daraja(self) -> DarajaClient:
        return self._daraja.get()[0]

    def http(self) -> httpx.AsyncClient:
        """The shared client for other outside services (Telegram, Africa's Talking, …)."""
        return self._daraja.get()[1]

    async def aclose(self) -> None:
        """Close the clients of the current loop."""
        pair = self._daraja.pop()
        if pair is not None:
            await pair[0].aclose()
            await pair[1].aclose()
        sender = self._webhooks.pop()
        if sender is not None:
            await sender.aclose()
        r = self._redis.pop()
        if r is not None:
            await r.aclose()
        await self.db.dispose()


class FallbackTokenStore:
    """Shared Redis token cache, falling back to this process's cache while Redis is unreachable:
    a Redis restart must not stop payments (at worst each process fetches its own token)."""

    def __init__(self, primary: TokenStore, fallback: TokenStore) -> None:
        self.primary = primary
        self.fallback = fallback

    async def get_token(self, key: str, fetch: Callable[[], Awaitable[tuple[str, int]]]) -> str:
        try:
            return await self.primary.get_token(key, fetch)
        except RedisError:
            log.warning("redis unavailable for the Daraja token cache; using the in-process cache")
            return await self.fallback.get_token(key, fetch)

    async def invalidate(self, key: str, token: str) -> None:
        with contextlib.suppress(RedisError):
            await self.primary.invalidate(key, token)
        await self.fallback.invalidate(key, token)


_runtime: Runtime | None = None


def configure(settings: Settings) -> Runtime:
    global _runtime
    db = Database(
        settings.DATABASE_URL,
        pool_size=settings.DB_POOL_SIZE,
        max_overflow=settings.DB_MAX_OVERFLOW,
        pre_ping=settings.DB_POOL_PRE_PING,
    )
    _runtime = Runtime(
        settings=settings,
        db=db,
        secrets=SecretBox(settings.ENCRYPTION_KEYS),
        jobs=JobRunner(
            db,
            redis_url=settings.REDIS_URL,
            namespace=settings.REDIS_NAMESPACE,
            visibility=timedelta(seconds=settings.JOB_VISIBILITY_SECONDS),
        ),
    )
    return _runtime


def configured_settings() -> Settings | None:
    """The settings of this process, or None before `configure` (pure functions used outside it)."""
    return _runtime.settings if _runtime is not None else None


def runtime() -> Runtime:
    if _runtime is None:
        raise RuntimeError("lipapush is not configured: call core.runtime.configure(settings) at start-up")
    return _runtime


# The packages whose every actor-less unit of work names its scope (tests/core/unit/test_explicit_scopes.py).
APP_PACKAGES = ("core", "web", "bots", "ussd")


def _caller() -> str:
    """module:function of the code that opened an actor-less unit of work without naming its scope."""
    frame = sys._getframe(3)  # _caller ← unit_of_work ← asynccontextmanager.__aenter__ ← the caller
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith("contextlib"):
        frame = frame.f_back
    return f"{frame.f_globals.get('__name__', '?')}:{frame.f_code.co_name}"


@asynccontextmanager
async def unit_of_work(
    *, readonly: bool = False, ends_job: bool = True, scope: Scope | None = None
) -> AsyncIterator[AsyncSession]:
    """The one transaction of an entry point. Jobs enqueued inside it are sent only after commit.

    In a job, the first write unit of work also deletes the job's outbox row (the job is done when its
    effects commit). `ends_job=False` is for a write that only records a failed attempt the job is about
    to retry (by raising): the row stays until a later attempt finishes or Dramatiq gives up on it.

    `scope` is the tenant data it may touch on Postgres (see core.db.Scope): `Scope.tenant(id)` when
    the business is known, `Scope.platform("why")` for work across businesses or before one is known.
    Left out, it is a platform scope whose reason is the calling function: for tests and scripts that
    set up several businesses at once. The application always names it (a check keeps it so), so one
    left out there is logged as a WARNING: a call the check could not see (an alias, a partial).
    Use cases pass their actor's scope."""
    rt = runtime()
    if scope is None:
        caller = _caller()
        scope = Scope.platform(f"unscoped {caller}")
        if caller.partition(":")[0].split(".")[0] in APP_PACKAGES:
            scope_log.warning(
                "unit of work without a scope in %s: it runs in platform scope (every business's rows); "
                "pass scope=Scope.tenant(id), Scope.platform(why) or Scope.none()",
                caller,
            )
    if scope.is_platform and not rt.db.is_sqlite:
        log_platform_scope(scope)
    jobs: list[tuple[int, str, dict[str, Any]]] = []
    async with session_scope(rt.db, readonly=readonly, scope=scope) as session:
        yield session
        jobs = session.info.pop("jobs", [])
        job = running_job.get()
        if not readonly and ends_job and job is not None and (outbox_id := job.take()) is not None:
            await session.execute(delete(JobOutbox).where(JobOutbox.id == outbox_id))
    if session.info.pop(key_cache.CHANGED, False):
        # Before this returns: a revoked key is refused by every process once its revocation is done.
        await key_cache.changed(rt.redis(), rt.settings.REDIS_NAMESPACE)
    if jobs:
        await rt.jobs.dispatch(jobs)
