"""Money out through the MCP server, in two steps: the first call of request_payout and reverse_payment
writes nothing that moves money and sends nothing to M-Pesa; the second, with the confirmation token
(and for a reversal the owner's code), does it exactly once. A token works once, for the key that
asked and nobody else, until it expires; every call is audited with the token and the code hidden."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from core.access.permissions import ApiScope
from core.confirmations.models import Confirmation
from core.confirmations.service import digest
from core.db import utcnow
from core.payouts.models import Payout, PayoutStatus
from core.reversals.models import Reversal, ReversalStatus
from core.runtime import unit_of_work
from tests.conftest import LiveServer
from tests.mcp.helpers import (
    all_scopes_key,
    count,
    key_id,
    paid_payment,
    poll,
    refusal,
    reversal_codes,
)
from tests.mcp.support import call, mcp_client, text_of, tool_calls
from tests.support.factories import make_api_key, make_tenant
from tests.support.initiators import give_initiator
from tests.support.payouts import paying_business, payout_row, sim_b2c_requests, wait_final

PAYOUT_SCOPES = [ApiScope.payouts_write]
REASON = "Paid twice by mistake"


async def payouts_of(tenant_id: uuid.UUID) -> int:
    return await count(Payout, Payout.tenant_id == tenant_id)


async def payouts_in(tenant_id: uuid.UUID) -> list[Payout]:
    async with unit_of_work(readonly=True) as session:
        return list(await session.scalars(select(Payout).where(Payout.tenant_id == tenant_id)))


async def expire(token: str) -> None:
    async with unit_of_work() as session:
        await session.execute(
            update(Confirmation)
            .where(Confirmation.token_hash == digest(token))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )


async def sim_reversals(sim: str, receipt: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as c:
        r = await c.get(f"{sim}/_sim/requests", params={"path": "/mpesa/reversal/v1/request"})
        r.raise_for_status()
        return [body for body in r.json() if body.get("TransactionID") == receipt]


class TestPayout:
    async def test_the_first_call_only_summarises_and_the_confirmed_one_pays_once(
        self, server: LiveServer
    ) -> None:
        biz = await paying_business(server, name="Agent Payday Duka")
        key = await make_api_key(tenant=biz.tenant, scopes=PAYOUT_SCOPES)
        async with mcp_client(server.url, key) as agent:
            first = await call(
                agent,
                "request_payout",
                {"phone": "0722000111", "amount": 1500, "name": "Wanjiku", "reference": "March wages"},
            )
            assert (first["step"], first["payout"]) == ("needs_confirmation", None)
            prepared = first["prepared"]
            summary = prepared["summary"]
            assert (summary["phone"], summary["amount"], summary["name"], summary["reference"]) == (
                "254722000111",
                1500,
                "Wanjiku",
                "March wages",
            )
            assert (summary["channel_id"], summary["channel_name"], summary["mode"]) == (
                str(biz.channel_id),
                "Payouts",
                "live",
            )
            assert summary["sent_today_kes"] == 0 and summary["per_payout_limit_kes"] >= 1500
            token = prepared["confirmation_token"]
            assert token.startswith("cf_") and "Nothing was sent" in prepared["next_step"]
            # Nothing recorded, nothing sent: only the token exists.
            assert await payouts_of(biz.tenant.id) == 0
            assert await sim_b2c_requests(biz.sim, biz.short_code) == []
            assert await count(Confirmation, Confirmation.tenant_id == biz.tenant.id) == 1

            # Only the token: nothing sent with it could change what was summarised.
            sent = await call(agent, "request_payout", {"confirmation_token": token})
            assert (sent["step"], sent["prepared"]) == ("sent", None)
            payout = sent["payout"]
            assert (payout["status"], payout["amount"], payout["phone"], payout["channel_id"]) == (
                "pending",
                1500,
                "254722000111",
                str(biz.channel_id),
            )
            done = await poll(agent, "get_payout", {"payout_id": payout["id"]}, until={"success", "failed"})
            assert done["status"] == "success" and done["receipt"], done

            again = await refusal(agent, "request_payout", {"confirmation_token": token})
        assert again.code == "confirmation_used"
        assert payout["id"] in again.text, again.text
        assert await payouts_of(biz.tenant.id) == 1
        [b2c] = await sim_b2c_requests(biz.sim, biz.short_code)
        assert (b2c["Amount"], b2c["PartyB"], b2c["Remarks"]) == (1500, "254722000111", "March wages")
        row = await payout_row(payout["id"])
        assert row.status is PayoutStatus.success and row.idempotency_key is not None

        calls = [r for r in await tool_calls(biz.tenant.id) if r.detail["tool"] == "request_payout"]
        assert [(r.detail["outcome"], r.detail.get("error")) for r in calls] == [
            ("ok", None),
            ("ok", None),
            ("error", "confirmation_used"),
        ]
        assert calls[0].detail["arguments"]["amount"] == 1500
        assert {(r.detail["via"], r.detail["api_key_id"]) for r in calls} == {("mcp", str(await key_id(key)))}
        assert calls[0].detail["arguments"]["phone"] != "0722000111"  # masked
        assert [r.detail["arguments"] for r in calls[1:]] == [{"confirmation_token": "***"}] * 2
        assert calls[1].target == payout["id"]
        assert token not in str([r.detail for r in calls])

    async def test_a_token_is_the_key_s_own_until_it_expires(self, server: LiveServer) -> None:
        biz = await paying_business(server, name="Token Duka")
        mine = await make_api_key(tenant=biz.tenant, scopes=PAYOUT_SCOPES)
        colleague = await make_api_key(tenant=biz.tenant, scopes=PAYOUT_SCOPES)
        stranger_business = await paying_business(server, name="Stranger Duka")
        stranger = await make_api_key(tenant=stranger_business.tenant, scopes=PAYOUT_SCOPES)
        order = {"phone": "0722000111", "amount": 700}

        async with mcp_client(server.url, mine) as agent:
            token = (await call(agent, "request_payout", order))["prepared"]["confirmation_token"]
            stale = (await call(agent, "request_payout", order))["prepared"]["confirmation_token"]
        for other in (colleague, stranger):
            async with mcp_client(server.url, other) as agent:
                refused = await refusal(agent, "request_payout", {"confirmation_token": token})
            assert refused.code == "not_found", refused.text
            assert "Tokens belong to the key that asked for them" in refused.text
        assert await payouts_of(biz.tenant.id) == 0
        assert await payouts_of(stranger_business.tenant.id) == 0

        await expire(stale)
        async with mcp_client(server.url, mine) as agent:
            expired = await refusal(agent, "request_payout", {"confirmation_token": stale})
            assert expired.code == "confirmation_expired", expired.text
            assert await payouts_of(biz.tenant.id) == 0
            # Refusals to others left the first token as it was: it still pays, once.
            sent = await call(agent, "request_payout", {"confirmation_token": token})
            assert sent["step"] == "sent"
            await poll(agent, "get_payout", {"payout_id": sent["payout"]["id"]}, until={"success"})
            for used in (token, token):
                assert (await refusal(agent, "request_payout", {"confirmation_token": used})).code == (
                    "confirmation_used"
                )
        assert await payouts_of(biz.tenant.id) == 1
        assert len(await sim_b2c_requests(biz.sim, biz.short_code)) == 1
        assert await sim_b2c_requests(stranger_business.sim, stranger_business.short_code) == []

    async def test_two_racing_confirmations_make_one_payout(self, server: LiveServer) -> None:
        biz = await paying_business(server, name="Race Duka")
        key = await make_api_key(tenant=biz.tenant, scopes=PAYOUT_SCOPES)
        async with mcp_client(server.url, key) as agent:
            first = await call(agent, "request_payout", {"phone": "0722000111", "amount": 400})
        token = first["prepared"]["confirmation_token"]

        async def confirm() -> tuple[bool, str]:
            async with mcp_client(server.url, key) as agent:
                result = await agent.call_tool("request_payout", {"confirmation_token": token})
            return bool(result.is_error), text_of(result)

        answers = sorted(await asyncio.gather(confirm(), confirm()))
        assert [failed for failed, _ in answers] == [False, True], answers
        assert "(error: confirmation_used)" in answers[1][1]
        [payout] = await payouts_in(biz.tenant.id)
        assert str(payout.id) in answers[1][1]
        await wait_final(payout.id)
        assert len(await sim_b2c_requests(biz.sim, biz.short_code)) == 1


class TestReversal:
    async def test_the_owner_s_code_and_the_key_s_token_together_reverse_a_payment(
        self, server: LiveServer
    ) -> None:
        tenant, _ = await make_tenant(name="Agent Reversal Duka")
        await give_initiator(tenant.id)
        key = await all_scopes_key(tenant)
        colleague = await make_api_key(tenant=tenant, scopes=PAYOUT_SCOPES)
        sim = server.production_url

        async with mcp_client(server.url, key) as agent:
            payment = await paid_payment(agent, amount=1000)
            first = await call(agent, "reverse_payment", {"payment_id": payment["id"], "reason": REASON})
            assert first["step"] == "needs_confirmation" and first["reversal"] is None
            prepared = first["prepared"]
            reversal = prepared["reversal"]
            assert (reversal["status"], reversal["amount"], reversal["receipt"], reversal["reason"]) == (
                "unconfirmed",
                1000,
                payment["receipt"],
                REASON,
            )
            assert prepared["code_sent_to"][0].startswith("email ")
            token = prepared["confirmation_token"]
            [code] = await reversal_codes(tenant.id)
            assert await sim_reversals(sim, payment["receipt"]) == []

            no_code = await refusal(agent, "reverse_payment", {"confirmation_token": token})
            assert no_code.code == "invalid_input" and "6-digit code" in no_code.text
            wrong = "111111" if code != "111111" else "222222"
            refused = await refusal(agent, "reverse_payment", {"confirmation_token": token, "code": wrong})
            assert refused.code == "invalid_input"
            assert "That is not the code we sent. 4 tries left." in refused.text

        # Another key of the same business, with the right code: the token is not its.
        async with mcp_client(server.url, colleague) as other:
            taken = await refusal(other, "reverse_payment", {"confirmation_token": token, "code": code})
        assert taken.code == "not_found", taken.text
        async with unit_of_work(readonly=True) as session:
            row = await session.get(Reversal, uuid.UUID(reversal["id"]))
            assert row is not None and row.status is ReversalStatus.unconfirmed
        assert await sim_reversals(sim, payment["receipt"]) == []

        async with mcp_client(server.url, key) as agent:
            sent = await call(agent, "reverse_payment", {"confirmation_token": token, "code": code})
            assert sent["step"] == "sent"
            assert (sent["reversal"]["id"], sent["reversal"]["status"]) == (reversal["id"], "pending")
            after = await poll(agent, "get_payment", {"payment_id": payment["id"]}, until={"reversed"})
            assert after["status"] == "reversed"
            used = await refusal(agent, "reverse_payment", {"confirmation_token": token, "code": code})
            assert used.code == "confirmation_used" and reversal["id"] in used.text
        async with unit_of_work(readonly=True) as session:
            row = await session.get(Reversal, uuid.UUID(reversal["id"]))
            assert row is not None and row.status is ReversalStatus.success and row.reversal_receipt
        assert len(await sim_reversals(sim, payment["receipt"])) == 1
        assert await count(Reversal, Reversal.tenant_id == tenant.id) == 1

        calls = [r for r in await tool_calls(tenant.id) if r.detail["tool"] == "reverse_payment"]
        assert [(r.detail["outcome"], r.detail.get("error")) for r in calls] == [
            ("ok", None),
            ("error", "invalid_input"),
            ("error", "invalid_input"),
            ("error", "not_found"),
            ("ok", None),
            ("error", "confirmation_used"),
        ]
        assert calls[0].detail["arguments"] == {"payment_id": payment["id"], "reason": REASON}
        for r in calls[2:]:
            assert r.detail["arguments"] == {"confirmation_token": "***", "code": "***"}
        assert code not in str([r.detail for r in calls]) and token not in str([r.detail for r in calls])
