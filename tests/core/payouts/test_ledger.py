"""How payouts appear in the ledger (core/ledger/payouts.py) and what `lipapush ledger check` proves of
them: after paid, refused, status-settled and test payouts, each live paid one carries exactly one
transfer b2c_out → payees of its amount and nothing else carries any; a tampered payout or one left
pending with no next check is reported."""

from __future__ import annotations

from sqlalchemy import select

from core.billing.integrity import check_all
from core.ledger.models import AccountKind, Transfer
from core.payouts.models import Payout, PayoutStatus
from core.payouts.reconcile import resolve_payout
from core.payouts.use_cases import request_payout
from core.runtime import unit_of_work
from core.tenants.models import Environment
from tests.conftest import LiveServer
from tests.support.factories import account_balance
from tests.support.payouts import add_payout_channel, paying_business, wait_final, wait_sent


async def problems_of(tenant_id: object) -> list[str]:
    async with unit_of_work(readonly=True) as session:
        return [f"{p.what}: {p.detail}" for p in await check_all(session, tenant_id=tenant_id)]  # type: ignore[arg-type]


class TestPayoutLedger:
    async def test_every_live_paid_payout_posts_once_and_nothing_else_does(self, server: LiveServer) -> None:
        biz = await paying_business(server, name="Books Duka")
        paid = await request_payout(biz.actor, phone="254722000111", amount=1200)
        refused = await request_payout(biz.actor, phone="254722002040", amount=300)  # unregistered
        lost = await request_payout(biz.actor, phone="254722009999", amount=450)  # settled by status
        assert (await wait_final(paid.id)).status is PayoutStatus.success
        assert (await wait_final(refused.id)).status is PayoutStatus.failed
        await wait_sent(lost.id)
        await resolve_payout(lost.id)
        assert (await wait_final(lost.id)).status is PayoutStatus.success
        # a test payout (simulator) moves no real money: nothing posted
        sim_channel, _ = await add_payout_channel(
            server, biz.tenant, biz.owner, name="Sim", environment=Environment.simulator
        )
        tested = await request_payout(biz.actor, phone="254722000111", amount=80, channel_id=sim_channel)
        assert (await wait_final(tested.id)).status is PayoutStatus.success

        async with unit_of_work(readonly=True) as session:
            transfers = list(
                await session.scalars(
                    select(Transfer).where(Transfer.tenant_id == biz.tenant.id).order_by(Transfer.id)
                )
            )
        assert [(t.cause_type, t.cause_id, t.kind, t.amount_cents) for t in transfers] == [
            ("payout", paid.originator_conversation_id, "payout", 1200_00),
            ("payout", lost.originator_conversation_id, "payout", 450_00),
        ]
        assert await account_balance(biz.tenant, AccountKind.b2c_out) == -1650_00
        assert await account_balance(biz.tenant, AccountKind.payees) == 1650_00
        assert await problems_of(biz.tenant.id) == []

    async def test_the_check_reports_a_payout_the_ledger_disagrees_with(self, server: LiveServer) -> None:
        biz = await paying_business(server, name="Tampered Duka")
        refused = await request_payout(biz.actor, phone="254722002040", amount=300)
        stuck = await request_payout(biz.actor, phone="254722000111", amount=100)
        assert (await wait_final(refused.id)).status is PayoutStatus.failed
        assert (await wait_final(stuck.id)).status is PayoutStatus.success
        async with unit_of_work() as session:
            row = await session.get(Payout, refused.id)
            assert row is not None
            row.status = PayoutStatus.success  # paid, says the row; the ledger never heard of it
            other = await session.get(Payout, stuck.id)
            assert other is not None
            other.status, other.next_check_at = PayoutStatus.pending, None
        try:
            assert sorted(await problems_of(biz.tenant.id)) == sorted(
                [
                    f"payout: payout {refused.id} (live success, KES 300) should carry 30000 cents "
                    "but carries 0",
                    f"payout: payout {stuck.id} (live pending, KES 100) should carry 0 cents "
                    "but carries 10000",
                    f"payout: payout {stuck.id} is pending with no next check: nothing would ever settle it",
                ]
            )
        finally:  # the whole database's `ledger check` (tests/core/billing) must stay clean
            async with unit_of_work() as session:
                row = await session.get(Payout, refused.id)
                other = await session.get(Payout, stuck.id)
                assert row is not None and other is not None
                row.status, other.status = PayoutStatus.failed, PayoutStatus.success
        assert await problems_of(biz.tenant.id) == []
