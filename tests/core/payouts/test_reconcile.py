"""Payouts whose result never came (core/payouts/reconcile.py), through the real simulator: a lost
result and a queue timeout are settled by Transaction Status, a payout M-Pesa never processed fails
once "no such transaction" can be trusted, one nobody ever answers about times out (never resent), and
a POST whose answer was lost is sent again under the same OriginatorConversationID, which the
simulator answers as a duplicate: still one payout, paid once."""

from __future__ import annotations

from datetime import timedelta

import aiohttp
import httpx
import respx
from sqlalchemy import select

from core.db import utcnow
from core.lookups.models import LookupStatus
from core.notify.models import Notification
from core.payouts.models import Payout, PayoutStatus
from core.payouts.reconcile import MAX_STATUS_CHECKS, RESULT_WINDOW, resolve_payout
from core.payouts.send import send_payout
from core.payouts.use_cases import request_payout
from core.runtime import unit_of_work
from tests.conftest import LiveServer
from tests.support.payouts import (
    PayingBusiness,
    answers_of,
    lookups_of,
    paying_business,
    payout_row,
    sim_b2c_requests,
    sim_balance,
    wait_final,
    wait_sent,
)
from tests.support.waiting import wait_until


async def pay(biz: PayingBusiness, phone: str, amount: int) -> Payout:
    out = await request_payout(biz.actor, phone=phone, amount=amount)
    return await payout_row(out.id)


async def answered(payout: Payout, count: int) -> None:
    """Until `count` status lookups of the payout have their answer."""

    async def done() -> bool:
        rows = await lookups_of(payout.id)
        return len(rows) == count and all(r.status is not LookupStatus.pending for r in rows)

    await wait_until(done)


class TestStatusSettles:
    async def test_a_lost_result_is_settled_by_the_status_query(self, server: LiveServer) -> None:
        # 9999: the simulator pays and sends no result at all.
        biz = await paying_business(server, name="Lost Result Duka")
        payout = await wait_sent((await pay(biz, "254722009999", 700)).id)
        assert (payout.status, payout.status_checks) == (PayoutStatus.pending, 0)
        assert payout.next_check_at is not None and payout.next_check_at > utcnow() + timedelta(minutes=2)

        assert await resolve_payout(payout.id) is PayoutStatus.pending  # the question is on its way
        done = await wait_final(payout.id)
        assert (done.status, done.result_code, done.result_desc, done.status_checks) == (
            PayoutStatus.success,
            "0",
            "Paid (confirmed by an M-Pesa status query)",
            1,
        )
        assert done.receipt is not None and done.recipient_name and done.next_check_at is None
        [lookup] = await lookups_of(payout.id)
        assert (lookup.status, lookup.transaction_id, lookup.result_code) == (
            LookupStatus.done,
            payout.originator_conversation_id,
            "0",
        )
        assert lookup.result is not None and lookup.result["receipt"] == done.receipt
        assert (await sim_balance(biz.sim, biz.short_code))["utility"] == "99300.00"

    async def test_a_queue_timeout_that_was_paid_is_settled_as_paid(self, server: LiveServer) -> None:
        # 9997: a QueueTimeOut notice and no Result, but the payout went through.
        biz = await paying_business(server, name="Queue Paid Duka")
        payout = await pay(biz, "254722009997", 400)
        done = await wait_final(payout.id)
        assert (done.status, done.result_desc) == (
            PayoutStatus.success,
            "Paid (confirmed by an M-Pesa status query)",
        )
        assert [r.outcome for r in await answers_of(biz.channel_id, "b2c-timeout")] == ["applied"]
        assert await answers_of(biz.channel_id, "b2c-result") == []
        assert [r.status for r in await lookups_of(payout.id)] == [LookupStatus.done]
        assert (await sim_balance(biz.sim, biz.short_code))["utility"] == "99600.00"

    async def test_a_queue_timeout_never_processed_fails_once_the_window_passed(
        self, server: LiveServer
    ) -> None:
        # 9996: a QueueTimeOut notice, and M-Pesa never processed it: status answers 2032.
        biz = await paying_business(server, name="Queue Lost Duka")
        payout = await pay(biz, "254722009996", 400)
        await answered(payout, 1)
        early = await payout_row(payout.id)
        # Asked right after the POST, "no such transaction" may only mean "not on record yet".
        assert (early.status, early.status_checks) == (PayoutStatus.pending, 1)
        [first] = await lookups_of(payout.id)
        assert (first.status, first.result_code) == (LookupStatus.failed, "2032")

        async with unit_of_work() as session:
            row = await session.get(Payout, payout.id)
            assert row is not None and row.last_attempt_at is not None
            row.last_attempt_at -= RESULT_WINDOW  # the clock moves on
        assert await resolve_payout(payout.id) is PayoutStatus.pending
        done = await wait_final(payout.id)
        assert (done.status, done.result_code, done.result_desc) == (
            PayoutStatus.failed,
            "2032",
            "M-Pesa has no such payout: it was never processed, so no money left the account. Send it "
            "again if it is still owed (a new payout).",
        )
        assert (await sim_balance(biz.sim, biz.short_code))["utility"] == "100000.00"


class TestGivingUp:
    async def test_unanswered_checks_end_in_timeout_and_it_is_never_resent(self, server: LiveServer) -> None:
        biz = await paying_business(server, name="Silent Duka")
        payout = await wait_sent((await pay(biz, "254722009999", 250)).id)
        # From now on the simulator refuses this initiator: every status question answers 2001.
        async with httpx.AsyncClient() as c:
            r = await c.post(
                f"{biz.sim}/_sim/initiators",
                json={"shortcode": biz.short_code, "name": "apiop", "password": "Changed-Pass1"},
            )
            r.raise_for_status()
        for n in range(1, MAX_STATUS_CHECKS + 1):
            assert await resolve_payout(payout.id) is PayoutStatus.pending
            await answered(payout, n)
        assert [r.result_code for r in await lookups_of(payout.id)] == ["2001"] * MAX_STATUS_CHECKS
        assert await resolve_payout(payout.id) is PayoutStatus.timeout
        done = await payout_row(payout.id)
        assert (done.status, done.status_checks, done.send_attempts, done.next_check_at) == (
            PayoutStatus.timeout,
            MAX_STATUS_CHECKS,
            1,
            None,
        )
        assert done.result_desc == (
            "M-Pesa never said whether this payout of KES 250 was paid, and 6 status checks got no answer. "
            "It will not be sent again: check the M-Pesa statement for it before paying this person again."
        )
        assert len(await sim_b2c_requests(biz.sim, biz.short_code)) == 1
        async with unit_of_work(readonly=True) as session:
            told = list(
                await session.scalars(
                    select(Notification.body).where(
                        Notification.tenant_id == biz.tenant.id, Notification.kind == "payout.timeout"
                    )
                )
            )
        assert len(told) == 1 and "Check your M-Pesa statement" in told[0]


class TestLostAnswer:
    async def test_a_post_whose_answer_was_lost_goes_again_under_its_id(self, server: LiveServer) -> None:
        # The first POST reaches the simulator (9999: it pays, and sends no result), but its answer never
        # comes back to us: a read timeout, outcome unknown.
        biz = await paying_business(server, name="Timeout Duka")
        b2c_url = f"{biz.sim}/mpesa/b2c/v3/paymentrequest"
        lost: list[bool] = []

        async def lose_the_first_answer(request: httpx.Request) -> httpx.Request:
            if lost:
                return request  # pass through to the simulator
            # aiohttp, which respx does not intercept: the request really reaches the simulator
            async with (
                aiohttp.ClientSession() as s,
                s.post(b2c_url, data=request.content, headers=dict(request.headers)) as r,
            ):
                assert r.status == 200, await r.text()
            lost.append(True)
            raise httpx.ReadTimeout("the answer was lost", request=request)

        with respx.mock(assert_all_called=False) as mock:
            mock.post(b2c_url).mock(side_effect=lose_the_first_answer)
            mock.route().pass_through()
            payout = await pay(biz, "254722009999", 900)

            async def answer_lost() -> bool:
                return bool(lost)

            await wait_until(answer_lost)
            first = await payout_row(payout.id)
            assert (first.status, first.send_attempts, first.sent_at, first.conversation_id) == (
                PayoutStatus.pending,
                1,
                None,
                None,
            )
            # resent later (here: now) by the reconciler's send job, with the same id
            await send_payout(payout_id=str(payout.id))
        again = await payout_row(payout.id)
        assert (again.send_attempts, again.status) == (2, PayoutStatus.pending)
        assert again.sent_at is not None  # Daraja answered "duplicate": it has the payout
        sent = await sim_b2c_requests(biz.sim, biz.short_code)
        assert [b["OriginatorConversationID"] for b in sent] == [payout.originator_conversation_id] * 2
        assert await resolve_payout(payout.id) is PayoutStatus.pending
        done = await wait_final(payout.id)
        assert (done.status, done.send_attempts) == (PayoutStatus.success, 2)
        assert (await sim_balance(biz.sim, biz.short_code))["utility"] == "99100.00"  # paid once
