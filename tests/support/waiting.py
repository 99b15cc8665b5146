from __future__ import annotations

import asyncio
from typing import Any

import httpx


async def wait_for_final(
    client: httpx.AsyncClient, key: str, payment_id: str, *, timeout: float = 20.0
) -> dict[str, Any]:
    """Poll the public API until the payment leaves `pending` (not a timing assertion: a deadline)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        r = await client.get(f"/api/transactions/{payment_id}", headers={"Authorization": f"Bearer {key}"})
        r.raise_for_status()
        body: dict[str, Any] = r.json()
        if body["status"] != "pending":
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"payment {payment_id} still pending after {timeout}s: {body}")
        await asyncio.sleep(0.1)


async def wait_until(predicate: Any, *, timeout: float = 20.0, interval: float = 0.1) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(interval)
