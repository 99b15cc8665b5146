"""A key of one business cannot see or touch another's objects through any tool: every tool that
takes an id, a phone or a channel answers another business's as `not_found` (the REST API's 404),
nothing changes, and the lists show the caller's own rows only. Both businesses are live and alike
(collection and payout channels, a paid payment, a customer), so a refusal is the tenant wall and not
a difference of mode or set-up."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select

from core.audit.models import AuditLog
from core.confirmations.models import Confirmation
from core.notify.models import Notification
from core.payments.models import Payment, PaymentStatus
from core.payouts.models import Payout, PayoutStatus
from core.reversals.models import Reversal
from core.runtime import unit_of_work
from tests.conftest import LiveServer
from tests.mcp.helpers import (
    a_phone,
    all_scopes_key,
    count,
    msisdn,
    paid_payment,
    refusal,
)
from tests.mcp.support import call, mcp_client, tool_calls
from tests.support.payouts import paying_business, wait_final

REASON = "Paid twice by mistake"


async def audit_ids(tenant_id: uuid.UUID) -> list[int]:
    async with unit_of_work(readonly=True) as session:
        return list(await session.scalars(select(AuditLog.id).where(AuditLog.tenant_id == tenant_id)))


async def test_another_business_s_ids_phones_and_channels_are_not_found_and_nothing_changes(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    a = await paying_business(server, name="Duka A")
    b = await paying_business(server, name="Duka B")
    key_a, key_b = await all_scopes_key(a.tenant), await all_scopes_key(b.tenant)
    phone_a, phone_b = a_phone(), a_phone()

    async with mcp_client(server.url, key_b) as agent_b:
        pay_b = await paid_payment(agent_b, phone_b, amount=300)
    r = await client.post(
        "/api/payouts",
        json={"phone": a_phone(), "amount": 200},
        headers={"Authorization": f"Bearer {key_b}"},
    )
    assert r.status_code == 201, r.text
    payout_b = r.json()["id"]
    assert (await wait_final(payout_b)).status is PayoutStatus.success
    b_collects, b_pays_out = pay_b["channel_id"], str(b.channel_id)
    b_audit = await audit_ids(b.tenant.id)

    strangers: list[tuple[str, dict[str, Any]]] = [
        ("get_payment", {"payment_id": pay_b["id"]}),
        ("wait_for_payment", {"payment_id": pay_b["id"], "timeout_seconds": 2}),
        ("customer_summary", {"phone": phone_b}),
        ("customer_summary", {"phone": msisdn(phone_b)}),
        ("get_payout", {"payout_id": payout_b}),
        ("reverse_payment", {"payment_id": pay_b["id"], "reason": REASON}),
        ("request_payout", {"phone": a_phone(), "amount": 100, "channel_id": b_pays_out}),
        ("list_payments", {"channel_id": b_collects}),
        ("search_customers", {"channel_id": b_collects}),
        ("export_customers", {"channel_id": b_collects}),
        ("export_transactions", {"channel_id": b_collects}),
        ("get_dashboard", {"channel_id": b_collects}),
    ]
    async with mcp_client(server.url, key_a) as agent_a:
        pay_a = await paid_payment(agent_a, phone_a, amount=150)
        for name, arguments in strangers:
            refused = await refusal(agent_a, name, arguments)
            assert refused.code == "not_found", (name, refused.text)

        # The lists are the caller's own rows, and only those.
        listed = await call(agent_a, "list_payments", {})
        assert [p["id"] for p in listed["items"]] == [pay_a["id"]]
        by_phone = await call(agent_a, "list_payments", {"phone": phone_b[-6:]})
        assert by_phone["items"] == []
        book = await call(agent_a, "search_customers", {})
        assert (book["total"], [c["phone"] for c in book["items"]]) == (1, [msisdn(phone_a)])
        assert (await call(agent_a, "search_customers", {"q": phone_b[-6:]}))["total"] == 0
        assert (await call(agent_a, "export_transactions", {}))["rows"] == 1
        assert (await call(agent_a, "export_customers", {}))["rows"] == 1
        dashboard = await call(agent_a, "get_dashboard", {})
        assert msisdn(phone_b) not in str(dashboard)

    # Nothing changed: B's payment is as it was, no reversal was asked and no code sent, no payout
    # prepared or made for A, and B's audit log has nothing new.
    async with unit_of_work(readonly=True) as session:
        row = await session.get(Payment, uuid.UUID(pay_b["id"]))
        assert row is not None and row.status is PaymentStatus.success
    for tenant_id in (a.tenant.id, b.tenant.id):
        assert await count(Reversal, Reversal.tenant_id == tenant_id) == 0
        codes = await count(
            Notification, Notification.tenant_id == tenant_id, Notification.kind == "reversal.code"
        )
        assert codes == 0
        assert await count(Confirmation, Confirmation.tenant_id == tenant_id) == 0
    assert await count(Payout, Payout.tenant_id == a.tenant.id) == 0
    assert await count(Payout, Payout.tenant_id == b.tenant.id) == 1
    assert await audit_ids(b.tenant.id) == b_audit

    # Each refused call is audited on A, as refused for not_found.
    refused_rows = [r for r in await tool_calls(a.tenant.id) if r.detail["outcome"] == "error"]
    assert [(r.detail["tool"], r.detail["error"]) for r in refused_rows] == [
        (name, "not_found") for name, _ in strangers
    ]
