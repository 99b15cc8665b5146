"""The merchant's USSD menu end to end: the gateway driver posts to the live app's POST /ussd, pushes
go to the Daraja simulator, results come back as SMS through the Africa's Talking stand-in."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from core.auth.models import Role, User
from core.notify.models import Notification
from core.payments.models import Payment, PaymentSource
from core.runtime import unit_of_work
from sim.africastalking import UssdGateway
from tests.support.waiting import wait_until
from tests.ussd.conftest import PIN, Merchant, intl, make_merchant, sms_to

PROMPT = "Welcome to lipapush.\nEnter your 4-digit PIN:"
HOME = (
    "Mama Mboga\n1. Request payment\n2. Last 5 payments\n3. Today\n4. Wallet\n5. Export customers\n"
    "6. Change PIN\n7. Pay a business"
)


async def signed_in(gateway: UssdGateway, m: Merchant):  # type: ignore[no-untyped-def]
    s = gateway.dial(intl(m.phone))
    first = await s.start()
    assert (first.kind, first.text) == ("CON", PROMPT)
    home = await s.send(PIN)
    assert (home.kind, home.text) == ("CON", HOME)
    return s


async def last_sms(at: httpx.AsyncClient, phone: str, count: int) -> str:
    async def arrived() -> bool:
        return len(await sms_to(at, phone)) >= count

    await wait_until(arrived)
    return str((await sms_to(at, phone))[-1]["message"])


async def test_request_payment_paid_then_sms(gateway: UssdGateway, at: httpx.AsyncClient) -> None:
    m = await make_merchant()
    s = await signed_in(gateway, m)
    assert (await s.send("1")).text == "Customer phone number:"
    assert (await s.send("0712345678")).text == "Amount in KES:"
    confirm = await s.send("150")
    assert confirm.text == "Request KES 150 from 0712345678?\n1. Send\n2. Cancel\n0 Back 00 Home"
    end = await s.send("1")
    assert (end.kind, end.text) == (
        "END",
        "Request sent: KES 150 to 0712345678. You will get an SMS with the result.",
    )
    text = await last_sms(at, m.phone, 1)
    assert text.startswith("lipapush: PAID KES 150 from 0712345678. Receipt ")
    async with unit_of_work(readonly=True) as session:
        p = await session.scalar(select(Payment).where(Payment.tenant_id == m.tenant.id))
    assert p is not None
    assert (p.source, p.status.value, p.initiated_by_id, p.notify_phone) == (
        PaymentSource.ussd,
        "success",
        m.user.id,
        m.msisdn,
    )
    assert p.receipt and p.receipt in text


async def test_cancelled_and_wrong_pin_outcomes_reach_the_merchant(
    gateway: UssdGateway, at: httpx.AsyncClient
) -> None:
    m = await make_merchant()
    for n, (customer, word) in enumerate(
        [("0711111032", "CANCELLED"), ("0711112001", "NOT PAID")], start=1
    ):
        s = await signed_in(gateway, m)
        for value in ("1", customer, "200"):
            await s.send(value)
        assert (await s.send("1")).kind == "END"
        text = await last_sms(at, m.phone, n)
        assert text.startswith(f"lipapush: {word} KES 200 from {customer}. ")


async def test_three_wrong_pins_lock_and_tell_the_owner(gateway: UssdGateway, server) -> None:  # type: ignore[no-untyped-def]
    m = await make_merchant(role=Role.cashier)
    s = gateway.dial(intl(m.phone))
    await s.start()
    assert (await s.send("1111")).text == "Wrong PIN. 2 tries left.\n" + PROMPT
    assert (await s.send("abcd")).text == "The PIN is 4 digits.\n" + PROMPT
    assert (await s.send("2222")).text == "Wrong PIN. 1 try left.\n" + PROMPT
    locked = await s.send("3333")
    assert locked.kind == "END"
    assert locked.text.startswith("Too many wrong PINs. USSD is locked until ")
    # Even the right PIN is refused now, from the first screen of a new session.
    again = await gateway.dial(intl(m.phone)).start()
    assert again.kind == "END" and again.text.startswith("Too many wrong PINs.")
    async with unit_of_work(readonly=True) as session:
        user = await session.get(User, m.user.id)
        notes = list(
            await session.scalars(
                select(Notification).where(
                    Notification.tenant_id == m.tenant.id, Notification.kind == "ussd.locked"
                )
            )
        )
    assert user is not None and user.ussd_locked_until is not None and user.ussd_pin_failures == 0
    assert len(notes) == 1
    assert notes[0].channel.value == "sms" and notes[0].recipient == m.tenant.phone
    assert "3 wrong USSD PINs" in notes[0].body


async def test_back_and_home(gateway: UssdGateway) -> None:
    m = await make_merchant()
    s = await signed_in(gateway, m)
    await s.send("1")
    assert (await s.send("0712345678")).text == "Amount in KES:"
    assert (await s.send("0")).text == "Customer phone number:"
    assert (await s.send("0")).text == HOME
    assert (await s.send("0")).text == HOME  # nothing above home
    await s.send("1")
    await s.send("0712345678")
    assert (await s.send("00")).text == HOME
    today = await s.send("3")
    assert today.text.startswith("Today ") and today.text.endswith("0 Back")
