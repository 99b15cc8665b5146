"""Platform admin → Plans over HTTP: create a plan (errors beside their field, a taken code refused),
change it, assign it to a business on its page (hidden plans too, with or without a paid-until day) and
see the count of businesses on it; a business user is refused every one of these pages and forms."""

from __future__ import annotations

import html
import uuid
from collections.abc import AsyncIterator
from datetime import datetime

import httpx
import pytest
from sqlalchemy import select

from core.audit.models import AuditLog
from core.billing.periods import EAT
from core.plans.models import ApiPlan
from core.runtime import unit_of_work
from core.tenants.models import Tenant
from tests.conftest import LiveServer
from tests.support.factories import letters_token, make_tenant
from tests.support.panel import admin_client, business_client, csrf_of, text_of


@pytest.fixture
async def admin(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    client, _ = await admin_client(server.url)
    try:
        yield client
    finally:
        await client.aclose()


def plan_form(code: str, **changes: str) -> dict[str, str]:
    return {
        "editing": "",
        "code": code,
        "name": "Biashara",
        "description": "For a busy shop.",
        "fee": "1,500",
        "live_pushes": "2000",
        "per_key": "",
        "public": "no",
        **changes,
    }


async def plan_row(code: str) -> ApiPlan | None:
    async with unit_of_work(readonly=True) as session:
        return await session.scalar(select(ApiPlan).where(ApiPlan.code == code))


async def tenant_row(tenant_id: uuid.UUID) -> Tenant:
    async with unit_of_work(readonly=True) as session:
        row = await session.get(Tenant, tenant_id)
        assert row is not None
        return row


async def audited(action: str, target: str) -> list[AuditLog]:
    async with unit_of_work(readonly=True) as session:
        return list(
            await session.scalars(
                select(AuditLog)
                .where(AuditLog.action == action, AuditLog.target == target)
                .order_by(AuditLog.id)
            )
        )


class TestCatalogue:
    async def test_create_refuse_and_change_a_plan(self, admin: httpx.AsyncClient) -> None:
        code = f"b-{letters_token()}"
        page = await admin.get("/admin/plans")
        assert page.status_code == 200
        assert '<a href="/admin/plans" aria-current="page">Plans</a>' in page.text
        assert text_of(page.text, "plan-free").startswith("free default Free Free")  # the seeded default
        csrf = csrf_of(page.text)

        bad = await admin.post(
            "/admin/plans",
            data=plan_form("Bad Code!", name="", fee="lots", live_pushes="-3", per_key="0", csrf_token=csrf),
        )
        assert bad.status_code == 422
        assert text_of(bad.text, "code-error").startswith("Give a code of 2 to 40 lower-case letters")
        assert text_of(bad.text, "name-error") == "Give the plan a name of up to 80 characters, like Growth."
        assert text_of(bad.text, "fee-error") == (
            "Type the fee in whole shillings from 0 to 1,000,000, like 3,000 (0: free)."
        )
        assert text_of(bad.text, "live_pushes-error") == (
            "Type a whole number from 0 to 100,000,000, or leave it empty for no monthly limit."
        )
        assert text_of(bad.text, "per_key-error") == (
            "Type a whole number from 1 to 100,000, or leave it empty for the standard rate."
        )
        assert 'value="Bad Code!"' in bad.text and 'value="lots"' in bad.text  # what was typed stays
        assert await plan_row("bad code!") is None

        made = await admin.post(
            "/admin/plans", data={**plan_form(code), "csrf_token": csrf}, follow_redirects=True
        )
        assert made.status_code == 200 and str(made.url).endswith(f"/admin/plans?done=created#plan-{code}")
        assert text_of(made.text, "done") == (
            "Plan created. Owners see it under Settings → Plan when it is offered to them."
        )
        assert text_of(made.text, f"plan-{code}") == (
            f"{code} Biashara KES 1,500 2,000 standard hidden 0 Change"
        )
        row = await plan_row(code)
        assert row is not None
        assert (row.name, row.description, row.monthly_fee_cents, row.live_pushes_per_month) == (
            "Biashara",
            "For a busy shop.",
            150_000,
            2000,
        )
        assert (row.pushes_per_key_per_minute, row.public, row.is_default) == (None, False, False)

        # the new-plan form never changes a plan whose code is taken
        taken = await admin.post(
            "/admin/plans", data={**plan_form(code, name="Overwritten"), "csrf_token": csrf}
        )
        assert taken.status_code == 422
        assert text_of(taken.text, "code-error") == (
            f"A plan '{code}' exists already: change it from the list, or choose another code."
        )
        assert (await plan_row(code)).name == "Biashara"  # type: ignore[union-attr]

        edit = await admin.get("/admin/plans", params={"edit": code})
        assert text_of(edit.text, "form-title") == "Change the Biashara plan"
        assert f'name="code" maxlength="40" required value="{code}" readonly' in edit.text
        assert 'name="fee" inputmode="numeric" maxlength="20" value="1500"' in edit.text
        changed = await admin.post(
            "/admin/plans",
            data={
                **plan_form(
                    code, editing=code, name="Biashara Plus", fee="2000", live_pushes="", per_key="60"
                ),
                "public": "yes",
                "csrf_token": csrf,
            },
            follow_redirects=True,
        )
        assert str(changed.url).endswith(f"/admin/plans?done=changed#plan-{code}")
        assert text_of(changed.text, "done") == (
            "Plan changed: businesses on it get its limits from their next payment request."
        )
        assert (
            text_of(changed.text, f"plan-{code}")
            == f"{code} Biashara Plus KES 2,000 no limit 60 yes 0 Change"
        )
        unknown = await admin.get("/admin/plans", params={"edit": f"x-{letters_token()}"})
        assert unknown.status_code == 404

        forged = await admin.post("/admin/plans", data=plan_form(f"f-{letters_token()}"))
        assert forged.status_code == 403
        saved = await audited("plan.saved", code)
        assert [r.detail["created"] for r in saved] == [True, False]


class TestAssign:
    async def test_assign_a_hidden_plan_with_a_paid_until_day_and_see_the_count(
        self, admin: httpx.AsyncClient
    ) -> None:
        code = f"h-{letters_token()}"
        csrf = csrf_of((await admin.get("/admin/plans")).text)
        made = await admin.post("/admin/plans", data={**plan_form(code), "csrf_token": csrf})
        assert made.status_code == 303
        tenant, _ = await make_tenant(name="Assigned Plan Duka")

        page = await admin.get(f"/admin/tenants/{tenant.id}")
        assert page.status_code == 200
        assert text_of(page.text, "plan-effective") == "Free · free"
        assert text_of(page.text, "plan-paid-until") == "free plan"
        assert text_of(page.text, "plan-usage") == "0 of 100"
        assert f'<option value="{code}">Biashara (KES 1,500) · hidden</option>' in page.text

        bad_day = await admin.post(
            f"/admin/tenants/{tenant.id}/plan",
            data={"code": code, "paid_until": "31/01/2099", "csrf_token": csrf},
        )
        assert bad_day.status_code == 422
        assert text_of(bad_day.text, "plan-error") == (
            "Give the last day paid as a date like 2027-01-31, or leave it empty."
        )
        no_such = await admin.post(
            f"/admin/tenants/{tenant.id}/plan", data={"code": "zz-none", "paid_until": "", "csrf_token": csrf}
        )
        assert no_such.status_code == 404
        assert text_of(no_such.text, "plan-error").startswith("No plan 'zz-none'.")
        assert (await tenant_row(tenant.id)).plan_id != (await plan_row(code)).id  # type: ignore[union-attr]

        # unpaid: the default plan applies until the owner pays
        unpaid = await admin.post(
            f"/admin/tenants/{tenant.id}/plan",
            data={"code": code, "paid_until": "", "csrf_token": csrf},
            follow_redirects=True,
        )
        assert str(unpaid.url).endswith(f"/admin/tenants/{tenant.id}?done=plan#plan")
        assert "Plan assigned: its limits apply from the business's next payment request." in html.unescape(
            unpaid.text
        )
        assert text_of(unpaid.text, "plan-chosen") == f"Biashara · {code} · not paid"
        assert text_of(unpaid.text, "plan-effective") == "Free · free"

        paid = await admin.post(
            f"/admin/tenants/{tenant.id}/plan",
            data={"code": code, "paid_until": "2099-01-31", "csrf_token": csrf},
            follow_redirects=True,
        )
        assert paid.status_code == 200
        assert text_of(paid.text, "plan-effective") == f"Biashara · {code}"
        assert text_of(paid.text, "plan-paid-until") == "31 January 2099"
        assert text_of(paid.text, "plan-usage") == "0 of 2,000"
        assert 'name="paid_until" type="date"\n             value="2099-01-31"' in paid.text
        row = await tenant_row(tenant.id)
        assert row.plan_paid_until == datetime(2099, 2, 1, tzinfo=EAT)  # through the whole Nairobi day

        listed = await admin.get("/admin/plans")
        assert text_of(listed.text, f"plan-{code}").endswith(" hidden 1 Change")
        rows = await audited("plan.assigned", code)
        assert [(r.detail["tenant"], r.detail["paid_until"]) for r in rows] == [
            (str(tenant.id), None),
            (str(tenant.id), "2099-01-31T21:00:00+00:00"),
        ]


class TestRefused:
    async def test_a_business_user_is_refused_the_plan_pages_and_forms(self, server: LiveServer) -> None:
        code = f"r-{letters_token()}"
        tenant, owner = await make_tenant(name="Refused Plan Duka")
        before = (await tenant_row(tenant.id)).plan_id
        panel = await business_client(server.url, owner)
        try:
            csrf = csrf_of((await panel.get("/app")).text)
            page = await panel.get("/admin/plans")
            assert page.status_code == 403
            assert "This is for platform administrators" in page.text
            create = await panel.post("/admin/plans", data={**plan_form(code), "csrf_token": csrf})
            assert create.status_code == 403
            assign = await panel.post(
                f"/admin/tenants/{tenant.id}/plan",
                data={"code": "founding", "paid_until": "", "csrf_token": csrf},
            )
            assert assign.status_code == 403
        finally:
            await panel.aclose()
        assert await plan_row(code) is None
        assert (await tenant_row(tenant.id)).plan_id == before
