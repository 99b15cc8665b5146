"""PUT/DELETE /api/me/ussd and PUT /api/settings/sms, and the customer receipt SMS they turn on."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from core.auth.models import Role, User
from core.notify.models import Notification
from core.runtime import unit_of_work
from tests.support.factories import make_api_key, make_tenant, make_user
from tests.support.waiting import wait_for_final, wait_until
from tests.ussd.conftest import merchant_phone, sms_to


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    r = await client.post("/api/login", json={"email": email, "password": "secret-pass-1"})
    assert r.status_code == 200, r.text
    return bearer(r.json()["access_token"])


async def test_set_and_remove_ussd_access(client: httpx.AsyncClient) -> None:
    phone = merchant_phone()
    tenant, owner = await make_tenant(phone=phone)
    auth = await login(client, owner.email)
    r = await client.put("/api/me/ussd", json={"pin": "1111"}, headers=auth)
    assert (r.status_code, r.json()["errors"]) == (
        422,
        {"pin": "That PIN is too easy to guess (like 1111 or 1234). Choose another."},
    )
    r = await client.put("/api/me/ussd", json={"pin": "5071"}, headers=auth)
    assert r.status_code == 200, r.text  # the business phone approved the KES 1 check: proven
    assert r.json() == {
        "ussd_phone": "254" + phone[1:],
        "confirmed": True,
        "ussd_code": "*384*123#",
        "expires_at": None,
    }
    assert (await client.get("/api/me", headers=auth)).json()["ussd_phone"] == "254" + phone[1:]

    # Another account cannot take the same phone; a cashier must name a phone.
    cashier = await make_user(tenant=tenant, role=Role.cashier)
    cauth = await login(client, cashier.email)
    r = await client.put("/api/me/ussd", json={"pin": "5071", "phone": phone}, headers=cauth)
    assert r.status_code == 409 and r.json()["detail"].startswith("That phone already opens another")
    r = await client.put("/api/me/ussd", json={"pin": "5071"}, headers=cauth)
    assert (r.status_code, r.json()["errors"]) == (422, {"phone": "Give the phone to register (07XXXXXXXX)."})
    r = await client.put("/api/me/ussd", json={"pin": "5071", "phone": "0812"}, headers=cauth)
    assert r.status_code == 422 and "phone" in r.json()["errors"]

    key = await make_api_key(tenant=tenant)
    r = await client.put("/api/me/ussd", json={"pin": "5071"}, headers=bearer(key))
    assert r.status_code == 403

    assert (await client.delete("/api/me/ussd", headers=auth)).status_code == 204
    async with unit_of_work(readonly=True) as session:
        user = await session.get(User, owner.id)
    assert user is not None and (user.ussd_phone, user.ussd_pin_hash) == (None, None)


async def test_sms_settings_validation(client: httpx.AsyncClient) -> None:
    tenant, _ = await make_tenant(phone=merchant_phone())
    key = bearer(await make_api_key(tenant=tenant))
    r = await client.put(
        "/api/settings/sms",
        json={"receipts": True, "sender_id": "OTHER-SHOP", "receipt_template": "Hi {name}"},
        headers=key,
    )
    assert r.status_code == 422
    # The sender id is the platform's to assign (lipapush tenant sender-id), not the business's.
    assert r.json()["errors"] == {
        "sender_id": "Unknown field: remove it.",
        "receipt_template": r.json()["errors"]["receipt_template"],
    }
    assert r.json()["errors"]["receipt_template"].startswith("Unknown field {name} in the receipt template")
    async with unit_of_work(readonly=True) as session:
        assert (await session.get(type(tenant), tenant.id)).sms_receipts is False  # type: ignore[union-attr]


async def test_customer_receipt_sms(client: httpx.AsyncClient, server) -> None:  # type: ignore[no-untyped-def]
    tenant, _ = await make_tenant(name="Njeri Greens", phone=merchant_phone())
    key = await make_api_key(tenant=tenant)
    r = await client.put(
        "/api/settings/sms",
        json={
            "receipts": True,
            "receipt_template": "{business}: {amount} received, ref {receipt}",
        },
        headers=bearer(key),
    )
    assert r.status_code == 200, r.text
    assert (r.json()["sms_receipts"], r.json()["sms_sender_id"]) == (True, None)
    async with unit_of_work() as session:  # as `lipapush tenant sender-id` does
        (await session.get(type(tenant), tenant.id)).sms_sender_id = "NJERI"  # type: ignore[union-attr]
    customer = f"07{merchant_phone()[2:7]}678"
    paid = await client.post("/api/stk-push", json={"phone": customer, "amount": 320}, headers=bearer(key))
    body = await wait_for_final(client, key, paid.json()["id"])
    assert body["status"] == "success"
    async with httpx.AsyncClient(base_url=server.at_url) as at:

        async def arrived() -> bool:
            return bool(await sms_to(at, customer))

        await wait_until(arrived)
        [msg] = await sms_to(at, customer)
    assert msg["message"] == f"Njeri Greens: KES 320 received, ref {body['receipt']}"
    assert msg["from"] == "NJERI"
    # A failed payment sends no receipt.
    failed = f"07{merchant_phone()[2:7]}032"[:6] + "1032"
    r = await client.post("/api/stk-push", json={"phone": failed, "amount": 50}, headers=bearer(key))
    assert (await wait_for_final(client, key, r.json()["id"]))["status"] == "cancelled"
    async with unit_of_work(readonly=True) as session:
        receipts = list(
            await session.scalars(
                select(Notification).where(
                    Notification.tenant_id == tenant.id, Notification.kind == "payment.receipt"
                )
            )
        )
    assert [n.recipient for n in receipts] == ["254" + customer[1:]]


async def test_another_phone_is_proven_by_an_sms_code(client: httpx.AsyncClient, server) -> None:  # type: ignore[no-untyped-def]
    tenant, _ = await make_tenant(phone=merchant_phone())
    cashier = await make_user(tenant=tenant, role=Role.cashier)
    auth = await login(client, cashier.email)
    phone = merchant_phone()
    r = await client.put("/api/me/ussd", json={"pin": "5071", "phone": phone}, headers=auth)
    assert r.status_code == 202, r.text
    assert (r.json()["confirmed"], r.json()["ussd_phone"]) == (False, "254" + phone[1:])
    async with unit_of_work(readonly=True) as session:
        user = await session.get(User, cashier.id)
    assert user is not None and user.ussd_phone is None  # nothing opens until the code comes back
    async with httpx.AsyncClient(base_url=server.at_url) as at:

        async def texted() -> bool:
            return bool(await sms_to(at, phone))

        await wait_until(texted)
        [msg] = await sms_to(at, phone)
    assert msg["from"] == "LIPAPUSH"  # the platform's sender id, not the business's
    code = msg["message"].split()[2].rstrip(":")
    assert msg["message"] == (
        f"lipapush code {code}: confirms {phone} for the USSD menu of Mama Mboga. "
        "Expires in 10 min. Never share it."
    )
    wrong = "000000" if code != "000000" else "111111"
    r = await client.post("/api/me/ussd/confirm", json={"code": wrong}, headers=auth)
    assert (r.status_code, r.json()["errors"]) == (422, {"code": "That code is not right. 4 tries left."})
    r = await client.post("/api/me/ussd/confirm", json={"code": code}, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["confirmed"] is True
    async with unit_of_work(readonly=True) as session:
        user = await session.get(User, cashier.id)
    assert user is not None and user.ussd_phone == "254" + phone[1:]
    r = await client.post("/api/me/ussd/confirm", json={"code": code}, headers=auth)  # used up
    assert r.status_code == 422 and r.json()["errors"]["code"].startswith("No code is waiting")


async def test_five_wrong_codes_use_the_code_up(client: httpx.AsyncClient) -> None:
    tenant, _ = await make_tenant(phone=merchant_phone())
    manager = await make_user(tenant=tenant, role=Role.manager)
    auth = await login(client, manager.email)
    r = await client.put("/api/me/ussd", json={"pin": "5071", "phone": merchant_phone()}, headers=auth)
    assert r.status_code == 202
    messages = []
    for _ in range(6):
        r = await client.post("/api/me/ussd/confirm", json={"code": "abc"}, headers=auth)
        messages.append(r.json()["errors"]["code"])
    assert messages == [
        "That code is not right. 4 tries left.",
        "That code is not right. 3 tries left.",
        "That code is not right. 2 tries left.",
        "That code is not right. 1 try left.",
        "That was the last try. Register the phone again for a new code.",
        "No code is waiting (or it expired). Register the phone again for a new one.",
    ]
