"""The lookups' periodic job (core/lookups/jobs.py): a question M-Pesa never answered ends as timeout
(and says so about an initiator it was proving), and a proven initiator's balance is asked again once
it is a day old, not before."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from core.db import utcnow
from core.lookups.jobs import LOOKUP_ANSWER_SECONDS, sweep_lookups
from core.lookups.models import Lookup, LookupKind, LookupStatus
from core.runtime import unit_of_work
from core.tenants.models import MpesaChannel
from tests.conftest import LiveServer
from tests.support.factories import make_tenant
from tests.support.payouts import add_payout_channel, channel_row, paying_business
from tests.support.waiting import wait_until


async def balance_lookups(channel_id: object) -> list[Lookup]:
    async with unit_of_work(readonly=True) as session:
        return list(
            await session.scalars(
                select(Lookup)
                .where(Lookup.channel_id == channel_id, Lookup.kind == LookupKind.balance)
                .order_by(Lookup.created_at)
            )
        )


class TestSweep:
    async def test_an_unanswered_question_times_out(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Unanswered Duka")
        channel_id, _ = await add_payout_channel(server, tenant, owner, wait=False)
        # Pretend the proof's answer never came: the question is pending and old.
        await wait_until(lambda: _sent(channel_id))
        async with unit_of_work() as session:
            [lookup] = await session.scalars(select(Lookup).where(Lookup.channel_id == channel_id))
            lookup.status = LookupStatus.pending
            lookup.created_at = utcnow() - timedelta(seconds=LOOKUP_ANSWER_SECONDS + 1)
            channel = await session.get(MpesaChannel, channel_id)
            assert channel is not None
            channel.initiator_verified_at = None
            channel.initiator_set_at = lookup.created_at
        await sweep_lookups()
        [lookup] = await balance_lookups(channel_id)
        assert (lookup.status, lookup.result_desc) == (
            LookupStatus.timeout,
            "M-Pesa never answered this question (10 minutes): ask again.",
        )
        assert (await channel_row(channel_id)).initiator_error == (
            "M-Pesa never answered the balance check that proves this initiator: set it again to retry."
        )

    async def test_a_day_old_balance_is_asked_again(self, server: LiveServer) -> None:
        biz = await paying_business(server, name="Daily Balance Duka")
        [proof] = await balance_lookups(biz.channel_id)
        await sweep_lookups()
        assert len(await balance_lookups(biz.channel_id)) == 1  # fresh: not yet
        async with unit_of_work() as session:
            row = await session.get(Lookup, proof.id)
            assert row is not None
            row.created_at = utcnow() - timedelta(days=1, minutes=1)
        await sweep_lookups()
        rows = await balance_lookups(biz.channel_id)
        assert [r.id == proof.id for r in rows] == [True, False]

        async def answered() -> bool:
            return (await balance_lookups(biz.channel_id))[-1].status is LookupStatus.done

        await wait_until(answered)
        assert (await balance_lookups(biz.channel_id))[-1].utility_cents == 100_000_00


async def _sent(channel_id: object) -> bool:
    rows = await balance_lookups(channel_id)
    return bool(rows) and rows[0].status is not LookupStatus.pending
