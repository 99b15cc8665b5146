"""Settings → Plan in the panel: the owner sees this month's live pushes against the quota and the plans
on offer, chooses a plan with a fee (the default plan applies until it is paid), is told why paying
from an empty wallet fails, pays from a funded wallet and by M-Pesa; a manager reads the page without
any form and is refused a post; another business's payment is not shown; a cashier is refused."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from core.access.actor import Actor, Via
from core.audit.models import AuditLog
from core.auth.models import Role
from core.billing.periods import EAT
from core.money import format_cents
from core.plans import use_cases_admin
from core.plans.models import ApiPlan, PlanUsage
from core.plans.schemas import PlanIn, PlanOut
from core.plans.service import month_of, next_month_start
from core.runtime import unit_of_work
from core.tenants.models import Tenant
from tests.conftest import LiveServer
from tests.support.factories import fund_wallet, letters_token, make_tenant, make_user, wallet_state
from tests.support.panel import business_client, csrf_of, text_of
from tests.support.waiting import wait_until

ADMIN = Actor.system(via=Via.cli)
PAGE = "/app/settings/plan"


async def growth_plan(*, public: bool = True) -> PlanOut:
    """A plan with a fee of this test's own (codes are unique platform-wide)."""
    code = f"g-{letters_token()}"
    return await use_cases_admin.save_plan(
        ADMIN,
        PlanIn(
            code=code,
            name=f"Growth {code}",
            description="For shops that push every day.",
            monthly_fee_cents=300_000,
            live_pushes_per_month=5000,
            pushes_per_key_per_minute=30,
            public=public,
        ),
    )


async def default_plan() -> ApiPlan:
    async with unit_of_work(readonly=True) as session:
        plan = await session.scalar(select(ApiPlan).where(ApiPlan.is_default))
        assert plan is not None
        return plan


async def used_this_month(tenant: Tenant, pushes: int) -> None:
    async with unit_of_work() as session:
        session.add(PlanUsage(tenant_id=tenant.id, month=month_of(datetime.now(UTC)), live_pushes=pushes))


async def plan_actions(tenant: Tenant) -> list[tuple[str, str | None]]:
    """What the business's own people did to its plan (an admin's assignment is not theirs)."""
    async with unit_of_work(readonly=True) as session:
        rows = await session.execute(
            select(AuditLog.action, AuditLog.target)
            .where(
                AuditLog.tenant_id == tenant.id,
                AuditLog.action.in_(("plan.chosen", "plan.paid", "plan.payment_requested")),
            )
            .order_by(AuditLog.id)
        )
        return [(a, t) for a, t in rows.all()]


async def paid_cents(tenant: Tenant) -> int:
    async with unit_of_work(readonly=True) as session:
        row = await session.scalar(
            select(AuditLog)
            .where(AuditLog.tenant_id == tenant.id, AuditLog.action == "plan.paid")
            .order_by(AuditLog.id.desc())
            .limit(1)
        )
        assert row is not None
        return int(row.detail["amount_cents"])


def kes(cents: int) -> str:
    """How the panel writes money: KES 3,000, or KES 2,999.50."""
    whole, part = divmod(cents, 100)
    return f"KES {whole:,}" + (f".{part:02d}" if part else "")


def cents_of(shown: str) -> int:
    """The cents in "KES 2,999.50" or "KES 3,000"."""
    whole, _, part = shown.removeprefix("KES ").replace(",", "").partition(".")
    return int(whole) * 100 + int(part or 0)


def month_words(at: datetime) -> tuple[str, str]:
    """("December 2026", "1 January"): this Nairobi month, and the day its count starts again."""
    return f"{at.astimezone(EAT):%B %Y}", f"{next_month_start(at).astimezone(EAT):%-d %B}"


class TestOwner:
    async def test_meter_choose_refused_payment_then_paid_from_the_wallet(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Plan Duka")
        free = await default_plan()
        growth = await growth_plan()
        await used_this_month(tenant, 37)
        panel = await business_client(server.url, owner)
        try:
            page = await panel.get(PAGE)
            assert page.status_code == 200
            assert '<a href="/app/settings/plan" aria-current="page">Plan</a>' in page.text
            month, resets = month_words(datetime.now(UTC))
            assert text_of(page.text, "effective") == free.name
            assert text_of(page.text, "meter-text") == (
                f"37 of {free.live_pushes_per_month:,} live payment requests used in {month}; "
                f"resets {resets} at 00:00"
            )
            assert f'<meter id="meter" min="0" max="{free.live_pushes_per_month}" value="37"' in page.text
            assert text_of(page.text, "paid-until") == "nothing to pay: the plan is free"
            assert 'id="unpaid"' not in page.text and 'id="pay"' not in page.text
            assert text_of(page.text, f"plan-{growth.code}") == (
                f"Growth {growth.code} For shops that push every day. KES 3,000 5,000 30 Choose"
            )
            assert text_of(page.text, f"plan-{free.code}").endswith("your plan")
            assert "founding" not in page.text  # hidden plans are the admin's to assign
            csrf = csrf_of(page.text)

            chose = await panel.post(
                f"{PAGE}/choose", data={"code": growth.code, "csrf_token": csrf}, follow_redirects=True
            )
            assert chose.status_code == 200 and str(chose.url).endswith(f"{PAGE}?done=chosen_unpaid")
            assert text_of(chose.text, "done") == (
                "Plan chosen. It has a monthly fee: pay it below. Until it is paid, the default plan applies."
            )
            assert text_of(chose.text, "unpaid") == (
                f"You chose the Growth {growth.code} plan (KES 3,000 a month), which is not paid. Until it "
                f"is paid, the {free.name} plan applies, with its limits. Pay it below."
            )
            assert text_of(chose.text, "effective") == free.name
            assert text_of(chose.text, "chosen") == f"Growth {growth.code} · not paid"
            assert text_of(chose.text, "paid-until") == "not paid"
            # the quota is still the default plan's while the fee is unpaid
            assert text_of(chose.text, "meter-text").startswith(f"37 of {free.live_pushes_per_month:,} ")
            due = text_of(chose.text, "pay-wallet").removeprefix("Pay ").removesuffix(" from the wallet")
            assert text_of(chose.text, "due") == (
                f"{due} pays the rest of {month} (the monthly fee of KES 3,000, for the days left)."
            )
            cents = cents_of(due)
            assert 0 < cents <= 300_000 and kes(cents) == due
            # by M-Pesa in whole shillings, rounded up
            assert text_of(chose.text, "pay-mpesa") == f"Pay {kes(math.ceil(cents / 100) * 100)} by M-Pesa"

            empty = await panel.post(f"{PAGE}/pay", data={"csrf_token": csrf})
            assert empty.status_code == 409
            message = text_of(empty.text, "pay-error")
            assert message.startswith(f"The Growth {growth.code} plan costs {format_cents(cents)} until ")
            assert message.endswith(
                "and the wallet has KES 0.00 available. Top up the wallet (POST /api/wallet/topup, or 👛 "
                "Wallet in the bot) and pay again."
            )
            assert text_of(empty.text, "effective") == free.name  # nothing changed
            assert await wallet_state(tenant) == (0, 0)

            await fund_wallet(tenant, 1_000_000)
            paid = await panel.post(f"{PAGE}/pay", data={"csrf_token": csrf}, follow_redirects=True)
            assert paid.status_code == 200 and str(paid.url).endswith(f"{PAGE}?done=paid")
            assert text_of(paid.text, "done") == "Plan paid from the wallet: its limits apply from now on."
            assert 'id="unpaid"' not in paid.text
            assert text_of(paid.text, "effective") == f"Growth {growth.code}"
            last_day = next_month_start(datetime.now(UTC)) - timedelta(seconds=1)
            assert text_of(paid.text, "paid-until") == f"{last_day.astimezone(EAT):%-d %B %Y}"
            assert text_of(paid.text, "meter-text") == (
                f"37 of 5,000 live payment requests used in {month}; resets {resets} at 00:00"
            )
            assert text_of(paid.text, "rate") == "30 prompts a minute"
            assert await paid_cents(tenant) == cents
            assert await wallet_state(tenant) == (1_000_000 - cents, 0)
            # the next payment is the next whole month
            assert text_of(paid.text, "pay-wallet") == "Pay KES 3,000 from the wallet"
            assert (
                text_of(paid.text, "due")
                == f"KES 3,000 pays {next_month_start(datetime.now(UTC)).astimezone(EAT):%B %Y}."
            )
            assert text_of(paid.text, f"plan-{growth.code}").endswith("your plan")

            forged = await panel.post(f"{PAGE}/choose", data={"code": free.code})
            assert forged.status_code == 403
            stale = await panel.post(f"{PAGE}/choose", data={"code": "founding", "csrf_token": csrf})
            assert stale.status_code == 404
            assert text_of(stale.text, "choose-error").startswith("No plan 'founding'.")
        finally:
            await panel.aclose()
        assert await plan_actions(tenant) == [("plan.chosen", growth.code), ("plan.paid", growth.code)]

    async def test_pay_by_mpesa_and_another_business_sees_none_of_it(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Mpesa Plan Duka")
        other, other_owner = await make_tenant(name="Other Plan Duka")
        growth = await growth_plan(public=False)  # assigned by an admin: shown though not on offer
        await use_cases_admin.assign_plan(ADMIN, tenant.id, code=growth.code)
        panel = await business_client(server.url, owner)
        stranger = await business_client(server.url, other_owner)
        try:
            page = await panel.get(PAGE)
            assert text_of(page.text, "chosen") == f"Growth {growth.code} · not paid"
            assert f'id="plan-{growth.code}"' not in page.text
            csrf = csrf_of(page.text)
            bad = await panel.post(f"{PAGE}/pay-mpesa", data={"phone": "12345", "csrf_token": csrf})
            assert bad.status_code == 422
            assert text_of(bad.text, "phone-error") != "" and 'value="12345"' in bad.text

            sent = await panel.post(f"{PAGE}/pay-mpesa", data={"phone": "0712 345 678", "csrf_token": csrf})
            assert sent.status_code == 303
            link = sent.headers["location"]
            assert link.startswith(f"{PAGE}?payment=") and link.endswith("#pay")
            payment_id = uuid.UUID(link.removeprefix(f"{PAGE}?payment=").removesuffix("#pay"))
            first = await panel.get(link)
            status_line = text_of(first.text, "mpesa-status")
            assert status_line.startswith("M-Pesa prompt for KES ") or " received by M-Pesa " in status_line
            if status_line.startswith("M-Pesa prompt"):
                assert status_line.endswith(
                    "sent to 0712 345 678: approve it on the phone. The plan is paid as soon as the money "
                    "reaches the wallet. Reload this page to see it."
                )
                assert f'<a href="{link}">Reload this page</a>' in first.text

            async def paid() -> bool:
                return 'id="unpaid"' not in (await panel.get(PAGE)).text

            await wait_until(paid)
            done = await panel.get(link)
            line = text_of(done.text, "mpesa-status")
            assert line.startswith("KES ") and line.endswith("and added to the wallet; the plan is paid.")
            assert text_of(done.text, "effective") == f"Growth {growth.code}"

            # another business: its own plan, and the first one's payment is not shown on its page
            theirs = await stranger.get(f"{PAGE}?payment={payment_id}")
            assert theirs.status_code == 200
            assert 'id="mpesa-status"' not in theirs.text and 'id="pay"' not in theirs.text
            assert text_of(theirs.text, "effective") == (await default_plan()).name
            assert growth.code not in theirs.text
        finally:
            await panel.aclose()
            await stranger.aclose()
        assert await plan_actions(tenant) == [("plan.payment_requested", growth.code)]
        assert await plan_actions(other) == []


class TestOthers:
    async def test_a_manager_reads_the_page_without_forms_and_is_refused(self, server: LiveServer) -> None:
        tenant, _ = await make_tenant(name="Managed Plan Duka")
        growth = await growth_plan()
        await use_cases_admin.assign_plan(ADMIN, tenant.id, code=growth.code)  # unpaid: the pay section shows
        await fund_wallet(tenant, 1_000_000)
        manager = await make_user(tenant=tenant, role=Role.manager)
        panel = await business_client(server.url, manager)
        try:
            page = await panel.get(PAGE)
            assert page.status_code == 200
            assert '<a href="/app/settings/plan" aria-current="page">Plan</a>' in page.text
            assert text_of(page.text, "unpaid").endswith("applies, with its limits.")  # no "Pay it below"
            assert text_of(page.text, "due").startswith("KES ")
            assert 'action="/app/settings/plan' not in page.text
            assert "Choose</button>" not in page.text
            assert text_of(page.text, "owner-only") == "The owner chooses the plan and pays it."
            csrf = csrf_of(page.text)  # the sign-out form's: the session's token
            for path, data in (
                ("/choose", {"code": growth.code}),
                ("/pay", {}),
                ("/pay-mpesa", {"phone": "0712345678"}),
            ):
                refused = await panel.post(f"{PAGE}{path}", data={**data, "csrf_token": csrf})
                assert refused.status_code == 403, path
                assert "This is for the owner of Managed Plan Duka" in refused.text, path
        finally:
            await panel.aclose()
        assert await plan_actions(tenant) == []
        assert await wallet_state(tenant) == (1_000_000, 0)

    async def test_a_cashier_is_refused(self, server: LiveServer) -> None:
        tenant, _ = await make_tenant(name="Cashier Plan Duka")
        cashier = await make_user(tenant=tenant, role=Role.cashier)
        panel = await business_client(server.url, cashier)
        try:
            page = await panel.get(PAGE)
            assert page.status_code == 403
            assert "This is for the owner or manager of Cashier Plan Duka" in page.text
            assert ">Plan</a>" not in (await panel.get("/app/settings")).text
        finally:
            await panel.aclose()
