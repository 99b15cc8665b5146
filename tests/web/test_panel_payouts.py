"""Payouts in the panel, against the Daraja stand-in: a payout goes through a confirmation page that says
what will be sent and ends paid with M-Pesa's receipt and name; refusals (a limit, an unproven
initiator) are said on the form; a manager pays out only once the owner allows it on the staff page;
another business's payout is not found; the M-Pesa balance shows on its page and the dashboard and
refreshes; Settings → Payout channels adds a channel and sets its initiator, never echoing a password."""

from __future__ import annotations

import html
import re
import uuid

import httpx
from playwright.async_api import Browser, Dialog, FilePayload, Page, expect
from sqlalchemy import func, select

from core.auth.models import Role, User
from core.lookups.models import Lookup, LookupKind
from core.payouts.models import Payout, PayoutStatus
from core.runtime import unit_of_work
from core.tenants.models import MpesaChannel
from tests.conftest import LiveServer
from tests.support.browser import browser, browser_sign_in, shot  # noqa: F401  - the fixture
from tests.support.factories import make_tenant, make_user
from tests.support.panel import admin_client, business_client, csrf_of, rows_of, text_of
from tests.support.payouts import PASSWORD, paying_business, payout_row, short_code, wait_final
from tests.support.waiting import wait_until
from tests.web.test_initiators_api import INVALID

NEW = "/app/payouts/new"


def form_fields(page: str, action: str) -> dict[str, str]:
    """The hidden and text fields of the form posting to `action`, as a browser would send them."""
    match = re.search(rf'<form[^>]*action="{re.escape(action)}"[^>]*>(.*?)</form>', page, re.S)
    assert match, f"no form posting to {action}"
    fields = {}
    for tag in re.findall(r"<input[^>]*>", match.group(1)):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name and 'type="checkbox"' not in tag:
            fields[name.group(1)] = html.unescape(value.group(1)) if value else ""
    return fields


async def payout_count(tenant_id: uuid.UUID) -> int:
    async with unit_of_work(readonly=True) as session:
        return int(await session.scalar(select(func.count()).where(Payout.tenant_id == tenant_id)) or 0)


async def review(panel: httpx.AsyncClient, **typed: str) -> httpx.Response:
    """The form filled in and sent to its confirmation page."""
    page = await panel.get(NEW)
    assert page.status_code == 200, page.text
    fields = {**form_fields(page.text, "/app/payouts/review"), **typed}
    return await panel.post("/app/payouts/review", data=fields)


async def confirm(panel: httpx.AsyncClient, confirmation: httpx.Response) -> httpx.Response:
    assert confirmation.status_code == 200, confirmation.text
    return await panel.post("/app/payouts", data=form_fields(confirmation.text, "/app/payouts"))


class TestOnePayout:
    async def test_the_confirmation_says_what_goes_and_only_its_confirm_pays(
        self, server: LiveServer
    ) -> None:
        pb = await paying_business(server, name="Panel Payday Duka")
        panel = await business_client(server.url, pb.owner)
        try:
            listed = await panel.get("/app/payouts")
            assert listed.status_code == 200
            assert text_of(listed.text, "no-payouts") == "No payouts yet."
            assert 'href="/app/payouts/new"' in listed.text

            short = await review(panel, phone="0712345678", amount="5", name="Wanjiru")
            assert short.status_code == 422
            assert (
                text_of(short.text, "payout-amount-error")
                == "A payout is at least KES 10 (M-Pesa's B2C minimum)."
            )
            bad_phone = await review(panel, phone="12345", amount="1500")
            assert bad_phone.status_code == 422
            assert text_of(bad_phone.text, "payout-phone-error")

            asked = await review(
                panel, phone="0712 345 678", amount="1,500", name="Wanjiru", reference="March wages"
            )
            assert asked.status_code == 200, asked.text
            assert text_of(asked.text, "confirm-question") == (
                "Send KES 1,500 to 0712 345 678 (Wanjiru) through “Payouts”? It cannot be undone."
            )
            assert await payout_count(pb.tenant.id) == 0  # nothing is sent before Confirm

            back = await panel.post("/app/payouts/new", data=form_fields(asked.text, "/app/payouts"))
            assert back.status_code == 200
            assert form_fields(back.text, "/app/payouts/review")["amount"] == "1500"

            sent = await confirm(panel, asked)
            assert sent.status_code == 303, sent.text
            location = sent.headers["location"]
            assert re.fullmatch(r"/app/payouts/[0-9a-f-]{36}\?done=sent", location)
            again = await confirm(panel, asked)  # a second click on Confirm: the same payout
            assert (again.status_code, again.headers["location"]) == (303, location)
            assert await payout_count(pb.tenant.id) == 1

            payout_id = location.split("/")[3].split("?")[0]
            row = await payout_row(payout_id)
            assert (
                row.phone,
                row.amount,
                row.name,
                row.reference,
                row.source.value,
                row.initiated_by_id,
            ) == (
                "254712345678",
                1500,
                "Wanjiru",
                "March wages",
                "panel",
                pb.owner.id,
            )
            done = await wait_final(payout_id)
            assert done.status is PayoutStatus.success and done.receipt
            page = await panel.get(location)
            assert page.status_code == 200
            assert text_of(page.text, "payout-status") == "paid"
            assert text_of(page.text, "payout-receipt") == done.receipt
            assert text_of(page.text, "payout-recipient") == done.recipient_name
            assert 'data-poll="' not in page.text.split('id="payout-state"')[1].split(">")[0]
            [first] = rows_of((await panel.get("/app/payouts")).text, "payouts")
            assert first[1:6] == [
                "0712 345 678 Wanjiru",
                done.recipient_name,
                "KES 1,500",
                "paid",
                done.receipt,
            ]
        finally:
            await panel.aclose()

    async def test_refusals_are_said_on_the_form(self, server: LiveServer) -> None:
        pb = await paying_business(server, name="Panel Limits Duka")
        panel = await business_client(server.url, pb.owner)
        try:
            over = await confirm(panel, await review(panel, phone="0712345678", amount="80000"))
            assert over.status_code == 422
            assert text_of(over.text, "payout-amount-error") == (
                "KES 80,000 is more than Panel Limits Duka may send in one payout: its limit is KES 70,000. "
                "Send a smaller amount, or split it over several payouts; lipapush support can change it "
                "(`lipapush payout limits --tenant …`)."
            )
            assert form_fields(over.text, "/app/payouts/review")["amount"] == "80000"  # kept to correct
            async with unit_of_work() as session:  # the initiator's proof is gone (a new password, say)
                channel = await session.get(MpesaChannel, pb.channel_id)
                assert channel is not None
                channel.initiator_verified_at = None
                channel.initiator_error = "The initiator information is invalid."
            refused = await confirm(panel, await review(panel, phone="0712345678", amount="100"))
            assert refused.status_code == 409
            assert text_of(refused.text, "payout-error").startswith(
                "The channel “Payouts” cannot pay out yet: its M-Pesa initiator is not verified."
            )
            assert await payout_count(pb.tenant.id) == 0
        finally:
            await panel.aclose()

    async def test_another_business_payout_is_not_found(self, server: LiveServer) -> None:
        pb = await paying_business(server, name="Panel Mine Duka")
        owner = await business_client(server.url, pb.owner)
        _, other_owner = await make_tenant(name="Panel Theirs Duka")
        theirs = await business_client(server.url, other_owner)
        try:
            sent = await confirm(owner, await review(owner, phone="0712345678", amount="100"))
            location = sent.headers["location"].split("?")[0]
            assert (await owner.get(location)).status_code == 200
            assert (await theirs.get(location)).status_code == 404
            assert (await theirs.get(location + "/status")).status_code == 404
            assert (await theirs.get("/app/payouts/not-an-id")).status_code == 404
        finally:
            await owner.aclose()
            await theirs.aclose()


class TestStaff:
    async def test_a_manager_pays_out_only_once_the_owner_allows_it(self, server: LiveServer) -> None:
        pb = await paying_business(server, name="Panel Staff Payout Duka")
        manager = await make_user(tenant=pb.tenant, role=Role.manager)
        staff = await business_client(server.url, manager)
        owner = await business_client(server.url, pb.owner)
        try:
            listed = await staff.get("/app/payouts")
            assert listed.status_code == 200  # a manager reads payouts
            assert 'href="/app/payouts/new"' not in listed.text
            assert (await staff.get(NEW)).status_code == 403
            typed = {
                "phone": "0712345678",
                "amount": "100",
                "command": "business",
                "csrf_token": csrf_of(listed.text),
            }
            for action in ("/app/payouts/review", "/app/payouts"):
                refused = await staff.post(action, data={**typed, "channel": str(pb.channel_id)})
                assert refused.status_code == 403
                assert "ask the owner to allow it for you" in text_of(refused.text, "main")
            assert await payout_count(pb.tenant.id) == 0

            page = await owner.get("/app/settings/staff")
            assert text_of(page.text, f"grant-{manager.id}").startswith("May pay out: no Allow to pay out")
            granted = await owner.post(
                f"/app/settings/staff/{manager.id}/payout-grant",
                data={"allowed": "1", "csrf_token": csrf_of(page.text)},
            )
            assert (granted.status_code, granted.headers["location"]) == (
                303,
                f"/app/settings/staff?done=grant_on#member-{manager.id}",
            )
            page = await owner.get("/app/settings/staff?done=grant_on")
            assert text_of(page.text, "done").startswith("Allowed to pay out")
            assert text_of(page.text, f"grant-{manager.id}").startswith(
                "May pay out: yes Stop them paying out"
            )

            assert 'href="/app/payouts/new"' in (await staff.get("/app/payouts")).text
            sent = await confirm(staff, await review(staff, phone="0712345678", amount="100"))
            assert sent.status_code == 303, sent.text
            row = await payout_row(sent.headers["location"].split("/")[3].split("?")[0])
            assert row.initiated_by_id == manager.id

            # and stopped again: refused at once
            page = await owner.get("/app/settings/staff")
            await owner.post(
                f"/app/settings/staff/{manager.id}/payout-grant",
                data={"allowed": "0", "csrf_token": csrf_of(page.text)},
            )
            assert (await staff.get(NEW)).status_code == 403
        finally:
            await staff.aclose()
            await owner.aclose()

    async def test_a_cashier_allowed_to_pay_out_sees_what_was_sent(self, server: LiveServer) -> None:
        pb = await paying_business(server, name="Panel Cashier Payout Duka")
        cashier = await make_user(tenant=pb.tenant, role=Role.cashier)
        async with unit_of_work() as session:
            row = await session.get(User, cashier.id)
            assert row is not None
            row.may_pay_out = True
        panel = await business_client(server.url, cashier)
        try:
            home = await panel.get("/app")
            assert 'id="dashboard-new-payout"' in home.text
            assert 'href="/app/payouts"' not in home.text  # no list: payouts:read is not a cashier's
            sent = await confirm(panel, await review(panel, phone="0712345678", amount="100", name="Otieno"))
            assert sent.status_code == 201, sent.text
            assert text_of(sent.text, "done").startswith("Sent to M-Pesa.")
            assert text_of(sent.text, "payout-status") == "with M-Pesa"
            assert await payout_count(pb.tenant.id) == 1
        finally:
            await panel.aclose()


class TestReadOnlyAdmin:
    async def test_an_admin_viewing_read_only_sees_the_owners_pages_and_changes_nothing(
        self, server: LiveServer
    ) -> None:
        pb = await paying_business(server, name="Panel Watched Payout Duka")
        manager = await make_user(tenant=pb.tenant, role=Role.manager)
        admin, _ = await admin_client(server.url)
        try:
            overview = await admin.get("/admin")
            r = await admin.post(
                f"/admin/tenants/{pb.tenant.id}/impersonate", data={"csrf_token": csrf_of(overview.text)}
            )
            assert r.status_code == 303
            for path in (
                "/app/payouts",
                NEW,
                "/app/payouts/batches",
                "/app/payouts/balance",
                "/app/settings/payout-channels",
            ):
                assert (await admin.get(path)).status_code == 200, path
            page = await admin.get(NEW)
            typed = {"phone": "0712345678", "amount": "100", "command": "business"}
            for action, data in (
                ("/app/payouts/review", typed),
                ("/app/payouts", typed),
                (f"/app/settings/staff/{manager.id}/payout-grant", {"allowed": "1"}),
                ("/app/settings/payout-channels", {"name": "More", "environment": "simulator"}),
                (f"/app/settings/payout-channels/{pb.channel_id}/initiator", {"initiator_name": "x"}),
            ):
                r = await admin.post(action, data={**data, "csrf_token": csrf_of(page.text)})
                assert r.status_code == 403, action
                assert "You are viewing this business read-only." in r.text, action
            assert await payout_count(pb.tenant.id) == 0 and not await granted(manager.id)
        finally:
            await admin.aclose()


async def granted(user_id: uuid.UUID) -> bool:
    async with unit_of_work(readonly=True) as session:
        row = await session.get(User, user_id)
        assert row is not None
        return row.may_pay_out


class TestBalance:
    async def test_the_balance_shows_with_its_time_and_refreshes(self, server: LiveServer) -> None:
        pb = await paying_business(server, name="Panel Balance Duka")
        panel = await business_client(server.url, pb.owner)
        try:
            page = await panel.get("/app/payouts/balance")
            assert page.status_code == 200
            cid = pb.channel_id
            assert text_of(page.text, f"utility-{cid}") == "KES 100,000"  # the initiator's proof asked it
            assert text_of(page.text, f"as-of-{cid}").endswith("EAT")
            home = await panel.get("/app")
            assert rows_of(home.text, "balance-table")[0][:3] == ["Payouts", "KES 100,000", "KES 0"]

            refreshed = await panel.post(
                "/app/payouts/balance/refresh",
                data={"channel": str(cid), "next": "/app", "csrf_token": csrf_of(home.text)},
            )
            assert (refreshed.status_code, refreshed.headers["location"]) == (303, "/app#balance")

            async def answered() -> bool:
                async with unit_of_work(readonly=True) as session:
                    asked = await session.scalars(
                        select(Lookup).where(Lookup.channel_id == cid, Lookup.kind == LookupKind.balance)
                    )
                    return all(lookup.status.value != "pending" for lookup in asked)

            await wait_until(answered)
            page = await panel.get("/app/payouts/balance")
            assert 'id="refreshing-' not in page.text
            async with unit_of_work(readonly=True) as session:
                count = await session.scalar(
                    select(func.count()).where(Lookup.channel_id == cid, Lookup.kind == LookupKind.balance)
                )
            assert count == 2  # the proof, then the refresh

            _, nobody = await make_tenant(name="Panel No Initiator Duka")
            other = await business_client(server.url, nobody)
            try:
                empty = await other.get("/app/payouts/balance")
                assert empty.status_code == 200 and 'id="no-balance"' in empty.text
                assert 'id="balance"' not in (await other.get("/app")).text
                refused = await other.post(
                    "/app/payouts/balance/refresh", data={"csrf_token": csrf_of(empty.text)}
                )
                assert refused.status_code == 409
                assert text_of(refused.text, "balance-error").startswith(
                    "This business has no channel with an M-Pesa initiator yet"
                )
            finally:
                await other.aclose()
        finally:
            await panel.aclose()


class TestPayoutChannels:
    async def test_the_owner_adds_a_channel_and_fixes_its_initiator(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Panel Payout Channel Duka")
        code = short_code()
        async with httpx.AsyncClient() as sim:  # the stand-in knows this short code's initiator
            r = await sim.post(
                f"{server.production_url}/_sim/initiators",
                json={"shortcode": code, "name": "apiop", "password": PASSWORD},
            )
            r.raise_for_status()
        page_url = "/app/settings/payout-channels"
        panel = await business_client(server.url, owner)
        try:
            page = await panel.get(page_url)
            assert page.status_code == 200
            assert (
                text_of(page.text, "no-payout-channels")
                == "No payout channel yet. Add your B2C short code below."
            )
            typed = {
                "name": "Payouts",
                "environment": "production",
                "short_code": "12",
                "initiator_name": "apiop",
                "initiator_password": "Wrong-Pass-1",
                "csrf_token": csrf_of(page.text),
            }
            bad = await panel.post(page_url, data=typed)
            assert bad.status_code == 422
            assert (
                text_of(bad.text, "payout-short-code-error")
                == "The short code is 5 to 7 digits, like 600100."
            )
            assert "Wrong-Pass-1" not in bad.text  # a password is never written back

            typed["short_code"] = code
            keyless = await panel.post(page_url, data=typed)
            assert keyless.status_code == 422
            assert text_of(keyless.text, "payout-consumer_key-error") == (
                "Required for a sandbox or production channel: the Daraja app's consumer key."
            )
            typed.update(consumer_key="b2c-key", consumer_secret="b2c-secret")
            added = await panel.post(page_url, data=typed)
            assert (added.status_code, added.headers["location"]) == (303, f"{page_url}?done=added")
            async with unit_of_work(readonly=True) as session:
                channel = await session.scalar(
                    select(MpesaChannel).where(
                        MpesaChannel.tenant_id == tenant.id, MpesaChannel.name == "Payouts"
                    )
                )
                assert channel is not None
                cid = channel.id

            async def state() -> str:
                return text_of((await panel.get(f"{page_url}/{cid}/state")).text, f"initiator-state-{cid}")

            async def settled() -> bool:
                return not (await state()).startswith("checking")

            await wait_until(settled)
            assert (await state()) == f"not verified Initiator “apiop”: {INVALID}"

            page = await panel.get(page_url)
            fixed = await panel.post(
                f"{page_url}/{cid}/initiator",
                data={
                    "initiator_name": "apiop",
                    "initiator_password": PASSWORD,
                    "csrf_token": csrf_of(page.text),
                },
            )
            assert fixed.status_code == 303
            await wait_until(settled)
            assert (await state()).startswith("verified Initiator “apiop”, proven by a balance check on ")
            assert PASSWORD not in (await panel.get(page_url)).text

            manager = await make_user(tenant=tenant, role=Role.manager)
            staff = await business_client(server.url, manager)
            try:
                seen = await staff.get(page_url)
                assert seen.status_code == 200 and f'id="channel-{cid}"' in seen.text
                assert 'action="/app/settings/payout-channels"' not in seen.text
                refused = await staff.post(
                    f"{page_url}/{cid}/initiator",
                    data={"initiator_name": "x", "initiator_password": "y", "csrf_token": csrf_of(seen.text)},
                )
                assert refused.status_code == 403
            finally:
                await staff.aclose()
        finally:
            await panel.aclose()


class TestInChromium:
    """The money-out pages at 360 px in Chromium: nothing wider than the phone but the tables, every field
    labelled, one h1; a payout confirmed and followed to "paid" without a reload; a list approved through
    the dialog that names its total and followed to "done"."""

    async def test_a_payout_and_a_list_on_a_phone(
        self,
        server: LiveServer,
        browser: Browser,  # noqa: F811
    ) -> None:
        pb = await paying_business(server, name="Chromium Payout Duka")
        page = await browser.new_page(viewport={"width": 360, "height": 740})
        dialogs: list[str] = []

        async def accept(dialog: Dialog) -> None:
            dialogs.append(dialog.message)
            await dialog.accept()

        page.on("dialog", accept)
        await browser_sign_in(page, server.url, pb.owner.email, "secret-pass-1")
        await page.get_by_role("navigation", name="Main").get_by_role("link", name="Payouts").click()
        await page.wait_for_url(f"{server.url}/app/payouts")
        await fits_a_phone(page)
        await page.get_by_role("link", name="New payout").click()
        await page.get_by_label("Recipient's M-Pesa phone").fill("0712 345 678")
        await page.get_by_label("Amount (KES)").fill("2,500")
        await page.get_by_label("Their name (optional)").fill("Wanjiru")
        await page.get_by_label("Reference (optional)").fill("Refund 114")
        await fits_a_phone(page)
        await page.get_by_role("button", name="Review the payout").click()
        await expect(page.locator("#confirm-question")).to_have_text(
            "Send KES 2,500 to 0712 345 678 (Wanjiru) through “Payouts”? It cannot be undone."
        )
        await fits_a_phone(page)
        await shot(page, "app-payout-confirm-360")
        await page.get_by_role("button", name="Confirm: send KES 2,500").click()
        await expect(page.locator("#payout-status")).to_have_text("paid", timeout=20_000)  # data-poll
        await expect(page.locator("#payout-receipt")).to_have_text(re.compile(r"^[A-Z0-9]{10}$"))
        await fits_a_phone(page)
        await shot(page, "app-payout-paid-360")

        await (
            page.get_by_role("navigation", name="Money out sections")
            .get_by_role("link", name="Bulk payouts")
            .click()
        )
        await fits_a_phone(page)
        await page.get_by_label("The list").set_input_files(
            files=FilePayload(name="december.csv", mimeType="text/csv", buffer=BULK.encode())
        )
        await page.get_by_role("button", name="Upload and check").click()
        await expect(page.locator("#preview-total")).to_have_text("KES 600")
        await fits_a_phone(page)
        await shot(page, "app-payout-batch-preview-360")
        await page.get_by_role("button", name="Approve and pay").click()
        await expect(page.locator("#batch-status")).to_have_text("done", timeout=30_000)  # data-poll
        assert dialogs[-1] == "Pay 3 rows, KES 600 in total, through “Payouts”? Payouts cannot be undone."
        await fits_a_phone(page)
        await shot(page, "app-payout-batch-done-360")

        for path in ("/app/payouts/balance", "/app/settings/payout-channels", "/app"):
            await page.goto(server.url + path)
            await fits_a_phone(page)
        await make_user(tenant=pb.tenant, role=Role.manager)  # the staff page's grant toggle
        await page.set_viewport_size({"width": 1280, "height": 800})
        for path, name in (
            ("/app/payouts", "list"),
            ("/app/payouts/batches", "batches"),
            ("/app/payouts/balance", "balance"),
            ("/app/settings/payout-channels", "channels"),
            ("/app/settings/staff", "staff"),
            ("/app", "dashboard"),
        ):
            await page.goto(server.url + path)
            await shot(page, f"app-payouts-{name}-desktop")
        await page.close()


BULK = "phone,amount,name\n0722400101,100,Akinyi\n0722400102,200,Baraka\n0722400103,300,Chebet\n"
# Fields a person fills in that have no <label for>, no wrapping <label>, no aria-label(ledby).
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter(el => el.type !== 'hidden' && el.type !== 'submit' && el.type !== 'button')
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !el.getAttribute('aria-labelledby'))
  .map(el => el.outerHTML.slice(0, 120))"""


async def fits_a_phone(page: Page) -> None:
    await page.wait_for_load_state()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360, page.url
    assert await page.evaluate(UNLABELLED) == [], page.url
    assert await page.locator("h1").count() == 1, page.url
