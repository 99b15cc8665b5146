"""/ussd in the bot: set the USSD PIN, then dial with it."""

from __future__ import annotations

from core.auth.models import User
from core.auth.pins import pin_matches
from core.runtime import unit_of_work
from sim.africastalking import UssdGateway
from sim.telegram.client import TelegramSimClient
from tests.bots.test_home_wallet_settings import T, has, linked_owner
from tests.conftest import LiveServer
from tests.ussd.conftest import intl, merchant_phone


async def test_set_pin_in_the_bot_then_dial(server: LiveServer, tg: TelegramSimClient) -> None:
    phone = merchant_phone()
    tenant, owner = await linked_owner(tg, name="Boda Spares", phone=phone)
    ask = await tg.ask("/ussd", has("USSD menu"), timeout=T)
    assert ask.content.startswith(f"📟 USSD menu for {phone}\nSend a new 4-digit PIN")
    weak = await tg.ask("1234", has("⚠️"), timeout=T)
    assert (
        weak.content
        == "⚠️ That PIN is too easy to guess (like 1111 or 1234). Choose another.\nTry again, or /cancel."
    )
    done = await tg.ask("5071", has("✅"), timeout=T)
    assert done.content == (
        f"✅ USSD ready. Dial *384*123# from {phone} and enter your PIN.\n"
        "Customers can pay Boda Spares from any phone: *384*123# → 1 → business number "
        f"{tenant.business_number}."
    )
    # The PINs typed were deleted from the chat.
    typed = [m for m in await tg.transcript() if m.content in ("1234", "5071")]
    assert [(m.content, m.deleted) for m in typed] == [("1234", True), ("5071", True)]
    async with unit_of_work(readonly=True) as session:
        user = await session.get(User, owner.id)
    assert user is not None and user.ussd_phone == "254" + phone[1:]
    assert await pin_matches("5071", user.ussd_pin_hash)
    async with UssdGateway(f"{server.url}/ussd", max_chars=160) as gw:
        s = gw.dial(intl(phone))
        await s.start()
        assert (await s.send("5071")).text.startswith("Boda Spares\n1. Request payment")


async def test_another_phone_needs_the_sms_code(server: LiveServer, tg: TelegramSimClient) -> None:
    import httpx

    from tests.support.waiting import wait_until
    from tests.ussd.conftest import sms_to

    _, owner = await linked_owner(tg, name="Second Phone Shop", phone=merchant_phone())
    other = merchant_phone()
    await tg.ask("/ussd", has("USSD menu"), timeout=T)
    ask = await tg.ask(other, has("USSD menu"), timeout=T)
    assert ask.content.startswith(f"📟 USSD menu for {other}\n")
    sent = await tg.ask("5071", has("📩"), timeout=T)
    assert sent.content == (
        f"📩 I sent a 6-digit code by SMS to {other}. Send it here to confirm the phone is yours "
        "(it expires in 10 minutes)."
    )
    async with httpx.AsyncClient(base_url=server.at_url) as at:

        async def texted() -> bool:
            return bool(await sms_to(at, other))

        await wait_until(texted)  # sent by the worker, through the outbox
        [msg] = await sms_to(at, other)
    code = msg["message"].split()[2].rstrip(":")
    wrong = await tg.ask("123", has("⚠️"), timeout=T)
    assert wrong.content == "⚠️ That code is not right. 4 tries left.\nTry again, or /cancel."
    done = await tg.ask(code, has("✅"), timeout=T)
    assert done.content.startswith(f"✅ USSD ready. Dial *384*123# from {other} and enter your PIN.")
    async with unit_of_work(readonly=True) as session:
        user = await session.get(User, owner.id)
    assert user is not None and user.ussd_phone == "254" + other[1:]
