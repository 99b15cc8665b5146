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
    for n, (customer, word) in enumerate([("0711111032", "CANCELLED"), ("0711112001", "NOT PAID")], start=1):
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


async def test_recent_and_today_screens(gateway: UssdGateway, at: httpx.AsyncClient) -> None:
    m = await make_merchant()
    s = await signed_in(gateway, m)
    assert (await s.send("2")).text == "No payments yet.\n0 Back"
    for amount in ("120", "80"):
        s = await signed_in(gateway, m)
        for value in ("1", "0712345678", amount, "1"):
            await s.send(value)
    await last_sms(at, m.phone, 2)  # both results are in
    s = await signed_in(gateway, m)
    recent = await s.send("2")
    assert recent.text == "Last payments:\n80 0712**678 Paid\n120 0712**678 Paid\n0 Back"
    await s.send("0")
    today = await s.send("3")
    lines = today.text.split("\n")
    assert lines[1:] == ["Received: KES 200", "Paid: 2 of 2", "Success rate: 100%", "0 Back"]


async def test_cashier_sees_only_their_own_requests(
    gateway: UssdGateway, at: httpx.AsyncClient, server
) -> None:  # type: ignore[no-untyped-def]
    from tests.support.factories import make_api_key
    from tests.support.waiting import wait_for_final

    m = await make_merchant(role=Role.cashier)
    key = await make_api_key(tenant=m.tenant)
    async with httpx.AsyncClient(base_url=server.url) as c:
        r = await c.post(
            "/api/stk-push",
            json={"phone": "0712345678", "amount": 999},
            headers={"Authorization": f"Bearer {key}"},
        )
        await wait_for_final(c, key, r.json()["id"])
    s = gateway.dial(intl(m.phone))
    await s.start()
    home = await s.send(PIN)
    # A cashier's "Today" is their own figures, as on the web dashboard; wallet and export are not theirs.
    assert home.text == (
        "Mama Mboga\n1. Request payment\n2. Last 5 payments\n3. Today\n6. Change PIN\n7. Pay a business"
    )
    for value, expected in (
        ("4", "Invalid choice.\n"),
        ("5", "Invalid choice.\n"),
    ):
        assert (await s.send(value)).text.startswith(expected)
    today = await s.send("3")
    assert "Received: KES 0\nPaid: 0 of 0" in today.text  # the owner's KES 999 is not theirs
    await s.send("0")
    assert (await s.send("2")).text == "No payments yet.\n0 Back"  # nor in their last payments
    s = gateway.dial(intl(m.phone))
    await s.start()
    await s.send(PIN)
    for value in ("1", "0712345678", "45", "1"):
        await s.send(value)
    await last_sms(at, m.phone, 1)
    s = gateway.dial(intl(m.phone))
    await s.start()
    await s.send(PIN)
    assert (await s.send("2")).text == "Last payments:\n45 0712**678 Paid\n0 Back"


async def test_change_pin(gateway: UssdGateway) -> None:
    m = await make_merchant()
    s = await signed_in(gateway, m)
    assert (await s.send("6")).text == "Enter a new 4-digit PIN:"
    assert (await s.send("1234")).text == (
        "That PIN is too easy to guess (like 1111 or 1234). Choose another.\nEnter a new 4-digit PIN:"
    )
    assert (await s.send("5071")).text == "Enter the new PIN again:"
    assert (
        await s.send("5072")
    ).text == "The PINs did not match. Enter the new PIN again.\nEnter the new PIN again:"
    end = await s.send("5071")
    assert (end.kind, end.text) == ("END", "PIN changed. Use the new PIN next time you dial.")
    s = gateway.dial(intl(m.phone))
    await s.start()
    assert (await s.send(PIN)).text.startswith("Wrong PIN.")
    assert (await s.send("5071")).text == HOME


async def test_wallet_top_up_by_sms(gateway: UssdGateway, at: httpx.AsyncClient) -> None:
    m = await make_merchant()
    s = await signed_in(gateway, m)
    wallet = await s.send("4")
    assert wallet.text == "Wallet: KES 0.00\nAvailable: KES 0.00\n1. Top up\n0 Back"
    await s.send("1")
    confirm = await s.send("500")
    assert confirm.text.startswith(f"Top up wallet with KES 500 from {m.phone}?\n1. Pay\n2. Cancel")
    end = await s.send("1")
    assert end.text.startswith("Check this phone: enter your M-Pesa PIN to pay KES 500")
    text = await last_sms(at, m.phone, 1)
    assert text.startswith("lipapush: wallet top-up of KES 500 received. Receipt ")
    s = await signed_in(gateway, m)
    assert (await s.send("4")).text.startswith("Wallet: KES 500.00\nAvailable: KES 500.00")


async def test_export_emails_the_book_and_sms_a_signed_link(
    gateway: UssdGateway, at: httpx.AsyncClient, server
) -> None:  # type: ignore[no-untyped-def]
    m = await make_merchant()
    s = await signed_in(gateway, m)
    for value in ("1", "0712345678", "150", "1"):
        await s.send(value)
    await last_sms(at, m.phone, 1)
    s = await signed_in(gateway, m)
    confirm = await s.send("5")
    assert confirm.text.startswith("Email the customer list to ")
    end = await s.send("1")
    assert end.text == "Preparing your customer list. You will get an SMS with a download link shortly."
    text = await last_sms(at, m.phone, 2)
    assert text.startswith("lipapush: customer list (1 customer) emailed to ")
    url = text.rsplit(" ", 1)[-1]
    assert url.startswith(f"{server.url}/dl/")
    async with httpx.AsyncClient() as c:
        r = await c.get(url)
        assert r.status_code == 200
        assert r.content[:2] == b"PK"  # an xlsx (zip)
        forged = await c.get(url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB"))
        assert forged.status_code == 404
        assert forged.text.startswith("This download link has expired or is not valid.")
    async with unit_of_work(readonly=True) as session:
        email = await session.scalar(
            select(Notification).where(Notification.tenant_id == m.tenant.id, Notification.channel == "email")
        )
    # No SMTP_URL in the test server: the email waits in the outbox, with its attachment.
    assert email is not None and email.status.value == "pending" and email.recipient == m.tenant.email
    assert email.attachment_path and email.attachment_path.endswith(".xlsx")
    again = await signed_in(gateway, m)
    await again.send("5")
    assert (
        await again.send("1")
    ).text == "An export was requested a few minutes ago. Check your SMS and email."


async def test_delivery_reports_move_sms_to_a_final_state(
    gateway: UssdGateway, at: httpx.AsyncClient, server
) -> None:  # type: ignore[no-untyped-def]
    m = await make_merchant()
    s = await signed_in(gateway, m)
    for value in ("1", "0712345678", "90", "1"):
        await s.send(value)
    await last_sms(at, m.phone, 1)
    msg = (await sms_to(at, m.phone))[-1]

    async def row() -> Notification:
        async with unit_of_work(readonly=True) as session:
            n = await session.scalar(
                select(Notification).where(Notification.provider_message_id == msg["id"])
            )
        assert n is not None
        return n

    async def recorded() -> bool:
        async with unit_of_work(readonly=True) as session:
            return bool(
                await session.scalar(
                    select(Notification.id).where(Notification.provider_message_id == msg["id"])
                )
            )

    await wait_until(recorded)
    n = await row()
    assert (n.status.value, n.delivery_status, n.sender_id, n.cost) == ("sent", None, None, "KES 0.8000")
    assert (msg["from"], msg["segments"], msg["encoding"]) == ("LIPAPUSH", 1, "GSM-7")
    r = await at.post("/_sim/dlr", json={"id": msg["id"], "status": "Buffered"})
    assert r.json()["status_code"] == 200
    assert ((await row()).status.value, (await row()).delivery_status) == ("sent", "Buffered")
    await at.post("/_sim/dlr", json={"id": msg["id"], "status": "Success"})
    n = await row()
    assert (n.status.value, n.delivery_status) == ("delivered", "Success") and n.delivered_at is not None
    # Final: a late "Failed" (reports repeat and reorder) changes nothing.
    await at.post("/_sim/dlr", json={"id": msg["id"], "status": "Failed", "failureReason": "UserInBlacklist"})
    assert (await row()).status.value == "delivered"
    async with httpx.AsyncClient(base_url=server.url) as c:
        forged = await c.post("/callbacks/at/delivery", data={"id": "ATXid_" + "0" * 32, "status": "Failed"})
        assert (forged.status_code, forged.text) == (200, "ok")
        bad = await c.post("/callbacks/at/delivery", data={"status": "Failed"})
        assert bad.status_code == 400


async def test_every_screen_fits_with_worst_case_values(gateway: UssdGateway, at: httpx.AsyncClient) -> None:
    """The gateway driver refuses any screen over 160 characters or with non-ASCII text; walk every
    screen with the longest values a business can have, and check what must stay on screen does."""
    from tests.support.factories import fund_wallet

    long_name = "Mama Wanjiku’s Café & Grocery – Kangemi Market Stall Number Forty-Two Upper Level Near Gate"
    m = await make_merchant(name=long_name, email="a" * 40 + "@" + "d" * 60 + "." + "e" * 40 + ".co.ke")
    await fund_wallet(m.tenant, 99_999_999_99)
    for n in range(1, 6):
        s = await signed_in_any(gateway, m)
        for value in ("1", "0711111032", "250000", "1"):  # 1032: cancelled, the longest status word
            await s.send(value)
        await last_sms(at, m.phone, n)
    s = await signed_in_any(gateway, m)
    recent = await s.send("2")
    assert recent.text.split("\n") == ["Last payments:"] + ["250,000 0711**032 Cancelled"] * 5
    await s.send("0")
    assert (await s.send("3")).text.endswith("Success rate: 0%\n0 Back")
    await s.send("0")
    wallet = await s.send("4")
    assert wallet.text.startswith("Wallet: KES 99,999,999.99\n") and "1. Top up" in wallet.text
    await s.send("1")
    confirm = await s.send("250000")
    assert confirm.text.endswith("?\n1. Pay\n2. Cancel\n0 Back 00 Home")
    await s.send("00")
    export = await s.send("5")
    assert export.text.startswith("Email the customer list to a***@ddd") and export.text.endswith(
        "..\n1. Send\n2. Cancel"
    )
    payer = gateway.dial(intl("0798765678"))
    await payer.start()
    await payer.send("1")
    amount = await payer.send(str(m.tenant.business_number))
    assert amount.text.startswith("Pay Mama Wanjiku's Cafe & Grocery") and amount.text.endswith(
        "\nAmount in KES:"
    )
    assert (await payer.send("250000")).text.endswith("\n1. Pay\n2. Cancel\n0 Back 00 Home")


async def signed_in_any(gateway: UssdGateway, m: Merchant):  # type: ignore[no-untyped-def]
    s = gateway.dial(intl(m.phone))
    await s.start()
    home = await s.send(PIN)
    assert home.kind == "CON" and home.text.endswith("7. Pay a business")
    return s


async def test_phone_removed_mid_session_ends_it(gateway: UssdGateway) -> None:
    from core.auth.pins import remove_ussd

    m = await make_merchant()
    s = await signed_in(gateway, m)
    async with unit_of_work() as session:
        user = await session.get(User, m.user.id)
        assert user is not None
        await remove_ussd(session, user=user)
    end = await s.send("2")
    assert (end.kind, end.text) == ("END", "This phone is no longer registered for lipapush USSD.")


async def test_a_delivery_report_faster_than_the_send_reply_is_applied(
    gateway: UssdGateway, at: httpx.AsyncClient
) -> None:
    """The stand-in reports delivery at once, often before our send job has stored the message id."""
    await at.post("/_sim/config", json={"auto_dlr": 0})
    try:
        m = await make_merchant()
        for _ in range(3):
            s = await signed_in(gateway, m)
            for value in ("1", "0712345678", "30", "1"):
                await s.send(value)
        await last_sms(at, m.phone, 3)

        async def all_delivered() -> bool:
            async with unit_of_work(readonly=True) as session:
                rows = list(
                    await session.scalars(
                        select(Notification).where(
                            Notification.tenant_id == m.tenant.id, Notification.kind == "payment.sms_result"
                        )
                    )
                )
            return len(rows) == 3 and all(n.status.value == "delivered" for n in rows)

        await wait_until(all_delivered)
    finally:
        await at.post("/_sim/config", json={"auto_dlr": None})
