"""Per-session state, kept server-side for the life of a USSD session.

Redis when configured (any web process can serve the next hop), memory otherwise. The state is a
cache: when it is missing (Redis restarted, another process without Redis) the engine replays the
session's `text` from the start, so losing it costs a replay, never a payment. Values stored here
never include a PIN.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from typing import Any, Protocol

log = logging.getLogger(__name__)

# Kenyan carriers end a session after ~180 s (refs/frontends.md §3.1); keep state a little longer.
SESSION_TTL = 240


class SessionStore(Protocol):
    async def load(self, session_id: str) -> dict[str, Any] | None: ...
    async def save(self, session_id: str, state: dict[str, Any]) -> None: ...
    async def hit(self, key: str, window: int) -> int:
        """Count an event under `key` in a fixed window of `window` seconds; returns the count."""
        ...


class MemoryStore:
    def __init__(self, *, max_sessions: int = 50_000) -> None:
        self._items: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._max = max_sessions

    def _get(self, key: str) -> Any:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] < time.monotonic():
            del self._items[key]
            return None
        return item[1]

    def _put(self, key: str, value: Any, ttl: float) -> None:
        self._items[key] = (time.monotonic() + ttl, value)
        self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)

    async def load(self, session_id: str) -> dict[str, Any] | None:
        value = self._get("s:" + session_id)
        return json.loads(value) if value else None

    async def save(self, session_id: str, state: dict[str, Any]) -> None:
        self._put("s:" + session_id, json.dumps(state), SESSION_TTL)

    async def hit(self, key: str, window: int) -> int:
        count = int(self._get("h:" + key) or 0) + 1
        item = self._items.get("h:" + key)
        self._put("h:" + key, count, (item[0] - time.monotonic()) if item and count > 1 else window)
        return count


class RedisStore:
    """Falls back to memory while Redis is unreachable, so a Redis restart never ends a session."""

    def __init__(self, redis: Any, *, prefix: str, fallback: MemoryStore) -> None:
        self._r = redis
        self._prefix = prefix
        self._fallback = fallback

    async def load(self, session_id: str) -> dict[str, Any] | None:
        try:
            raw = await self._r.get(self._prefix + "s:" + session_id)
        except Exception as exc:  # redis.exceptions.* and OSError: any failure means "no state"
            log.warning("ussd session store unavailable (%s); using memory", type(exc).__name__)
            return await self._fallback.load(session_id)
        return json.loads(raw) if raw else await self._fallback.load(session_id)

    async def save(self, session_id: str, state: dict[str, Any]) -> None:
        try:
            await self._r.set(self._prefix + "s:" + session_id, json.dumps(state), ex=SESSION_TTL)
        except Exception as exc:
            log.warning("ussd session store unavailable (%s); using memory", type(exc).__name__)
            await self._fallback.save(session_id, state)

    async def hit(self, key: str, window: int) -> int:
        try:
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.incr(self._prefix + "h:" + key)
                pipe.expire(self._prefix + "h:" + key, window, nx=True)
                count, _ = await pipe.execute()
            return int(count)
        except Exception:
            return await self._fallback.hit(key, window)


class RuntimeStore:
    """Redis when the runtime has one (resolved per call: Redis clients belong to one event loop),
    memory otherwise."""

    def __init__(self) -> None:
        self.memory = MemoryStore()

    def _target(self) -> SessionStore:
        from core.runtime import runtime

        rt = runtime()
        r = rt.redis()
        if r is None:
            return self.memory
        return RedisStore(r, prefix=f"{rt.settings.REDIS_NAMESPACE}:ussd:", fallback=self.memory)

    async def load(self, session_id: str) -> dict[str, Any] | None:
        return await self._target().load(session_id)

    async def save(self, session_id: str, state: dict[str, Any]) -> None:
        await self._target().save(session_id, state)

    async def hit(self, key: str, window: int) -> int:
        return await self._target().hit(key, window)
