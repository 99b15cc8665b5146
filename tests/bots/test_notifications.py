"""Payments from the API reach the owner's chat through the outbox; a blocked bot is recorded, not retried."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import select

from core.notify.models import Notification, NotifyStatus
from core.runtime import unit_of_work
from sim.telegram.client import TelegramSimClient
from tests.bots.test_conversations import T, has
from tests.bots.test_start_and_pay import linked_owner
from tests.conftest import LiveServer
from tests.support.factories import make_api_key
from tests.support.waiting import wait_for_final, wait_until


async def test_api_payment_is_reported_to_the_owner_chat(server: LiveServer, tg: TelegramSimClient) -> None:
    tenant = await linked_owner(tg, name="Api Shop")
    key = await make_api_key(tenant=tenant)  # type: ignore[arg-type]
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.post(
            "/api/stk-push",
            json={"phone": "0722000333", "amount": 90, "name": "Kamau"},
            headers={"Authorization": f"Bearer {key}"},
        )
        await wait_for_final(http, key, r.json()["id"])
        note = await tg.wait_for_bot_message(predicate=has("via API"), timeout=T)
        assert note.content.startswith("✅ Paid: KES 90 from Kamau (0722000333).\nReceipt ")
        assert note.content.endswith("\nvia API")

        await tg.block()
        r = await http.post(
            "/api/stk-push",
            json={"phone": "0722000333", "amount": 91},
            headers={"Authorization": f"Bearer {key}"},
        )
        await wait_for_final(http, key, r.json()["id"])

    async def undeliverable() -> bool:
        async with unit_of_work(readonly=True) as session:
            row = await session.scalar(
                select(Notification).where(Notification.payment_id == uuid.UUID(r.json()["id"]))
            )
            return row is not None and row.status is NotifyStatus.undeliverable

    await wait_until(undeliverable, timeout=T)
    async with unit_of_work(readonly=True) as session:
        row = await session.scalar(
            select(Notification).where(Notification.payment_id == uuid.UUID(r.json()["id"]))
        )
    assert row is not None and row.attempts == 1 and "blocked" in (row.error or "")
