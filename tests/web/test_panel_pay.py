"""Request a payment from the business view (/app) over HTTP: the form, the same validation and refusals
as POST /api/stk-push (it is the same use case), the status line and who may see it."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from sqlalchemy import func, select

from core.auth.models import Role, User
from core.payments.models import Payment, PaymentSource
from core.runtime import unit_of_work
from core.tenants.models import BillingMode, Tenant
from core.tenants.service import tenants
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant, make_user, set_billing
from tests.support.panel import admin_client, business_client, csrf_of, text_of
from tests.support.waiting import wait_for_final, wait_until

STATUS = re.compile(r"^/app\?payment=([0-9a-f-]{36})#request-payment$")


@asynccontextmanager
async def signed_in(server: LiveServer, user: User) -> AsyncIterator[httpx.AsyncClient]:
    client = await business_client(server.url, user)
    try:
        yield client
    finally:
        await client.aclose()


def key_of(page: str) -> str:
    match = re.search(r'name="key" value="([^"]+)"', page)
    assert match, "no form key on the page"
    return match.group(1)


async def send(panel: httpx.AsyncClient, data: dict[str, str], *, key: str | None = None) -> httpx.Response:
    """Fill the dashboard's form like a browser: its CSRF token and its one-use key, then post."""
    page = await panel.get("/app")
    assert page.status_code == 200, page.text
    form = {"phone": "", "amount": "", "name": "", "reference": "", **data}
    return await panel.post(
        "/app/pay", data={**form, "csrf_token": csrf_of(page.text), "key": key or key_of(page.text)}
    )


def sent_id(r: httpx.Response) -> str:
    assert r.status_code == 303, r.text
    match = STATUS.match(r.headers["location"])
    assert match, r.headers["location"]
    return match.group(1)


async def final_status(panel: httpx.AsyncClient, payment_id: str) -> httpx.Response:
    """The status fragment once it stops polling (M-Pesa answered)."""
    url = f"/app/pay/{payment_id}/status"
    last: list[httpx.Response] = []

    async def done() -> bool:
        last[:] = [await panel.get(url)]
        return last[0].status_code == 200 and "data-poll" not in last[0].text

    await wait_until(done)
    return last[0]


async def payments_of(tenant: Tenant) -> list[Payment]:
    async with unit_of_work(readonly=True) as session:
        return list(
            await session.scalars(
                select(Payment)
                .where(Payment.tenant_id == tenant.id, Payment.source != PaymentSource.onboarding)
                .order_by(Payment.created_at)
            )
        )


async def count_payments(tenant: Tenant) -> int:
    async with unit_of_work(readonly=True) as session:
        return int(
            await session.scalar(
                select(func.count()).select_from(Payment).where(Payment.tenant_id == tenant.id)
            )
            or 0
        )


class TestRequestAPayment:
    async def test_success_follows_the_payment_to_its_receipt(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Pay Duka")
        async with signed_in(server, owner) as panel:
            page = await panel.get("/app")
            assert page.status_code == 200
            assert page.text.count("<h1>") == 1
            assert '<h2 id="pay-title">Request a payment</h2>' in page.text
            for field, label in (
                ("phone", "Customer&#39;s M-Pesa phone"),
                ("amount", "Amount (KES)"),
                ("name", "Customer name (optional)"),
                ("reference", "Reference (optional)"),
            ):
                assert f'<label for="{field}">{label}</label>' in page.text
                assert f'<input id="{field}" name="{field}"' in page.text
            assert 'id="pay-status"' not in page.text  # nothing sent yet

            r = await send(
                panel, {"phone": "0722 000 111", "amount": "1,250", "name": "Wanjiru", "reference": "INV-7"}
            )
            payment_id = sent_id(r)
            (row,) = await payments_of(tenant)
            assert (str(row.id), row.source, row.initiated_by_id) == (payment_id, PaymentSource.api, owner.id)
            assert (row.phone, row.amount, row.customer_name, row.account_reference) == (
                "254722000111",
                1250,
                "Wanjiru",
                "INV-7",
            )

            followed = await panel.get(r.headers["location"])
            assert followed.status_code == 200
            assert 'id="pay-status"' in followed.text

            fragment = await final_status(panel, payment_id)
            (row,) = await payments_of(tenant)
            assert row.receipt and re.fullmatch(r"[A-Z0-9]{10}", row.receipt)
            assert text_of(fragment.text, "pay-status") == (
                f"Paid : KES 1,250 from Wanjiru (0722 000 111). M-Pesa receipt {row.receipt} . Details"
            )
            assert 'class="notice"' in fragment.text and "Send again" not in fragment.text
            assert f'href="/app/transactions/{payment_id}"' in fragment.text
            done = await panel.get(r.headers["location"])
            assert text_of(done.text, "pay-state") == "Paid"
            assert text_of(done.text, "pay-receipt") == row.receipt
            assert "data-poll" not in done.text

            # Wanjiru is now a recent customer: her link fills the form (panel.js does it in place)
            home = await panel.get("/app")
            assert (
                '<a href="/app?phone=0722000111&amp;name=Wanjiru#request-payment" '
                'data-fill-phone="0722000111" data-fill-name="Wanjiru">Wanjiru · 0722 000 111</a>'
            ) in home.text
            filled = await panel.get("/app", params={"phone": "0722000111", "name": "Wanjiru"})
            assert 'id="phone" name="phone" inputmode="tel" value="0722000111"' in filled.text
            assert 'id="name" name="name" value="Wanjiru"' in filled.text

    async def test_sending_the_same_form_twice_prompts_once(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Twice Duka")
        async with signed_in(server, owner) as panel:
            page = await panel.get("/app")
            key = key_of(page.text)
            first = await send(panel, {"phone": "0722000111", "amount": "40"}, key=key)
            again = await send(panel, {"phone": "0722000111", "amount": "40"}, key=key)
            assert sent_id(first) == sent_id(again)
            changed = await send(panel, {"phone": "0722000111", "amount": "41"}, key=key)
            assert changed.status_code == 409
            assert text_of(changed.text, "pay-error") == (
                "This form was already used for another payment, so nothing was sent. "
                "Check the details and send again."
            )
            assert key_of(changed.text) != key  # a fresh form
        assert [p.amount for p in await payments_of(tenant)] == [40]

    async def test_unpaid_outcomes_read_like_the_bot(self, server: LiveServer) -> None:
        _, owner = await make_tenant(name="Unpaid Duka")
        async with signed_in(server, owner) as panel:
            cases = (
                ("0722001032", "500", "Cancelled", "The customer cancelled the M-Pesa prompt."),
                ("0722002001", "40", "Not paid", "The customer entered a wrong M-Pesa PIN."),
                ("0722001037", "75", "No response", None),
            )
            for phone, amount, label, reason in cases:
                payment_id = sent_id(await send(panel, {"phone": phone, "amount": amount}))
                fragment = await final_status(panel, payment_id)
                local = f"{phone[:4]} {phone[4:7]} {phone[7:]}"
                text = text_of(fragment.text, "pay-status")
                assert text.startswith(f"{label} : KES {amount} from {local}. "), text
                assert text.endswith("Details · Send again"), text
                if reason:
                    assert text_of(fragment.text, "pay-reason") == reason
                assert 'class="notice bad"' in fragment.text
                assert (
                    f'<a href="/app?phone={phone}&amp;amount={amount}#request-payment">Send again</a>'
                    in fragment.text
                )


class TestTheSameRulesAsTheApi:
    async def test_field_errors_are_the_apis_and_create_nothing(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, owner = await make_tenant(name="Typo Duka")
        key = await make_api_key(tenant=tenant)
        cases = [
            ({"phone": "0800 123", "amount": "100"}, "phone"),
            ({"phone": "0722000111", "amount": "0"}, "amount"),
            ({"phone": "0722000111", "amount": "1.5"}, "amount"),
            ({"phone": "0722000111", "amount": "250001"}, "amount"),
            ({"phone": "0722000111", "amount": "10", "reference": "INV*7"}, "reference"),
            ({"phone": "0722000111", "amount": "10", "name": "W" * 101}, "name"),
        ]
        async with signed_in(server, owner) as panel:
            for data, field in cases:
                r = await send(panel, data)
                assert r.status_code == 422, data
                api = await client.post(
                    "/api/stk-push",
                    json={k: v for k, v in data.items() if v},
                    headers={"Authorization": f"Bearer {key}"},
                )
                assert api.status_code == 422, api.text
                assert text_of(r.text, f"{field}-error") == api.json()["errors"][field], data
                assert f'id="{field}" name="{field}"' in r.text and 'aria-invalid="true"' in r.text
                assert f'value="{html.escape(data[field], quote=True)}"' in r.text  # typed value kept
            r = await send(panel, {"phone": "0722000111", "amount": "0"})
            assert text_of(r.text, "amount-error") == "Amount must be at least KES 1."
            r = await send(panel, {"phone": "0722000111", "amount": "1.5"})
            assert text_of(r.text, "amount-error") == (
                "M-Pesa only takes whole shillings: send an amount without cents, like 150."
            )
            r = await send(panel, {"phone": "0800 123", "amount": "100"})
            assert "is not a Kenyan mobile number" in text_of(r.text, "phone-error")
            empty = await send(panel, {})
            assert empty.status_code == 422
            assert text_of(empty.text, "phone-error") == (
                "Type the customer's M-Pesa phone number, like 0722 000 111."
            )
            assert text_of(empty.text, "amount-error") == "Type the amount in whole shillings, like 150."
        assert await count_payments(tenant) == 0

    async def test_core_refusals_are_said_above_the_form(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, owner = await make_tenant(name="Broke Duka")
        await set_billing(tenant, mode=BillingMode.wallet, bps=100)
        key = await make_api_key(tenant=tenant)
        api = await client.post(
            "/api/stk-push",
            json={"phone": "0722000111", "amount": 150},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert api.status_code == 402
        async with signed_in(server, owner) as panel:
            r = await send(panel, {"phone": "0722000111", "amount": "150"})
            assert r.status_code == 402
            assert text_of(r.text, "pay-error") == api.json()["detail"]
            assert "not enough for this payment's commission of KES 1.50" in api.json()["detail"]
            assert 'value="0722000111"' in r.text and 'value="150"' in r.text  # kept to send again

            async with unit_of_work() as session:
                row = await tenants.get(session, tenant.id)
                row.status, row.status_reason = row.status.suspended, "unpaid invoice INV-7"
            r = await send(panel, {"phone": "0722000111", "amount": "150"})
            assert r.status_code == 403
            assert text_of(r.text, "pay-error") == (
                "This business is suspended: unpaid invoice INV-7. Contact lipapush support."
            )
        assert await count_payments(tenant) == 0


class TestWhoSeesWhat:
    async def test_other_businesses_ids_are_404(self, server: LiveServer, client: httpx.AsyncClient) -> None:
        tenant, owner = await make_tenant(name="Home Duka")
        other, _ = await make_tenant(name="Away Duka")
        other_key = await make_api_key(tenant=other)
        foreign = await client.post(
            "/api/stk-push",
            json={"phone": "0722000555", "amount": 33},
            headers={"Authorization": f"Bearer {other_key}"},
        )
        assert foreign.status_code == 201
        foreign_id = foreign.json()["id"]
        async with signed_in(server, owner) as panel:
            topup_page = await panel.get("/app/wallet")
            await panel.post(
                "/app/wallet/topup", data={"amount": "20", "csrf_token": csrf_of(topup_page.text)}
            )
            (topup,) = await payments_of(tenant)
            for missing in (foreign_id, str(uuid.uuid4()), str(topup.id)):
                r = await panel.get(f"/app/pay/{missing}/status")
                assert r.status_code == 404, missing
                assert "No such transaction." in r.text
            assert (await panel.get("/app/pay/not-an-id/status")).status_code == 404
            # a link to someone else's payment shows the dashboard without it
            page = await panel.get("/app", params={"payment": foreign_id})
            assert page.status_code == 200 and 'id="pay-status"' not in page.text
            assert "KES 33" not in page.text

    async def test_cashier_and_manager_request_and_cashier_follows_only_their_own(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant(name="Staff Duka")
        cashier = await make_user(tenant=tenant, role=Role.cashier)
        manager = await make_user(tenant=tenant, role=Role.manager)
        key = await make_api_key(tenant=tenant)
        owners = await client.post(
            "/api/stk-push",
            json={"phone": "0722000999", "amount": 900, "name": "Owner's Customer"},
            headers={"Authorization": f"Bearer {key}"},
        )
        await wait_for_final(client, key, owners.json()["id"])

        async with signed_in(server, manager) as panel:
            managers = sent_id(await send(panel, {"phone": "0722000888", "amount": "80"}))
        async with signed_in(server, cashier) as panel:
            page = await panel.get("/app")
            assert 'id="request-payment"' in page.text
            assert "Owner&#39;s Customer" not in page.text  # the customer book is not the cashier's
            mine = sent_id(await send(panel, {"phone": "0722000777", "amount": "70", "name": "Akinyi"}))
            fragment = await final_status(panel, mine)
            assert text_of(fragment.text, "pay-state") == "Paid"
            for theirs in (owners.json()["id"], managers):
                r = await panel.get(f"/app/pay/{theirs}/status")
                assert r.status_code == 404 and "No such transaction." in r.text
            # the cashier's picks are the people they asked themselves
            page = await panel.get("/app")
            picks = re.findall(r'data-fill-phone="(\d+)"', page.text)
            assert picks == ["0722000777"]
        by_whom = {p.amount: p.initiated_by_id for p in await payments_of(tenant)}
        assert by_whom == {900: None, 80: manager.id, 70: cashier.id}

    async def test_read_only_admin_and_missing_csrf_send_nothing(self, server: LiveServer) -> None:
        tenant, _ = await make_tenant(name="Watched Pay Duka")
        admin, _ = await admin_client(server.url)
        try:
            overview = await admin.get("/admin")
            r = await admin.post(
                f"/admin/tenants/{tenant.id}/impersonate", data={"csrf_token": csrf_of(overview.text)}
            )
            assert r.status_code == 303
            r = await send(admin, {"phone": "0722000111", "amount": "10"})
            assert r.status_code == 403
            assert "You are viewing this business read-only." in r.text
            no_csrf = await admin.post("/app/pay", data={"phone": "0722000111", "amount": "10"})
            assert no_csrf.status_code == 403
        finally:
            await admin.aclose()
        assert await count_payments(tenant) == 0
