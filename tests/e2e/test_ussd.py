"""USSD against `lipapush serve` as its own process, set up through the CLI, with the embedded
default for SMS: no Africa's Talking credentials, so the result SMS waits in `lipapush outbox`."""

from __future__ import annotations

import httpx

from sim.africastalking import UssdGateway
from tests.e2e.conftest import AT_SECRET, NewBusiness, Serve, run_cli, unique_phone, wait_for


async def test_merchant_on_a_feature_phone(serve: Serve, new_business: NewBusiness) -> None:
    biz = await new_business(name="Boda Parts")
    phone = unique_phone("5551")
    set_pin = await run_cli(serve, "ussd", "set", "--email", biz.email, "--phone", phone, "--pin", "5071")
    assert set_pin.returncode == 0, set_pin.output
    assert f"USSD ready: dial *384*123# from {phone} and enter the PIN." in set_pin.stdout

    async with UssdGateway(f"{serve.url}/ussd?secret={AT_SECRET}", max_chars=160) as gw:
        s = gw.dial("+254" + phone[1:])
        assert (await s.start()).text == "Welcome to lipapush.\nEnter your 4-digit PIN:"
        assert (await s.send("5071")).text.startswith("Boda Parts\n1. Request payment")
        await s.send("1")
        await s.send("0712345678")
        await s.send("150")
        end = await s.send("1")
        assert end.text == "Request sent: KES 150 to 0712345678. You will get an SMS with the result."

    async def in_outbox() -> str | None:
        out = await run_cli(serve, "outbox", "--limit", "200")
        assert out.returncode == 0, out.output
        lines = [
            line for line in out.stdout.splitlines() if "payment.sms_result" in line and phone[1:] in line
        ]
        return lines[0] if lines else None

    line = await wait_for(in_outbox, what="the result SMS in the outbox", timeout=30)
    assert "sms" in line and "pending" in line and "lipapush: PAID KES 150 from 0712345678." in line


async def test_pay_a_business_and_the_callback_secret(serve: Serve, new_business: NewBusiness) -> None:
    biz = await new_business(name="Kibanda")
    listed = await run_cli(serve, "tenant", "list")
    [row] = [line for line in listed.stdout.splitlines() if biz.email in line]
    number = next(word for word in row.split() if word.isdigit() and len(word) == 8)
    async with UssdGateway(f"{serve.url}/ussd?secret={AT_SECRET}", max_chars=160) as gw:
        s = gw.dial("+254" + unique_phone("5678")[1:])
        await s.start()
        await s.send("1")
        assert (await s.send(number)).text == "Pay Kibanda\nAmount in KES:"
        await s.send("40")
        end = await s.send("1")
        assert end.text == "Check your phone: enter your M-Pesa PIN to pay KES 40 to Kibanda."
    async with httpx.AsyncClient(base_url=serve.url) as c:
        for path in ("/ussd", "/ussd?secret=wrong", "/callbacks/at/delivery"):
            r = await c.post(path, data={"sessionId": "x", "phoneNumber": "+254712345678", "text": ""})
            assert (r.status_code, r.text) == (403, "forbidden"), path
