"""POSTing to a merchant's URLs (ResultURL, QueueTimeOutURL, C2B validation and confirmation) and the log
of what was sent and what came back.

Deliveries use the simulator's shared httpx client and its ``callback_delay``, like the STK callback, and are
never retried: Daraja states it does not retry a failed result (refs §9, §11.3).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

import httpx

logger = logging.getLogger("sim.daraja")

DUPLICATE_GAP = 0.2


class Host(Protocol):
    """What a delivery needs from the simulator that owns it."""

    callback_delay: float

    def http_client(self) -> httpx.AsyncClient: ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...


async def post_json(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], *, kind: str, wait: float | None = None
) -> dict[str, Any]:
    """POST ``body`` (waiting ``wait`` seconds for the answer instead of the client's default); return the
    delivery record: what was sent, the status and reply, or the error."""
    record: dict[str, Any] = {
        "kind": kind,
        "url": url,
        "body": body,
        "status_code": None,
        "reply": None,
        "error": None,
    }
    try:
        if wait is None:
            response = await client.post(url, json=body)
        else:
            response = await client.post(url, json=body, timeout=wait)
        record["status_code"] = response.status_code
        try:
            record["reply"] = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            record["reply"] = response.text
    except Exception as exc:
        # An unreachable merchant is part of what the simulator simulates, never a reason to crash.
        record["error"] = f"{type(exc).__name__}: {exc}"
        logger.warning("%s delivery to %s failed: %s", kind, url, record["error"])
    return record


class Courier:
    """Sends money-out Results and queue-timeout notices after the callback delay, and keeps their log."""

    def __init__(self, host: Host) -> None:
        self._host = host
        self.log: list[dict[str, Any]] = []

    def send(self, url: str, body: dict[str, Any], *, kind: str, times: int = 1) -> None:
        self._host.spawn(self._deliver(url, body, kind, times))

    async def _deliver(self, url: str, body: dict[str, Any], kind: str, times: int) -> None:
        await asyncio.sleep(self._host.callback_delay)
        client = self._host.http_client()
        for attempt in range(times):
            if attempt:
                await asyncio.sleep(DUPLICATE_GAP)
            self.log.append(await post_json(client, url, body, kind=kind))

    def reset(self) -> None:
        self.log.clear()
