"""The USSD menu for phones that are not registered: pay a business, sign up; and garbage input."""

from __future__ import annotations

import random

import httpx
import pytest
from sqlalchemy import select

from core.payments.models import Payment, PaymentSource
from core.runtime import unit_of_work
from sim.africastalking import UssdGateway
from tests.conftest import LiveServer
from tests.support.factories import make_tenant
from tests.ussd.conftest import intl, make_merchant, merchant_phone

WELCOME = "Welcome to lipapush\n1. Pay a business\n2. Sign up as a merchant"


def payer_phone() -> str:
    return f"07{random.randint(10_000, 99_999)}678"  # X678: the simulator's "paid" outcome


async def test_pay_a_business_by_its_number(gateway: UssdGateway) -> None:
    tenant, _ = await make_tenant(name="Kibanda Kwa Njeri")
    phone = payer_phone()
    s = gateway.dial(intl(phone))
    assert (await s.start()).text == WELCOME
    assert (await s.send("1")).text == "Enter the business number:"
    amount = await s.send(str(tenant.business_number))
    assert amount.text == "Pay Kibanda Kwa Njeri\nAmount in KES:"
    confirm = await s.send("250")
    assert confirm.text.startswith(f"Pay KES 250 to Kibanda Kwa Njeri from {phone}?\n1. Pay\n2. Cancel")
    end = await s.send("1")
    assert (end.kind, end.text) == (
        "END",
        "Check your phone: enter your M-Pesa PIN to pay KES 250 to Kibanda Kwa Njeri.",
    )
    async with unit_of_work(readonly=True) as session:
        p = await session.scalar(select(Payment).where(Payment.tenant_id == tenant.id))
    assert p is not None
    assert (p.source, p.phone, p.amount, p.initiated_by_id, p.notify_phone) == (
        PaymentSource.ussd,
        "254" + phone[1:],
        250,
        None,
        None,
    )


async def test_unknown_business_number_explains_and_reprompts(gateway: UssdGateway) -> None:
    s = gateway.dial(intl(payer_phone()))
    await s.start()
    await s.send("1")
    screen = await s.send("999999999")
    assert (screen.kind, screen.text) == (
        "CON",
        "Enter the business number: 4 to 8 digits.\nEnter the business number:",
    )
    missing = await s.send("4040")
    assert missing.kind == "CON"
    assert (
        missing.text
        == "No business has the number 4040. Check the number and try again.\nEnter the business number:"
    )
    assert (await s.send("00")).text == WELCOME


async def test_business_that_cannot_collect_is_named(gateway: UssdGateway) -> None:
    tenant, _ = await make_tenant(name="Not Yet Verified", verified=False)
    s = gateway.dial(intl(payer_phone()))
    await s.start()
    await s.send("1")
    screen = await s.send(str(tenant.business_number))
    assert screen.text.startswith("Not Yet Verified cannot take payments right now.")


async def test_sign_up_entry(gateway: UssdGateway, server: LiveServer) -> None:
    s = gateway.dial(intl(payer_phone()))
    await s.start()
    end = await s.send("2")
    assert end.kind == "END"
    assert end.text.startswith(f"To collect M-Pesa payments with lipapush, sign up at {server.url}")


@pytest.mark.parametrize(
    "inputs",
    [
        ["1", "abc"],  # letters for a business number
        ["1", "*" * 30],  # a * flood: empty inputs
        ["9"],  # no such option
        ["1", "x" * 500],  # an oversize input
        ["", "", ""],
    ],
)
async def test_garbage_never_ends_silently(gateway: UssdGateway, inputs: list[str]) -> None:
    s = gateway.dial(intl(payer_phone()))
    await s.start()
    for value in inputs:
        screen = await s.send(value)
        assert screen.kind == "CON", screen.text  # re-prompted, session alive
    assert "\n" in screen.text


async def test_garbage_at_every_merchant_prompt(gateway: UssdGateway) -> None:
    m = await make_merchant()
    s = gateway.dial(intl(m.phone))
    await s.start()
    await s.send("4826")
    await s.send("1")
    bad_phone = await s.send("12345")
    assert bad_phone.text.startswith("Not a Kenyan mobile number. Use 07XXXXXXXX or 01XXXXXXXX.\n")
    await s.send("0712345678")
    for junk, reason in [
        ("abc", "Enter whole shillings, like 150."),
        ("1.5", "Enter whole shillings, like 150."),
        ("999999", "Amount must be 1 to 250,000."),
        ("", "Enter whole shillings, like 150."),
    ]:
        screen = await s.send(junk)
        assert (screen.kind, screen.text) == ("CON", f"{reason}\nAmount in KES:"), junk
    confirm = await s.send("100")
    assert (await s.send("7")).text == "Invalid choice.\n" + confirm.text


async def test_raw_requests_the_gateway_never_sends(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as c:
        # An unknown session whose text claims to be deep in a flow: replayed from the start.
        r = await c.post(
            "/ussd",
            data={"sessionId": "ATUid_never_seen", "phoneNumber": intl(payer_phone()), "text": "1*4040*7"},
        )
        assert (r.status_code, r.headers["content-type"]) == (200, "text/plain; charset=utf-8")
        assert r.text == "CON Enter the business number: 4 to 8 digits.\nEnter the business number:"
        # Walking through a confirm with the payment in the middle of `text` runs nothing.
        tenant, _ = await make_tenant(name="Replay Shop")
        r = await c.post(
            "/ussd",
            data={
                "sessionId": "ATUid_replayed",
                "phoneNumber": intl(payer_phone()),
                "text": f"1*{tenant.business_number}*100*1*1",
            },
        )
        assert r.text == "END That choice could not be completed. Please dial again."
        async with unit_of_work(readonly=True) as session:
            assert await session.scalar(select(Payment).where(Payment.tenant_id == tenant.id)) is None
        for form, expected in [
            ({}, "END This request has no session. Please dial again."),
            ({"sessionId": "s1", "phoneNumber": "+15551234567"}, "END This service is for Kenyan"),
            (
                {"sessionId": "s2", "phoneNumber": intl(payer_phone()), "text": "1*" * 1500},
                "END This session has too many steps.",
            ),
        ]:
            r = await c.post("/ussd", data=form)
            assert r.status_code == 200 and r.text.startswith(expected), r.text
        r = await c.post("/ussd", json={"sessionId": "x"})
        assert r.status_code == 200 and r.text.startswith("END ")


async def test_registered_merchant_phone_is_not_a_payer(gateway: UssdGateway) -> None:
    m = await make_merchant()
    other = merchant_phone()
    assert (await gateway.dial(intl(other)).start()).text == WELCOME
    assert (await gateway.dial(intl(m.phone)).start()).text.endswith("Enter your 4-digit PIN:")


async def test_malformed_requests_get_an_end_line_not_a_422(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as c:
        r = await c.post(
            "/ussd",
            data={"sessionId": "m1", "phoneNumber": intl(payer_phone())},
            files={"text": ("t.txt", b"1*2", "text/plain")},
        )
        # A file where the gateway sends text: the form is refused whole, and the reply says so.
        assert (r.status_code, r.text) == (200, "END This request has no session. Please dial again.")
        r = await c.post(
            f"/ussd?secret={'x' * 500}", data={"sessionId": "m2", "phoneNumber": intl(payer_phone())}
        )
        assert (r.status_code, r.text) == (200, "CON " + WELCOME)
        r = await c.post(
            "/ussd",
            content=b"\xff\xfe garbage",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 200 and r.text.startswith("END ")
