"""Fixed-window counters for abuse limits (USSD payers, the captive portal): Redis when configured,
so every process counts together; memory otherwise, or while Redis is unreachable."""

from __future__ import annotations

import logging
import time

from core.runtime import runtime

log = logging.getLogger(__name__)
_memory: dict[str, tuple[float, int]] = {}


async def hit(key: str, window: int) -> int:
    """Count one event under `key` in a `window`-second window; returns the count so far."""
    rt = runtime()
    r = rt.redis()
    if r is not None:
        name = f"{rt.settings.REDIS_NAMESPACE}:rl:{key}"
        try:
            async with r.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                pipe.expire(name, window, nx=True)
                count, _ = await pipe.execute()
            return int(count)
        except Exception as exc:  # a Redis outage must not lock buyers out: count in this process
            log.warning("rate limit store unavailable (%s); counting in memory", type(exc).__name__)
    now = time.monotonic()
    if len(_memory) > 100_000:
        for k in [k for k, (until, _) in _memory.items() if until < now]:
            del _memory[k]
    until, count = _memory.get(key, (0.0, 0))
    if until < now:
        until, count = now + window, 0
    _memory[key] = (until, count + 1)
    return count + 1
