"""Reversing a received payment over HTTP against the Daraja stand-in: asked with a reason, confirmed
with the code sent to the owner (a wrong code counted, nothing sent), sent to M-Pesa once, and applied
only when M-Pesa's result says so: the payment `reversed`, the customer book's paid totals back down,
the commission given back by compensating transfers (the ledger check proves it); refused for a
payment that is not a received one, twice, for another business and for people who are not the owner."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
from sqlalchemy import select

from core.auth.models import Role
from core.billing.integrity import check_all
from core.customers.models import Customer
from core.ledger.models import Transfer
from core.notify.models import Notification, NotifyChannel
from core.runtime import unit_of_work
from core.tenants.models import Mode
from tests.conftest import LiveServer
from tests.support.factories import make_tenant, make_user
from tests.support.initiators import give_initiator
from tests.support.receiver import Receiver, receiving
from tests.support.waiting import wait_until
from tests.web.test_usage_api import login

REASON = "Paid twice by mistake"


async def paid(client: httpx.AsyncClient, auth: dict[str, str], phone: str = "0722600111") -> dict[str, Any]:
    r = await client.post(
        "/api/stk-push", json={"phone": phone, "amount": 1000, "name": "Akinyi"}, headers=auth
    )
    assert r.status_code == 201, r.text
    pid = r.json()["id"]

    async def final() -> bool:
        return (await client.get(f"/api/transactions/{pid}", headers=auth)).json()["status"] != "pending"

    await wait_until(final)
    body = (await client.get(f"/api/transactions/{pid}", headers=auth)).json()
    assert body["status"] == "success", body
    return body


async def sent_code(tenant_id: uuid.UUID) -> str:
    async with unit_of_work(readonly=True) as session:
        row = await session.scalar(
            select(Notification)
            .where(
                Notification.tenant_id == tenant_id,
                Notification.kind == "reversal.code",
                Notification.channel == NotifyChannel.email,
            )
            .order_by(Notification.id.desc())
        )
    assert row is not None
    match = re.search(r"is (\d{6})\.", row.body)
    assert match, row.body
    return match.group(1)


async def test_reverse_a_payment_with_the_owner_s_code(server: LiveServer, client: httpx.AsyncClient) -> None:
    tenant, owner = await make_tenant(name="Reversal Duka")
    await give_initiator(tenant.id)
    auth = await login(client, owner.email)
    payment = await paid(client, auth)
    async with receiving() as rec:
        await reversed_with_code(client, tenant.id, auth, payment, rec)


async def reversed_with_code(
    client: httpx.AsyncClient,
    tenant_id: uuid.UUID,
    auth: dict[str, str],
    payment: dict[str, Any],
    rec: Receiver,
) -> None:
    tenant_id = tenant_id
    pid = payment["id"]
    hook = {"url": rec.at("/hooks"), "event_types": ["reversal.succeeded", "reversal.failed"]}
    r = await client.post("/api/webhook-endpoints", json=hook, headers=auth)
    assert r.status_code == 201, r.text

    r = await client.post(f"/api/transactions/{pid}/reversal", json={"reason": REASON}, headers=auth)
    assert r.status_code == 202, r.text
    started = r.json()
    reversal = started["reversal"]
    assert (reversal["status"], reversal["amount"], reversal["receipt"], reversal["reason"]) == (
        "unconfirmed",
        1000,
        payment["receipt"],
        REASON,
    )
    assert started["code_sent_to"][0].startswith("email ")
    code = await sent_code(tenant_id)

    wrong = "111111" if code != "111111" else "222222"
    r = await client.post(f"/api/reversals/{reversal['id']}/confirm", json={"code": wrong}, headers=auth)
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == {"code": "That is not the code we sent. 4 tries left."}
    r = await client.get(f"/api/reversals/{reversal['id']}", headers=auth)
    assert r.json()["status"] == "unconfirmed"

    r = await client.post(f"/api/reversals/{reversal['id']}/confirm", json={"code": code}, headers=auth)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending"

    async def reversed_() -> bool:
        return (await client.get(f"/api/reversals/{reversal['id']}", headers=auth)).json()[
            "status"
        ] != "pending"

    await wait_until(reversed_)
    done = (await client.get(f"/api/reversals/{reversal['id']}", headers=auth)).json()
    assert done["status"] == "success", done
    assert done["reversal_receipt"] and done["reversal_receipt"] != payment["receipt"]
    after = (await client.get(f"/api/transactions/{pid}", headers=auth)).json()
    assert after["status"] == "reversed"

    async with unit_of_work(readonly=True) as session:
        book = await session.scalar(
            select(Customer).where(
                Customer.tenant_id == tenant_id, Customer.mode == Mode.live, Customer.phone == "254722600111"
            )
        )
        assert book is not None and (book.paid_count, book.paid_total) == (0, 0)
        kinds = sorted(
            (t.kind, t.amount_cents)
            for t in await session.scalars(select(Transfer).where(Transfer.payment_id == uuid.UUID(pid)))
        )
        assert sum(c for k, c in kinds if k.startswith("commission.refund")) == 1000  # 1 % of KES 1 000
        assert sum(c for k, c in kinds if not k.startswith("commission.refund")) == 1000
        assert await check_all(session, tenant_id=tenant_id) == []

    async def announced() -> bool:
        return len(rec.to("/hooks")) == 1

    await wait_until(announced)
    event = json.loads(rec.to("/hooks")[0].body)
    assert (event["type"], event["data"]["id"], event["data"]["status"]) == (
        "reversal.succeeded",
        reversal["id"],
        "success",
    )

    again = await client.post(f"/api/transactions/{pid}/reversal", json={"reason": REASON}, headers=auth)
    assert (again.status_code, again.json()["detail"]) == (
        409,
        f"This payment ({payment['receipt']}) is already reversed.",
    )


async def test_refusals(server: LiveServer, client: httpx.AsyncClient) -> None:
    tenant, owner = await make_tenant(name="Reversal Refusals Duka")
    await give_initiator(tenant.id)
    auth = await login(client, owner.email)
    payment = await paid(client, auth, phone="0722600222")
    pid = payment["id"]

    short = await client.post(f"/api/transactions/{pid}/reversal", json={"reason": "no"}, headers=auth)
    assert short.status_code == 422
    assert short.json()["errors"] == {
        "reason": "Say why in 5 to 200 characters, e.g. “paid twice by mistake”."
    }

    failed = await client.post("/api/stk-push", json={"phone": "0722601032", "amount": 50}, headers=auth)
    fid = failed.json()["id"]

    async def final() -> bool:
        return (await client.get(f"/api/transactions/{fid}", headers=auth)).json()["status"] != "pending"

    await wait_until(final)
    r = await client.post(f"/api/transactions/{fid}/reversal", json={"reason": REASON}, headers=auth)
    assert (r.status_code, r.json()["detail"]) == (
        409,
        "Only a received payment can be reversed: this one is cancelled, so no money came in.",
    )

    _other, other_owner = await make_tenant(name="Reversal Stranger Duka")
    stranger = await login(client, other_owner.email)
    r = await client.post(f"/api/transactions/{pid}/reversal", json={"reason": REASON}, headers=stranger)
    assert r.status_code == 404

    for role in (Role.manager, Role.cashier):
        person = await make_user(tenant=tenant, role=role)
        r = await client.post(
            f"/api/transactions/{pid}/reversal",
            json={"reason": REASON},
            headers=await login(client, person.email),
        )
        assert r.status_code == 403, (role, r.text)

    async with unit_of_work(readonly=True) as session:
        codes = await session.scalars(
            select(Notification.id).where(
                Notification.tenant_id == tenant.id, Notification.kind == "reversal.code"
            )
        )
        assert list(codes) == []
