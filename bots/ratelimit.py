"""Per-user limit on payment requests from the bot: a fat finger must not spam a customer's phone."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict, deque

from core.runtime import runtime

PUSHES_PER_MINUTE = 10
_local: dict[uuid.UUID, deque[float]] = defaultdict(deque)


async def push_allowed(user_id: uuid.UUID) -> bool:
    """A fixed one-minute window in Redis when configured (shared by every bot process), else in memory."""
    redis = runtime().redis()
    if redis is not None:
        key = f"{runtime().settings.REDIS_NAMESPACE}:bot-pushes:{user_id}:{int(time.time() // 60)}"
        count = await redis.incr(key)
        if count == 1:
            await redis.expire(key, 90)
        return int(count) <= PUSHES_PER_MINUTE
    now = time.monotonic()
    window = _local[user_id]
    while window and now - window[0] > 60:
        window.popleft()
    if len(window) >= PUSHES_PER_MINUTE:
        return False
    window.append(now)
    return True
