"""Reversing a payment in the panel: the owner sees the form on a received payment's page, asks with a
reason, types the code sent by email (a wrong one is refused on the page), and the page follows the
reversal to M-Pesa's answer; a manager sees no form, and a refusal is said on the payment's page."""

from __future__ import annotations

import httpx

from core.auth.models import Role
from tests.conftest import LiveServer
from tests.support.factories import make_tenant, make_user
from tests.support.initiators import give_initiator
from tests.support.panel import business_client, csrf_of, text_of
from tests.support.waiting import wait_until
from tests.web.test_reversals_api import paid, sent_code
from tests.web.test_usage_api import login


async def test_the_owner_reverses_with_the_code(server: LiveServer, client: httpx.AsyncClient) -> None:
    tenant, owner = await make_tenant(name="Panel Reversal Duka")
    await give_initiator(tenant.id)
    payment = await paid(client, await login(client, owner.email), phone="0722700111")
    page_url = f"/app/transactions/{payment['id']}"
    panel = await business_client(server.url, owner)
    try:
        page = await panel.get(page_url)
        assert page.status_code == 200
        assert text_of(page.text, "reverse-title") == "Reverse this payment"
        too_short = await panel.post(
            f"{page_url}/reverse", data={"reason": "x", "csrf_token": csrf_of(page.text)}
        )
        assert too_short.status_code == 422
        assert text_of(too_short.text, "reverse-error") == (
            "Say why in 5 to 200 characters, e.g. “paid twice by mistake”."
        )
        asked = await panel.post(
            f"{page_url}/reverse", data={"reason": "Customer paid twice", "csrf_token": csrf_of(page.text)}
        )
        assert asked.status_code == 201, asked.text
        assert text_of(asked.text, "reversal-status") == "unconfirmed"
        assert text_of(asked.text, "code-sent").startswith("A 6-digit code went to email ")
        code = await sent_code(tenant.id)
        action = asked.text.split('action="')[2].split('"')[0]  # the confirm form (the first is sign-out)
        assert action.endswith("/confirm")
        wrong = await panel.post(
            action,
            data={"code": "999999" if code != "999999" else "888888", "csrf_token": csrf_of(asked.text)},
        )
        assert wrong.status_code == 422
        assert text_of(wrong.text, "confirm-error") == "That is not the code we sent. 4 tries left."
        sent = await panel.post(action, data={"code": code, "csrf_token": csrf_of(asked.text)})
        assert sent.status_code == 303
        reversal_url = sent.headers["location"]

        async def answered() -> bool:
            return text_of((await panel.get(reversal_url)).text, "reversal-status") != "pending"

        await wait_until(answered)
        done = await panel.get(reversal_url)
        assert text_of(done.text, "reversal-status") == "success"
        after = await panel.get(page_url)
        assert 'id="reverse"' not in after.text  # reversed: nothing more to reverse
        assert "Customer paid twice" in text_of(after.text, "reversals")
    finally:
        await panel.aclose()


async def test_a_manager_sees_no_form(server: LiveServer, client: httpx.AsyncClient) -> None:
    tenant, owner = await make_tenant(name="Panel Reversal Manager Duka")
    await give_initiator(tenant.id)
    payment = await paid(client, await login(client, owner.email), phone="0722700222")
    manager = await make_user(tenant=tenant, role=Role.manager)
    panel = await business_client(server.url, manager)
    try:
        page = await panel.get(f"/app/transactions/{payment['id']}")
        assert page.status_code == 200
        assert 'id="reverse"' not in page.text
        refused = await panel.post(
            f"/app/transactions/{payment['id']}/reverse",
            data={"reason": "Customer paid twice", "csrf_token": csrf_of(page.text)},
        )
        assert refused.status_code == 403
    finally:
        await panel.aclose()
