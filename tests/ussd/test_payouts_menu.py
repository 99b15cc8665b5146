"""Money out on the merchant's USSD menu, behind the PIN, end to end (the gateway driver posts to the
live app's POST /ussd; payouts go to the Daraja stand-in): the owner of a business with a payout channel
sees its M-Pesa balance and refreshes it, pays out after the "Send …? 1. Yes 2. No" screen (a "No"
sends nothing), and a cashier sees neither option until the owner allows them to pay out."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select

from core.auth.models import Role, User
from core.db import utcnow
from core.lookups.models import Lookup, LookupKind
from core.lookups.use_cases import balances
from core.payouts.models import Payout, PayoutSource, PayoutStatus
from core.runtime import unit_of_work
from core.tenants.models import MpesaChannel
from sim.africastalking import UssdGateway
from tests.conftest import LiveServer
from tests.support.payouts import add_payout_channel, owner_actor, sim_b2c_requests, wait_final
from tests.ussd.conftest import PIN, Merchant, intl, make_merchant
from tests.ussd.test_merchant_menu import HOME, PROMPT
from ussd.merchant import NAIROBI

MONEY_OUT = HOME + "\n8. M-Pesa balance\n9. Pay out"


async def paying_merchant(
    server: LiveServer, *, role: Role = Role.owner, name: str = "Mama Mboga"
) -> tuple[Merchant, str]:
    """A USSD merchant whose business has a payout channel with a proven initiator, and its short code."""
    m = await make_merchant(role=role, name=name)
    async with unit_of_work(readonly=True) as session:
        owner = await session.scalar(
            select(User).where(User.tenant_id == m.tenant.id, User.role == Role.owner)
        )
    assert owner is not None
    _, code = await add_payout_channel(server, m.tenant, owner)
    return m, code


async def balance_lookups(tenant_id: uuid.UUID) -> int:
    async with unit_of_work(readonly=True) as session:
        rows = await session.scalars(
            select(Lookup).where(Lookup.tenant_id == tenant_id, Lookup.kind == LookupKind.balance)
        )
        return len(list(rows))


async def signed_in(gateway: UssdGateway, m: Merchant, home: str):  # type: ignore[no-untyped-def]
    s = gateway.dial(intl(m.phone))
    assert (await s.start()).text == PROMPT
    assert (await s.send(PIN)).text == home
    return s


async def payouts_of(tenant_id: uuid.UUID) -> list[Payout]:
    async with unit_of_work(readonly=True) as session:
        return list(await session.scalars(select(Payout).where(Payout.tenant_id == tenant_id)))


def at(moment: datetime | None) -> str:
    assert moment is not None
    local = moment.astimezone(NAIROBI)
    return (
        f"{local:%H:%M}" if local.date() == utcnow().astimezone(NAIROBI).date() else f"{local.day} {local:%b}"
    )


async def test_the_owner_sees_the_balance_and_refreshes_it(server: LiveServer, gateway: UssdGateway) -> None:
    m, _ = await paying_merchant(server)
    s = await signed_in(gateway, m, MONEY_OUT)
    [channel] = (await balances(owner_actor(m.tenant, m.user))).channels
    shown = await s.send("8")
    assert (shown.kind, shown.text) == (
        "CON",
        f"M-Pesa balance (Utility):\nPayouts: KES 100,000.00 at {at(channel.as_of)}\n1. Refresh\n0 Back",
    )
    before = await balance_lookups(m.tenant.id)  # the balance check that proved the initiator
    asked = await s.send("1")
    assert (asked.kind, asked.text) == (
        "END",
        "Asked M-Pesa for your balance. Dial again in a minute to see it.",
    )
    assert await balance_lookups(m.tenant.id) == before + 1


async def test_the_owner_pays_out_behind_the_confirmation(server: LiveServer, gateway: UssdGateway) -> None:
    m, code = await paying_merchant(server, name="Payout Kiosk")
    home = MONEY_OUT.replace("Mama Mboga", "Payout Kiosk")
    s = await signed_in(gateway, m, home)
    assert (await s.send("9")).text == "Pay to phone number:"
    assert (await s.send("0712345")).text == (
        "Not a Kenyan mobile number. Use 07XXXXXXXX or 01XXXXXXXX.\nPay to phone number:"
    )
    assert (await s.send("0722555111")).text == "Amount in KES:"
    assert (await s.send("5")).text == "A payout is at least KES 10 (M-Pesa's B2C minimum).\nAmount in KES:"
    confirm = await s.send("1500")
    assert (confirm.kind, confirm.text) == (
        "CON",
        "Send KES 1,500 to 0722555111?\nIt cannot be undone.\n1. Yes\n2. No\n0 Back 00 Home",
    )
    assert await payouts_of(m.tenant.id) == []  # nothing before the Yes
    end = await s.send("1")
    assert (end.kind, end.text) == (
        "END",
        "Sent to M-Pesa: KES 1,500 to 0722555111. You will be told if it is not paid.",
    )
    [payout] = await payouts_of(m.tenant.id)
    assert (payout.phone, payout.amount, payout.source, payout.initiated_by_id) == (
        "254722555111",
        1500,
        PayoutSource.ussd,
        m.user.id,
    )
    assert (await wait_final(payout.id)).status is PayoutStatus.success

    # a "No" at the confirmation sends nothing
    s = await signed_in(gateway, m, home)
    for value in ("9", "0722555222", "700"):
        await s.send(value)
    no = await s.send("2")
    assert (no.kind, no.text) == ("END", "Cancelled. Nothing was sent.")
    assert len(await payouts_of(m.tenant.id)) == 1
    assert len(await sim_b2c_requests(server.production_url, code)) == 1


async def test_a_cashier_pays_out_only_once_allowed(server: LiveServer, gateway: UssdGateway) -> None:
    m, code = await paying_merchant(server, role=Role.cashier, name="Staff Kiosk")
    cashier_home = (
        "Staff Kiosk\n1. Request payment\n2. Last 5 payments\n3. Today\n6. Change PIN\n7. Pay a business"
    )
    s = await signed_in(gateway, m, cashier_home)
    refused = await s.send("9")  # not shown, and not there when typed
    assert refused.text == "Invalid choice.\n" + cashier_home

    async with unit_of_work() as session:  # the owner allows it (their use case is the panel's)
        user = await session.get(User, m.user.id)
        assert user is not None
        user.may_pay_out = True
    s = await signed_in(gateway, m, cashier_home + "\n9. Pay out")  # a cashier reads no balance
    for value, screen in (("9", "Pay to phone number:"), ("0722555333", "Amount in KES:")):
        assert (await s.send(value)).text == screen
    assert (await s.send("250")).text.startswith("Send KES 250 to 0722555333?")
    end = await s.send("1")
    assert (end.kind, end.text) == (
        "END",
        "Sent to M-Pesa: KES 250 to 0722555333. The owner will be told if it is not paid.",
    )
    [payout] = await payouts_of(m.tenant.id)
    assert payout.initiated_by_id == m.user.id and payout.source is PayoutSource.ussd
    assert (await wait_final(payout.id)).status is PayoutStatus.success
    assert len(await sim_b2c_requests(server.production_url, code)) == 1


async def test_several_payout_channels_are_chosen_from(server: LiveServer, gateway: UssdGateway) -> None:
    m, _ = await paying_merchant(server, name="Two Tills")
    await add_payout_channel(server, m.tenant, m.user, name="Salaries")
    s = await signed_in(gateway, m, MONEY_OUT.replace("Mama Mboga", "Two Tills"))
    assert (await s.send("9")).text == "Pay out from:\n1. Payouts\n2. Salaries\n0 Back"
    assert (await s.send("2")).text == "Pay to phone number:"
    await s.send("0722555444")
    confirm = await s.send("300")
    assert confirm.text == (
        "Send KES 300 to 0722555444 from Salaries?\nIt cannot be undone.\n1. Yes\n2. No\n0 Back 00 Home"
    )
    end = await s.send("1")
    assert end.kind == "END"
    [payout] = await payouts_of(m.tenant.id)
    async with unit_of_work(readonly=True) as session:
        channel = await session.get(MpesaChannel, payout.channel_id)
    assert channel is not None and channel.name == "Salaries"
