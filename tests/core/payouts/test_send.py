"""The send job's decisions (core/payouts/send.py) on what Daraja's gateway answers, with respx standing
in for the gateway where the simulator cannot misbehave on cue: a refusal of the first attempt fails the
payout with the reason, a connection that never opened is tried again under the same id, and a payout
whose every attempt went unanswered is never sent again but asked about."""

from __future__ import annotations

from datetime import timedelta

import httpx
import respx

from core.db import utcnow
from core.lookups.models import LookupStatus
from core.payouts.models import PayoutStatus
from core.payouts.reconcile import resolve_payout
from core.payouts.send import MAX_SEND_ATTEMPTS, send_payout
from core.payouts.use_cases import request_payout
from tests.conftest import LiveServer
from tests.support.payouts import (
    lookups_of,
    paying_business,
    payout_row,
    sim_b2c_requests,
    wait_final,
)
from tests.support.waiting import wait_until


async def attempts_reach(payout_id: object, n: int) -> None:
    async def reached() -> bool:
        row = await payout_row(payout_id)  # type: ignore[arg-type]
        return row.send_attempts >= n and row.next_check_at is not None and row.next_check_at > utcnow()

    await wait_until(reached)


class TestSendJob:
    async def test_a_refused_first_attempt_fails_with_the_reason(self, server: LiveServer) -> None:
        biz = await paying_business(server, name="Refused Remarks Duka")
        envelope = {
            "requestId": "1c5b-4ba8-815c-ac45c57a3db01495926",
            "errorCode": "400.002.02",
            "errorMessage": "Bad Request - Invalid Remarks",
        }
        with respx.mock(assert_all_called=False) as mock:
            mock.post(f"{biz.sim}/mpesa/b2c/v3/paymentrequest").mock(
                return_value=httpx.Response(400, json=envelope)
            )
            mock.route().pass_through()
            out = await request_payout(biz.actor, phone="254722000111", amount=100, reference="Bonus")
            done = await wait_final(out.id)
        assert (done.status, done.result_code, done.result_desc, done.send_attempts) == (
            PayoutStatus.failed,
            "400.002.02",
            "M-Pesa refused the payout: Daraja says the remarks are invalid: use 2 to 100 letters, digits "
            "and spaces.",
            1,
        )
        assert await sim_b2c_requests(biz.sim, biz.short_code) == []

    async def test_a_connection_that_never_opened_is_tried_again_under_the_same_id(
        self, server: LiveServer
    ) -> None:
        biz = await paying_business(server, name="Unreachable Duka")
        url = f"{biz.sim}/mpesa/b2c/v3/paymentrequest"
        with respx.mock(assert_all_called=False) as mock:
            mock.post(url).mock(side_effect=httpx.ConnectError("connection refused"))
            mock.route().pass_through()
            out = await request_payout(biz.actor, phone="254722000111", amount=100)
            await attempts_reach(out.id, 1)
        first = await payout_row(out.id)
        assert (first.status, first.sent_at) == (PayoutStatus.pending, None)
        assert first.next_check_at is not None
        assert timedelta(seconds=20) < first.next_check_at - utcnow() <= timedelta(seconds=30)
        await send_payout(payout_id=str(out.id))  # the reconciler's resend, now
        done = await wait_final(out.id)
        assert (done.status, done.send_attempts) == (PayoutStatus.success, 2)
        [sent] = await sim_b2c_requests(biz.sim, biz.short_code)
        assert sent["OriginatorConversationID"] == out.originator_conversation_id

    async def test_after_the_last_unanswered_attempt_it_is_asked_about_not_sent(
        self, server: LiveServer
    ) -> None:
        biz = await paying_business(server, name="Black Hole Duka")
        url = f"{biz.sim}/mpesa/b2c/v3/paymentrequest"
        with respx.mock(assert_all_called=False) as mock:
            route = mock.post(url).mock(side_effect=httpx.ReadTimeout("no answer"))
            mock.route().pass_through()
            out = await request_payout(biz.actor, phone="254722000111", amount=100)
            await attempts_reach(out.id, 1)
            for n in range(2, MAX_SEND_ATTEMPTS + 1):
                await send_payout(payout_id=str(out.id))
                assert (await payout_row(out.id)).send_attempts == n
            await send_payout(payout_id=str(out.id))  # attempts used up: nothing goes out
            assert route.call_count == MAX_SEND_ATTEMPTS
        row = await payout_row(out.id)
        assert (row.status, row.send_attempts, row.sent_at, row.status_checks) == (
            PayoutStatus.pending,
            MAX_SEND_ATTEMPTS,
            None,
            0,
        )
        assert await resolve_payout(out.id) is PayoutStatus.pending
        assert (await payout_row(out.id)).send_attempts == MAX_SEND_ATTEMPTS

        async def asked() -> bool:
            rows = await lookups_of(out.id)
            return len(rows) == 1 and rows[0].status is not LookupStatus.pending

        await wait_until(asked)
        [lookup] = await lookups_of(out.id)
        # M-Pesa never saw it; "no such transaction" is trusted only once the result window passed
        assert (lookup.result_code, (await payout_row(out.id)).status) == ("2032", PayoutStatus.pending)
