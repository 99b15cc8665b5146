"""/callbacks/daraja/{token}/{kind}: Daraja's asynchronous answers are stored as they came with their
kind and the ConversationID (or TransID) they name, answered at once, and applied in a job; an unknown
kind or token is refused and stores nothing."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from core.payments.models import CallbackInbox
from core.runtime import unit_of_work
from core.tenants.models import Environment, MpesaChannel
from tests.conftest import LiveServer
from tests.support.factories import make_tenant
from tests.support.waiting import wait_until

RESULT = {
    "Result": {
        "ResultType": 0,
        "ResultCode": 2001,
        "ResultDesc": "The initiator information is invalid.",
        "OriginatorConversationID": "lp_" + "0" * 32,  # ours, but no payout has it: orphan at once
        "ConversationID": "AG_20261207_00001234567890abcdef",
        "TransactionID": "NLJ0000000",
    }
}


async def channel_token(tenant_id: object) -> tuple[object, str]:
    async with unit_of_work(readonly=True) as session:
        row = await session.scalar(select(MpesaChannel).where(MpesaChannel.tenant_id == tenant_id))
        assert row is not None
        return row.id, row.callback_token


async def inbox_rows(channel_id: object) -> list[CallbackInbox]:
    async with unit_of_work(readonly=True) as session:
        return list(
            await session.scalars(select(CallbackInbox).where(CallbackInbox.channel_id == channel_id))
        )


async def test_an_answer_is_kept_with_its_kind_and_conversation(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    tenant, _ = await make_tenant(name="Answers Duka", environment=Environment.simulator)
    channel_id, token = await channel_token(tenant.id)

    r = await client.post(f"/callbacks/daraja/{token}/b2c-result", json=RESULT)
    assert (r.status_code, r.json()) == (200, {"ResultCode": 0, "ResultDesc": "Accepted"})
    c2b = {"TransactionType": "Pay Bill", "TransID": "UL7BCHDRLF", "TransAmount": "5.00"}
    r = await client.post(f"/callbacks/daraja/{token}/c2b-confirmation", json=c2b)
    assert (r.status_code, r.json()) == (200, {"ResultCode": 0, "ResultDesc": "Success"})

    async def applied() -> bool:
        return all(row.processed_at is not None for row in await inbox_rows(channel_id))

    await wait_until(applied)
    rows = sorted(await inbox_rows(channel_id), key=lambda row: row.id)
    assert [(row.kind, row.reference, row.checkout_request_id) for row in rows] == [
        ("b2c-result", "AG_20261207_00001234567890abcdef", None),
        ("c2b-confirmation", "UL7BCHDRLF", None),
    ]
    assert all(row.outcome for row in rows)


async def test_an_unknown_kind_or_token_is_refused(server: LiveServer, client: httpx.AsyncClient) -> None:
    tenant, _ = await make_tenant(name="Refused Answers Duka", environment=Environment.simulator)
    channel_id, token = await channel_token(tenant.id)
    for path in (
        f"/callbacks/daraja/{token}/stk",
        f"/callbacks/daraja/{token}/payout-result",
        "/callbacks/daraja/not-a-token/b2c-result",
    ):
        r = await client.post(path, json=RESULT)
        assert r.status_code == 404, (path, r.text)
    async with unit_of_work(readonly=True) as session:
        count = await session.scalar(select(func.count()).where(CallbackInbox.channel_id == channel_id))
    assert count == 0
